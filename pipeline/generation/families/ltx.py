"""LTX-Video: clips of the model's native length, continuity as conditioning frames.

Rendering uses `LTXConditionPipeline` for everything (it loads from an `LTXPipeline` folder:
the same components). Without conditions it is text-to-video; continuity, and a shot longer
than one clip, condition the clip on a frame at a chosen position: the previous shot's (or
the previous clip's) last frame at frame 0, strength 1. As with Wan (wan.py), every clip is
made at the native length, a clip that starts from a frame drops its first frame (it
re-makes that frame), frames past the shot's end are dropped, and clip c uses seed + c.
LTX takes the frame rate as an input (its rotary positions are in seconds), so clips are
made at the project's fps.

A folder may hold `backlot_video.json` ({"clip_frames": 121}) for its clip length; the
default is 121 frames. Clips hold 8k+1 frames (the VAE's temporal compression, read from its
config, plus one).

LoRA goes on the transformer's attention projections; training is flow matching (as Wan),
on latents packed into tokens the way the pipeline packs them; stills are one-frame videos.
"""

from __future__ import annotations

import json
from pathlib import Path

from backlot.errors import InvalidInputError
from backlot.generation.families.base import (
    Family,
    LoadedPipeline,
    TrainingData,
    flow_matching_draw,
    flow_matching_loss,
    flow_matching_noisy,
    t5_tokenizer,
)
from backlot.generation.families.wan import FLOW, clip_plan, training_scheduler, video_settings

DEFAULT_CLIP_FRAMES = 121
MAX_TEXT_TOKENS = 256  # LTXConditionPipeline's max_sequence_length
CONDITION_STRENGTH = 1.0
TRAINING_FRAME_RATE = 25  # a one-frame video has no time axis; any rate gives the same positions
# Passed explicitly (not left to the pipeline's defaults) and recorded: each changes the bytes.
CALL_SETTINGS = {"decode_timestep": 0.0, "image_cond_noise_scale": 0.15, "guidance_rescale": 0.0}
TINY_CLIP_FRAMES = 5
TINY_TOKENS = 64


