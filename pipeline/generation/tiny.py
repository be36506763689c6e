"""A tiny Stable-Diffusion-style pipeline built offline from config with seeded random weights.

It is a stand-in for real weights: the same diffusers classes and code paths (UNet, VAE,
CLIP text encoder, scheduler, tokenizer), small enough to train and render on a CPU in
seconds. Its pictures are noise-like; its value is that every path Backlot runs on real
models runs on it too, reproducibly. The same seed writes the same bytes.
"""

from __future__ import annotations

from pathlib import Path

TINY_IMAGE_SIZE = 64
MAX_TOKENS = 77


def byte_level_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's byte-to-unicode alphabet as a vocabulary with no merges: every byte is a token."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    chars = [chr(c) for c in codes]
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    return {token: index for index, token in enumerate(tokens)}, []


KINDS = ("image", "animatediff")


def build_tiny_pipeline(folder: Path, seed: int = 0, kind: str = "image") -> Path:
    """Build and save the tiny pipeline under `folder` (created); returns the folder.

    `kind="animatediff"` builds the video variant: the same components plus a tiny
    `MotionAdapter`, saved as an `AnimateDiffPipeline` (frames come out together, moving).
    """
    if kind not in KINDS:
        raise ValueError(f"tiny model kind {kind!r}: use one of {', '.join(KINDS)}")
    from backlot.generation.device import quiet_libraries

    quiet_libraries()
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab, merges = byte_level_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_TOKENS)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=TINY_IMAGE_SIZE // 2, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(32, 64), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32, norm_num_groups=8,
        attention_head_dim=4)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=8, sample_size=TINY_IMAGE_SIZE)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS, bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"]))
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                              beta_end=0.012, clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    if kind == "animatediff":
        from diffusers import AnimateDiffPipeline, MotionAdapter

        torch.manual_seed(seed + 1)
        motion = MotionAdapter(block_out_channels=(32, 64), motion_layers_per_block=1, motion_norm_num_groups=8,
                               motion_num_attention_heads=2, motion_max_seq_length=32)
        pipe = AnimateDiffPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   motion_adapter=motion, scheduler=scheduler)
    else:
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                       scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
    folder.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder
