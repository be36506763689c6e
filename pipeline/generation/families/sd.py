"""Stable Diffusion 1.5-shaped image models: a UNet with one CLIP text encoder.

Frames are made one by one, each img2img from the one before (continuity: img2img from the
previous shot's last frame). LoRA goes on the UNet's attention projections; training
predicts what the scheduler's `prediction_type` says (epsilon or v-prediction).
"""

from __future__ import annotations

from pathlib import Path

from backlot.generation.families.base import Family, TrainingData, clip_tokenizer, prediction_target

TINY_IMAGE_SIZE = 64
MAX_TOKENS = 77


class StableDiffusionFamily(Family):
    name = "sd"
    pipeline_classes = ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline")
    text_class = "StableDiffusionPipeline"
    continuation_class = "StableDiffusionImg2ImgPipeline"
    required_components = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")

    def matches_index(self, index: dict) -> bool:
        return not index.get("motion_adapter")

    # --- training: the text-to-image LoRA example's objective, encoders run once ------------
    def encode_training_data(self, pipe, pixels, captions, generator, device) -> TrainingData:
        import torch

        with torch.no_grad():
            latents = pipe.vae.encode(pixels.to(device.name)).latent_dist.sample(generator=generator)
            latents = latents * pipe.vae.config.scaling_factor
            conditioning, truncated = self.encode_captions(pipe, captions, device)
        return TrainingData(latents, conditioning, truncated)

    def encode_captions(self, pipe, captions, device) -> tuple[dict, list[bool]]:
        limit = pipe.tokenizer.model_max_length
        tokens = pipe.tokenizer(list(captions), padding="max_length", max_length=limit, truncation=True,
                                return_tensors="pt")
        truncated = [len(pipe.tokenizer(c).input_ids) > limit for c in captions]
        return {"encoder_hidden_states": pipe.text_encoder(tokens.input_ids.to(device.name))[0]}, truncated

    def denoise(self, pipe, noisy, timesteps, data: TrainingData, index):
        return pipe.unet(noisy, timesteps, data.conditioning["encoder_hidden_states"][index]).sample

    def training_loss(self, pipe, data, index, draw):
        import torch.nn.functional as F

        latents = data.latents[index]
        device = latents.device
        noise, timesteps = draw.noise.to(device), draw.timesteps.to(device)
        noisy = pipe.scheduler.add_noise(latents, noise, timesteps)
        prediction = self.denoise(pipe, noisy, timesteps, data, index)
        target = prediction_target(pipe.scheduler, latents, noise, timesteps)
        return F.mse_loss(prediction.float(), target.float())

    def training_recipe(self, pipe) -> dict:
        return {"objective": pipe.scheduler.config.get("prediction_type", "epsilon")}

    # --- the stand-in --------------------------------------------------------------------
    def tiny_components(self, seed: int) -> dict:
        """The tiny UNet, VAE, CLIP text encoder, tokenizer and DDIM scheduler (seeded)."""
        import torch
        from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel

        tokenizer = clip_tokenizer(MAX_TOKENS)
        vocab = tokenizer.get_vocab()
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
        return dict(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)

    def build_tiny(self, folder: Path, seed: int = 0) -> Path:
        from diffusers import StableDiffusionPipeline

        pipe = StableDiffusionPipeline(**self.tiny_components(seed), safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
        folder.mkdir(parents=True, exist_ok=True)
        pipe.save_pretrained(folder, safe_serialization=True)
        return folder


FAMILY = StableDiffusionFamily()
