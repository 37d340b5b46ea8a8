"""The JSON-lines protocol between the add-on and the backend process.

Stdlib only: the add-on imports this module inside Blender, the backend inside its own interpreter.
docs/protocol.md is the human-readable spec; this module is the single source of the message
types, error codes and request validation both sides use.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any

from .presets import FAMILY_INFO, FamilyInfo

PROTOCOL_VERSION = 1

# Requests (add-on -> backend)
HELLO = "hello"
GENERATE = "generate"
CANCEL = "cancel"
UNLOAD = "unload"
SHUTDOWN = "shutdown"
CAPABILITIES = "capabilities"
MODELS = "models"  # the model library's scan; also the type of its reply event

# Events (backend -> add-on)
READY = "ready"
ACCEPTED = "accepted"
PROGRESS = "progress"
RESULT = "result"
ERROR = "error"
CANCELLED = "cancelled"
UNLOADED = "unloaded"
BYE = "bye"
HEARTBEAT = "heartbeat"  # every HEARTBEAT_S from a thread of its own, also during a long load
HEARTBEAT_S = 2.0
# CAPABILITIES is also the type of its reply event

# The environment variable that carries the preferences' model folders to the backend
# (os.pathsep-separated; the backend searches them for weights and LoRAs by name).
MODEL_FOLDERS_ENV = "T2I_MODEL_FOLDERS"
# The A1111/Forge and ComfyUI installs the preferences name, for the model library.
A1111_ROOT_ENV = "T2I_A1111_ROOT"
COMFYUI_ROOT_ENV = "T2I_COMFYUI_ROOT"

# The largest job the backend takes, in megapixels (the preferences' Largest Image): a huge
# request is refused at once instead of taking minutes a step and all the memory.
MAX_MEGAPIXELS_ENV = "T2I_MAX_MEGAPIXELS"
DEFAULT_MAX_MEGAPIXELS = 4.2  # 2048 x 2048 fits
# Working memory per megapixel beyond the weights, measured by bench/size_memory.py on SD 1.5's
# real UNet and VAE shapes (fp32 on the CPU, halved for fp16 on a GPU; the VAE decodes in
# tiles above 2.4 MP, which caps its share): what a size limit implies, said in the preferences.
GIB_PER_MEGAPIXEL_FP16 = 1.6  # bench: 3.22 GiB/MP in fp32 (256^2 vs 384^2, UNet step + decode)


def working_memory_gib(megapixels: float) -> float:
    """About how much memory a job of `megapixels` needs beyond the model's weights."""
    return megapixels * GIB_PER_MEGAPIXEL_FP16


def max_megapixels(environ: dict[str, str]) -> float:
    """The size limit the add-on passed in the environment (the default when unset/bad)."""
    try:
        value = float(environ.get(MAX_MEGAPIXELS_ENV, DEFAULT_MAX_MEGAPIXELS))
    except ValueError:
        return DEFAULT_MAX_MEGAPIXELS
    return value if math.isfinite(value) and value > 0 else DEFAULT_MAX_MEGAPIXELS


