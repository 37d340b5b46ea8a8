"""Find model weights on this machine: a diffusers folder or an HF repo id in the local cache.

Nothing is downloaded: the backend runs with HF_HUB_OFFLINE=1 and a missing model is a
MODEL_NOT_FOUND error that names what was looked for and where.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ModelNotFound


def hf_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def resolve(reference: str, role: str) -> Path:
    """A local folder for `reference` (a path, or an `org/name` repo id in the HF cache)."""
    if not reference:
        raise ModelNotFound(f"no {role} model given")
    path = Path(os.path.expanduser(reference))
    if path.is_dir():
        return path
    if path.is_absolute() or reference.startswith((".", "~")) or reference.count("/") != 1:
        raise ModelNotFound(f"{role} model folder '{reference}' does not exist")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(reference, local_files_only=True))
    except LocalEntryNotFoundError:
        raise ModelNotFound(
            f"{role} model '{reference}' is not in the Hugging Face cache ({hf_cache_dir()})"
        ) from None
