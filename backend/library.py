"""The `models` reply: the model library (t2i_core.model_library) scanned with the roots the
add-on passed in the environment, or those the request names."""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from t2i_core import model_library, protocol
from t2i_core.protocol import ErrorCode

log = logging.getLogger("blender_t2i.backend")

CACHE_FILE = "model_library.json"


def request_roots(message: dict[str, Any]) -> model_library.Roots:
    """The environment's roots, with any the request names instead (`hf_cache`, `a1111`,
    `comfyui`: strings; `model_folders`: a list of strings)."""
    roots = model_library.roots_from_env()
    changes: dict[str, Any] = {}
    for name in ("hf_cache", "a1111", "comfyui"):
        if name in message:
            if not isinstance(message[name], str):
                raise ValueError(f"models: '{name}' must be a path")
            changes[name] = message[name]
    if "model_folders" in message:
        folders = message["model_folders"]
        if not isinstance(folders, list) or not all(isinstance(f, str) for f in folders):
            raise ValueError("models: 'model_folders' must be a list of paths")
        changes["model_folders"] = tuple(folders)
    return replace(roots, **changes)


def models_event(message: dict[str, Any], cache_dir: Path) -> dict[str, Any]:
    request_id = message.get("id") if isinstance(message.get("id"), str) else None
    try:
        roots = request_roots(message)
    except ValueError as exc:
        return protocol.error_event(ErrorCode.BAD_REQUEST, str(exc), request_id)
    hashes = message.get("autov2", [])
    if not isinstance(hashes, list) or not all(isinstance(p, str) for p in hashes):
        return protocol.error_event(ErrorCode.BAD_REQUEST,
                                    "models: 'autov2' must be a list of file paths", request_id)
    cache = model_library.ScanCache(cache_dir / CACHE_FILE)
    library = model_library.scan(roots, cache)
    log.info("model library: %d models, %d skipped, %d headers read", len(library.entries),
             len(library.skipped), library.headers_read)
    event: dict[str, Any] = {"type": protocol.MODELS, **library.to_json(),
                             "roots": asdict(roots) | {"model_folders": list(roots.model_folders)}}
    if hashes:
        event["autov2"] = {path: _autov2(path, cache) for path in hashes}
    if request_id is not None:
        event["id"] = request_id
    return event


def _autov2(path: str, cache: model_library.ScanCache) -> str | None:
    """The file's AutoV2 hash, or None when it cannot be read (the log says why)."""
    try:
        return model_library.autov2(path, cache)
    except OSError as exc:
        log.warning("no AutoV2 hash for %s: %s", path, exc)
        return None
