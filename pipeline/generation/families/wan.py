"""Wan 2.1 / 2.2 video models: a shot is made as clips of the model's native length.

The first clip of a shot comes from the prompt (text-to-video), or, when the previous shot
has a version (continuity), image-to-video from that shot's last frame. A shot longer than
one clip goes on image-to-video from the last frame of the clip before. Every clip is made
at the native length (Wan makes 4k+1 frames); an image-to-video clip's first frame re-makes
the frame it starts from, so it is dropped, and the last clip's frames beyond the shot are
dropped: the shot's frame count is met exactly. Clip c uses seed + c. One model frame is one
project frame: the recipe records the model's native fps beside the project's.

What a folder can do, by what it holds:
- `WanPipeline` with `expand_timesteps` (Wan 2.2 TI2V-5B, and the tiny stand-in): one
  transformer does text-to-video and image-to-video (`WanImageToVideoPipeline` over the same
  components; the first latent frame is the image, its timestep masked to 0).
- `WanPipeline` without it (Wan 2.1 T2V, Wan 2.2 T2V-A14B): text-to-video; a clip that
  continues from a frame is video-to-video (`WanVideoToVideoPipeline`) from a still clip of
  that frame, at `continuity_strength` / `frame_strength`. diffusers' video-to-video takes one
  transformer, so a two-expert T2V folder cannot continue (a clear error says so).
- `WanImageToVideoPipeline` (Wan 2.1 I2V with its CLIP image encoder, Wan 2.2 I2V-A14B with
  two experts): image-to-video only, so it needs a frame to start from.

A folder may hold `backlot_video.json` ({"clip_frames": 81, "native_fps": 16}) to say its
native clip length and frame rate; otherwise 121 frames at 24 fps for TI2V (expand_timesteps)
and 81 at 16 fps for the others, as the Wan releases make them.

LoRA goes on the transformer's attention projections (self- and cross-attention: to_q, to_k,
to_v, to_out.0), trained with the flow-matching objective (timestep density and loss weighting
as diffusers' SD3/Flux LoRA examples); concept-art stills train as one-frame videos.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

from backlot.errors import InvalidInputError
from backlot.generation.families.base import (
    Family,
    FlowMatchingSettings,
    LoadedPipeline,
    TrainingData,
    flow_matching_draw,
    flow_matching_loss,
    flow_matching_noisy,
    t5_tokenizer,
)

VIDEO_CONFIG = "backlot_video.json"
TEMPORAL_STEP = 4  # Wan's VAE packs 4 frames into a latent frame after the first: clips are 4k+1
MAX_TEXT_TOKENS = 512  # the Wan pipelines' max_sequence_length
FLOW = FlowMatchingSettings()
# The tiny stand-in: a TI2V-shaped folder, so one transformer does both text- and image-to-video.
TINY_CLIP_FRAMES = 5
TINY_NATIVE_FPS = {"ti2v": 24}  # as the releases: TI2V-5B at 24 fps, the others at 16
TINY_TOKENS = 64
TINY_VARIANTS = ("ti2v", "i2v", "t2v", "i2v_experts", "t2v_experts")


class WanFamily(Family):
    name = "wan"
    pipeline_classes = ("WanPipeline", "WanImageToVideoPipeline")
    text_class = "WanPipeline"
    continuation_class = "WanImageToVideoPipeline"
    required_components = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")
    video = True
    denoiser_name = "transformer"
    # Self- and cross-attention projections of every block, as Wan LoRA trainers target them.
    lora_target_modules = ("to_q", "to_k", "to_v", "to_out.0")
    size_multiple = 16  # VAE 8 x patch 2 (Wan 2.2's 5B VAE: 32, checked on load)
    objective = "flow_matching"

    # --- registering -------------------------------------------------------------------
    def check_folder(self, folder: Path, index: dict) -> None:
        super().check_folder(folder, index)
        needed = []
        if index.get("boundary_ratio") is not None:
            needed.append("transformer_2")  # Wan 2.2 A14B: the low-noise expert
        if index.get("_class_name") == "WanImageToVideoPipeline" and _transformer_config(folder).get("image_dim"):
            needed += ["image_encoder", "image_processor"]  # Wan 2.1 I2V conditions on CLIP image features
        missing = [n for n in needed if not (isinstance(index.get(n), list) and index[n][0] and (folder / n).is_dir())]
        if missing:
            raise InvalidInputError(f"{folder}: this Wan model ({_describe(index, folder)}) needs the components "
                                    f"{', '.join(needed)}; missing: {', '.join(missing)}")
        video_settings(folder, index)

    # --- rendering -----------------------------------------------------------------------
    def load(self, folder: Path, device) -> LoadedPipeline:
        from backlot.generation.device import quiet_libraries

        quiet_libraries()
        import diffusers

        index = _index(folder)
        cls = getattr(diffusers, index["_class_name"])
        main = cls.from_pretrained(folder, dtype=device.torch_dtype(), local_files_only=True)
        main.to(device.name)
        main.set_progress_bar_config(disable=True)
        if device.compile:
            import torch

            main.transformer = torch.compile(main.transformer)
        mode = _mode(index)
        if mode == "i2v":
            cont = main
        elif mode == "ti2v":
            cont = diffusers.WanImageToVideoPipeline(
                **_shared(main), image_encoder=None, image_processor=None,
                boundary_ratio=main.config.boundary_ratio, expand_timesteps=True)
        elif main.transformer_2 is None:
            cont = diffusers.WanVideoToVideoPipeline(**{k: v for k, v in _shared(main).items() if k != "transformer_2"})
        else:
            cont = None  # diffusers has no video-to-video for two experts
        if cont is not None:
            cont.set_progress_bar_config(disable=True)
        clip_frames, native_fps = video_settings(folder, index)
        return LoadedPipeline(main, cont, device, True, family=self.name,
                              extra={"mode": mode, "clip_frames": clip_frames, "native_fps": native_fps})

    def call_args(self, loaded, settings) -> dict:
        return dict(prompt=settings.prompt, negative_prompt=settings.negative_prompt or None,
                    num_inference_steps=settings.steps, guidance_scale=settings.guidance_scale,
                    max_sequence_length=_max_tokens(loaded.text2img.tokenizer))

    def prompt_tokenizers(self, loaded) -> list:
        tokenizer = loaded.text2img.tokenizer
        return [(tokenizer, _max_tokens(tokenizer))]

    def make_frames(self, loaded, plan, previous, emit, progress) -> None:
        import torch

        s = plan.settings
        self._check_size(loaded, s)
        clips = clip_plan(loaded, plan)
        self._check_clips(loaded, clips)
        common = self.call_args(loaded, s)
        made = 0
        for clip in clips:
            generator = torch.Generator(device="cpu").manual_seed(clip["seed"])
            args = dict(height=s.height, width=s.width, generator=generator, output_type="pil", **common)
            if clip["from"] == "prompt":
                frames = loaded.text2img(num_frames=clip["num_frames"], **args).frames[0]
            elif loaded.extra["mode"] == "t2v":
                strength = s.continuity_strength if clip["from"] == "continuity" else s.frame_strength
                frames = loaded.img2img(video=[previous] * clip["num_frames"], strength=strength, **args).frames[0]
            else:
                frames = loaded.img2img(image=previous, num_frames=clip["num_frames"], **args).frames[0]
            first, last = clip["keep"]
            for frame in frames[first:last]:
                emit(frame)
            made += last - first
            previous = frames[last - 1]
            if progress:
                progress(made)

    def _check_clips(self, loaded, clips: list[dict]) -> None:
        """Refuse, before any clip is made, a clip this folder has no pipeline for."""
        if clips[0]["from"] == "prompt" and loaded.extra["mode"] == "i2v":
            raise InvalidInputError(
                "this Wan model is image-to-video only and the shot has no frame to start from: render the "
                "previous shot first (continuity), or use a text-to-video / TI2V Wan model for this shot")
        if loaded.img2img is None and any(c["from"] != "prompt" for c in clips):
            raise InvalidInputError(
                "this two-expert Wan text-to-video model cannot continue from a frame (diffusers has no image- or "
                f"video-to-video for it): keep the shot within one clip of {loaded.extra['clip_frames']} frames and "
                "render it with --no-continuity, or register the Wan 2.2 I2V-A14B or TI2V-5B model")

    def _check_size(self, loaded, settings) -> None:
        pipe = loaded.text2img
        patch = _denoiser(pipe).config.patch_size
        multiple = pipe.vae_scale_factor_spatial * patch[1]
        if settings.width % multiple or settings.height % multiple:
            raise InvalidInputError(f"--size {settings.width}x{settings.height}: this Wan model needs both sides "
                                    f"to be multiples of {multiple}")

    def recipe_fields(self, loaded, plan) -> dict:
        extra = loaded.extra
        mode = extra["mode"]
        continuation = {"ti2v": "image-to-video (expand_timesteps: the first latent frame is the image)",
                        "i2v": "image-to-video", "t2v": "video-to-video from a still clip of the frame"}[mode]
        return {
            "frame_seeds": "seed + clip index",
            "clip_frames": extra["clip_frames"], "continuation": continuation,
            "clips": clip_plan(loaded, plan),
            "frames_kept": "every clip is made at the native length; a clip that starts from a frame drops its "
                           "first frame (it re-makes that frame); frames past the shot's end are dropped",
            "native_fps": extra["native_fps"],
            "fps_mapping": (f"one model frame per project frame: motion made for {extra['native_fps']} fps plays at "
                            f"{plan.fps.numerator}/{plan.fps.denominator} fps"),
            "boundary_ratio": loaded.text2img.config.get("boundary_ratio"),
            # two experts: the low-noise one gets the same guidance (diffusers' default, not passed)
            "guidance_scale_2": plan.settings.guidance_scale if loaded.text2img.config.get("boundary_ratio") else None,
            "expand_timesteps": bool(loaded.text2img.config.get("expand_timesteps")),
            "strengths_used": mode == "t2v",
            "max_sequence_length": _max_tokens(loaded.text2img.tokenizer),
            "ftfy": _version("ftfy"),  # Wan cleans prompts with it: a different version may change the text
        }

    # --- training ------------------------------------------------------------------------
    def check_trainable(self, folder: Path) -> None:
        index = _index(folder)
        mode = _mode(index)
        if mode == "i2v":
            raise InvalidInputError(f"{folder.name}: LoRA training on an image-to-video-only Wan model is not "
                                    "supported: train on the text-to-video or TI2V Wan model")
        if index.get("boundary_ratio") is not None:
            raise InvalidInputError(f"{folder.name}: LoRA training for Wan 2.2's two experts (transformer and "
                                    "transformer_2) is not supported yet: train on a one-transformer Wan model")

    def training_pipeline(self, folder: Path, device):
        self.check_trainable(folder)
        return super().training_pipeline(folder, device)

    def encode_training_data(self, pipe, pixels, captions, generator, device) -> TrainingData:
        import torch

        multiple = pipe.vae_scale_factor_spatial * _denoiser(pipe).config.patch_size[1]
        if pixels.shape[-1] % multiple or pixels.shape[-2] % multiple:
            raise InvalidInputError(f"--resolution {pixels.shape[-1]}: this Wan model trains on sizes that are "
                                    f"multiples of {multiple}")
        vae = pipe.vae
        z = vae.config.z_dim
        mean = torch.tensor(vae.config.latents_mean).view(1, z, 1, 1, 1)
        std = torch.tensor(vae.config.latents_std).view(1, z, 1, 1, 1)
        limit = _max_tokens(pipe.tokenizer)
        with torch.no_grad():
            video = pixels.unsqueeze(2).to(device.name, vae.dtype)  # stills as one-frame videos (N, 3, 1, H, W)
            latents = vae.encode(video).latent_dist.sample(generator=generator)
            latents = (latents - mean.to(latents)) / std.to(latents)
            embeds, _ = pipe.encode_prompt(list(captions), do_classifier_free_guidance=False,
                                           max_sequence_length=limit, device=device.name)
        truncated = [len(pipe.tokenizer(c).input_ids) > limit for c in captions]
        return TrainingData(latents, {"encoder_hidden_states": embeds}, truncated)

    def draw_noise(self, pipe, data: TrainingData, batch_size: int, generator):
        return flow_matching_draw(training_scheduler(pipe), data.latents.shape[1:], batch_size, generator, FLOW)

    def training_loss(self, pipe, data: TrainingData, index, draw):
        latents = data.latents[index]
        noisy, target = flow_matching_noisy(latents, draw)
        prediction = pipe.transformer(hidden_states=noisy, timestep=draw.timesteps.to(latents.device),
                                      encoder_hidden_states=data.conditioning["encoder_hidden_states"][index],
                                      return_dict=False)[0]
        return flow_matching_loss(prediction, target, draw.sigmas, FLOW)

    def training_recipe(self, pipe) -> dict:
        scheduler = training_scheduler(pipe)
        return {"objective": self.objective, "flow_matching": {**FLOW.__dict__, "shift": scheduler.config.shift,
                                                               "num_train_timesteps": scheduler.config.num_train_timesteps},
                "training_frames": "each concept-art still is a one-frame video"}

    # --- the stand-in --------------------------------------------------------------------
    def build_tiny(self, folder: Path, seed: int = 0, variant: str = "ti2v") -> Path:
        """A tiny Wan folder. `ti2v` (the default): a WanPipeline with expand_timesteps (one
        transformer, text- and image-to-video, like Wan 2.2 TI2V-5B); `i2v`: a Wan 2.1-style
        WanImageToVideoPipeline with a tiny CLIP image encoder; `t2v`: a Wan 2.1-style
        text-to-video WanPipeline (continuation by video-to-video); `i2v_experts` and
        `t2v_experts`: Wan 2.2 A14B-style, two experts (transformer_2, boundary_ratio)."""
        if variant not in TINY_VARIANTS:
            raise InvalidInputError(f"tiny Wan variant {variant!r}: use one of {', '.join(TINY_VARIANTS)}")
        import torch
        from diffusers import (AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline,
                               WanPipeline, WanTransformer3DModel)
        from transformers import UMT5Config, UMT5EncoderModel

        from backlot.generation.device import quiet_libraries

        quiet_libraries()
        tokenizer = t5_tokenizer(TINY_TOKENS)
        z = 4
        torch.manual_seed(seed)
        text_encoder = UMT5EncoderModel(UMT5Config(
            vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
            relative_attention_num_buckets=8, relative_attention_max_distance=32, pad_token_id=0, eos_token_id=1,
            decoder_start_token_id=0))
        vae = AutoencoderKLWan(base_dim=8, z_dim=z, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                               temperal_downsample=[False, True, True], latents_mean=[0.0] * z, latents_std=[1.0] * z)
        i2v21, image_to_video = variant == "i2v", variant.startswith("i2v")

        def transformer():
            return WanTransformer3DModel(
                patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8,
                in_channels=2 * z + TEMPORAL_STEP if image_to_video else z, out_channels=z, text_dim=32, freq_dim=32,
                ffn_dim=32, num_layers=2, rope_max_seq_len=32, image_dim=16 if i2v21 else None,
                added_kv_proj_dim=16 if i2v21 else None)

        parts = dict(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer(),
                     scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0))
        if variant.endswith("_experts"):  # the low-noise expert, used below boundary_ratio x 1000
            parts.update(transformer_2=transformer(), boundary_ratio=0.9 if image_to_video else 0.875)
        if i2v21:
            from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

            image_encoder = CLIPVisionModel(CLIPVisionConfig(
                hidden_size=16, projection_dim=16, num_hidden_layers=2, num_attention_heads=2, image_size=32,
                intermediate_size=32, patch_size=4))
            processor = CLIPImageProcessor(crop_size={"height": 32, "width": 32}, size={"shortest_edge": 32})
            pipe = WanImageToVideoPipeline(**parts, image_encoder=image_encoder, image_processor=processor)
        elif image_to_video:
            pipe = WanImageToVideoPipeline(**parts, image_encoder=None, image_processor=None)
        else:
            pipe = WanPipeline(**parts, expand_timesteps=variant == "ti2v")
        folder.mkdir(parents=True, exist_ok=True)
        pipe.save_pretrained(folder, safe_serialization=True)
        (folder / VIDEO_CONFIG).write_text(json.dumps({"clip_frames": TINY_CLIP_FRAMES,
                                                       "native_fps": TINY_NATIVE_FPS.get(variant, 16)}, indent=2) + "\n")
        return folder


# --- clips -------------------------------------------------------------------------------------

def clip_plan(loaded, plan) -> list[dict]:
    """The clips that make the plan's frames: what each starts from, its seed, its length
    (always the native one) and which of its frames are kept ([first, last) of the clip)."""
    length = loaded.extra["clip_frames"]
    start_from = "continuity" if plan.continuity is not None else "prompt"
    clips, made = [], 0
    while made < plan.frame_count:
        index = len(clips)
        source = start_from if index == 0 else "previous clip"
        first = 0 if source == "prompt" else 1
        last = min(length, first + plan.frame_count - made)
        clips.append({"index": index, "from": source, "seed": plan.settings.seed + index, "num_frames": length,
                      "keep": [first, last]})
        made += last - first
    return clips


def video_settings(folder: Path, index: dict, step: int = TEMPORAL_STEP,
                   defaults: tuple[int, int] | None = None, model: str = "Wan") -> tuple[int, int]:
    """(native clip length, native fps) of a video folder: its backlot_video.json, else the
    release defaults (Wan TI2V: 121 at 24 fps; the other Wan models 81 at 16 fps). A clip
    holds step*k + 1 frames (the VAE packs `step` frames into a latent frame after the first)."""
    defaults = defaults or ((121, 24) if index.get("expand_timesteps") else (81, 16))
    path = folder / VIDEO_CONFIG
    if not path.is_file():
        return defaults
    try:
        config = json.loads(path.read_text())
        frames, fps = int(config.get("clip_frames", defaults[0])), int(config.get("native_fps", defaults[1]))
    except (ValueError, TypeError, AttributeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{path}: unreadable ({exc}); it holds {{\"clip_frames\": {defaults[0]}, "
                                f"\"native_fps\": {defaults[1]}}}") from None
    if frames < 1 + step or (frames - 1) % step:
        below = max(1 + step, (frames - 1) // step * step + 1)
        raise InvalidInputError(f"{path}: clip_frames {frames} is a length {model} cannot make (it makes {step}k+1 "
                                f"frames, at least {1 + step} to continue a shot): use {below} or {below + step}")
    if fps < 1:
        raise InvalidInputError(f"{path}: native_fps {fps} must be positive")
    return frames, fps


def training_scheduler(pipe):
    """A flow-matching training schedule at the model's shift (Wan ships UniPC for sampling;
    a dynamically shifted schedule, LTX's, trains at its base shift)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    config = pipe.scheduler.config
    shift = config.get("shift") or config.get("flow_shift") or 1.0  # FlowMatchEuler: shift; UniPC: flow_shift
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=config.get("num_train_timesteps", 1000), shift=shift)


