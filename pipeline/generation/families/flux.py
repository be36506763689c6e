"""Flux: a rectified-flow transformer with CLIP (pooled) and T5 (sequence) text encoders.

An image family: frames one by one, each FluxImg2ImgPipeline from the one before, the first
from the prompt or from the previous shot's last frame (continuity). Guidance is Flux's
distilled guidance (`guidance_scale`, embedded in the transformer); there is no negative
prompt. Training is flow matching as diffusers' Flux DreamBooth LoRA example does it:
timesteps drawn with `compute_density_for_timestep_sampling` (logit-normal), the loss
weighted by `compute_loss_weighting_for_sd3`, target noise - x0, on packed latents.
"""

from __future__ import annotations

from pathlib import Path

from backlot.errors import InvalidInputError
from backlot.generation.families.base import (
    Family,
    FlowMatchingSettings,
    TrainingData,
    clip_tokenizer,
    flow_matching_draw,
    flow_matching_loss,
    flow_matching_noisy,
    image_frames,
    t5_tokenizer,
)

MAX_T5_TOKENS = 512  # Flux's longest T5 prompt
TRAINING_GUIDANCE = 3.5  # the guidance the example trains a guidance-distilled transformer with
FLOW = FlowMatchingSettings()


class FluxFamily(Family):
    name = "flux"
    pipeline_classes = ("FluxPipeline", "FluxImg2ImgPipeline")
    text_class = "FluxPipeline"
    continuation_class = "FluxImg2ImgPipeline"
    required_components = ("transformer", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2",
                           "scheduler")
    denoiser_name = "transformer"
    lora_target_modules = ("to_k", "to_q", "to_v", "to_out.0", "add_k_proj", "add_q_proj", "add_v_proj",
                           "to_add_out")
    size_multiple = 16  # the VAE's 8x and Flux's 2x2 packing
    objective = "flow_matching"

    def check_settings(self, settings) -> None:
        super().check_settings(settings)
        if settings.negative_prompt:
            raise InvalidInputError("a flux model takes no negative prompt (its guidance is distilled): "
                                    "leave --negative-prompt out")

    @staticmethod
    def max_sequence_length(pipe) -> int:
        return min(MAX_T5_TOKENS, pipe.tokenizer_2.model_max_length)

    def call_args(self, loaded, settings) -> dict:
        return dict(prompt=settings.prompt, num_inference_steps=settings.steps, guidance_scale=settings.guidance_scale,
                    max_sequence_length=self.max_sequence_length(loaded.text2img))

    def make_frames(self, loaded, plan, previous, emit, progress) -> None:
        s = plan.settings
        # FluxImg2Img sizes its latents from height/width, not from the image: pass the shot's.
        image_frames(loaded, plan, previous, emit, progress, self.call_args(loaded, s),
                     continuation_args=dict(height=s.height, width=s.width))

    def recipe_fields(self, loaded, plan) -> dict:
        return {"frame_seeds": "seed + frame index", "max_sequence_length": self.max_sequence_length(loaded.text2img)}

    def prompt_tokenizers(self, loaded):
        pipe = loaded.text2img
        return [(pipe.tokenizer, pipe.tokenizer.model_max_length), (pipe.tokenizer_2, self.max_sequence_length(pipe))]

    # --- training ------------------------------------------------------------------------
    def encode_training_data(self, pipe, pixels, captions, generator, device) -> TrainingData:
        import torch

        with torch.no_grad():
            latents = pipe.vae.encode(pixels.to(device.name)).latent_dist.sample(generator=generator)
            latents = (latents - pipe.vae.config.shift_factor) * pipe.vae.config.scaling_factor
            length = self.max_sequence_length(pipe)
            prompt_embeds, pooled, text_ids = pipe.encode_prompt(list(captions), prompt_2=None, device=device.name,
                                                                 max_sequence_length=length)
        _, _, height, width = latents.shape
        image_ids = pipe._prepare_latent_image_ids(1, height // 2, width // 2, device.name, latents.dtype)
        truncated = [len(pipe.tokenizer(c).input_ids) > pipe.tokenizer.model_max_length
                     or len(pipe.tokenizer_2(c).input_ids) > length for c in captions]
        return TrainingData(latents, {"encoder_hidden_states": prompt_embeds, "pooled_projections": pooled},
                            truncated, shared={"txt_ids": text_ids, "img_ids": image_ids})

    def draw_noise(self, pipe, data, batch_size, generator):
        return flow_matching_draw(pipe.scheduler, data.latents.shape[1:], batch_size, generator, FLOW)

    def training_loss(self, pipe, data, index, draw):
        import torch

        latents = data.latents[index]
        rows, channels, height, width = latents.shape
        noisy, target = flow_matching_noisy(latents, draw)
        packed = pipe._pack_latents(noisy, rows, channels, height, width)
        transformer = pipe.transformer
        guidance = (torch.full((rows,), TRAINING_GUIDANCE, device=latents.device)
                    if transformer.config.guidance_embeds else None)
        prediction = transformer(hidden_states=packed, timestep=draw.timesteps.to(latents.device) / 1000,
                                 guidance=guidance, pooled_projections=data.conditioning["pooled_projections"][index],
                                 encoder_hidden_states=data.conditioning["encoder_hidden_states"][index],
                                 txt_ids=data.shared["txt_ids"], img_ids=data.shared["img_ids"], return_dict=False)[0]
        prediction = pipe._unpack_latents(prediction, height * pipe.vae_scale_factor, width * pipe.vae_scale_factor,
                                          pipe.vae_scale_factor)
        return flow_matching_loss(prediction, target, draw.sigmas, FLOW)

    def training_recipe(self, pipe) -> dict:
        return {"objective": self.objective, "weighting_scheme": FLOW.weighting_scheme, "logit_mean": FLOW.logit_mean,
                "logit_std": FLOW.logit_std, "training_guidance": TRAINING_GUIDANCE}

    def lora_layers(self, denoiser) -> dict:
        from peft.utils import get_peft_model_state_dict

        return get_peft_model_state_dict(denoiser)

    # --- the stand-in --------------------------------------------------------------------
    def build_tiny(self, folder: Path, seed: int = 0) -> Path:
        import torch
        from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
        from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

        tokenizer = clip_tokenizer(77)
        vocab = tokenizer.get_vocab()
        tokenizer_2 = t5_tokenizer(64)
        torch.manual_seed(seed)
        transformer = FluxTransformer2DModel(
            patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
            num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True,
            axes_dims_rope=(4, 4, 8))
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32), layers_per_block=1,
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
            norm_num_groups=8, sample_size=64, use_quant_conv=False, use_post_quant_conv=False,
            shift_factor=0.0609, scaling_factor=1.5035)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=77, bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"]))
        text_encoder_2 = T5EncoderModel(T5Config(
            vocab_size=len(tokenizer_2), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
            relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))
        # FLUX.1-dev's scheduler settings (resolution-dependent shift)
        scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True,
                                                    base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                                                    max_image_seq_len=4096)
        pipe = FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                            text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, transformer=transformer)
        folder.mkdir(parents=True, exist_ok=True)
        pipe.save_pretrained(folder, safe_serialization=True)
        return folder


FAMILY = FluxFamily()
