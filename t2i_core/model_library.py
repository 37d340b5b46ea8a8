"""The user's own models: what checkpoints, ControlNets, LoRAs and VAEs are on this machine.

Pure (stdlib only): the add-on scans with it inside Blender, the backend answers `models` with
it. Every file is told apart from its safetensors header alone (8-byte little-endian length,
then a JSON table of tensor names, dtypes and shapes; no tensor is read), so a scan of a few
hundred gigabytes of models reads a few megabytes.

Where models are looked for:
  - the Hugging Face cache (`models--org--name/snapshots/<commit>/`),
  - the user's model folders (any layout, walked a few levels down),
  - an A1111 / Forge root: models/Stable-diffusion, ControlNet, Lora, LyCORIS, VAE,
  - a ComfyUI root: models/checkpoints, diffusion_models, unet, controlnet, model_patches,
    loras, text_encoders, clip, vae, and the folders its extra_model_paths.yaml adds.

A scan is cached in a JSON file keyed by path, size and mtime: a warm scan stats files and
reads only the headers of files that changed. A1111's AutoV2 hash (first 10 hex digits of the
SHA-256 of the whole file) is computed only when asked and cached the same way.

Detection rules name their source. "diffusers" = the key tables in the diffusers release the
backend pins: `diffusers/loaders/single_file_utils.py` (CHECKPOINT_KEY_NAMES and
`infer_diffusers_model_type`) and `diffusers/loaders/lora_conversion_utils.py` (kohya prefixes);
model class state dicts where no single-file key exists (their module names, e.g.
`QwenImageTransformer2DModel`'s `txt_norm`/`img_mod`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .files import write_bytes_atomic
from .protocol import A1111_ROOT_ENV, COMFYUI_ROOT_ENV, MODEL_FOLDERS_ENV

MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")
CACHE_VERSION = 1

# What a file is for (`role`) and which model it belongs to (`arch`).
CHECKPOINT = "checkpoint"  # a whole model in one file (UNet/transformer + text encoders + VAE)
DIFFUSION_MODEL = "diffusion_model"  # the denoiser alone, as ComfyUI keeps it
CONTROLNET = "controlnet"
LORA = "lora"
VAE = "vae"
TEXT_ENCODER = "text_encoder"
ROLES = (CHECKPOINT, DIFFUSION_MODEL, CONTROLNET, LORA, VAE, TEXT_ENCODER)

# entries a ComfyUI server listed (the bridge's `models` reply): `reference` is the server's
# name for the file, there is nothing of it on this machine to read
SERVER_SOURCE = "comfyui_server"

ARCH_LABELS = {
    "sd15": "SD 1.5", "sd2": "SD 2", "sd2_depth": "SD 2 Depth", "sdxl": "SDXL",
    "sdxl_union": "SDXL (Union)", "flux1": "FLUX.1", "flux1_depth": "FLUX.1 Depth",
    "flux1_fill": "FLUX.1 Fill", "flux2": "FLUX.2", "zimage": "Z-Image",
    "qwen_image": "Qwen-Image", "sd_vae": "SD/SDXL", "flux_vae": "FLUX.1 / Z-Image",
    "qwen_vae": "Qwen-Image", "clip": "CLIP", "t5": "T5", "qwen_llm": "Qwen LLM",
}
ROLE_LABELS = {CHECKPOINT: "checkpoint", DIFFUSION_MODEL: "diffusion model",
               CONTROLNET: "ControlNet", LORA: "LoRA", VAE: "VAE", TEXT_ENCODER: "text encoder"}

# Which protocol families (t2i_core.presets.FAMILY_INFO) can use a file of an arch, per pick.
# FLUX.1 dev and Kontext share one layout, as do Qwen-Image and Qwen-Image-Edit: the header
# cannot tell them apart, so both families accept either (the weights decide the picture).
BASE_FAMILIES: dict[str, tuple[str, ...]] = {
    "sd15": ("sd15_controlnet",),
    "sdxl": ("sdxl_controlnet", "sdxl_controlnet_union"),
    "sd2_depth": ("sd2_depth2img",),
    "flux1": ("flux_controlnet", "flux_kontext", "flux_depth"),  # + the FLUX.1 Depth LoRA
    "flux1_depth": ("flux_depth",),
    "zimage": ("zimage_controlnet",),
    "qwen_image": ("qwen_image_controlnet", "qwen_image_edit"),
    "flux2": ("flux2",),
}
CONTROLNET_FAMILIES: dict[str, tuple[str, ...]] = {
    "sd15": ("sd15_controlnet",),
    "sdxl": ("sdxl_controlnet",),
    "sdxl_union": ("sdxl_controlnet_union",),
    "flux1": ("flux_controlnet",),
    "zimage": ("zimage_controlnet",),
    "qwen_image": ("qwen_image_controlnet",),
}
VAE_FAMILIES: dict[str, tuple[str, ...]] = {
    "sd_vae": ("sdxl_controlnet", "sdxl_controlnet_union"),  # the families that take a `vae`
}
# The base archs a LoRA trained on `arch` works on.
LORA_BASES: dict[str, tuple[str, ...]] = {
    "sd15": ("sd15",), "sd2": ("sd2", "sd2_depth"), "sdxl": ("sdxl",),
    "flux1": ("flux1", "flux1_depth"), "flux2": ("flux2",), "zimage": ("zimage",),
    "qwen_image": ("qwen_image",),
}

# A1111/Forge and ComfyUI folders, with the role a file found there usually has (the header
# has the last word). ComfyUI's names are also the keys of extra_model_paths.yaml.
A1111_FOLDERS = {"models/Stable-diffusion": CHECKPOINT, "models/ControlNet": CONTROLNET,
                 "models/Lora": LORA, "models/LyCORIS": LORA, "models/VAE": VAE}
COMFYUI_KINDS = {"checkpoints": CHECKPOINT, "diffusion_models": DIFFUSION_MODEL,
                 "unet": DIFFUSION_MODEL, "controlnet": CONTROLNET,
                 "model_patches": CONTROLNET, "loras": LORA, "text_encoders": TEXT_ENCODER,
                 "clip": TEXT_ENCODER, "vae": VAE}
_WALK_DEPTH = 4  # model folders: models/checkpoints/sdxl/anime/x.safetensors


class UnreadableModel(ValueError):
    """A file that is not a readable safetensors file; the message says why."""


class PickleInDisguise(UnreadableModel):
    """A pickle (torch.save) file named .safetensors: never to be loaded."""


@dataclass(frozen=True)
class ModelEntry:
    """One model the library found: a .safetensors file or a diffusers folder / cached repo."""

    path: str  # absolute path (file or folder)
    reference: str  # what a model spec names: the path, or `org/name[/file]` for the HF cache
    name: str  # shown in lists: the file's stem or the repo id
    source: str  # "hf", "folder", "a1111", "comfyui"; SERVER_SOURCE: a ComfyUI server's list
    role: str  # one of ROLES, "" when not known
    arch: str  # a key of ARCH_LABELS, "" when not known
    variant: str = ""  # "inpainting", "union", "lycoris"...: what else the header says
    lora_format: str = ""  # "kohya", "diffusers", "lycoris"
    lora_bases: tuple[str, ...] = ()  # archs a LoRA fits
    size: int = 0
    mtime_ns: int = 0
    trigger_words: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()  # the most frequent training tags (kohya ss_tag_frequency)
    base_model_hint: str = ""  # what the metadata says it was trained on
    note: str = ""  # why role or arch is unknown

    @property
    def label(self) -> str:
        if self.role == LORA:
            bases = [ARCH_LABELS[a] for a in self.lora_bases if a in LORA_BASES]
            return f"{self.name} (LoRA for {' / '.join(bases) if bases else 'an unknown base'})"
        what = ARCH_LABELS.get(self.arch, "unknown model")
        return f"{self.name} ({what} {ROLE_LABELS.get(self.role, 'file')})"

    def families(self, pick: str) -> tuple[str, ...]:
        """The protocol families this entry can serve as `pick` ("base", "controlnet", "vae")."""
        if pick == "base" and self.role in (CHECKPOINT, DIFFUSION_MODEL):
            return BASE_FAMILIES.get(self.arch, ())
        if pick == "controlnet" and self.role == CONTROLNET:
            return CONTROLNET_FAMILIES.get(self.arch, ())
        if pick == "vae" and self.role == VAE:
            return VAE_FAMILIES.get(self.arch, ())
        return ()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("lora_bases", "trigger_words", "tags"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelEntry:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("lora_bases", "trigger_words", "tags"):
            values[key] = tuple(values.get(key, ()))
        return cls(**values)


@dataclass
class Library:
    """A scan's result: the entries, and the files it skipped with the reason."""

    entries: list[ModelEntry] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    headers_read: int = 0  # files whose header this scan read (0 on a warm scan)

    def by_role(self, *roles: str) -> list[ModelEntry]:
        return [e for e in self.entries if e.role in roles]

    def find(self, reference: str) -> ModelEntry | None:
        """The entry a pick names: its reference, its path, or its file name."""
        for entry in self.entries:
            if reference in (entry.reference, entry.path):
                return entry
        matches = [e for e in self.entries if Path(e.path).name == reference]
        return matches[0] if len(matches) == 1 else None

    def to_json(self) -> dict[str, Any]:
        return {"entries": [e.to_json() for e in self.entries],
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped]}


