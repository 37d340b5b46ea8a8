"""Find model weights on this machine and check them before anything is loaded.

A weights reference is one of:
  - an HF repo id (`org/name`) resolved from the local Hugging Face cache,
  - a file inside a cached repo (`org/name/file.safetensors`),
  - a diffusers folder (with model_index.json or config.json),
  - a single `.safetensors` file, as found in A1111/ComfyUI model folders.
Nothing is downloaded (the backend runs with HF_HUB_OFFLINE=1): a missing model is a
MODEL_NOT_FOUND error naming what was looked for and where. Pickle checkpoints are refused before
anything reads them, because unpickling can run arbitrary code.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from t2i_core.model_library import PickleInDisguise, UnreadableModel, read_header
from t2i_core.protocol import MODEL_FOLDERS_ENV, ErrorCode

from . import single_file_configs
from .errors import BackendError, ModelNotFound, UnsafeModelFile

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")


@dataclass(frozen=True)
class Source:
    """Resolved weights: `path` is a folder (diffusers layout) or a single .safetensors file."""

    reference: str
    path: Path

    @property
    def is_file(self) -> bool:
        return self.path.is_file()

    def __str__(self) -> str:
        return str(self.path)


def hf_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _looks_like_path(reference: str) -> bool:
    named_file = reference.lower().endswith((*PICKLE_SUFFIXES, ".safetensors"))
    return (os.path.isabs(reference) or reference.startswith((".", "~")) or "\\" in reference
            or (named_file and reference.count("/") < 2))



_SEARCH_DEPTH = 3  # A1111 models/Stable-diffusion/x, ComfyUI models/checkpoints/sdxl/x


def model_folders() -> list[Path]:
    """The user's model folders (A1111 / ComfyUI `models` folders and the like)."""
    value = os.environ.get(MODEL_FOLDERS_ENV, "")
    return [Path(os.path.expanduser(p)) for p in value.split(os.pathsep) if p.strip()]


def _in_model_folders(reference: str) -> Path | None:
    """`reference` relative to a model folder, or a bare file name found a few levels down."""
    if os.path.isabs(reference):
        return None
    for folder in model_folders():
        candidate = folder / reference
        if candidate.exists():
            return candidate
    if "/" in reference or "\\" in reference:
        return None
    for folder in model_folders():
        for depth in range(1, _SEARCH_DEPTH + 1):
            found = sorted(folder.glob("/".join(["*"] * depth) + "/" + reference))
            if found:
                return found[0]
    return None


