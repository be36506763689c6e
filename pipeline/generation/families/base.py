"""The model-family interface, the loaded-pipeline record, and helpers families share.

A `Family` is one kind of base model (SD 1.5, AnimateDiff, SDXL, Flux, Wan, LTX-Video). It
is chosen from model_index.json when the model is registered and recorded on the base model
version (metadata "family"); from then on rendering, training, verification and the worker
ask that family and nothing else. A family module defines `FAMILY = SomeFamily()`.

What a family says:
- which folders it accepts (`pipeline_classes`, `required_components`, `check_folder`)
- how to load the pipelines a render needs (`load`: a prompt pipeline and a continuation
  pipeline sharing every component, so a LoRA loaded once is in both)
- which module LoRA goes into and which of its layers (`denoiser_name`, `lora_target_modules`)
- the training objective (`encode_training_data`, `draw_noise`, `training_loss`)
- how a shot's frames are made and how continuity enters (`check_frame_count`, `make_frames`)
- what the recipe records beyond the common fields (`recipe_fields`, `training_recipe`)
- its offline tiny stand-in (`build_tiny`): seeded random weights, tokenizers built in code

Shared helpers: `image_frames` (the frame-by-frame img2img loop the image families use),
`prediction_target` (epsilon / v-prediction / sample as the scheduler says), the flow-matching
draw and loss (`flow_matching_draw`, `flow_matching_loss`, as diffusers' Flux/SD3 LoRA examples
sample and weight timesteps), and `t5_tokenizer` (a T5 tokenizer built in code).

Interface changes (kept backward compatible): none yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from backlot.errors import InvalidInputError
from backlot.generation.device import Device, quiet_libraries

if TYPE_CHECKING:
    import torch

    from backlot.generation.rendering import RenderPlan, RenderSettings

LORA_WEIGHTS = "pytorch_lora_weights.safetensors"
ATTENTION_PROJECTIONS = ("to_k", "to_q", "to_v", "to_out.0")


@dataclass
class LoadedPipeline:
    """A base model's pipelines, loaded once per process; adapters are loaded into `text2img`
    (whose components `img2img` shares) and switched by name."""

    text2img: Any  # prompt -> frame(s)
    img2img: Any  # frame(s) -> frame(s): the continuation pipeline (img2img, video-to-video, image-to-video)
    device: Device
    video: bool = False  # frames come out together, in windows
    adapters: set[str] = field(default_factory=set)
    active: tuple[tuple[str, float], ...] | None = None
    family: str = "sd"
    extra: dict[str, Any] = field(default_factory=dict)  # a family's further pipelines or state


@dataclass
class TrainingData:
    """What the frozen encoders made of the training set, once, before the loop."""

    latents: Any  # torch.Tensor (N, ...): one row per image
    conditioning: dict[str, Any]  # name -> tensor (N, ...) indexed like `latents`, or a tensor shared by all rows
    truncated: list[bool]  # per caption: longer than the text encoder takes
    shared: dict[str, Any] = field(default_factory=dict)  # tensors used as they are for every batch


@dataclass
class NoiseDraw:
    """The random part of one training (or evaluation) step."""

    noise: Any
    timesteps: Any
    sigmas: Any = None  # flow matching: the noise level of each row


@dataclass(frozen=True)
class FlowMatchingSettings:
    """Timestep sampling and loss weighting for flow-matching training (diffusers' SD3/Flux
    LoRA examples: `compute_density_for_timestep_sampling`, `compute_loss_weighting_for_sd3`)."""

    weighting_scheme: str = "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    mode_scale: float = 1.29


class Family:
    """One family of base models. Subclasses set the class attributes and override what differs."""

    name: str = ""
    pipeline_classes: tuple[str, ...] = ()  # model_index.json _class_name values accepted
    text_class: str = ""  # the diffusers pipeline class that renders from a prompt
    continuation_class: str = ""  # the one that continues from frames (shares every component)
    required_components: tuple[str, ...] = ()
    video: bool = False
    denoiser_name: str = "unet"  # the module LoRA goes into
    lora_target_modules: tuple[str, ...] | str = ATTENTION_PROJECTIONS
    size_multiple: int = 8  # width and height must be multiples of this
    objective: str = "epsilon"  # recorded in the training recipe; SD-style families read the scheduler

    # --- registering -------------------------------------------------------------------
    def matches_index(self, index: dict) -> bool:
        """Whether a folder of an accepted class is this family's (when classes are shared)."""
        return True

    def check_folder(self, folder: Path, index: dict) -> None:
        """A clear error when the folder lacks a component this family needs."""
        missing = [name for name in self.required_components
                   if not (isinstance(index.get(name), list) and index[name][0] and (folder / name).is_dir())]
        if missing:
            raise InvalidInputError(f"{folder}: a {self.name} model needs the components "
                                    f"{', '.join(self.required_components)}; missing: {', '.join(missing)}")

    # --- rendering -----------------------------------------------------------------------
    def check_frame_count(self, count: int) -> None:
        if count < 1:
            raise InvalidInputError(f"--frames {count}: a shot needs at least one frame")

    def check_settings(self, settings: RenderSettings) -> None:
        """Render settings this family cannot honour (beyond RenderSettings.check)."""
        m = self.size_multiple
        if settings.width % m or settings.height % m:
            raise InvalidInputError(f"--size {settings.width}x{settings.height}: a {self.name} model needs both "
                                    f"sides to be multiples of {m}")

    def load(self, folder: Path, device: Device) -> LoadedPipeline:
        """The prompt pipeline from the folder and the continuation pipeline over the same components."""
        quiet_libraries()
        import diffusers

        text = getattr(diffusers, self.text_class).from_pretrained(folder, dtype=device.torch_dtype(),
                                                                   local_files_only=True)
        text.to(device.name)
        text.set_progress_bar_config(disable=True)
        if device.compile:
            import torch

            setattr(text, self.denoiser_name, torch.compile(getattr(text, self.denoiser_name)))
        cont = self.continuation_pipeline(text)
        cont.set_progress_bar_config(disable=True)
        return LoadedPipeline(text, cont, device, self.video, family=self.name)

    def continuation_pipeline(self, text):
        import diffusers

        return getattr(diffusers, self.continuation_class)(**text.components)

    def denoiser(self, pipe) -> torch.nn.Module:
        """The module LoRA goes into, of a pipeline or a LoadedPipeline."""
        pipe = getattr(pipe, "text2img", pipe)
        return getattr(pipe, self.denoiser_name)

    def call_args(self, loaded: LoadedPipeline, settings: RenderSettings) -> dict:
        """Keyword arguments every pipeline call of a render shares."""
        return dict(prompt=settings.prompt, negative_prompt=settings.negative_prompt or None,
                    num_inference_steps=settings.steps, guidance_scale=settings.guidance_scale)

    def make_frames(self, loaded: LoadedPipeline, plan: RenderPlan, previous, emit: Callable,
                    progress: Callable[[int], None] | None) -> None:
        """Make the plan's frames, calling emit(image) for each in order; `previous` is the
        previous shot's last frame (continuity) or None."""
        image_frames(loaded, plan, previous, emit, progress, self.call_args(loaded, plan.settings))

    def recipe_fields(self, loaded: LoadedPipeline, plan: RenderPlan) -> dict:
        """What the recipe records beyond the common fields."""
        return {"frame_seeds": "seed + frame index"}

    def prompt_tokenizers(self, loaded: LoadedPipeline) -> list[tuple[Any, int]]:
        """(tokenizer, tokens it takes) for each text encoder the prompt goes through."""
        tokenizer = loaded.text2img.tokenizer
        return [(tokenizer, tokenizer.model_max_length)]

    def prompt_truncated(self, loaded: LoadedPipeline, prompt: str) -> bool:
        return any(len(tok(prompt).input_ids) > limit for tok, limit in self.prompt_tokenizers(loaded))

    # --- training ------------------------------------------------------------------------
    def training_pipeline(self, folder: Path, device: Device):
        """A fresh pipeline (training edits the denoiser), every module frozen, on the device."""
        import diffusers
        import torch

        pipe = getattr(diffusers, self.text_class).from_pretrained(folder, local_files_only=True)
        for module in pipe.components.values():
            if isinstance(module, torch.nn.Module):
                module.requires_grad_(False)
                module.to(device.name)
        return pipe

    def check_trainable(self, folder: Path) -> None:
        """A clear error when LoRA training is not supported for this folder."""

    def encode_training_data(self, pipe, pixels, captions: list[str], generator, device: Device) -> TrainingData:
        """Run the frozen encoders once: latents of `pixels` ((N, 3, H, W) in [-1, 1]) and the
        captions' conditioning. All randomness from `generator`."""
        raise NotImplementedError

    def draw_noise(self, pipe, data: TrainingData, batch_size: int, generator) -> NoiseDraw:
        """Noise and timesteps for one step (default: DDPM-style integer timesteps)."""
        import torch

        noise = torch.randn((batch_size, *data.latents.shape[1:]), generator=generator)
        timesteps = torch.randint(0, pipe.scheduler.config.num_train_timesteps, (batch_size,), generator=generator)
        return NoiseDraw(noise, timesteps)

    def training_loss(self, pipe, data: TrainingData, index, draw: NoiseDraw):
        """The family's objective on rows `index` with `draw` (a scalar tensor)."""
        raise NotImplementedError

    def training_recipe(self, pipe) -> dict:
        """What the training recipe records about the objective."""
        return {"objective": self.objective}

    def lora_layers(self, denoiser) -> dict:
        from diffusers.utils import convert_state_dict_to_diffusers
        from peft.utils import get_peft_model_state_dict

        return convert_state_dict_to_diffusers(get_peft_model_state_dict(denoiser))

    def save_lora(self, pipe, folder: Path) -> Path:
        """Write the trained LoRA of `pipe`'s denoiser as LORA_WEIGHTS in `folder`."""
        layers = self.lora_layers(self.denoiser(pipe))
        type(pipe).save_lora_weights(folder, **{f"{self.denoiser_name}_lora_layers": layers},
                                     safe_serialization=True, weight_name=LORA_WEIGHTS)
        return folder

    # --- the stand-in --------------------------------------------------------------------
    def build_tiny(self, folder: Path, seed: int = 0) -> Path:
        """Build and save this family's tiny stand-in under `folder`; the same seed writes the same bytes."""
        raise NotImplementedError(f"the {self.name} family has no tiny stand-in")

    def describe(self) -> str:
        return f"{self.name} ({', '.join(self.pipeline_classes)})"