def size_error(width: int, height: int, limit_mp: float, frames: int = 0,
               frame_step: int = 0) -> str | None:
    """Why width x height is over the limit, or None. A clip (`frames` for a video family
    whose `frame_step` frames make one latent frame) counts as one picture per latent frame:
    the transformer's work and memory grow with its latent frames as a picture's with its
    pixels."""
    megapixels = width * height / 1e6
    if frames <= 0 or frame_step <= 0:
        if megapixels <= limit_mp:
            return None
        return (f"{width}x{height} is {megapixels:.1f} megapixels, over the limit of "
                f"{limit_mp:g} (Preferences > Largest Image; at that size a job needs about "
                f"{working_memory_gib(megapixels):.0f} GiB beyond the model)")
    latent_frames = (frames - 1 + frame_step - 1) // frame_step + 1
    if latent_frames * megapixels <= limit_mp:
        return None
    fitting = int(limit_mp // megapixels) if megapixels > 0 else 0
    most = (fitting - 1) * frame_step + 1 if fitting >= 1 else 0
    room = (f"at most {most} frames fit at that size" if most else
            "not even one frame fits at that size")
    return (f"a clip of {frames} frames at {width}x{height} counts as {latent_frames} "
            f"pictures of {megapixels:.2f} megapixels ({frame_step} frames make one), "
            f"{latent_frames * megapixels:.1f} in all, over the limit of {limit_mp:g} "
            f"(Preferences > Largest Image): {room}; send a shorter clip or a smaller size")


MEMORY_MODES = ("auto", "full", "model_offload", "group_offload", "fp8")
SCHEDULERS = ("default", "euler", "euler_a", "ddim", "dpmpp_2m", "dpmpp_2m_karras", "unipc")


class ErrorCode:
    """Error codes shared by backend and add-on; HINTS says what the user can do about each."""

    BAD_REQUEST = "BAD_REQUEST"
    UNKNOWN_REQUEST = "UNKNOWN_REQUEST"
    MODEL_NOT_FOUND = "MODEL_NOT_FOUND"
    MODEL_LOAD_FAILED = "MODEL_LOAD_FAILED"
    UNSAFE_MODEL_FILE = "UNSAFE_MODEL_FILE"
    WRONG_MODEL_FAMILY = "WRONG_MODEL_FAMILY"
    INPUT_NOT_FOUND = "INPUT_NOT_FOUND"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    GENERATION_FAILED = "GENERATION_FAILED"
    # The ComfyUI bridge's (docs/comfyui.md): the server did not answer, or refused the job
    SERVER_UNREACHABLE = "SERVER_UNREACHABLE"
    SERVER_REJECTED = "SERVER_REJECTED"
    # Raised on the add-on side, never sent by the backend:
    BACKEND_NOT_CONFIGURED = "BACKEND_NOT_CONFIGURED"
    BACKEND_START_FAILED = "BACKEND_START_FAILED"
    BACKEND_CRASHED = "BACKEND_CRASHED"
    BACKEND_TIMEOUT = "BACKEND_TIMEOUT"
    CANCELLED = "CANCELLED"  # the user cancelled the job (the backend sends a `cancelled` event)


HINTS: dict[str, str] = {
    ErrorCode.BAD_REQUEST: "This is a bug in the caller; the backend log has the request.",
    ErrorCode.UNKNOWN_REQUEST: "The add-on and backend versions differ; reinstall the backend.",
    ErrorCode.MODEL_NOT_FOUND: (
        "Download the model into the Hugging Face cache (hf download <repo>) "
        "or point the model setting at a local diffusers folder."
    ),
    ErrorCode.MODEL_LOAD_FAILED: (
        "The model files may be incomplete or corrupt: download them again, or check that "
        "a single-file checkpoint has its family's config in the Hugging Face cache."
    ),
    ErrorCode.UNSAFE_MODEL_FILE: (
        "Pickle checkpoints (.ckpt/.pt/.pth/.bin) can run code when loaded and are refused: "
        "download the .safetensors version, or convert the file once with a trusted tool."
    ),
    ErrorCode.WRONG_MODEL_FAMILY: (
        "The weights belong to another model family: pick the preset/family that matches "
        "them, or point the setting at the right weights."
    ),
    ErrorCode.INPUT_NOT_FOUND: "The job's input image was removed before the backend read it.",
    ErrorCode.OUT_OF_MEMORY: (
        "Lower the size, or pick a memory-saving mode in the preferences "
        "(model_offload, then group_offload or fp8)."
    ),
    ErrorCode.GENERATION_FAILED: "See the backend log (Preferences > Add-ons > T2I) for details.",
    ErrorCode.SERVER_UNREACHABLE: (
        "Check the ComfyUI URL in the preferences, that ComfyUI is running there, and the "
        "token or headers a proxy in front of it needs."
    ),
    ErrorCode.SERVER_REJECTED: (
        "The ComfyUI server refused the job: the message names the node and its complaint "
        "(update ComfyUI or its node packs if a node's inputs differ)."
    ),
    ErrorCode.BACKEND_NOT_CONFIGURED: (
        "Set the backend Python (an interpreter with torch and diffusers) in "
        "Preferences > Add-ons > T2I, or set T2I_BACKEND_PYTHON."
    ),
    ErrorCode.BACKEND_START_FAILED: "Check the backend Python and open the backend log.",
    ErrorCode.BACKEND_CRASHED: "Generate again to start a fresh backend; the log says why it died.",
    ErrorCode.BACKEND_TIMEOUT: "The backend stopped answering; generate again to restart it.",
    ErrorCode.CANCELLED: "",
}


class ProtocolError(ValueError):
    """A line that is not a valid request; the backend answers it with an `error` event."""

    def __init__(self, code: str, message: str, job_id: str | None = None):
        super().__init__(message)
        self.code = code
        self.job_id = job_id


def encode(message: dict[str, Any]) -> str:
    """One message as one line (no embedded newlines: json.dumps escapes them)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False) + "\n"


MAX_LINE = 1 << 20  # a request or event longer than 1 MiB is refused unread


def decode(line: str | bytes) -> dict[str, Any]:
    """One line as a message; ProtocolError for anything else (bad UTF-8, bad or too deeply
    nested JSON, an oversized line), never another exception."""
    if len(line) > MAX_LINE:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"a line longer than {MAX_LINE} bytes")
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"not valid UTF-8: {exc.reason} at "
                                f"byte {exc.start}") from None
    try:
        message = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"not valid JSON: {exc.msg}") from None
    except RecursionError:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "JSON nested too deeply") from None
    except ValueError as exc:  # an integer past Python's 4,300-digit conversion limit
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"not valid JSON: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "a message must be an object with a 'type'")
    return message


def error_event(code: str, message: str, job_id: str | None = None,
                hint: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": ERROR, "code": code, "message": message,
                             "hint": HINTS.get(code, "") if hint is None else hint}
    if job_id is not None:
        event["id"] = job_id
    return event


@dataclass(frozen=True)
class LoraSpec:
    path: str  # a .safetensors file (kohya or diffusers format) or a cached repo id
    weight: float = 1.0


@dataclass(frozen=True)
class GenerateRequest:
    """A validated `generate` request. Paths are absolute; images travel as files."""

    id: str
    model: dict[str, Any]
    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    guidance: float
    control_strength: float
    width: int
    height: int
    control_image: str
    output_dir: str
    init_image: str | None = None
    metadata: dict[str, str] | None = None
    # Optional, added after protocol 1 shipped (older add-ons simply omit them):
    strength: float | None = None  # img2img denoise strength when init_image is given
    reference_images: tuple[str, ...] = ()  # edit/reference families; default: render/depth
    # SD 2 depth2img's float depth: the capture's <stem>_depth.exr (planar Z in metres), or a
    # .npy float32 (H, W) array, larger = nearer
    depth_float: str | None = None
    loras: tuple[LoraSpec, ...] = ()
    memory_mode: str = "auto"
    scheduler: str = "default"
    preview_every: int = 1  # send a preview image every N steps; 0 = none
    preview_size: int = 256  # longest side of a preview image, pixels
    # Inpainting: a grey picture the size rules of init_image apply to, white = regenerate,
    # black = keep the init image (grey blends); families that cannot inpaint refuse it.
    mask_image: str | None = None
    # A clip for a video family: one depth picture a frame, all of one size; control_image is
    # the first of them. The result is one PNG a frame, <id>.0001.png...
    control_frames: tuple[str, ...] = ()


# field: (type, required, default); ints are accepted where floats are expected
_GENERATE_FIELDS: dict[str, tuple[type | tuple[type, ...], bool, Any]] = {
    "id": (str, True, None),
    "model": (dict, True, None),
    "prompt": (str, True, None),
    "negative_prompt": (str, False, ""),
    "seed": (int, True, None),
    "steps": (int, True, None),
    "guidance": ((int, float), True, None),
    "control_strength": ((int, float), False, 1.0),
    "width": (int, True, None),
    "height": (int, True, None),
    "control_image": (str, True, None),
    "output_dir": (str, True, None),
    "init_image": ((str, type(None)), False, None),
    "metadata": ((dict, type(None)), False, None),
    "strength": ((int, float, type(None)), False, None),
    "reference_images": (list, False, []),
    "depth_float": ((str, type(None)), False, None),
    "loras": (list, False, []),
    "memory_mode": (str, False, "auto"),
    "scheduler": (str, False, "default"),
    "preview": ((dict, bool, type(None)), False, None),
    "mask_image": ((str, type(None)), False, None),
    "control_frames": (list, False, []),
}

MAX_SIDE = 8192
MAX_STEPS = 1000
MAX_CLIP_FRAMES = 1000  # whatever the size limit allows, one job makes no more frames


def parse_generate(message: dict[str, Any]) -> GenerateRequest:
    """Validate a `generate` message; raises ProtocolError(BAD_REQUEST) naming the bad field."""
    job_id = message.get("id") if isinstance(message.get("id"), str) else None
    values: dict[str, Any] = {}
    for name, (kind, required, default) in _GENERATE_FIELDS.items():
        if name not in message:
            if required:
                raise ProtocolError(ErrorCode.BAD_REQUEST, f"generate: missing '{name}'", job_id)
            values[name] = default
            continue
        value = message[name]
        # bool is an int subclass; a seed of `true` is a caller bug, not 1
        allows_bool = kind is bool or (isinstance(kind, tuple) and bool in kind)
        if (isinstance(value, bool) and not allows_bool) or not isinstance(value, kind):
            raise ProtocolError(ErrorCode.BAD_REQUEST,
                                f"generate: '{name}' has the wrong type", job_id)
        values[name] = value
    if not _safe_file_stem(values["id"]):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "generate: 'id' names the result file, so it "
                            "must be a plain file name (no folders, no '..', at most 200 "
                            "characters)", job_id)
    if not values["output_dir"] or not os.path.isabs(values["output_dir"]):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "generate: 'output_dir' must be an absolute "
                            "folder", job_id)
    paths = [(k, values[k]) for k in ("output_dir", "control_image", "init_image",
                                       "mask_image", "depth_float") if values[k] is not None]
    paths += [("reference_images", p) for p in values["reference_images"] if isinstance(p, str)]
    paths += [("control_frames", p) for p in values["control_frames"] if isinstance(p, str)]
    for name, path in paths:
        if "\x00" in path:
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"generate: '{name}' holds a NUL "
                                "character", job_id)
        if path and not os.path.isabs(path):  # never relative to the backend's cwd
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"generate: '{name}' must be an "
                                "absolute path", job_id)
    if values["metadata"] is not None and not all(
            _png_keyword(k) and isinstance(v, str) for k, v in values["metadata"].items()):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "generate: 'metadata' must map PNG text "
                            "keywords (1-79 Latin-1 characters) to strings", job_id)
    for side in ("width", "height"):
        if not 8 <= values[side] <= MAX_SIDE:
            raise ProtocolError(ErrorCode.BAD_REQUEST,
                                f"generate: '{side}' must be 8..{MAX_SIDE}", job_id)
    if not 1 <= values["steps"] <= MAX_STEPS:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"generate: 'steps' must be 1..{MAX_STEPS}",
                            job_id)
    if not 0 <= values["seed"] < 2**32:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "generate: 'seed' must be 0..2^32-1", job_id)
    for name in ("guidance", "control_strength"):
        values[name] = float(values[name])
        if not (math.isfinite(values[name]) and values[name] >= 0):
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"generate: '{name}' must be a finite "
                                "number >= 0", job_id)
    if values["strength"] is not None:
        values["strength"] = float(values["strength"])
        if not 0.0 < values["strength"] <= 1.0:
            raise ProtocolError(ErrorCode.BAD_REQUEST, "generate: 'strength' must be in (0, 1]",
                                job_id)
    _check_mask(values, job_id)
    if not all(isinstance(p, str) and p for p in values["reference_images"]):
        raise ProtocolError(ErrorCode.BAD_REQUEST,
                            "generate: 'reference_images' must be a list of paths", job_id)
    values["reference_images"] = tuple(values["reference_images"])
    _check_clip(values, job_id)
    values["control_frames"] = tuple(values["control_frames"])
    values["loras"] = tuple(_parse_lora(item, job_id) for item in values["loras"])
    if values["memory_mode"] not in MEMORY_MODES:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"generate: 'memory_mode' must be one of "
                            f"{', '.join(MEMORY_MODES)}", job_id)
    if values["scheduler"] not in SCHEDULERS:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"generate: 'scheduler' must be one of "
                            f"{', '.join(SCHEDULERS)}", job_id)
    preview = values.pop("preview")
    if preview is False:
        values["preview_every"] = 0
    elif isinstance(preview, dict):
        every, size = preview.get("every", 1), preview.get("max_size", 256)
        if (isinstance(every, bool) or not isinstance(every, int) or every < 0
                or isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= 2048):
            raise ProtocolError(ErrorCode.BAD_REQUEST, "generate: 'preview' needs every >= 0 "
                                "and max_size 8..2048", job_id)
        values["preview_every"], values["preview_size"] = every, size
    return GenerateRequest(**values)


def _png_keyword(key: str) -> bool:
    """The PNG spec's rule for a text chunk's keyword: 1-79 printable Latin-1 characters."""
    return 0 < len(key) <= 79 and key.isprintable() and all(ord(c) < 256 for c in key)


def _check_mask(values: dict[str, Any], job_id: str | None) -> None:
    """A mask says which part of the init image to regenerate, so it needs one."""
    mask = values["mask_image"]
    if mask is None:
        return
    if not mask:  # a relative one is refused with the other paths, above
        raise ProtocolError(ErrorCode.BAD_REQUEST, "generate: 'mask_image' must be an absolute "
                            "path to a grey PNG (white = regenerate, black = keep)", job_id)
    if not values["init_image"]:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "generate: 'mask_image' needs 'init_image', "
                            "the picture kept where the mask is black", job_id)
    info = _family_info(values)
    if info is not None and not info.inpaint:
        able = ", ".join(i.name for i in FAMILY_INFO.values() if i.inpaint)
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"generate: 'mask_image': {info.name} cannot "
                            f"inpaint (the families that can: {able})", job_id)


def _family_info(values: dict[str, Any]) -> FamilyInfo | None:
    """The request's family, None when unknown (the runner refuses that, naming the known)."""
    family = values["model"].get("family")
    return FAMILY_INFO.get(family) if isinstance(family, str) else None


def _check_clip(values: dict[str, Any], job_id: str | None) -> None:
    """A clip is a list of depth pictures for a video family, led by the control image.
    Whether the files exist and share one size is the backend's to check when it reads them
    (before loading the model); the frame count against its size limit too (size_error)."""
    frames = values["control_frames"]
    if not frames:
        return
    if not all(isinstance(p, str) and p for p in frames):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "generate: 'control_frames' must be a list "
                            "of absolute paths to depth PNGs, one a frame", job_id)
    if len(frames) > MAX_CLIP_FRAMES:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"generate: 'control_frames' holds "
                            f"{len(frames)} frames, more than the {MAX_CLIP_FRAMES} a job "
                            "makes: split the range into several clips", job_id)
    info = _family_info(values)
    if info is not None and not info.takes_clip:
        able = ", ".join(i.name for i in FAMILY_INFO.values() if i.takes_clip)
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"generate: 'control_frames': {info.name} "
                            f"makes still pictures, not clips (the video families: {able})",
                            job_id)
    if values["control_image"] != frames[0]:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "generate: with 'control_frames', "
                            "'control_image' must be the first of them", job_id)
    for name in ("init_image", "mask_image"):
        if values[name]:
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"generate: a clip takes no "
                                f"'{name}' (send pictures to follow as 'reference_images')",
                                job_id)


def _safe_file_stem(name: str) -> bool:
    """A name that is one file in the job folder: no separators, no '..', no control chars."""
    return (0 < len(name) <= 200 and name not in (".", "..") and not name.startswith(".")
            and not any(c in name for c in "/\\:") and name.isprintable())


def _parse_lora(item: Any, job_id: str | None) -> LoraSpec:
    if isinstance(item, str) and item and "\x00" not in item:
        return LoraSpec(item)
    if isinstance(item, dict) and isinstance(item.get("path"), str) and item["path"] \
            and "\x00" not in item["path"]:
        weight = item.get("weight", 1.0)
        if (isinstance(weight, (int, float)) and not isinstance(weight, bool)
                and math.isfinite(weight)):
            return LoraSpec(item["path"], float(weight))
    raise ProtocolError(ErrorCode.BAD_REQUEST,
                        "generate: each of 'loras' must be a path or {path, weight} with a "
                        "finite weight", job_id)