# --- where to look ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Roots:
    """Where a scan looks. Empty values are skipped."""

    hf_cache: str = ""
    model_folders: tuple[str, ...] = ()
    a1111: str = ""  # the A1111 / Forge install (the folder holding `models/`)
    comfyui: str = ""  # the ComfyUI install (holding `models/` and extra_model_paths.yaml)


def roots_from_env(environ: dict[str, str] | None = None) -> Roots:
    """The roots the add-on hands the backend in its environment (the same preferences)."""
    env = os.environ if environ is None else environ
    folders = tuple(p for p in env.get(MODEL_FOLDERS_ENV, "").split(os.pathsep) if p.strip())
    return Roots(hf_cache=default_hf_cache(env), model_folders=folders,
                 a1111=env.get(A1111_ROOT_ENV, ""), comfyui=env.get(COMFYUI_ROOT_ENV, ""))


def default_hf_cache(environ: dict[str, str] | None = None) -> str:
    """huggingface_hub's own rule: HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/
    hub (HF_HOME defaulting to $XDG_CACHE_HOME/huggingface)."""
    env = os.environ if environ is None else environ
    if env.get("HF_HUB_CACHE"):
        return os.path.expanduser(env["HF_HUB_CACHE"])
    home = env.get("HF_HOME") or os.path.join(
        env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "huggingface")
    return os.path.join(os.path.expanduser(home), "hub")


