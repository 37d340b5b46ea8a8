"""Runs one generate job: resolve and load (or reuse) the pipeline, apply LoRAs and scheduler,
run it with step previews, write the result.

Lives in the backend process only (imports torch through the families). One pipeline is kept
loaded, keyed by everything that needs a reload to change (family, weights, configs, device,
dtype, memory mode); LoRA weights, scheduler and VAE tiling are switched on the loaded pipeline.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from PIL import Image

# numpy + zlib only: the backend runs from the extension's root, where the add-on's package
# (bpy-free __init__) imports like any other.
from t2i_core import exr
from t2i_core.depth_encoding import background_mask
from t2i_core.job_record import JobRecord
from t2i_core.png import write_png
from t2i_core.presets import DEPTH_FLOAT, TINY
from t2i_core.protocol import ErrorCode, GenerateRequest

from . import families, preview, weights
from .devices import (
    NEXT_MODE_HINT,
    choose_memory_mode,
    compile_denoisers,
    free_memory,
    is_out_of_memory,
    pick_device,
    pick_dtype,
    place,
    weights_bytes,
)
from .errors import BackendError, JobCancelled, ModelNotFound
from .families.common import Job, keep_unmasked, missing_package_error, require_package

log = logging.getLogger("blender_t2i.backend")

# report(step, total, preview_path or None): sends a progress event (from the preview thread)
StepReporter = Callable[[int, int, str | None], None]

CPU_MEMORY_HINT = ("The computer ran out of memory: lower the size (or Largest Image in the "
                   "preferences) or close other programs; memory modes only help on a GPU.")
TILE_VAE_ABOVE = 1536 * 1536  # pixels: decode larger images in tiles to bound VAE memory
_KEEP_PREVIEWS = 2


@dataclass
class JobResult:
    paths: list[str]
    timings: dict[str, float] = field(default_factory=dict)
    reused: bool = False  # the pipeline was already loaded (no reload for this job)
    peak_memory: int | None = None  # bytes of device memory the job peaked at (CUDA only)
    memory_mode: str = ""  # the mode the job ran in (auto resolved; model_offload is full on CPU)
    scheduler: str = ""  # the scheduler class that ran the job


@dataclass
class Loaded:
    """The pipeline in memory and what has been switched on it since loading."""

    key: tuple
    family: ModuleType
    pipe: Any
    device: str
    dtype: torch.dtype
    memory_mode: str
    default_scheduler: dict[str, Any]
    scheduler: str = "default"
    loras: dict[str, str] = field(default_factory=dict)  # resolved path -> adapter name
    lora_active: bool = False
    variants: dict[type, Any] = field(default_factory=dict)
    previewer: Any = None  # LinearPreview | TaesdPreview | False (failed; no previews)


class Runner:
    def __init__(self, cache_dir: Path):
        self.cache_dir = cache_dir
        self.loaded: Loaded | None = None

    def unload(self) -> None:
        self.loaded = None
        free_memory()

    # --- one job ---------------------------------------------------------------------------

    def generate(self, request: GenerateRequest, report: StepReporter,
                 cancelled: Callable[[], bool] = lambda: False) -> JobResult:
        timings: dict[str, float] = {}
        started = time.perf_counter()
        # Inputs first: a bad picture or folder is refused before a model load (seconds to
        # minutes), let alone a generation.
        job = self._read_inputs(request, _family(request.model))
        _check_output_dir(request.output_dir)
        timings["inputs"] = round(time.perf_counter() - started, 4)
        started = time.perf_counter()
        reused = self.loaded
        loaded = self._load(request)
        timings["load"] = round(time.perf_counter() - started, 4)
        self._apply_loras(loaded, request)
        self._apply_scheduler(loaded, request.scheduler)
        _set_vae_tiling(loaded.pipe, request.width * request.height > TILE_VAE_ABOVE)
        previews = _PreviewWriter(request, loaded, report)

        def callback(pipe: Any, step: int, _timestep: Any, kwargs: dict) -> dict:
            total = getattr(pipe, "num_timesteps", None) or request.steps
            previews.step(step + 1, total, kwargs.get("latents"), job)
            if cancelled():  # stops here: no more steps and no VAE decode
                raise JobCancelled(request.id)
            return kwargs

        cuda = torch.device(loaded.device) if loaded.device.startswith("cuda") else None
        if cuda is not None:
            torch.cuda.reset_peak_memory_stats(cuda)
        started = time.perf_counter()
        try:
            with torch.inference_mode(), _cancel_within_steps(loaded, cancelled, request.id):
                image = loaded.family.run(loaded.pipe, job, callback,
                                          lambda cls: self._variant(loaded, cls))
        except Exception as exc:
            if is_out_of_memory(exc):
                free_memory()
                raise BackendError(
                    ErrorCode.OUT_OF_MEMORY,
                    f"out of memory generating {request.width}x{request.height} with "
                    f"{loaded.family.NAME} in '{loaded.memory_mode}' memory mode on "
                    f"{loaded.device}",
                    hint=CPU_MEMORY_HINT if loaded.device == "cpu"
                    else NEXT_MODE_HINT.get(loaded.memory_mode)) from exc
            raise
        finally:
            previews.close()  # every progress event is out before the result or error
        timings["generate"] = round(time.perf_counter() - started, 4)
        started = time.perf_counter()
        text = _png_parameters(request, type(loaded.pipe.scheduler).__name__)
        if request.control_frames:
            paths = _write_frames(image, request, text)
        else:
            paths = [Path(request.output_dir) / f"{request.id}.png"]
            write_png_atomic(keep_unmasked(job, _fit(image, request)), paths[0], text)
        timings["write"] = round(time.perf_counter() - started, 4)
        return JobResult(paths=[str(p) for p in paths], timings=timings, reused=loaded is reused,
                         peak_memory=torch.cuda.max_memory_allocated(cuda) if cuda else None,
                         memory_mode=loaded.memory_mode,
                         scheduler=type(loaded.pipe.scheduler).__name__)

    # --- loading ---------------------------------------------------------------------------

    def _load(self, request: GenerateRequest) -> Loaded:
        spec = request.model
        family = _family(spec)
        sources = self._resolve_weights(family, spec)
        configs = weights.resolve_configs(family.NAME, getattr(family, "CONFIGS", {}), spec,
                                          sources, self.cache_dir,
                                          getattr(family, "SPLIT_ROLES", ()))
        device = pick_device(str(spec.get("device", "auto")))
        dtype = pick_dtype(device, str(spec.get("dtype", "auto")), family.ACCELERATOR_DTYPE)
        mode = choose_memory_mode(request.memory_mode, device,
                                  lambda: weights_bytes(s.path for s in sources.values()))
        compile_models = bool(spec.get("compile", False))
        key = (family.NAME, tuple(sorted((r, str(s.path)) for r, s in sources.items())),
               tuple(sorted(configs.items())), device, str(dtype), mode, compile_models)
        if self.loaded is not None and self.loaded.key == key:
            return self.loaded
        self.unload()  # free the old model before loading the next one
        log.info("loading %s (%s) on %s, %s, memory mode %s", family.NAME,
                 ", ".join(f"{r}={s.path}" for r, s in sources.items()), device, dtype, mode)
        try:
            pipe = family.load(sources, configs, dtype)
            pipe.set_progress_bar_config(disable=True)
            place(pipe, mode, device, dtype)
            if compile_models:
                compile_denoisers(pipe)
        except BackendError:
            raise
        except Exception as exc:
            free_memory()
            if is_out_of_memory(exc):
                raise BackendError(ErrorCode.OUT_OF_MEMORY,
                                   f"out of memory loading {family.NAME} in '{mode}' mode",
                                   hint=NEXT_MODE_HINT.get(mode)) from exc
            missing = missing_package_error(exc, f"loading {family.NAME} in '{mode}' mode")
            if missing is not None:
                raise missing from exc
            raise BackendError(ErrorCode.MODEL_LOAD_FAILED,
                               f"could not load {family.NAME} from "
                               f"{', '.join(str(s.path) for s in sources.values())}: "
                               f"{type(exc).__name__}: {exc}") from exc
        self.loaded = Loaded(key=key, family=family, pipe=pipe, device=device, dtype=dtype,
                             memory_mode=mode, default_scheduler=dict(pipe.scheduler.config))
        return self.loaded

    def _resolve_weights(self, family: ModuleType, spec: dict[str, Any]
                         ) -> dict[str, weights.Source]:
        sources: dict[str, weights.Source] = {}
        tiny: dict[str, Path] | None = None
        for role in family.INFO.roles + getattr(family, "OPTIONAL_ROLES", ()):
            reference = spec.get(role)
            if reference is None and role not in family.INFO.roles:
                continue
            if not isinstance(reference, str) or not reference:
                raise ModelNotFound(f"the model spec names no '{role}' weights for "
                                    f"{family.NAME}")
            if reference == TINY:
                from .tiny import ensure_tiny

                tiny = tiny or ensure_tiny(family.NAME, self.cache_dir)
                sources[role] = weights.Source(TINY, tiny[role])
            else:
                sources[role] = weights.resolve(reference, role)
        return sources

    def _variant(self, loaded: Loaded, cls: type) -> Any:
        """The loaded components as another pipeline class (img2img twins), made once."""
        if cls not in loaded.variants:
            variant = cls.from_pipe(loaded.pipe)
            variant.set_progress_bar_config(disable=True)
            loaded.variants[cls] = variant
        variant = loaded.variants[cls]
        variant.scheduler = loaded.pipe.scheduler
        return variant

    # --- per-job switches on the loaded pipeline -------------------------------------------

    def _apply_loras(self, loaded: Loaded, request: GenerateRequest) -> None:
        pipe = loaded.pipe
        if not request.loras:
            if loaded.lora_active:
                pipe.disable_lora()
                loaded.lora_active = False
            return
        names, strengths = [], []
        # diffusers alone would only say "PEFT backend is required for this method"
        require_package("peft", "loading LoRAs")
        for lora in request.loras:
            source = weights.resolve(lora.path, "LoRA")
            adapter = loaded.loras.get(str(source.path))
            if adapter is None:
                adapter = _adapter_name(source.path, len(loaded.loras))
                log.info("loading LoRA %s as %s", source.path, adapter)
                try:
                    pipe.load_lora_weights(str(source.path), adapter_name=adapter)
                except Exception as exc:
                    raise BackendError(ErrorCode.MODEL_LOAD_FAILED,
                                       f"could not load LoRA '{lora.path}' into "
                                       f"{loaded.family.NAME}: {exc}",
                                       hint="Check that the LoRA was trained for this model "
                                            "family.") from exc
                loaded.loras[str(source.path)] = adapter
            names.append(adapter)
            strengths.append(lora.weight)
        pipe.enable_lora()
        pipe.set_adapters(names, adapter_weights=strengths)  # others stay loaded, inactive
        loaded.lora_active = True

    def _apply_scheduler(self, loaded: Loaded, name: str) -> None:
        if name == loaded.scheduler:
            return
        if loaded.family.FLOW_MATCH and name not in ("default", "euler"):
            raise BackendError(ErrorCode.BAD_REQUEST,
                               f"{loaded.family.NAME} is a flow-matching model: only its own "
                               f"scheduler ('default') applies, not '{name}'")
        loaded.pipe.scheduler = _make_scheduler(name, loaded.default_scheduler)
        loaded.scheduler = name

    # --- inputs ----------------------------------------------------------------------------

    def _read_inputs(self, request: GenerateRequest, family: ModuleType) -> Job:
        size = (request.width, request.height)
        depth = _read_rgb(request.control_image, "control image", size)
        render = _read_rgb(request.init_image, "init image", size) if request.init_image \
            else None
        # Sent with every capture; read only by the families that take it (SD 2 depth2img).
        depth_float = _read_depth_float(request.depth_float, size) \
            if request.depth_float and DEPTH_FLOAT in family.INFO.inputs else None
        references = [_read_rgb(p, "reference image", None) for p in request.reference_images]
        mask = _read_picture(request.mask_image, "mask image", size, _mask_grey) \
            if request.mask_image else None
        mode = request.model.get("control_mode")
        return Job(request=request, depth=depth, render=render, depth_float=depth_float,
                   references=references, mask=mask,
                   control_mode=mode if isinstance(mode, int) else None,
                   clip=_read_clip(request, family))


class _PreviewWriter:
    """Progress events with previews, without slowing the denoising loop.

    In the step callback only the cheap part runs: the latents become a small uint8 RGB tensor
    on the device and start copying to the host. A thread waits for the copy, writes the PNG
    into <output_dir>/.previews/ and sends the progress event, so the GPU never waits on a
    PNG encoder or a pipe. One file per step, only the newest few kept: a reader never races a
    file being replaced (which Windows forbids)."""

    def __init__(self, request: GenerateRequest, loaded: Loaded, report: StepReporter):
        self.request = request
        self.loaded = loaded
        self.report = report
        self.folder = Path(request.output_dir) / ".previews"
        self.written: list[Path] = []
        self.queue: queue.Queue[Any] = queue.Queue()
        self.thread = threading.Thread(target=self._work, name="t2i-previews", daemon=True)
        self.thread.start()

    def step(self, step: int, total: int, latents: Any, job: Job) -> None:
        rgb, ready = None, None
        every = self.request.preview_every
        if (latents is not None and every and self.loaded.previewer is not False
                and (step % every == 0 or step == total)):
            rgb, ready = self._start_preview(latents, job)
        self.queue.put((step, total, rgb, ready))

    def _start_preview(self, latents: Any, job: Job) -> tuple[Any, Any]:
        loaded = self.loaded
        try:
            grid = loaded.family.latent_grid(loaded.pipe, latents, job)[0]
            if loaded.previewer is None:
                loaded.previewer = _make_previewer(loaded, grid.shape[0])
            rgb = preview.to_uint8(loaded.previewer.rgb(grid))
            if rgb.device.type == "cuda":
                host = rgb.to("cpu", non_blocking=True)  # pinned: returns before the copy ends
                ready = torch.cuda.Event()
                ready.record()
                return host, ready
            return rgb.cpu(), None
        except Exception:  # a preview must never fail a job
            log.exception("previews disabled for %s", loaded.family.NAME)
            loaded.previewer = False
            return None, None

    def _work(self) -> None:
        while (item := self.queue.get()) is not None:
            step, total, rgb, ready = item
            path = None
            if rgb is not None:
                try:
                    if ready is not None:
                        ready.synchronize()
                    path = self._save(step, preview.to_image(rgb, self.request.preview_size))
                except Exception:
                    log.exception("could not write the step %d preview", step)
            try:
                self.report(step, total, path)
            except Exception:
                log.exception("could not report step %d", step)

    def _save(self, step: int, image: Image.Image) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.request.id}.{step:04d}.png"
        image.save(path, format="PNG", compress_level=1)
        self.written.append(path)
        while len(self.written) > _KEEP_PREVIEWS:
            _remove(self.written.pop(0))
        return str(path)

    def close(self) -> None:
        """Drain the queue (every progress event sent), then delete the job's previews."""
        self.queue.put(None)
        self.thread.join()
        for path in self.written:
            _remove(path)
        self.written.clear()


