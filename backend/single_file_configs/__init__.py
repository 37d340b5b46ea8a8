"""The diffusers configs single-file checkpoints need, shipped with the backend.

A1111/ComfyUI checkpoints hold weights only; diffusers builds each part from a config folder
(`from_single_file(config=...)`). These folders are those configs, read off the public model
repos (sources in README.md beside this file): SD 1.5, SD 2 (512 eps base, 768 v), SD 2 depth,
SDXL base, and the SD 1.5 / SDXL depth ControlNets. The CLIP tokenizers' vocabulary is not
copied: `clip_vocabulary` writes it from the BPE merges open-clip-torch ships. A config is
materialized once into the backend's cache (JSONs plus tokenizer files) under a name that
changes when any shipped file does, so an edit here is never shadowed by an old copy.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import clip_vocabulary

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Shipped:
    """A shipped config: its folder name here, and the subfolder a role loads from."""

    name: str
    subfolder: str = ""


CONFIGS: dict[str, Shipped] = {
    "sd15": Shipped("sd15"),
    "sd2-512-base": Shipped("sd2-512-base"),
    "sd2-768-v": Shipped("sd2-768-v"),
    "sd2-depth": Shipped("sd2-depth"),
    "sdxl-base": Shipped("sdxl-base"),
    "sdxl-vae": Shipped("sdxl-base", subfolder="vae"),
    "sd15-controlnet": Shipped("sd15-controlnet"),
    "sdxl-controlnet": Shipped("sdxl-controlnet"),
}

# (family, role) -> {diffusers checkpoint type of the file: shipped config}. A type missing here
# (e.g. an SDXL mid/small ControlNet, Playground v2.5) has no shipped config: the family's config
# repo or the spec's `<role>_config` must provide it.
FOR_CHECKPOINT: dict[tuple[str, str], dict[str | None, str]] = {
    ("sd15_controlnet", "base"): {"v1": "sd15"},
    ("sd15_controlnet", "controlnet"): {"controlnet": "sd15-controlnet"},
    ("sdxl_controlnet", "base"): {"xl_base": "sdxl-base"},
    ("sdxl_controlnet", "controlnet"): {"controlnet_xl_large": "sdxl-controlnet"},
    ("sdxl_controlnet", "vae"): {None: "sdxl-vae"},
    ("sdxl_controlnet_union", "base"): {"xl_base": "sdxl-base"},
    ("sdxl_controlnet_union", "vae"): {None: "sdxl-vae"},
    ("sd2_depth2img", "base"): {"v2": "sd2-depth"},
}


def for_checkpoint(family: str, role: str, checkpoint_type: str | None) -> str | None:
    """The shipped config for a single file of `family`'s `role`, or None when none fits.
    A VAE file is not typed by diffusers (None): the family's only VAE config applies."""
    return FOR_CHECKPOINT.get((family, role), {}).get(checkpoint_type)


def materialize(name: str, cache_dir: Path) -> Path:
    """The folder `from_single_file(config=...)` reads for shipped config `name`."""
    shipped = CONFIGS[name]
    folder = complete(HERE / shipped.name, cache_dir)
    return folder / shipped.subfolder if shipped.subfolder else folder


def complete(folder: Path, cache_dir: Path) -> Path:
    """`folder` itself, or for a folder of configs only whose CLIP tokenizers lack their
    vocabulary (the shipped ones, or a user's download that skipped the .txt files) a copy in
    the cache with it written in; built once, atomically (temp folder renamed into place)."""
    if not _needs_vocabulary(folder):
        return folder
    target = cache_dir / "single-file-configs" / f"{folder.name}-{_digest(folder)}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    try:
        for path in folder.rglob("*.json"):
            copy = staging / path.relative_to(folder)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
        for tokenizer in _missing_vocabulary(staging):
            clip_vocabulary.write_files(tokenizer)
        try:
            staging.rename(target)
        except OSError:  # another backend built it first
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _missing_vocabulary(folder: Path) -> list[Path]:
    """Tokenizer subfolders of a CLIP tokenizer with neither vocab.json nor tokenizer.json."""
    missing = []
    for config in folder.glob("*/tokenizer_config.json"):
        tokenizer = config.parent
        if (tokenizer / "vocab.json").exists() or (tokenizer / "tokenizer.json").exists():
            continue
        try:
            kind = json.loads(config.read_text(encoding="utf-8")).get("tokenizer_class", "")
        except (OSError, json.JSONDecodeError):
            continue
        if str(kind).startswith("CLIPTokenizer"):
            missing.append(tokenizer)
    return missing


def _needs_vocabulary(folder: Path) -> bool:
    if not folder.is_dir() or not _missing_vocabulary(folder):
        return False
    # A folder with weights is a model, not a config set: it is used as it is.
    return not any(p.suffix in (".safetensors", ".bin") for p in folder.rglob("*"))


def _digest(folder: Path) -> str:
    """A short hash of the folder's config files and the vocabulary version."""
    digest = hashlib.sha256(str(clip_vocabulary.VERSION).encode())
    for path in sorted(folder.rglob("*.json")):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