def parse_extra_model_paths(text: str) -> dict[str, dict[str, list[str]]]:
    """The subset of YAML ComfyUI's extra_model_paths.yaml uses: top-level sections, each a
    map of `key: value` where a value is a plain or quoted scalar or a `|` block of one path a
    line. Comments and blank lines are ignored. Returns section -> key -> [values]."""
    sections: dict[str, dict[str, list[str]]] = {}
    section: dict[str, list[str]] | None = None
    block: list[str] | None = None
    block_indent = -1
    for raw in text.splitlines():
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if block is not None:
            if indent > block_indent:
                block.append(_unquote(line.strip()))
                continue
            block = None
        key, colon, value = line.strip().partition(":")
        if not colon:
            continue
        if indent == 0:
            section = sections.setdefault(key.strip(), {})
            continue
        if section is None:
            continue
        value = value.strip()
        if value in ("|", "|-", ">", ">-"):
            block = section.setdefault(key.strip(), [])
            block_indent = indent
        elif value:
            section[key.strip()] = [_unquote(value)]
    return sections


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def comfyui_folders(root: str) -> list[tuple[str, str]]:
    """(folder, role) for a ComfyUI root: its models/ folders, then those its
    extra_model_paths.yaml names (base_path relative to the yaml's folder, as ComfyUI reads
    it; `~` and $VARS expanded)."""
    base = Path(os.path.expanduser(root))
    found = [(str(base / "models" / kind), role) for kind, role in COMFYUI_KINDS.items()]
    yaml = base / "extra_model_paths.yaml"
    try:
        text = yaml.read_text(encoding="utf-8")
    except OSError:
        return found
    for values in parse_extra_model_paths(text).values():
        base_path = values.get("base_path", [""])[0]
        section_base = Path(os.path.expandvars(os.path.expanduser(base_path)))
        if not section_base.is_absolute():
            section_base = base / section_base
        for kind, paths in values.items():
            role = COMFYUI_KINDS.get(kind)
            if role is None:
                continue
            for path in paths:
                folder = Path(os.path.expandvars(os.path.expanduser(path)))
                found.append((str(folder if folder.is_absolute() else section_base / folder),
                              role))
    return found


def _folders(roots: Roots) -> list[tuple[str, str, str]]:
    """(folder, source, role hint) to walk for files, in order."""
    found: list[tuple[str, str, str]] = []
    for folder in roots.model_folders:
        found.append((os.path.expanduser(folder), "folder", ""))
    if roots.a1111:
        base = Path(os.path.expanduser(roots.a1111))
        found += [(str(base / sub), "a1111", role) for sub, role in A1111_FOLDERS.items()]
    if roots.comfyui:
        found += [(folder, "comfyui", role) for folder, role in comfyui_folders(roots.comfyui)]
    return found


# --- the scan -----------------------------------------------------------------------------------


class ScanCache:
    """Headers already classified, keyed by path + size + mtime; and AutoV2 hashes."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else None
        self.files: dict[str, dict[str, Any]] = {}
        self.dirty = False
        if self.path is not None:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                if data.get("version") == CACHE_VERSION and isinstance(data.get("files"), dict):
                    self.files = data["files"]
            except (OSError, ValueError, AttributeError):
                self.files = {}  # a missing or damaged cache is rebuilt

    def get(self, path: str, size: int, mtime_ns: int) -> dict[str, Any] | None:
        item = self.files.get(path)
        if item and item.get("size") == size and item.get("mtime_ns") == mtime_ns:
            return item
        return None

    def put(self, path: str, size: int, mtime_ns: int, **values: Any) -> None:
        item = self.files.get(path)
        if not item or item.get("size") != size or item.get("mtime_ns") != mtime_ns:
            item = {"size": size, "mtime_ns": mtime_ns}
            self.files[path] = item
        item.update(values)
        self.dirty = True

    def save(self, seen: set[str] | None = None) -> None:
        """Write the cache (dropping files not `seen` by a full scan)."""
        if seen is not None:
            gone = set(self.files) - seen
            for path in gone:
                del self.files[path]
            self.dirty = self.dirty or bool(gone)
        if self.path is None or not self.dirty:
            return
        data = json.dumps({"version": CACHE_VERSION, "files": self.files}, sort_keys=True)
        write_bytes_atomic(self.path, data.encode("utf-8"))
        self.dirty = False


def scan(roots: Roots, cache: ScanCache | None = None) -> Library:
    """Every model under `roots`. Unreadable or corrupt files are skipped with a note; a
    missing folder is no error (not every install has every folder)."""
    cache = cache or ScanCache()
    library = Library()
    seen: set[str] = set()
    listed: set[str] = set()
    if roots.hf_cache:
        for entry in _scan_hf_cache(Path(os.path.expanduser(roots.hf_cache)), cache, library,
                                    seen):
            library.entries.append(entry)
    for folder, source, role_hint in _folders(roots):
        for path, kind in _walk(Path(os.path.abspath(folder))):
            key = str(path)
            if key in listed:  # a folder named twice (a yaml pointing at A1111's models)
                continue
            listed.add(key)
            if kind == "pickle":
                library.skipped.append((key, "a pickle checkpoint: only .safetensors files are "
                                        "loaded (unpickling can run code); convert it once"))
                continue
            if kind == "diffusers":
                entry = _folder_entry(path, key, path.name, source)
            else:
                entry = _file_entry(path, key, source, role_hint, cache, library, seen)
            if entry is not None:
                library.entries.append(entry)
    cache.save(seen)
    library.entries.sort(key=lambda e: (e.role, e.arch, e.name.lower()))
    return library


def _walk(folder: Path, depth: int = 0) -> Iterator[tuple[Path, str]]:
    """(.safetensors file, "file") / (diffusers folder, "diffusers") / (pickle, "pickle")
    below `folder`, without following links out of it forever (depth-limited)."""
    try:
        children = sorted(os.scandir(folder), key=lambda d: d.name)
    except OSError:
        return
    for child in children:
        if child.name.startswith("."):
            continue
        try:
            is_dir = child.is_dir()
        except OSError:
            continue
        path = Path(child.path)
        if is_dir:
            if (path / "model_index.json").is_file() or (path / "config.json").is_file():
                yield path, "diffusers"
            elif depth < _WALK_DEPTH:
                yield from _walk(path, depth + 1)
        elif child.name.lower().endswith(".safetensors"):
            yield path, "file"
        elif child.name.lower().endswith(PICKLE_SUFFIXES) and child.name != "training_args.bin":
            yield path, "pickle"


def _file_entry(path: Path, reference: str, source: str, role_hint: str, cache: ScanCache,
                library: Library, seen: set[str]) -> ModelEntry | None:
    key = str(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableModel("not a regular file")
    except (OSError, UnreadableModel) as exc:
        library.skipped.append((key, f"cannot be read: {_reason(exc)}"))
        return None
    seen.add(key)
    cached = cache.get(key, info.st_size, info.st_mtime_ns)
    if cached is not None and ("entry" in cached or "error" in cached):
        if "error" in cached:
            library.skipped.append((key, cached["error"]))
            return None
        return ModelEntry.from_json({**cached["entry"], "reference": reference,
                                     "source": source})
    library.headers_read += 1
    try:
        header = read_header(path)
    except (OSError, UnreadableModel) as exc:
        reason = f"not a readable safetensors file: {_reason(exc)}"
        if not isinstance(exc, PermissionError):  # a permission may change; a corrupt file
            cache.put(key, info.st_size, info.st_mtime_ns, error=reason)  # stays corrupt
        library.skipped.append((key, reason))
        return None
    entry = classify(header, path=key, reference=reference, source=source,
                     role_hint=role_hint, size=info.st_size, mtime_ns=info.st_mtime_ns)
    cache.put(key, info.st_size, info.st_mtime_ns, entry=entry.to_json())
    return entry


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


# --- the Hugging Face cache ---------------------------------------------------------------------


def _scan_hf_cache(cache_dir: Path, cache: ScanCache, library: Library,
                   seen: set[str]) -> Iterator[ModelEntry]:
    """One entry per cached repo (diffusers layout), or per .safetensors file of a repo that
    is a bag of files (LoRAs, a ControlNet's variants)."""
    try:
        repos = sorted(p for p in cache_dir.iterdir() if p.name.startswith("models--"))
    except OSError:
        return
    for repo in repos:
        repo_id = repo.name[len("models--"):].replace("--", "/")
        snapshot = _snapshot(repo)
        if snapshot is None:
            continue
        if (snapshot / "model_index.json").is_file() or (snapshot / "config.json").is_file():
            yield _folder_entry(snapshot, repo_id, repo_id, "hf")
            continue
        for path in sorted(snapshot.rglob("*.safetensors")):
            if any(part.startswith(".") for part in path.relative_to(snapshot).parts):
                continue
            reference = f"{repo_id}/{path.relative_to(snapshot).as_posix()}"
            entry = _file_entry(path, reference, "hf", "", cache, library, seen)
            if entry is not None:
                yield entry


def _snapshot(repo: Path) -> Path | None:
    """The snapshot `refs/main` points at, else the newest one."""
    snapshots = repo / "snapshots"
    try:
        commit = (repo / "refs" / "main").read_text(encoding="utf-8").strip()
        if (snapshots / commit).is_dir():
            return snapshots / commit
    except OSError:
        pass
    try:
        found = sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime)
    except OSError:
        return None
    return found[-1] if found else None