def _make_previewer(loaded: Loaded, channels: int) -> Any:
    repo = getattr(loaded.family, "PREVIEW_TAESD", None)
    if repo:
        taesd = preview.load_taesd(repo, loaded.device, loaded.dtype)
        if taesd is not None:
            log.info("previews for %s use %s", loaded.family.NAME, repo)
            return taesd
    started = time.perf_counter()
    fitted = preview.fit_linear(loaded.family, loaded.pipe, channels)
    log.info("fitted the %s preview map in %.2f s", loaded.family.NAME,
             time.perf_counter() - started)
    return fitted


def _remove(path: Path) -> None:
    # A reader may still have it open (Windows) or it is gone already: harmless either way.
    with contextlib.suppress(OSError):
        path.unlink()


def _adapter_name(path: Path, index: int) -> str:
    return f"lora{index}_" + re.sub(r"[^A-Za-z0-9_]", "_", path.stem)[:40]


def _make_scheduler(name: str, config: dict[str, Any]) -> Any:
    import diffusers

    if name == "default":
        return getattr(diffusers, config["_class_name"]).from_config(config)
    choices: dict[str, tuple[str, dict[str, Any]]] = {
        "euler": ("EulerDiscreteScheduler", {}),
        "euler_a": ("EulerAncestralDiscreteScheduler", {}),
        "ddim": ("DDIMScheduler", {}),
        "dpmpp_2m": ("DPMSolverMultistepScheduler", {}),
        "dpmpp_2m_karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
        "unipc": ("UniPCMultistepScheduler", {}),
    }
    class_name, extra = choices[name]
    return getattr(diffusers, class_name).from_config(config, **extra)


