"""Stable Diffusion XL: a UNet conditioned on two CLIP text encoders and size/crop time ids.

An image family like SD 1.5 (frames one by one, each img2img from the one before;
continuity: img2img from the previous shot's last frame). Training follows diffusers'
SDXL text-to-image LoRA example: noise added by a DDPM scheduler built from the model's
scheduler config, the UNet conditioned on both encoders' embeddings, the pooled embedding
and the time ids (original size, crop (0, 0), target size), target as `prediction_type`
says (epsilon or v-prediction).
"""

from __future__ import annotations

from pathlib import Path

from backlot.generation.families.base import TrainingData, clip_tokenizer
from backlot.generation.families.sd import StableDiffusionFamily

MAX_TOKENS = 77


class StableDiffusionXLFamily(StableDiffusionFamily):
    name = "sdxl"
    pipeline_classes = ("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline")
    text_class = "StableDiffusionXLPipeline"
    continuation_class = "StableDiffusionXLImg2ImgPipeline"
    required_components = ("unet", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "scheduler")

    def matches_index(self, index: dict) -> bool:
        return True

    def load(self, folder, device):
        loaded = super().load(folder, device)
        # No invisible watermark: it would change the bytes depending on what is installed.
        loaded.text2img.watermark = loaded.img2img.watermark = None
        return loaded

    def continuation_pipeline(self, text):
        from diffusers import StableDiffusionXLImg2ImgPipeline

        return StableDiffusionXLImg2ImgPipeline(**text.components, add_watermarker=False)

    def prompt_tokenizers(self, loaded):
        pipe = loaded.text2img
        return [(t, t.model_max_length) for t in (pipe.tokenizer, pipe.tokenizer_2)]

    # --- training ------------------------------------------------------------------------
    def training_pipeline(self, folder, device):
        from diffusers import DDPMScheduler

        pipe = super().training_pipeline(folder, device)
        pipe.scheduler = DDPMScheduler.from_config(pipe.scheduler.config)  # the example's noise scheduler
        return pipe

    def encode_captions(self, pipe, captions, device):
        embeds, _, pooled, _ = pipe.encode_prompt(list(captions), device=device.name, num_images_per_prompt=1,
                                                  do_classifier_free_guidance=False)
        truncated = [any(len(t(c).input_ids) > t.model_max_length for t in (pipe.tokenizer, pipe.tokenizer_2))
                     for c in captions]
        return {"encoder_hidden_states": embeds, "text_embeds": pooled}, truncated

    def encode_training_data(self, pipe, pixels, captions, generator, device) -> TrainingData:
        import torch

        data = super().encode_training_data(pipe, pixels, captions, generator, device)
        height, width = pixels.shape[-2:]
        # original size, crop top-left, target size: the training images as they are
        data.shared["time_ids"] = torch.tensor([[height, width, 0, 0, height, width]], dtype=data.latents.dtype,
                                               device=data.latents.device)
        return data

    def denoise(self, pipe, noisy, timesteps, data, index):
        cond = data.conditioning
        added = {"text_embeds": cond["text_embeds"][index],
                 "time_ids": data.shared["time_ids"].repeat(noisy.shape[0], 1)}
        return pipe.unet(noisy, timesteps, cond["encoder_hidden_states"][index], added_cond_kwargs=added).sample

    # --- the stand-in --------------------------------------------------------------------
    def build_tiny(self, folder: Path, seed: int = 0) -> Path:
        import torch
        from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

        tokenizer = clip_tokenizer(MAX_TOKENS)
        vocab = tokenizer.get_vocab()
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=32, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
            addition_time_embed_dim=8, transformer_layers_per_block=(1, 1), projection_class_embeddings_input_dim=80,
            cross_attention_dim=64, norm_num_groups=8)
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32), layers_per_block=1,
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
            norm_num_groups=8, sample_size=64, scaling_factor=0.13025)
        config = CLIPTextConfig(
            vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=MAX_TOKENS, bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"], projection_dim=32)
        text_encoder = CLIPTextModel(config)
        text_encoder_2 = CLIPTextModelWithProjection(config)
        # SDXL base's scheduler settings
        scheduler = EulerDiscreteScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                                           beta_end=0.012, steps_offset=1, timestep_spacing="leading",
                                           prediction_type="epsilon")
        pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                         tokenizer=tokenizer, tokenizer_2=clip_tokenizer(MAX_TOKENS), unet=unet,
                                         scheduler=scheduler, add_watermarker=False)
        folder.mkdir(parents=True, exist_ok=True)
        pipe.save_pretrained(folder, safe_serialization=True)
        return folder


FAMILY = StableDiffusionXLFamily()
