"""Fixtures for backend tests: tiny models built once per session, and one real backend process
(`python -m backend`, cwd = repo root) shared by the tests that only need it to keep serving."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from t2i_core import protocol

ROOT = Path(__file__).resolve().parents[2]
EVENT_TIMEOUT = 120.0  # first jobs import torch/diffusers and load a model on 2 slow cores
TERMINAL = (protocol.RESULT, protocol.ERROR, protocol.CANCELLED)


class Backend:
    """A backend process spoken to through its stdin/stdout, as the add-on does."""

    def __init__(self, cache_dir: Path, log_path: Path, env: dict[str, str] | None = None):
        """`env`: variables to set on top of this process's (PYTHONPATH among them)."""
        base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env = {**base, "HF_HUB_OFFLINE": "1", **(env or {})}
        self.log = open(log_path, "ab")  # noqa: SIM115 (closed in close())
        self.process = subprocess.Popen(
            [sys.executable, "-m", "backend", "--cache-dir", str(cache_dir)], cwd=ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.events.put(json.loads(line))
        self.events.put({"type": "_exited"})

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def next_event(self, timeout: float = EVENT_TIMEOUT,
                   heartbeats: bool = False) -> dict[str, Any]:
        """The next event (heartbeats, the backend's sign of life, only when asked for)."""
        while True:
            event = self.events.get(timeout=timeout)
            assert event["type"] != "_exited", "the backend exited"
            if heartbeats or event["type"] != protocol.HEARTBEAT:
                return event

    def wait_for(self, kind: str, timeout: float = EVENT_TIMEOUT) -> dict[str, Any]:
        while True:
            event = self.next_event(timeout)
            if event["type"] == kind:
                return event

    def run(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        """Send a generate and collect its events up to the terminal one."""
        self.send(message)
        events = []
        while True:
            event = self.next_event()
            if event.get("id") != message["id"]:
                continue
            events.append(event)
            if event["type"] in TERMINAL:
                return events

    def hello(self) -> dict[str, Any]:
        self.send({"type": protocol.HELLO})
        return self.wait_for(protocol.READY)

    def close(self) -> int:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()  # stdin closing is the add-on quitting
            self.process.wait(60)
        self.log.close()
        return self.process.returncode


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    folder = tmp_path_factory.mktemp("backend")
    process = Backend(folder / "cache", folder / "backend.log")
    assert process.hello()["protocol"] == protocol.PROTOCOL_VERSION
    yield process
    process.close()


@pytest.fixture
def start_backend(tmp_path: Path) -> Iterator[Any]:
    """start_backend(env=None) -> a fresh Backend of the test's own (closed at the end)."""
    started: list[Backend] = []

    def start(env: dict[str, str] | None = None) -> Backend:
        started.append(Backend(tmp_path / "cache", tmp_path / "backend.log", env))
        return started[-1]

    yield start
    for process in started:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """family -> {role: folder}, each family built on first request."""
    from backend.tiny import build

    root = tmp_path_factory.mktemp("tiny")
    built: dict[str, dict[str, Path]] = {}

    def get(family: str) -> dict[str, Path]:
        if family not in built:
            built[family] = build(family, root / family)
        return built[family]

    return get


@pytest.fixture(scope="session")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A depth control image, a colour render and a float depth array, 64 x 64."""
    folder = tmp_path_factory.mktemp("pictures")
    ramp = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    depth = folder / "depth.png"
    Image.fromarray((ramp * 255).astype(np.uint8)).convert("RGB").save(depth)
    render = folder / "render.png"
    Image.new("RGB", (64, 64), (180, 120, 60)).save(render)
    depth_float = folder / "depth.npy"
    np.save(depth_float, 1.0 / (1.0 + 4 * ramp))
    return {"depth": depth, "render": render, "depth_float": depth_float}


_counter = iter(range(1_000_000))


@pytest.fixture
def make_job(pictures: dict[str, Path], tmp_path: Path) -> Any:
    """make_job(model_spec, **fields) -> a generate message: 2 steps at 64 x 64."""

    def make(model: dict[str, Any], **fields: Any) -> dict[str, Any]:
        message = {"type": protocol.GENERATE, "id": f"job{next(_counter)}", "model": model,
                   "prompt": "a small house", "negative_prompt": "", "seed": 7, "steps": 2,
                   "guidance": 3.0, "control_strength": 0.8, "width": 64, "height": 64,
                   "control_image": str(pictures["depth"]), "output_dir": str(tmp_path)}
        message.update(fields)
        return message

    return make


def spec(family: str, roles: dict[str, Path], **extra: Any) -> dict[str, Any]:
    return {"family": family, **{role: str(path) for role, path in roles.items()}, **extra}


@pytest.fixture
def model_spec() -> Any:
    return spec


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """hf_cache(repo_id, folder): lay `folder` out in a private HF cache as a downloaded
    snapshot of `repo_id` (refs/main -> snapshots/<commit>/), the way huggingface_hub leaves
    it. HF_HUB_CACHE points there for this process and for backends started afterwards."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    commit = "0123456789abcdef0123456789abcdef01234567"

    def add(repo_id: str, folder: Path) -> None:
        root = cache / f"models--{repo_id.replace('/', '--')}"
        shutil.copytree(folder, root / "snapshots" / commit)
        (root / "refs").mkdir(parents=True, exist_ok=True)
        (root / "refs" / "main").write_text(commit)

    return add