def _set_vae_tiling(pipe: Any, enabled: bool) -> None:
    vae = getattr(pipe, "vae", None)
    if vae is None or not hasattr(vae, "enable_tiling"):
        return
    if enabled:
        vae.enable_tiling()
    else:
        vae.disable_tiling()


_HOOKED = ("unet", "transformer", "controlnet", "vae")  # where the time of a step goes


@contextlib.contextmanager
def _cancel_within_steps(loaded: Loaded, cancelled: Callable[[], bool], job_id: str) -> Any:
    """Check for a cancel before every block of the denoiser, ControlNet and VAE, not only
    between steps: one step of a huge job can take minutes, and the VAE decode as long.
    A block is each member of a ModuleList (down/up blocks, their resnets and attentions,
    transformer blocks): a few hundred cheap checks a step. Compiled models are left alone
    (a hook would break their graphs); they stop at the next step."""
    if loaded.key[-1]:  # compile_models
        yield
        return

    def check(_module: Any, _args: Any) -> None:
        if cancelled():
            raise JobCancelled(job_id)

    handles = []  # the img2img/inpaint variants share these modules (from_pipe)
    for name in _HOOKED:
        component = getattr(loaded.pipe, name, None)
        if isinstance(component, torch.nn.Module):
            for module in component.modules():
                if isinstance(module, torch.nn.ModuleList):
                    handles += [block.register_forward_pre_hook(check) for block in module]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _family(spec: dict[str, Any]) -> ModuleType:
    name = spec.get("family")
    family = families.get(name) if isinstance(name, str) else None
    if family is None:
        raise BackendError(ErrorCode.BAD_REQUEST, f"unknown model family '{name}' "
                           f"(known: {', '.join(families.FAMILIES)})")
    return family