# --- helpers -----------------------------------------------------------------------------------

def _index(folder: Path) -> dict:
    return json.loads((folder / "model_index.json").read_text())


def _transformer_config(folder: Path) -> dict:
    path = folder / "transformer" / "config.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _mode(index: dict) -> str:
    if index.get("_class_name") == "WanImageToVideoPipeline":
        return "i2v"
    return "ti2v" if index.get("expand_timesteps") else "t2v"


def _describe(index: dict, folder: Path) -> str:
    mode = _mode(index)
    if mode == "i2v":
        return "Wan 2.1 image-to-video" if _transformer_config(folder).get("image_dim") else "Wan 2.2 image-to-video"
    return {"ti2v": "Wan 2.2 TI2V", "t2v": "text-to-video"}[mode] + (
        ", two experts" if index.get("boundary_ratio") is not None else "")


def _shared(pipe) -> dict:
    """The components an image-/video-to-video pipeline takes from the loaded one."""
    return {k: pipe.components[k] for k in ("tokenizer", "text_encoder", "vae", "scheduler", "transformer",
                                            "transformer_2")}


def _denoiser(pipe):
    return pipe.transformer if pipe.transformer is not None else pipe.transformer_2


def _max_tokens(tokenizer) -> int:
    return min(MAX_TEXT_TOKENS, tokenizer.model_max_length)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


FAMILY = WanFamily()
