"""The real ComfyUI for the live tests: found through T2I_TEST_COMFYUI (its folder) and
T2I_TEST_COMFYUI_PYTHON (the Python that runs it), started on a free port with an
extra_model_paths.yaml naming a models folder that holds the project's tiny ComfyUI checkpoint
and ControlNet, and stopped (or killed, for the server-gone case) by the tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

COMFYUI_ENV = "T2I_TEST_COMFYUI"
PYTHON_ENV = "T2I_TEST_COMFYUI_PYTHON"
START_TIMEOUT_S = 180.0


def find_comfyui() -> tuple[Path, Path] | str:
    """(ComfyUI folder, its Python), or why the live tests cannot run."""
    root, python = os.environ.get(COMFYUI_ENV, ""), os.environ.get(PYTHON_ENV, "")
    if not root or not python:
        return f"set {COMFYUI_ENV} (a ComfyUI folder) and {PYTHON_ENV} (its Python) to run " \
               "the bridge against a real ComfyUI"
    if not (Path(root) / "main.py").is_file():
        return f"{COMFYUI_ENV}={root} has no main.py"
    if not os.access(python, os.X_OK):
        return f"{PYTHON_ENV}={python} is not executable"
    return Path(root), Path(python)


def tiny_models(cache: Path) -> Path:
    """The models folder with the tiny checkpoint and ControlNet, built once (cached)."""
    from backend.tiny.comfyui_files import write_comfyui_models

    models = cache / "comfyui-models"
    write_comfyui_models(models)
    return models


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ComfyServer:
    """One ComfyUI process; `start` waits until /system_stats answers."""

    def __init__(self, root: Path, python: Path, models: Path, work: Path,
                 extra_nodes: bool = True):
        self.root, self.python, self.models, self.work = root, python, models, work
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log_path = work / "comfyui.log"
        for name in ("input", "output", "temp", "user"):
            (work / name).mkdir(parents=True, exist_ok=True)
        self.config = work / "extra_model_paths.yaml"
        self.config.write_text(
            "t2i_tests:\n"
            f"    base_path: {json.dumps(str(models))}\n"
            "    checkpoints: checkpoints\n"
            "    controlnet: controlnet\n"
            "    loras: loras\n", encoding="utf-8")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [str(self.python), str(self.root / "main.py"), "--cpu", "--listen", "127.0.0.1",
                "--port", str(self.port), "--extra-model-paths-config", str(self.config),
                "--preview-method", "latent2rgb", "--disable-auto-launch",
                "--input-directory", str(self.work / "input"),
                "--output-directory", str(self.work / "output"),
                "--temp-directory", str(self.work / "temp"),
                "--user-directory", str(self.work / "user")]
        log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(args, cwd=self.root, stdout=log, stderr=log,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        try:
            self._wait_until_up()
        except BaseException:  # also Ctrl-C while it starts: never leave a server behind
            self.stop()
            raise

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited while starting: {self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/system_stats", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"ComfyUI did not answer in {START_TIMEOUT_S:.0f} s: "
                           f"{self.log_tail()}")

    def kill(self) -> None:
        """The server gone at once, as a crash or a pulled cable would leave it."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.splitlines()[-lines:])