def _check_output_dir(folder: str) -> None:
    """Make the job folder now, so one that cannot be written fails before the model loads
    and the generation runs, not at the end."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise BackendError(ErrorCode.BAD_REQUEST, f"output folder '{folder}' cannot be made: "
                           f"{exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BackendError(ErrorCode.BAD_REQUEST, f"output folder '{folder}' is not writable")


def _regular_file(path: str, what: str) -> None:
    """Refuse FIFOs, devices and folders before opening: reading one could block forever."""
    if os.path.exists(path) and not os.path.isfile(path):
        raise BackendError(ErrorCode.BAD_REQUEST, f"{what} '{path}' is not a regular file")


def _read_rgb(path: str, what: str, size: tuple[int, int] | None) -> Image.Image:
    return _read_picture(path, what, size, lambda image: image.convert("RGB"))


def _read_picture(path: str, what: str, size: tuple[int, int] | None,
                  convert: Callable[[Image.Image], Image.Image]) -> Image.Image:
    """A picture read whole (a truncated file fails here, not in the pipeline), converted,
    and resized to the job's size when it has another."""
    _regular_file(path, what)
    try:
        with Image.open(path) as image:
            picture = convert(image)
    except FileNotFoundError:
        raise BackendError(ErrorCode.INPUT_NOT_FOUND, f"{what} '{path}' does not exist") from None
    except (OSError, Image.DecompressionBombError) as exc:  # the bomb error is no OSError
        raise BackendError(ErrorCode.BAD_REQUEST, f"{what} '{path}' is unreadable: {exc}") \
            from None
    if size is not None and picture.size != size:
        picture = picture.resize(size, Image.Resampling.BILINEAR)
    return picture