def locate(reference: str) -> Path | None:
    """Where `reference` is on this machine, or None; checks nothing inside. Looked up as a
    path, then in the model folders, then as an HF repo id (or a file in one) in the cache."""
    path = Path(os.path.expanduser(reference))
    if path.is_absolute():
        if path.exists():
            return path
    elif ".." in path.parts:  # relative names are looked up in the model folders only
        return None
    found = _in_model_folders(reference)
    if found is not None:
        return found
    if _looks_like_path(reference) or reference.count("/") == 0:
        return None
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    parts = reference.split("/")
    repo = "/".join(parts[:2])
    try:
        if len(parts) > 2:  # a file inside a repo, e.g. a ProMax ControlNet or a LoRA
            return Path(hf_hub_download(repo, "/".join(parts[2:]), local_files_only=True))
        return Path(snapshot_download(repo, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError):
        return None


def resolve(reference: str, role: str) -> Source:
    """Local weights for `reference`, checked for format; raises a BackendError that says why."""
    if not reference:
        raise ModelNotFound(f"no {role} model given")
    path = locate(reference)
    if path is None:
        folders = "".join(f", in {folder}" for folder in model_folders())
        if _looks_like_path(reference) or reference.count("/") == 0:
            raise ModelNotFound(
                f"{role} model '{reference}' does not exist (looked for a file or folder at "
                f"{_where(reference)}{folders})")
        repo = "/".join(reference.split("/")[:2])
        raise ModelNotFound(
            f"{role} model '{reference}' is neither a local file or folder nor in the "
            f"Hugging Face cache ({hf_cache_dir()})",
            hint=f"Download it once with `hf download {repo}` "
                 "(or point the setting at a local folder or .safetensors file).")
    if path.is_dir():
        check_folder(path)
    elif path.is_file():
        check_file(path)
    else:  # reading a FIFO or a device blocks the worker for good
        raise BackendError(ErrorCode.BAD_REQUEST, f"{role} model '{path}' is not a regular "
                           "file or a folder")
    return Source(reference, path)


def _where(reference: str) -> str:
    path = Path(os.path.expanduser(reference))
    return str(path) if path.is_absolute() else "no absolute path (a relative name is looked " \
        "up in the model folders)"


def check_file(path: Path) -> None:
    """Refuse pickles and unreadable files before any loader touches them."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise UnsafeModelFile(
            f"'{path}' is a pickle checkpoint ({path.suffix}); only .safetensors files are "
            "loaded, because unpickling can run code. Download the .safetensors version, or "
            "convert it once, e.g. `python -c \"import torch, safetensors.torch as s; "
            "sd = torch.load('in.ckpt', weights_only=True); "
            "s.save_file(sd.get('state_dict', sd), 'out.safetensors')\"`.")
    if path.suffix.lower() != ".safetensors":
        raise BackendError(ErrorCode.MODEL_LOAD_FAILED,
                           f"'{path}' is not a .safetensors file or a diffusers folder")
    safetensors_header(path)


def safetensors_header(path: Path) -> dict[str, Any]:
    """The parsed header of a .safetensors file; detects pickles in disguise and truncation
    (the model library's reader: one set of rules for scanning and loading)."""
    try:
        return read_header(path)
    except PickleInDisguise:
        raise UnsafeModelFile(f"'{path}' is a pickle (torch.save) file named .safetensors; "
                              "it is refused because unpickling can run code.") from None
    except UnreadableModel as exc:
        raise _corrupt(path, str(exc)) from None


def _corrupt(path: Path, why: str) -> BackendError:
    return BackendError(ErrorCode.MODEL_LOAD_FAILED,
                        f"'{path}' is not a valid safetensors file: {why}",
                        hint="Download the file again; an interrupted download leaves it cut off.")


_checked_folders: set[tuple] = set()  # folders whose files passed, by name, size and mtime


def check_folder(folder: Path) -> None:
    """A diffusers folder whose weights exist only as pickles is refused (we load with
    use_safetensors=True, which would otherwise fail with a less helpful message)."""
    weights = [p for pattern in ("*", "*/*") for p in folder.glob(pattern) if p.is_file()]
    signature = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in weights)
    if signature in _checked_folders:  # every job names its weights: check each version once
        return
    pickles = [p for p in weights if p.suffix.lower() in PICKLE_SUFFIXES
               and p.name != "training_args.bin"]
    if pickles and not any(p.suffix == ".safetensors" for p in weights):
        raise UnsafeModelFile(f"'{folder}' holds only pickle weights ({pickles[0].name}); "
                              "download its .safetensors files instead.")
    for checked in [p for p in weights if p.suffix == ".safetensors"]:
        safetensors_header(checked)
    _checked_folders.add(signature)


def folder_class_name(folder: Path) -> str | None:
    """`_class_name` from a diffusers folder's model_index.json or config.json."""
    for name in ("model_index.json", "config.json"):
        file = folder / name
        if file.is_file():
            try:
                value = json.loads(file.read_text(encoding="utf-8")).get("_class_name")
            except (OSError, json.JSONDecodeError):
                return None
            return value if isinstance(value, str) else None
    return None


def folder_component_classes(folder: Path) -> list[str]:
    """The class names a diffusers pipeline folder's model_index.json lists for its parts."""
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return []
    return [value[1] for value in index.values()
            if isinstance(value, list) and len(value) == 2 and isinstance(value[1], str)]


class _LazyTensorView:
    """Just enough of a state dict (keys, shapes) for diffusers' checkpoint-type sniffing,
    without reading any tensor data."""

    class _Shape:
        def __init__(self, shape: list[int]):
            import torch

            self.shape = torch.Size(shape)
            self.ndim = len(shape)

    def __init__(self, header: dict[str, Any]):
        self._shapes = {k: v["shape"] for k, v in header.items() if k != "__metadata__"}

    def __contains__(self, key: object) -> bool:
        return key in self._shapes

    def __getitem__(self, key: str) -> _LazyTensorView._Shape:
        return self._Shape(self._shapes[key])

    def keys(self) -> Any:
        return self._shapes.keys()

    def __iter__(self) -> Any:
        return iter(self._shapes)


def checkpoint_type(path: Path) -> str | None:
    """diffusers' name for what a single-file checkpoint is ("v1", "xl_base", "flux-depth", ...),
    or None when it cannot tell."""
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    view = _LazyTensorView(safetensors_header(path))
    try:
        found = infer_diffusers_model_type(view)
    except (KeyError, AttributeError, TypeError, IndexError):
        return None
    # "v1" is also diffusers' answer when nothing matched (a diffusers-layout transformer, a
    # VAE): only a file with an LDM UNet is an SD 1.x checkpoint.
    if found == "v1" and not any(key.startswith("model.diffusion_model.") for key in view):
        return None
    return found


# --- configs for single files ---------------------------------------------------------------


def resolve_configs(family: str, family_configs: dict[str, str], spec: dict[str, Any],
                    sources: dict[str, Source], cache_dir: Path,
                    split_roles: tuple[str, ...] = ()) -> dict[str, str]:
    """The config folder each single-file role loads with, looked up offline in this order:
    the spec's `<role>_config` (a folder, a cached repo id, or a shipped config's name), the
    family's reference repo in the HF cache, the config shipped for the file's checkpoint type.
    Diffusers folders need none, nor `split_roles` (parts configured from the base's folder)."""
    configs: dict[str, str] = {}
    for role, source in sources.items():
        if source.is_file and role not in split_roles:
            configs[role] = str(_single_file_config(family, family_configs.get(role), spec,
                                                    role, source, cache_dir))
    return configs


def _single_file_config(family: str, family_repo: str | None, spec: dict[str, Any], role: str,
                        source: Source, cache_dir: Path) -> Path:
    chosen = spec.get(f"{role}_config")
    if isinstance(chosen, str) and chosen in single_file_configs.CONFIGS:
        return single_file_configs.materialize(chosen, cache_dir)
    if chosen:
        try:
            return single_file_configs.complete(resolve(str(chosen), f"{role} config").path,
                                                cache_dir)
        except ModelNotFound as exc:
            raise ModelNotFound(f"{role} '{source.reference}' is a single-file checkpoint and "
                                f"its config '{chosen}' was not found: {exc}",
                                hint=exc.hint) from None
    if family_repo:
        cached = locate(family_repo)
        if cached is not None:
            check_folder(cached)
            return single_file_configs.complete(cached, cache_dir)
    kind = checkpoint_type(source.path) if role != "vae" else None
    shipped = single_file_configs.for_checkpoint(family, role, kind)
    if shipped is not None:
        return single_file_configs.materialize(shipped, cache_dir)
    what = f"a '{kind}' checkpoint" if kind else "a single file"
    looked = f"the {family_repo} config in the Hugging Face cache ({hf_cache_dir()})" \
        if family_repo else "a config for it"
    raise ModelNotFound(
        f"{role} '{source.reference}' is {what}; loading it offline needs {looked}, and no "
        f"config for it ships with the backend",
        hint=(f"Download the config once (`hf download {family_repo} --exclude "
              "\"*.safetensors\" --exclude \"*.bin\"`, plus any text encoders it lacks), or "
              if family_repo else "")
        + f"set '{role}_config' to a diffusers folder of the same model.")