# diffusers `_class_name` -> (role, arch), from the pipelines' and models' class names
_CLASS_ARCH = {
    "StableDiffusionPipeline": (CHECKPOINT, "sd15"),
    "StableDiffusionControlNetPipeline": (CHECKPOINT, "sd15"),
    "StableDiffusionImg2ImgPipeline": (CHECKPOINT, "sd15"),
    "StableDiffusionDepth2ImgPipeline": (CHECKPOINT, "sd2_depth"),
    "StableDiffusionXLPipeline": (CHECKPOINT, "sdxl"),
    "StableDiffusionXLControlNetPipeline": (CHECKPOINT, "sdxl"),
    "StableDiffusionXLControlNetUnionPipeline": (CHECKPOINT, "sdxl"),
    "FluxPipeline": (CHECKPOINT, "flux1"), "FluxKontextPipeline": (CHECKPOINT, "flux1"),
    "FluxControlNetPipeline": (CHECKPOINT, "flux1"),
    "FluxControlPipeline": (CHECKPOINT, "flux1_depth"),
    "ZImagePipeline": (CHECKPOINT, "zimage"), "ZImageControlNetPipeline": (CHECKPOINT, "zimage"),
    "QwenImagePipeline": (CHECKPOINT, "qwen_image"),
    "QwenImageControlNetPipeline": (CHECKPOINT, "qwen_image"),
    "QwenImageEditPlusPipeline": (CHECKPOINT, "qwen_image"),
    "QwenImageEditPipeline": (CHECKPOINT, "qwen_image"),
    "Flux2Pipeline": (CHECKPOINT, "flux2"), "Flux2KleinPipeline": (CHECKPOINT, "flux2"),
    "ControlNetModel": (CONTROLNET, "sd15"), "ControlNetUnionModel": (CONTROLNET, "sdxl_union"),
    "FluxControlNetModel": (CONTROLNET, "flux1"),
    "QwenImageControlNetModel": (CONTROLNET, "qwen_image"),
    "ZImageControlNetModel": (CONTROLNET, "zimage"),
    "AutoencoderKL": (VAE, "sd_vae"), "AutoencoderKLQwenImage": (VAE, "qwen_vae"),
}