def _read_clip(request: GenerateRequest, family: ModuleType) -> list[Image.Image]:
    """A clip's depth frames, read whole and of one size (a frame of another size is a
    different capture, not a resize away), then sized to the job."""
    if not request.control_frames:
        return []
    if not family.INFO.takes_clip:  # parse_generate says so for every known family
        raise BackendError(ErrorCode.BAD_REQUEST, f"{family.NAME} makes still pictures, not "
                           "clips: send 'control_frames' to a video family")
    size = (request.width, request.height)
    frames, first = [], None
    for number, path in enumerate(request.control_frames, start=1):
        frame = _read_rgb(path, f"control frame {number}", None)
        first = first or frame.size
        if frame.size != first:
            raise BackendError(ErrorCode.BAD_REQUEST,
                               f"control frame {number} '{path}' is {frame.size[0]}x"
                               f"{frame.size[1]}, frame 1 {first[0]}x{first[1]}: a clip's "
                               "depth frames must all have one size",
                               hint="Capture every frame of the clip at the same size.")
        # sized at once: only the job's size (which the size limit bounds) is kept per frame
        frames.append(frame if frame.size == size else
                      frame.resize(size, Image.Resampling.BILINEAR))
    return frames


def _fit(image: Image.Image, request: GenerateRequest) -> Image.Image:
    """The result at the job's size (edit models round sizes)."""
    if image.size == (request.width, request.height):
        return image
    return image.resize((request.width, request.height), Image.Resampling.LANCZOS)