# --- shared helpers ------------------------------------------------------------------------

def image_frames(loaded: LoadedPipeline, plan: RenderPlan, previous, emit: Callable, progress, common: dict,
                 continuation_args: dict | None = None) -> None:
    """An image base: frame by frame, the first from the prompt (or img2img from the previous
    shot's last frame), every later one img2img from the frame before; frame i uses seed + i."""
    import torch

    s = plan.settings
    for index in range(plan.frame_count):
        generator = torch.Generator(device="cpu").manual_seed(s.seed + index)
        if previous is None:
            image = loaded.text2img(height=s.height, width=s.width, generator=generator, **common).images[0]
        else:
            strength = s.continuity_strength if index == 0 else s.frame_strength
            image = loaded.img2img(image=previous, strength=strength, generator=generator, **common,
                                   **(continuation_args or {})).images[0]
        emit(image)
        previous = image
        if progress:
            progress(index + 1)


def prediction_target(scheduler, latents, noise, timesteps):
    """What an SD-style denoiser is trained to predict, as its scheduler config says."""
    kind = scheduler.config.get("prediction_type", "epsilon")
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    if kind == "sample":
        return latents
    raise InvalidInputError(f"scheduler prediction_type {kind!r} is not one Backlot can train (epsilon, "
                            "v_prediction, sample)")


