"""What a render-farm worker brings to a batch run, and what its exit status tells the farm.

A worker has its own GPU (`--device cuda:N`, counted among the GPUs CUDA_VISIBLE_DEVICES
leaves visible, since the backend inherits the environment) and its own model cache, which
the farm sets in the environment: HF_HOME or HF_HUB_CACHE, and T2I_MODEL_FOLDERS, win over
the add-on preferences saved on that machine.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping
from dataclasses import replace

from .backend_process import BackendConfig
from .protocol import MODEL_FOLDERS_ENV, ErrorCode

EXIT_DONE = 0
EXIT_RETRY = 1  # generation failed here: retry the task
EXIT_USAGE = 2  # the job is wrong (arguments, scene, model spec): fail the job
EXIT_SHOT = 3  # the chunk does not match its prepared shot: fail the job
EXIT_WORKER = 4  # this worker cannot do it (GPU, backend, weights, disk): retry elsewhere

# status, what it means, what a farm should do: --help and the README show this table.
EXIT_TABLE: tuple[tuple[int, str, str], ...] = (
    (EXIT_DONE, "every frame asked for is done (by this worker or another)", "nothing"),
    (EXIT_RETRY, "generation failed (the backend crashed or stopped answering after its "
                 "retries, or the pipeline failed)", "retry the task"),
    (EXIT_USAGE, "bad arguments, a scene problem (no camera, a camera inside an object, a "
                 "depth range that would send a black or white map), an unknown preset or "
                 "unusable model spec", "fail the job"),
    (EXIT_SHOT, "no prepared shot in --out for --shot, or the chunk's settings or frames "
                "differ from it", "fail the job (or run the prepare task again)"),
    (EXIT_WORKER, "this worker cannot run it: no backend Python or it would not start, the "
                  "--device is not on this worker, the model's weights are missing or broken "
                  "here, out of GPU memory, or a file could not be written or read",
     "retry on another worker; fix this one"),
)

# Backend error codes that are about this machine rather than the job.
_WORKER_CODES = {ErrorCode.BACKEND_NOT_CONFIGURED, ErrorCode.BACKEND_START_FAILED,
                 ErrorCode.MODEL_NOT_FOUND, ErrorCode.MODEL_LOAD_FAILED,
                 ErrorCode.OUT_OF_MEMORY}
# ... and those that would fail the same way on every worker.
_JOB_CODES = {ErrorCode.BAD_REQUEST, ErrorCode.UNKNOWN_REQUEST, ErrorCode.UNSAFE_MODEL_FILE,
              ErrorCode.WRONG_MODEL_FAMILY}
_HF_CACHE_VARS = ("HF_HUB_CACHE", "HF_HOME")


class WorkerUnfit(Exception):
    """This worker cannot run the job (its GPU, backend or weights); another one may."""


def exit_status_for(code: str) -> int:
    """The exit status for a backend failure's error code."""
    if code in _WORKER_CODES:
        return EXIT_WORKER
    if code in _JOB_CODES:
        return EXIT_USAGE
    return EXIT_RETRY


def exit_table_text(width: int = 88) -> str:
    lines = ["exit status (what a render farm should do):"]
    for status, meaning, action in EXIT_TABLE:
        lines += textwrap.wrap(f"{meaning}: {action}", width, initial_indent=f"  {status}  ",
                               subsequent_indent="     ")
    return "\n".join(lines)


def parse_device(text: str) -> str:
    """'auto', 'cpu', 'mps', 'cuda' or 'cuda:N' (ValueError otherwise)."""
    text = text.strip().lower()
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
        raise ValueError(f"--device: '{text}' is not auto, cpu, mps, cuda or cuda:N")
    return text


def device_problem(requested: str, available: list[str],
                   environ: Mapping[str, str]) -> str | None:
    """Why `requested` cannot run on a worker whose backend reports `available` (None: it
    can). The backend counts only the GPUs CUDA_VISIBLE_DEVICES leaves it."""
    if requested == "auto" or requested in available:
        return None
    if requested == "cuda" and any(d.startswith("cuda:") for d in available):
        return None
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    where = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
    return (f"--device {requested} is not on this worker{where}; its backend has: "
            f"{', '.join(available) or 'nothing'}")


def worker_backend_config(config: BackendConfig, environ: Mapping[str, str]) -> BackendConfig:
    """The preferences' backend settings with the farm's environment winning: a model cache
    or model folders set there reach the backend instead of those saved in the preferences
    (the backend inherits the environment, so dropping the preference is enough)."""
    drop = set()
    if any(environ.get(name) for name in _HF_CACHE_VARS):
        drop.add("HF_HUB_CACHE")
    if environ.get(MODEL_FOLDERS_ENV):
        drop.add(MODEL_FOLDERS_ENV)
    return replace(config, env=tuple((k, v) for k, v in config.env if k not in drop))


def model_cache_text(config: BackendConfig, environ: Mapping[str, str]) -> str:
    """Where this worker's backend will look for weights, for the farm's task log."""
    env = {**environ, **dict(config.env)}
    if env.get("HF_HUB_CACHE"):
        cache = f"HF_HUB_CACHE={env['HF_HUB_CACHE']}"
    elif env.get("HF_HOME"):
        cache = f"HF_HOME={env['HF_HOME']}"
    else:
        cache = "the default Hugging Face cache"
    folders = env.get(MODEL_FOLDERS_ENV)
    return cache + (f", {MODEL_FOLDERS_ENV}={folders}" if folders else "")