def _write_frames(images: Any, request: GenerateRequest, text: dict[str, str]) -> list[Path]:
    """A clip's results, <id>.0001.png..., each written atomically with the job's text chunks
    and its frame number."""
    if not isinstance(images, list) or len(images) != len(request.control_frames):
        raise BackendError(ErrorCode.GENERATION_FAILED,
                           f"the pipeline made {len(images) if isinstance(images, list) else 1}"
                           f" frame(s) for a clip of {len(request.control_frames)}")
    paths = []
    for number, image in enumerate(images, start=1):
        path = Path(request.output_dir) / f"{request.id}.{number:04d}.png"
        write_png_atomic(_fit(image, request), path,
                         {**text, "t2i:frame": f"{number}/{len(images)}"})
        paths.append(path)
    return paths


def _mask_grey(image: Image.Image) -> Image.Image:
    """A mask as 8-bit grey. Pillow's own conversion clips 16-bit grey to 255 (every pixel
    above 1/65535 would be white), so those are scaled; float pictures are refused, as a NaN
    there says nothing about keeping or regenerating."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # "I": how older Pillows open 16-bit PNGs
        values = np.asarray(image, dtype=np.float64) / 65535.0
        return Image.fromarray(np.rint(np.clip(values, 0, 1) * 255).astype(np.uint8))
    if image.mode == "F":
        raise OSError("a float picture, not an 8- or 16-bit grey PNG")
    return image.convert("L")  # colour: its luminance; alpha is ignored


def _read_depth_float(path: str, size: tuple[int, int]) -> np.ndarray:
    """The job's float depth as (H, W) float32, larger = nearer: the capture's `.exr` (planar Z
    in metres) turned into inverse depth, or a `.npy` array taken as it is."""
    is_exr = Path(path).suffix.lower() == ".exr"
    _regular_file(path, "depth file")
    try:
        depth = exr.read_grey_exr(path) if is_exr else np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise BackendError(ErrorCode.INPUT_NOT_FOUND,
                           f"depth file '{path}' does not exist") from None
    except (OSError, ValueError) as exc:
        kind = "a float EXR this backend reads" if is_exr else "a float .npy array"
        raise BackendError(ErrorCode.BAD_REQUEST,
                           f"depth file '{path}' is not {kind}: {exc}") from None
    if not isinstance(depth, np.ndarray) or depth.ndim != 2:  # np.load gives .npz archives too
        raise BackendError(ErrorCode.BAD_REQUEST,
                           f"depth file '{path}' must be one (H, W) array, not "
                           f"{getattr(depth, 'shape', type(depth).__name__)}")
    if not is_exr:
        return depth
    width, height = size
    if depth.shape != (height, width):
        raise BackendError(ErrorCode.BAD_REQUEST,
                           f"depth file '{path}' is {depth.shape[1]}x{depth.shape[0]}, the job "
                           f"{width}x{height}", hint="Send the EXR of this job's own capture.")
    # Inverse depth 1/z (larger = nearer), background 0, kept in float: the "relative inverse
    # depth" of the MiDaS/DPT maps SD 2 depth2img was trained on, without the 8-bit control
    # image's rounding and range clipping (the pipeline min-max normalises it).
    background = background_mask(depth, clip_end=np.inf)
    if background.all():
        raise BackendError(ErrorCode.BAD_REQUEST,
                           f"depth file '{path}' sees nothing: every pixel is background")
    with np.errstate(divide="ignore"):
        return np.where(background, 0.0, 1.0 / depth).astype(np.float32)


def _png_parameters(request: GenerateRequest, scheduler_class: str) -> dict[str, str]:
    """The add-on's JobRecord of this request as text chunks, plus what the add-on added."""
    return {**JobRecord.from_request(request).png_text(scheduler_class),
            **(request.metadata or {})}


def write_png_atomic(image: Image.Image, path: Path, text: dict[str, str]) -> None:
    """Write next to the target and rename, so readers never see a half-written file.
    The add-on's numpy writer, not Pillow's: ~4x faster on one core and threaded, which is a
    large part of a warm job's time outside the pipeline (see bench/backend_overhead.py)."""
    if image.mode not in ("L", "RGB", "RGBA"):
        image = image.convert("RGB")
    # level 1: a little larger than the default, several times faster to write
    write_png(path, np.asarray(image), text, level=1)