def _folder_entry(folder: Path, reference: str, name: str, source: str) -> ModelEntry:
    class_name, config = "", {}
    for file in ("model_index.json", "config.json"):
        try:
            config = json.loads((folder / file).read_text(encoding="utf-8"))
            class_name = str(config.get("_class_name", ""))
            break
        except (OSError, ValueError, AttributeError):
            continue
    role, arch = _CLASS_ARCH.get(class_name, ("", ""))
    if class_name == "StableDiffusionPipeline" and _unet_cross_dim(folder) == 1024:
        arch = "sd2"  # SD 2 ships as a StableDiffusionPipeline with OpenCLIP's 1024 width
    if class_name == "ControlNetModel" and config.get("addition_embed_type") == "text_time":
        arch = "sdxl"  # SDXL ControlNets take SDXL's added time/size embedding
    if class_name == "AutoencoderKL" and config.get("latent_channels") == 16:
        arch = "flux_vae"
    try:
        mtime = folder.stat().st_mtime_ns
    except OSError:
        mtime = 0
    return ModelEntry(path=str(folder), reference=reference, name=name, source=source,
                      role=role, arch=arch, mtime_ns=mtime,
                      note="" if role else f"a diffusers folder of '{class_name or '?'}'")


def _unet_cross_dim(folder: Path) -> int | None:
    try:
        config = json.loads((folder / "unet" / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = config.get("cross_attention_dim")
    return value if isinstance(value, int) else None


# --- one file's header --------------------------------------------------------------------------


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a .safetensors file, checked against the file's size; no tensor data
    is read. UnreadableModel says what is wrong (a pickle renamed .safetensors, cut off...)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(9)
        length = int.from_bytes(head[:8], "little") if len(head) == 9 else 0
        # An 8-byte length, then JSON. The length's first byte may be anything (0x80, "P"
        # in about 1 file in 128), so only a file that is not that is checked for a pickle's
        # (0x80 + protocol) or a torch.save zip's (PK\3\4) signature.
        plausible = head[8:9] == b"{" and 0 < length <= min(MAX_HEADER, size - 8)
        if not plausible and (head[:4] == b"PK\x03\x04" or (
                head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"))):
            raise PickleInDisguise("it is a pickle (torch.save) file named .safetensors")
        if not plausible:
            raise UnreadableModel("its header is missing or cut off")
        handle.seek(8)
        try:
            header = json.loads(handle.read(length))
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            raise UnreadableModel("its header is not valid JSON") from None
    if not isinstance(header, dict):
        raise UnreadableModel("its header is not a table of tensors")
    end = 0
    for name, entry in header.items():
        try:
            offset = entry["data_offsets"][1] if name != "__metadata__" else 0
        except (TypeError, KeyError, IndexError):
            continue  # not a tensor entry: the loader has the last word on it
        if isinstance(offset, int) and offset > end:
            end = offset
    if end > size - 8 - length:
        raise UnreadableModel(f"it is {size} bytes, shorter than its header says (truncated)")
    return header


def _shape(tensors: dict[str, Any], key: str) -> list[int]:
    entry = tensors.get(key)
    shape = entry.get("shape") if isinstance(entry, dict) else None
    return shape if isinstance(shape, list) else []


def _strip(keys: Iterable[str], prefixes: tuple[str, ...]) -> set[str]:
    """Keys with the first matching wrapper prefix removed (ComfyUI's model.diffusion_model.)."""
    out = set()
    for key in keys:
        for prefix in prefixes:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        out.add(key)
    return out


def classify(header: dict[str, Any], *, path: str, reference: str = "", source: str = "",
             role_hint: str = "", size: int = 0, mtime_ns: int = 0) -> ModelEntry:
    """What a safetensors file is, from its header alone."""
    metadata = header.get("__metadata__") if isinstance(header.get("__metadata__"), dict) else {}
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    found = (_classify_lora(tensors) or _classify_denoiser(tensors) or _classify_controlnet(tensors)
             or _classify_vae(tensors) or _classify_text_encoder(tensors))
    role, arch, variant, fmt, bases = found or ("", "", "", "", ())
    hint = _base_model_hint(metadata)
    if role == LORA and len(bases) > 1 and hint in bases:
        bases = (hint,)  # the header fits several; the training metadata names one
    note = ""
    if not role:
        note = "neither a checkpoint, ControlNet, LoRA nor VAE this add-on knows"
        if role_hint:
            note += f" (found in a {ROLE_LABELS[role_hint]} folder)"
    triggers, tags = _training_words(metadata)
    return ModelEntry(path=path, reference=reference or path, name=Path(path).stem,
                      source=source, role=role, arch=arch, variant=variant, lora_format=fmt,
                      lora_bases=tuple(bases), size=size, mtime_ns=mtime_ns,
                      trigger_words=triggers, tags=tags, base_model_hint=hint, note=note)


_Found = tuple[str, str, str, str, tuple[str, ...]]  # role, arch, variant, lora format, bases


def _classify_denoiser(tensors: dict[str, Any]) -> _Found | None:
    keys = set(tensors)
    # Checkpoints in the original (LDM/SGM) layout. diffusers: CHECKPOINT_KEY_NAMES.
    if any(k.startswith("model.diffusion_model.input_blocks.") for k in keys):
        full = any(k.startswith(("cond_stage_model.", "conditioner.")) for k in keys)
        role = CHECKPOINT if full else DIFFUSION_MODEL
        in_channels = _shape(tensors, "model.diffusion_model.input_blocks.0.0.weight")
        channels = in_channels[1] if len(in_channels) == 4 else 4
        # diffusers "xl_base"/"open_clip_sdxl" keys; SGM's label_emb is SDXL's size embedding
        if (any(k.startswith("conditioner.embedders.1.") for k in keys)
                or "model.diffusion_model.label_emb.0.0.weight" in keys):
            return role, "sdxl", "inpainting" if channels == 9 else "", "", ()
        # diffusers "open_clip" key (SD 2's OpenCLIP text encoder) or its "v2" rule: the
        # cross-attention reads 1024-wide text features
        to_k = _shape(tensors, "model.diffusion_model.input_blocks.1.1.transformer_blocks.0."
                               "attn2.to_k.weight")
        if (any(k.startswith("cond_stage_model.model.") for k in keys)
                or (to_k and to_k[-1] == 1024)):
            # stable-diffusion-2-depth's UNet takes the latents plus one depth channel
            arch = "sd2_depth" if channels == 5 else "sd2"
            return role, arch, "inpainting" if channels == 9 else "", "", ()
        return role, "sd15", "inpainting" if channels == 9 else "", "", ()
    stripped = _strip(keys, ("model.diffusion_model.",))
    # FLUX.2 (diffusers "flux2" key), original and diffusers layout
    if "single_stream_modulation.lin.weight" in stripped or \
            "single_stream_modulation.linear.weight" in stripped:
        return DIFFUSION_MODEL, "flux2", "", "", ()
    # FLUX.1, BFL layout (diffusers "flux" key; img_in width decides dev/depth/fill)
    if "double_blocks.0.img_attn.norm.key_norm.scale" in stripped:
        prefix = "model.diffusion_model." if "model.diffusion_model.img_in.weight" in keys else ""
        return DIFFUSION_MODEL, *_flux_variant(tensors, f"{prefix}img_in.weight",
                                               f"{prefix}final_layer.linear.weight")
    # FLUX.1, diffusers layout (FluxTransformer2DModel): x_embedder + single blocks
    if ("x_embedder.weight" in stripped and "context_embedder.weight" in stripped
            and any(k.startswith("single_transformer_blocks.") for k in stripped)
            and not any(k.startswith("controlnet_") for k in stripped)):
        return DIFFUSION_MODEL, *_flux_variant(tensors, "x_embedder.weight", "proj_out.weight")
    # Z-Image (diffusers "z-image-turbo" key; diffusers layout: all_x_embedder)
    if ("layers.0.adaLN_modulation.0.weight" in stripped
            and not any(k.startswith("control_") for k in stripped)):
        return DIFFUSION_MODEL, "zimage", "", "", ()
    # Qwen-Image (QwenImageTransformer2DModel, which ComfyUI's files share): txt_norm + img_in
    if ("txt_norm.weight" in stripped and "img_in.weight" in stripped
            and not any(k.startswith("controlnet_") for k in stripped)):
        return DIFFUSION_MODEL, "qwen_image", "", "", ()
    return None


def _flux_variant(tensors: dict[str, Any], img_in: str, out: str) -> tuple[str, str, str, tuple]:
    """FLUX.1 Depth's input takes the packed latents and the depth latents (2x the output
    width: 128 vs 64), Fill's latents, mask and masked image (6x: 384); diffusers' rule."""
    width_in = _shape(tensors, img_in)
    width_out = _shape(tensors, out)
    ratio = width_in[1] / width_out[0] if len(width_in) == 2 and width_out else 1
    if ratio == 2:
        return "flux1_depth", "", "", ()
    if ratio == 6:
        return "flux1_fill", "fill", "", ()
    return "flux1", "", "", ()


def _classify_controlnet(tensors: dict[str, Any]) -> _Found | None:
    keys = _strip(tensors, ("model.diffusion_model.",))
    # Z-Image Fun ControlNet (diffusers "z-image-turbo-controlnet" keys)
    if "control_all_x_embedder.2-1.weight" in keys or any(
            k.startswith("control_layers.") for k in keys):
        return CONTROLNET, "zimage", "union", "", ()
    # FLUX.1 / Qwen-Image ControlNets (FluxControlNetModel, QwenImageControlNetModel)
    if "controlnet_x_embedder.weight" in keys:
        arch = "qwen_image" if "txt_norm.weight" in keys else "flux1"
        union = "controlnet_mode_embedder.weight" in keys
        return CONTROLNET, arch, "union" if union else "", "", ()
    # SD ControlNets: original (control_model.) or diffusers layout (diffusers "controlnet")
    if "control_model.time_embed.0.weight" in keys:
        if "control_model.label_emb.0.0.weight" in keys:
            return CONTROLNET, "sdxl", "", "", ()
        to_k = _shape(tensors, "control_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k"
                               ".weight")
        return CONTROLNET, "sd2" if to_k and to_k[-1] == 1024 else "sd15", "", "", ()
    if "controlnet_cond_embedding.conv_in.weight" in keys:
        if "task_embedding" in keys or "control_add_embedding.linear_1.weight" in keys:
            return CONTROLNET, "sdxl_union", "union", "", ()  # xinsir's ControlNetUnionModel
        if "add_embedding.linear_1.weight" in keys:  # diffusers "controlnet_xl"
            return CONTROLNET, "sdxl", "", "", ()
        to_k = _shape(tensors, "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"
                               ".weight")
        return CONTROLNET, "sd2" if to_k and to_k[-1] == 1024 else "sd15", "", "", ()
    return None


def _classify_vae(tensors: dict[str, Any]) -> _Found | None:
    keys = _strip(tensors, ("first_stage_model.", "vae."))
    if "decoder.middle.0.residual.0.gamma" in keys:  # diffusers "wan_vae": Qwen-Image's VAE
        return VAE, "qwen_vae", "", "", ()
    # LDM layout (decoder.up.N.block) or diffusers' AutoencoderKL (decoder.up_blocks.N)
    conv_in = _shape(tensors, next((k for k in tensors if k.endswith("decoder.conv_in.weight")),
                                   ""))
    if not conv_in or not any(k.startswith("encoder.") for k in keys):
        return None
    latent = conv_in[1] if len(conv_in) == 4 else 0
    arch = {4: "sd_vae", 16: "flux_vae"}.get(latent, "")  # SD/SDXL: 4 latent channels, FLUX: 16
    return VAE, arch, "", "", ()


def _classify_text_encoder(tensors: dict[str, Any]) -> _Found | None:
    keys = set(tensors)
    if any(k.startswith(("text_model.encoder.", "encoder.layers.")) for k in keys) or any(
            ".text_model.encoder." in k for k in keys):
        return TEXT_ENCODER, "clip", "", "", ()
    if any(k.startswith("encoder.block.") for k in keys):
        return TEXT_ENCODER, "t5", "", "", ()
    if any(k.startswith(("model.layers.", "model.language_model.layers.")) for k in keys):
        return TEXT_ENCODER, "qwen_llm", "", "", ()
    return None


_KOHYA_SUFFIX = (".lora_down.weight", ".lora_up.weight", ".alpha", ".dora_scale")
_LYCORIS_SUFFIX = (".hada_w1_a", ".hada_w1_b", ".lokr_w1", ".lokr_w2", ".oft_blocks")
_PEFT_SUFFIX = (".lora_A.weight", ".lora_B.weight", ".lora.down.weight", ".lora.up.weight")


def _classify_lora(tensors: dict[str, Any]) -> _Found | None:
    keys = set(tensors)
    kohya = [k for k in keys if k.startswith(("lora_unet_", "lora_te_", "lora_te1_",
                                              "lora_te2_", "lora_transformer_"))]
    if kohya:  # diffusers' lora_conversion_utils: kohya and LyCORIS prefixes
        fmt = "lycoris" if any(k.endswith(_LYCORIS_SUFFIX) for k in kohya) else "kohya"
        return LORA, "", "", fmt, _kohya_bases(tensors, kohya)
    peft = [k for k in keys if k.endswith(_PEFT_SUFFIX)]
    if not peft:
        return None
    return LORA, "", "", "diffusers", _peft_bases(tensors, peft)


def _kohya_bases(tensors: dict[str, Any], keys: list[str]) -> tuple[str, ...]:
    names = " ".join(keys)
    if "lora_unet_double_blocks_" in names or "lora_unet_single_blocks_" in names \
            or "lora_transformer_single_transformer_blocks_" in names:
        return LORA_BASES["flux1"]
    if "lora_unet_layers_" in names and "_attention_" in names:
        return LORA_BASES["zimage"]
    if "lora_unet_transformer_blocks_" in names and "_img_mod" in names:
        return LORA_BASES["qwen_image"]
    # SDXL: two text encoders (te1/te2), kohya's SGM names for its UNet (input_blocks...), or
    # more than one transformer layer per attention (SDXL has 2 and 10; SD 1/2 one).
    if ("lora_te1_" in names or "lora_te2_" in names or "lora_unet_input_blocks_" in names
            or "lora_unet_output_blocks_" in names
            or re.search(r"transformer_blocks_[1-9]", names)):
        return LORA_BASES["sdxl"]
    width = _cross_attention_width(tensors, [k for k in keys if "attn2_to_k" in k
                                             and k.endswith(".lora_down.weight")])
    return _sd_by_width(width)


def _peft_bases(tensors: dict[str, Any], keys: list[str]) -> tuple[str, ...]:
    names = " ".join(keys)
    if "text_encoder_2." in names or re.search(r"unet\..*transformer_blocks\.[1-9]\.", names):
        return LORA_BASES["sdxl"]
    if "unet." in names or "text_encoder." in names:
        width = _cross_attention_width(tensors, [k for k in keys if "attn2.to_k.lora_A" in k
                                                 or "attn2.to_k.lora.down" in k])
        return _sd_by_width(width)
    body = names.replace("diffusion_model.", "transformer.")
    if "to_qkv_mlp_proj" in body or "double_stream_modulation" in body:
        return LORA_BASES["flux2"]
    if "single_transformer_blocks." in body:
        return LORA_BASES["flux1"]
    if re.search(r"transformer_blocks\.\d+\.(img_mlp|txt_mlp|img_mod|txt_mod)", body):
        return LORA_BASES["qwen_image"]
    if re.search(r"layers\.\d+\.(attention|feed_forward)\.", body):
        return LORA_BASES["zimage"]
    if re.search(r"transformer_blocks\.\d+\.attn\.add_q_proj", body):
        return LORA_BASES["flux1"]
    return ()


def _cross_attention_width(tensors: dict[str, Any], keys: list[str]) -> int:
    for key in sorted(keys):
        shape = _shape(tensors, key)
        if len(shape) >= 2:
            return shape[1]
    return 0


def _sd_by_width(width: int) -> tuple[str, ...]:
    """SD 1.x and 2.x LoRAs have the same names; the text width their cross-attention reads
    (CLIP ViT-L 768, OpenCLIP ViT-H 1024) is what differs."""
    if width == 768:
        return LORA_BASES["sd15"]
    if width == 1024:
        return LORA_BASES["sd2"]
    return LORA_BASES["sd15"] + LORA_BASES["sd2"]  # cannot tell: fits either


# kohya's ss_base_model_version and the SAI model spec's architecture -> arch
_BASE_HINTS = (("sdxl", "sdxl"), ("stable-diffusion-xl", "sdxl"), ("sd_v2", "sd2"),
               ("stable-diffusion-v2", "sd2"), ("sd_v1", "sd15"), ("stable-diffusion-v1", "sd15"),
               ("flux.2", "flux2"), ("flux2", "flux2"), ("flux", "flux1"), ("z-image", "zimage"),
               ("zimage", "zimage"), ("qwen", "qwen_image"))


def _base_model_hint(metadata: dict[str, Any]) -> str:
    text = " ".join(str(metadata.get(k, "")) for k in
                    ("ss_base_model_version", "modelspec.architecture")).lower()
    for needle, arch in _BASE_HINTS:
        if needle in text:
            return arch
    return ""


def _training_words(metadata: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(trigger words, top tags) from a LoRA's training metadata: the SAI model spec's
    trigger phrase, else kohya's dataset folder names ("10_sks dog": 10 repeats of "sks dog");
    tags from ss_tag_frequency, most frequent first."""
    triggers: list[str] = []
    phrase = metadata.get("modelspec.trigger_phrase")
    if isinstance(phrase, str) and phrase.strip():
        triggers = [p.strip() for p in phrase.split(",") if p.strip()]
    counts: dict[str, int] = {}
    frequency = _json_value(metadata.get("ss_tag_frequency"))
    if isinstance(frequency, dict):
        for folder, tags in frequency.items():
            if not triggers and isinstance(folder, str):
                word = re.sub(r"^\d+_", "", folder).strip()
                if word and word not in triggers:
                    triggers.append(word)
            if isinstance(tags, dict):
                for tag, count in tags.items():
                    if isinstance(count, int):
                        counts[str(tag).strip()] = counts.get(str(tag).strip(), 0) + count
    if not triggers:
        dirs = _json_value(metadata.get("ss_dataset_dirs"))
        if isinstance(dirs, dict):
            triggers = [re.sub(r"^\d+_", "", str(d)).strip() for d in dirs if str(d).strip()]
    tags = sorted(counts, key=lambda t: (-counts[t], t))[:10]
    return tuple(triggers[:8]), tuple(t for t in tags if t)


def _json_value(value: Any) -> Any:
    if not isinstance(value, str):
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


# --- checks a pick needs ------------------------------------------------------------------------


def looks_like_path(reference: str) -> bool:
    """A pick that names a file or folder (not an HF repo id the backend looks up)."""
    return (os.path.isabs(os.path.expanduser(reference)) or reference.startswith((".", "~"))
            or "\\" in reference or reference.lower().endswith((".safetensors", *PICKLE_SUFFIXES)))


def inspect(reference: str) -> ModelEntry | None:
    """What one picked file or folder is, read now (one header); None when it does not exist.
    An unreadable file is an entry without role whose note says why."""
    path = Path(os.path.expanduser(reference))
    if path.is_dir():
        return _folder_entry(path, reference, path.name, "pick")
    try:
        info = path.stat()
    except OSError:
        return None
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return ModelEntry(path=str(path), reference=reference, name=path.stem, source="pick",
                          role="", arch="", size=info.st_size,
                          note="a pickle checkpoint: only .safetensors files are loaded")
    try:
        header = read_header(path)
    except (OSError, UnreadableModel) as exc:
        return ModelEntry(path=str(path), reference=reference, name=path.stem, source="pick",
                          role="", arch="", size=info.st_size,
                          note=f"not a readable safetensors file: {_reason(exc)}")
    return classify(header, path=str(path), reference=reference, source="pick",
                    size=info.st_size, mtime_ns=info.st_mtime_ns)


def pick_problem(entry: ModelEntry | None, reference: str, family: str, pick: str,
                 family_label: str = "") -> str | None:
    """Why `reference` cannot be the `pick` of a `family` job, or None when it can (or when
    the header could not tell: the backend's loader has the last word then)."""
    label = family_label or family
    if entry is not None and entry.note.startswith(("not a readable", "a pickle")):
        return f"the {pick} model '{entry.name}' is {entry.note}"
    if entry is None:
        return (f"the {pick} model '{reference}' is not on this machine any more (or not in "
                "the model library's folders): pick another, or rescan the library")
    if not entry.role:
        return None
    fits = entry.families(pick)
    if fits and family in fits:
        return None
    if not entry.arch and entry.role in (CHECKPOINT, DIFFUSION_MODEL, CONTROLNET):
        return None
    arch = ARCH_LABELS.get(entry.arch, "unknown")
    article = "an" if arch[0] in "AEIOSUaeiou" else "a"  # an SDXL, an SD 1.5, a FLUX.1
    what = f"{article} {arch} {ROLE_LABELS.get(entry.role, 'file')}"
    return (f"the {pick} model '{entry.name}' is {what}, which {label} cannot use as its "
            f"{pick}: pick a model preset of its family, or another {pick}")


def lora_fits(entry: ModelEntry, base_arch: str) -> bool | None:
    """Whether a LoRA fits a base of `base_arch`; None when its header does not say."""
    if not entry.lora_bases or not base_arch:
        return None
    return base_arch in entry.lora_bases


def family_base_arch(family: str) -> str:
    """The arch of base model a protocol family normally runs (for LoRA checks of presets)."""
    for arch in ("sd15", "sdxl", "sd2_depth", "flux1_depth", "flux1", "zimage", "qwen_image",
                 "flux2"):
        if family in BASE_FAMILIES[arch]:
            return arch
    return ""


# --- A1111's AutoV2 hash ------------------------------------------------------------------------


def autov2(path: str | os.PathLike, cache: ScanCache | None = None) -> str:
    """A1111's AutoV2 hash: the first 10 hex digits of the SHA-256 of the whole file, as
    A1111 and Civitai show it. Cached by path, size and mtime (hashing reads every byte)."""
    path = Path(path)
    info = path.stat()
    key = str(path)
    if cache is not None:
        cached = cache.get(key, info.st_size, info.st_mtime_ns)
        if cached and cached.get("autov2"):
            return str(cached["autov2"])
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    value = digest.hexdigest()[:10]
    if cache is not None:
        cache.put(key, info.st_size, info.st_mtime_ns, autov2=value)
        cache.save()
    return value