class LTXFamily(Family):
    name = "ltx"
    pipeline_classes = ("LTXPipeline", "LTXConditionPipeline")
    text_class = "LTXConditionPipeline"
    continuation_class = "LTXConditionPipeline"
    required_components = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")
    video = True
    denoiser_name = "transformer"
    lora_target_modules = ("to_q", "to_k", "to_v", "to_out.0")
    size_multiple = 8  # the tiny VAE's; a real one's (32) is checked on load
    objective = "flow_matching"

    def check_folder(self, folder: Path, index: dict) -> None:
        super().check_folder(folder, index)
        video_settings(folder, index, _temporal_step(folder), (DEFAULT_CLIP_FRAMES, 25), "LTX-Video")

    # --- rendering -----------------------------------------------------------------------
    def load(self, folder: Path, device) -> LoadedPipeline:
        from backlot.generation.device import quiet_libraries

        quiet_libraries()
        from diffusers import LTXConditionPipeline

        pipe = LTXConditionPipeline.from_pretrained(folder, dtype=device.torch_dtype(), local_files_only=True)
        pipe.to(device.name)
        pipe.set_progress_bar_config(disable=True)
        if device.compile:
            import torch

            pipe.transformer = torch.compile(pipe.transformer)
        index = json.loads((folder / "model_index.json").read_text())
        clip_frames, _ = video_settings(folder, index, _temporal_step(folder), (DEFAULT_CLIP_FRAMES, 25), "LTX-Video")
        return LoadedPipeline(pipe, pipe, device, True, family=self.name, extra={"clip_frames": clip_frames})

    def call_args(self, loaded, settings) -> dict:
        return dict(prompt=settings.prompt, negative_prompt=settings.negative_prompt or None,
                    num_inference_steps=settings.steps, guidance_scale=settings.guidance_scale,
                    max_sequence_length=_max_tokens(loaded.text2img.tokenizer), **CALL_SETTINGS)

    def prompt_tokenizers(self, loaded) -> list:
        tokenizer = loaded.text2img.tokenizer
        return [(tokenizer, _max_tokens(tokenizer))]

    def make_frames(self, loaded, plan, previous, emit, progress) -> None:
        import torch
        from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

        s, pipe = plan.settings, loaded.text2img
        multiple = pipe.vae_spatial_compression_ratio * pipe.transformer_spatial_patch_size
        if s.width % multiple or s.height % multiple:
            raise InvalidInputError(f"--size {s.width}x{s.height}: this LTX-Video model needs both sides to be "
                                    f"multiples of {multiple}")
        common = self.call_args(loaded, s)
        made = 0
        for clip in clip_plan(loaded, plan):
            generator = torch.Generator(device="cpu").manual_seed(clip["seed"])
            conditions = None
            if clip["from"] != "prompt":
                conditions = [LTXVideoCondition(image=previous, frame_index=0, strength=CONDITION_STRENGTH)]
            frames = pipe(conditions=conditions, num_frames=clip["num_frames"], frame_rate=float(plan.fps),
                          height=s.height, width=s.width, generator=generator, output_type="pil",
                          **common).frames[0]
            first, last = clip["keep"]
            for frame in frames[first:last]:
                emit(frame)
            made += last - first
            previous = frames[last - 1]
            if progress:
                progress(made)

    def recipe_fields(self, loaded, plan) -> dict:
        return {
            "frame_seeds": "seed + clip index", "clip_frames": loaded.extra["clip_frames"],
            "clips": clip_plan(loaded, plan),
            "continuation": f"conditioning frame: the last frame before the clip at frame_index 0, "
                            f"strength {CONDITION_STRENGTH}",
            "frames_kept": "every clip is made at the native length; a clip that starts from a frame drops its "
                           "first frame (it re-makes that frame); frames past the shot's end are dropped",
            "frame_rate": f"{plan.fps.numerator}/{plan.fps.denominator} (the project's: LTX takes the rate as input)",
            "max_sequence_length": _max_tokens(loaded.text2img.tokenizer), **CALL_SETTINGS,
        }

    # --- training ------------------------------------------------------------------------
    def encode_training_data(self, pipe, pixels, captions, generator, device) -> TrainingData:
        import torch

        multiple = pipe.vae_spatial_compression_ratio * pipe.transformer_spatial_patch_size
        if pixels.shape[-1] % multiple or pixels.shape[-2] % multiple:
            raise InvalidInputError(f"--resolution {pixels.shape[-1]}: this LTX-Video model trains on sizes that are "
                                    f"multiples of {multiple}")
        vae = pipe.vae
        limit = _max_tokens(pipe.tokenizer)
        with torch.no_grad():
            video = pixels.unsqueeze(2).to(device.name, vae.dtype)  # stills as one-frame videos
            latents = vae.encode(video).latent_dist.sample(generator=generator)
            latents = pipe._normalize_latents(latents, vae.latents_mean, vae.latents_std, vae.config.scaling_factor)
            embeds, mask, _, _ = pipe.encode_prompt(list(captions), do_classifier_free_guidance=False,
                                                    max_sequence_length=limit, device=device.name)
        truncated = [len(pipe.tokenizer(c).input_ids) > limit for c in captions]
        return TrainingData(latents, {"encoder_hidden_states": embeds, "encoder_attention_mask": mask}, truncated)

    def draw_noise(self, pipe, data: TrainingData, batch_size: int, generator):
        return flow_matching_draw(training_scheduler(pipe), data.latents.shape[1:], batch_size, generator, FLOW)

    def training_loss(self, pipe, data: TrainingData, index, draw):
        latents = data.latents[index]
        noisy, target = flow_matching_noisy(latents, draw)
        _, _, frames, height, width = latents.shape
        p, pt = pipe.transformer_spatial_patch_size, pipe.transformer_temporal_patch_size
        ratio_t, ratio_s = pipe.vae_temporal_compression_ratio, pipe.vae_spatial_compression_ratio
        prediction = pipe.transformer(
            hidden_states=pipe._pack_latents(noisy, p, pt), timestep=draw.timesteps.to(latents.device),
            encoder_hidden_states=data.conditioning["encoder_hidden_states"][index],
            encoder_attention_mask=data.conditioning["encoder_attention_mask"][index],
            num_frames=frames, height=height, width=width,
            rope_interpolation_scale=(ratio_t / TRAINING_FRAME_RATE, ratio_s, ratio_s), return_dict=False)[0]
        return flow_matching_loss(prediction, pipe._pack_latents(target, p, pt), draw.sigmas, FLOW)

    def training_recipe(self, pipe) -> dict:
        scheduler = training_scheduler(pipe)
        return {"objective": self.objective, "flow_matching": {**FLOW.__dict__, "shift": scheduler.config.shift,
                                                               "num_train_timesteps": scheduler.config.num_train_timesteps},
                "training_frames": "each concept-art still is a one-frame video"}

    # --- the stand-in --------------------------------------------------------------------
    def build_tiny(self, folder: Path, seed: int = 0) -> Path:
        import torch
        from diffusers import (AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXPipeline,
                               LTXVideoTransformer3DModel)
        from transformers import T5Config, T5EncoderModel

        from backlot.generation.device import quiet_libraries

        quiet_libraries()
        tokenizer = t5_tokenizer(TINY_TOKENS)
        torch.manual_seed(seed)
        text_encoder = T5EncoderModel(T5Config(
            vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
            relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))
        vae = AutoencoderKLLTXVideo(
            in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
            decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
            decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, False, False),
            decoder_spatio_temporal_scaling=(True, True, False, False), decoder_inject_noise=(False,) * 5,
            upsample_residual=(False,) * 4, upsample_factor=(1,) * 4, timestep_conditioning=False, patch_size=1,
            patch_size_t=1, encoder_causal=True, decoder_causal=False)
        transformer = LTXVideoTransformer3DModel(
            in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=4, attention_head_dim=8,
            cross_attention_dim=32, num_layers=1, caption_channels=32)
        pipe = LTXPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
                           tokenizer=tokenizer, transformer=transformer)
        folder.mkdir(parents=True, exist_ok=True)
        pipe.save_pretrained(folder, safe_serialization=True)
        (folder / "backlot_video.json").write_text(json.dumps({"clip_frames": TINY_CLIP_FRAMES}, indent=2) + "\n")
        return folder


def _temporal_step(folder: Path) -> int:
    """Frames the VAE packs into one latent frame (8 for LTX-Video's, 4 for the tiny one)."""
    path = folder / "vae" / "config.json"
    config = json.loads(path.read_text()) if path.is_file() else {}
    if config.get("temporal_compression_ratio"):
        return int(config["temporal_compression_ratio"])
    scaling = config.get("spatio_temporal_scaling", (True, True, True, False))
    return int(config.get("patch_size_t", 1)) * 2 ** sum(bool(x) for x in scaling)


def _max_tokens(tokenizer) -> int:
    return min(MAX_TEXT_TOKENS, tokenizer.model_max_length)


FAMILY = LTXFamily()
