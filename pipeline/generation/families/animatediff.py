"""AnimateDiff: an SD 1.5-shaped UNet with a motion adapter; frames come out together.

A shot is made in windows of VIDEO_WINDOW frames. A window after the first, or the first
one when there is a previous shot (continuity), is video-to-video from a clip holding the
last frame before it. Window w uses seed + w. LoRA training uses the SD objective on the
UNet's image layers, each concept-art image a one-frame clip.
"""

from __future__ import annotations

from pathlib import Path

from backlot.generation.families.sd import StableDiffusionFamily

VIDEO_WINDOW = 16  # frames made together (the tiny motion adapter holds up to 32)


class AnimateDiffFamily(StableDiffusionFamily):
    name = "animatediff"
    pipeline_classes = ("AnimateDiffPipeline", "AnimateDiffVideoToVideoPipeline")
    text_class = "AnimateDiffPipeline"
    continuation_class = "AnimateDiffVideoToVideoPipeline"
    required_components = ("unet", "motion_adapter", "vae", "text_encoder", "tokenizer", "scheduler")
    video = True

    def matches_index(self, index: dict) -> bool:
        return True

    def make_frames(self, loaded, plan, previous, emit, progress) -> None:
        import torch

        s, made = plan.settings, 0
        common = self.call_args(loaded, s)
        for window, start in enumerate(range(0, plan.frame_count, VIDEO_WINDOW)):
            count = min(VIDEO_WINDOW, plan.frame_count - start)
            generator = torch.Generator(device="cpu").manual_seed(s.seed + window)
            if previous is None:
                frames = loaded.text2img(num_frames=count, height=s.height, width=s.width, generator=generator,
                                         **common).frames[0]
            else:
                strength = s.continuity_strength if window == 0 else s.frame_strength
                frames = loaded.img2img(video=[previous] * count, strength=strength, generator=generator,
                                        **common).frames[0]
            for frame in frames[:count]:
                emit(frame)
            made += count
            previous = frames[count - 1]
            if progress:
                progress(made)

    def recipe_fields(self, loaded, plan) -> dict:
        return {"frame_seeds": f"seed + window index, windows of {VIDEO_WINDOW}"}

    # LoRA goes on the image layers only (not the motion modules), trained on concept-art
    # stills as one-frame clips: the look transfers, the motion stays the adapter's.
    lora_target_modules = r"^(?!.*motion_modules).*\.(to_k|to_q|to_v|to_out\.0)$"

    def encode_training_data(self, pipe, pixels, captions, generator, device):
        data = super().encode_training_data(pipe, pixels, captions, generator, device)
        data.latents = data.latents.unsqueeze(2)  # (N, C, frames=1, h, w)
        return data

    def build_tiny(self, folder: Path, seed: int = 0) -> Path:
        import torch
        from diffusers import AnimateDiffPipeline, MotionAdapter

        components = self.tiny_components(seed)
        torch.manual_seed(seed + 1)
        motion = MotionAdapter(block_out_channels=(32, 64), motion_layers_per_block=1, motion_norm_num_groups=8,
                               motion_num_attention_heads=2, motion_max_seq_length=32)
        pipe = AnimateDiffPipeline(**components, motion_adapter=motion)
        folder.mkdir(parents=True, exist_ok=True)
        pipe.save_pretrained(folder, safe_serialization=True)
        return folder


FAMILY = AnimateDiffFamily()