def flow_matching_draw(scheduler, shape, batch_size: int, generator, fm: FlowMatchingSettings) -> NoiseDraw:
    """Noise, timesteps and sigmas for flow matching: u from the weighting scheme's density,
    timestep and sigma at index u * num_train_timesteps of the scheduler's training schedule."""
    import torch
    from diffusers.training_utils import compute_density_for_timestep_sampling

    noise = torch.randn((batch_size, *shape), generator=generator)
    u = compute_density_for_timestep_sampling(fm.weighting_scheme, batch_size, logit_mean=fm.logit_mean,
                                              logit_std=fm.logit_std, mode_scale=fm.mode_scale, generator=generator)
    indices = (u * scheduler.config.num_train_timesteps).long().clamp(max=len(scheduler.timesteps) - 1)
    return NoiseDraw(noise, scheduler.timesteps[indices], scheduler.sigmas[indices].float())


def flow_matching_noisy(latents, draw: NoiseDraw):
    """(noisy input, target): x_t = (1 - sigma) x0 + sigma noise; the model predicts noise - x0."""
    sigmas = draw.sigmas.to(latents.device, latents.dtype).reshape(-1, *([1] * (latents.ndim - 1)))
    noise = draw.noise.to(latents.device, latents.dtype)
    return (1 - sigmas) * latents + sigmas * noise, noise - latents


def flow_matching_loss(prediction, target, sigmas, fm: FlowMatchingSettings):
    """The weighted MSE of the examples (`compute_loss_weighting_for_sd3`)."""
    import torch
    from diffusers.training_utils import compute_loss_weighting_for_sd3

    weighting = compute_loss_weighting_for_sd3(fm.weighting_scheme, sigmas.to(prediction.device))
    weighting = weighting.reshape(-1, *([1] * (prediction.ndim - 1)))
    per_row = (weighting.float() * (prediction.float() - target.float()) ** 2).reshape(target.shape[0], -1)
    return torch.mean(per_row, 1).mean()


def t5_tokenizer(max_length: int = 64):
    """A T5 tokenizer built in code: a unigram model whose pieces are single characters (every
    printable ASCII character, space as the sentencepiece word marker), `</s>` appended."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    specials = ["<pad>", "</s>", "<unk>"]
    pieces = [(s, 0.0) for s in specials] + [("\u2581", -1.0)] + [(chr(c), -2.0) for c in range(33, 127)]
    tok = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", 1)])
    return T5TokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                           model_max_length=max_length, extra_ids=0)


def clip_tokenizer(max_length: int = 77):
    """CLIP's tokenizer over a byte-level vocabulary with no merges (every byte a token)."""
    from transformers import CLIPTokenizer

    from backlot.generation.tiny import byte_level_vocab

    vocab, merges = byte_level_vocab()
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)


__all__ = ["Family", "LoadedPipeline", "TrainingData", "NoiseDraw", "FlowMatchingSettings", "LORA_WEIGHTS",
           "ATTENTION_PROJECTIONS", "image_frames", "prediction_target", "flow_matching_draw", "flow_matching_noisy",
           "flow_matching_loss", "t5_tokenizer", "clip_tokenizer"]
