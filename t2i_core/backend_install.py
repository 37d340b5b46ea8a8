"""Setting up the backend's Python: the pip command lines, the install/check runs, their reports.

No bpy here. Commands run one after another in a worker thread; their output lines go to a log
file and a queue that the UI drains from a timer, so pip's progress shows without freezing
Blender. The command lines are built by pure functions (tested without a network).
"""

from __future__ import annotations

import json
import logging
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .environment import python_environment

log = logging.getLogger("blender_t2i")

TORCH_VERSION = "2.13.0"
# torchvision's release built against TORCH_VERSION, from the same index as torch (a mismatched
# pair fails to import). Optional: transformers prepares Qwen-Image-Edit's and FLUX.2 dev's input
# pictures with it (faster); without it, or with a broken one, the backend uses the PIL path.
TORCHVISION_VERSION = "0.28.0"
TORCH_PACKAGES = (f"torch=={TORCH_VERSION}", f"torchvision=={TORCHVISION_VERSION}")
CUDA_INDEX_URL = "https://download.pytorch.org/whl/cu128"  # PyTorch's CUDA 12.8 wheels
# What the backend imports, pinned to the versions it is tested with (requirements/main.txt).
BACKEND_PACKAGES: tuple[str, ...] = (
    "diffusers==0.42.1", "transformers==5.24.0", "accelerate==1.15.0", "safetensors==0.8.0",
    "peft==0.21.2", "huggingface-hub==1.33.0", "pillow==12.1.1", "numpy==1.26.4",
    "ftfy==6.3.1",  # Wan cleans its prompts with it
)
# Packages the backend only reads data files from, installed without their dependencies (which
# would bring timm and another torchvision): open-clip-torch's CLIP BPE merges, the tokenizer
# of single-file SD 1.5 / SD 2 / SDXL checkpoints (backend/single_file_configs).
DATA_PACKAGES: tuple[str, ...] = ("open-clip-torch==3.3.0",)
# Distribution names the check looks for (import names can differ: pillow -> PIL).
REQUIRED = ("torch", "diffusers", "transformers", "accelerate", "safetensors", "peft",
            "huggingface-hub", "pillow", "numpy")
# Optional packages: name -> what their absence costs.
OPTIONAL = {"torchvision": "Qwen-Image-Edit and FLUX.2 dev prepare their input pictures on "
                          "the slower PIL path (both still run)",
            "open-clip-torch": "single-file SD 1.5, SD 2 and SDXL checkpoints need their "
                               "config repo in the Hugging Face cache"}
# What the backend itself imports (after torch), checked by importing it: a package that is
# installed but broken (a mismatched build) fails here, not in the middle of a job.
IMPORTED = ("diffusers", "transformers", "torchvision")
MIN_PYTHON = (3, 10)
FLAVOURS = ("cpu", "cuda")


def venv_python(venv_dir: Path) -> Path:
    if sys.platform == "win32":
        return venv_dir / "Scripts" / "python.exe"
    return venv_dir / "bin" / "python"


def install_commands(base_python: str, venv_dir: Path, flavour: str,
                     find_links: str = "") -> list[list[str]]:
    """The commands that make `venv_dir` a backend environment.

    cpu: torch and torchvision from PyPI; cuda: both from PyTorch's cu128 index. The others always
    come from PyPI. With `find_links` (a folder of wheels) nothing is fetched from the network.
    """
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown torch flavour '{flavour}' (one of {', '.join(FLAVOURS)})")
    python = str(venv_python(venv_dir))
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    if find_links:
        source = ["--no-index", "--find-links", find_links]
        torch_source = source
    else:
        source = []
        torch_source = ["--index-url", CUDA_INDEX_URL] if flavour == "cuda" else []
    commands = []
    if not venv_python(venv_dir).exists():
        commands.append([base_python, "-m", "venv", str(venv_dir)])
    commands.append([*pip, *torch_source, *TORCH_PACKAGES])
    commands.append([*pip, *source, *BACKEND_PACKAGES])
    commands.append([*pip, *source, "--no-deps", *DATA_PACKAGES])
    return commands


CHECK_SCRIPT = """
import json, sys
from importlib import metadata
report = {"python": list(sys.version_info[:3]), "packages": {}, "torch": None}
for name in %r + %r:
    try:
        report["packages"][name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        report["packages"][name] = None
if report["packages"].get("torch"):
    try:
        import torch
        cuda = bool(getattr(torch, "cuda", None) and torch.cuda.is_available())
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] \\
            if cuda else []
        report["torch"] = {"cuda": cuda, "devices": names}
    except Exception as exc:
        report["torch"] = {"error": f"{type(exc).__name__}: {exc}"}
report["imports"] = {}
for module in %r:  # installed is not enough: what the families import must import
    if report["packages"].get(module):
        try:
            __import__(module)
        except Exception as exc:
            report["imports"][module] = f"{type(exc).__name__}: {exc}"[:300]
print("T2I-CHECK " + json.dumps(report))
""" % (REQUIRED, tuple(OPTIONAL), IMPORTED)  # noqa: UP031 (the script's braces vs format())


def check_command(python: str) -> list[str]:
    return [python, "-c", CHECK_SCRIPT]


@dataclass
class CheckReport:
    ok: bool
    summary: str  # one line for the report
    next_step: str = ""  # what the user should do, empty when nothing
    missing: list[str] = field(default_factory=list)


def parse_check(output: str, returncode: int, python: str) -> CheckReport:
    """Turn the check script's output into what the user reads."""
    line = next((raw for raw in output.splitlines() if raw.startswith("T2I-CHECK ")), None)
    if line is None:
        last = output.strip().splitlines()[-1:] or [f"exit status {returncode}"]
        return CheckReport(False, f"'{python}' could not run the check: {last[0]}",
                           "Pick a working Python 3.10+ in the preferences, or use "
                           "Install Backend to create one.")
    report = json.loads(line[len("T2I-CHECK "):])
    version = tuple(report["python"])
    shown = ".".join(str(part) for part in version)
    if version[:2] < MIN_PYTHON:
        return CheckReport(False, f"Python {shown} is too old for the backend",
                           "Use Python 3.10 or newer (Install Backend creates one).")
    missing = [name for name in REQUIRED if not report["packages"].get(name)]
    if missing:
        return CheckReport(False, f"Python {shown} lacks {', '.join(missing)}",
                           "Use Install Backend, or pip-install them into this Python.",
                           missing)
    torch = report.get("torch") or {}
    if "error" in torch:
        return CheckReport(False, f"torch is installed but does not import: {torch['error']}",
                           "Reinstall the backend (Install Backend) with the right torch "
                           "flavour for this machine.")
    broken = report.get("imports", {})
    required_broken = [f"{name} ({broken[name]})" for name in REQUIRED if name in broken]
    if required_broken:
        return CheckReport(False, f"installed but does not import: {', '.join(required_broken)}",
                           "Reinstall the backend (Install Backend), or pip-install matching "
                           "versions into this Python.", [n for n in REQUIRED if n in broken])
    device = f"CUDA: {', '.join(torch['devices'])}" if torch.get("cuda") else "CPU only"
    lacking = [f"no {name}: {cost}" for name, cost in OPTIONAL.items()
               if not report["packages"].get(name)]
    lacking += [f"{name} does not import ({broken[name]}): {cost}"
                for name, cost in OPTIONAL.items() if name in broken]
    return CheckReport(True, f"Backend ready: Python {shown}, torch "
                             f"{report['packages']['torch']} ({device})"
                             + "".join(f"; {text}" for text in lacking),
                       "Install Backend adds what is missing." if lacking else "")


_HINTS = (
    (("Temporary failure in name resolution", "Failed to establish a new connection",
      "Network is unreachable", "ConnectTimeout", "ReadTimeout"),
     "No internet connection: connect and try again, or install from a local folder of wheels."),
    # Our pins agree with each other, so pip's "conflict" means a pinned build is not there.
    (("No matching distribution", "Could not find a version", "ResolutionImpossible"),
     "A package has no build for this Python or platform (or is missing from the wheel "
     "folder): check the Python version, or use another torch flavour."),
    (("No space left on device",), "The disk is full: free some space and try again."),
    (("Permission denied",), "The backend folder is not writable: check its permissions."),
    (("No module named venv", "ensurepip is not available"),
     "This Python cannot create environments: set a full Python 3.10+ as the base."),
)


def failure_hint(lines: Sequence[str]) -> str:
    """What to do about a failed install, from pip's last words."""
    text = "\n".join(lines)
    for needles, hint in _HINTS:
        if any(needle in text for needle in needles):
            return hint
    return "Open the install log for pip's full output."


class CommandRun:
    """Commands run one after another in a worker thread; every output line goes to the log
    file and to `lines` (drained by `poll`). The first failing command stops the run."""

    def __init__(self, commands: list[list[str]], log_path: Path, title: str):
        self.commands = commands
        self.log_path = log_path
        self.title = title
        self.lines: queue.Queue[str] = queue.Queue()
        self.tail: list[str] = []  # the last lines seen by poll(), for reports and the UI
        self.returncode: int | None = None  # of the last command run; None while running
        self.failed_command: list[str] | None = None
        self.started = time.monotonic()
        self._process: subprocess.Popen | None = None
        self._cancelled = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="t2i-command-run", daemon=True)

    def start(self) -> CommandRun:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def ok(self) -> bool:
        return self.done and self.returncode == 0 and not self._cancelled

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def poll(self, budget_s: float = 0.01) -> list[str]:
        """New output lines since the last poll (at most `budget_s` of work)."""
        new: list[str] = []
        deadline = time.perf_counter() + budget_s
        while time.perf_counter() < deadline:
            try:
                new.append(self.lines.get_nowait())
            except queue.Empty:
                break
        self.tail = (self.tail + new)[-20:]
        return new

    def cancel(self) -> None:
        self._cancelled = True
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()

    def _run(self) -> None:
        try:
            with open(self.log_path, "a", encoding="utf-8") as log_file:
                self._emit(log_file, f"== {self.title} {time.strftime('%Y-%m-%d %H:%M:%S')}")
                for command in self.commands:
                    if self._cancelled:
                        break
                    self._emit(log_file, "$ " + " ".join(command))
                    self.returncode = self._run_one(command, log_file)
                    if self.returncode != 0:
                        self.failed_command = command
                        self._emit(log_file, f"!! exit status {self.returncode}")
                        break
        except OSError as exc:
            self.returncode = -1
            self.lines.put(f"!! {exc}")
        finally:
            if self._cancelled and self.returncode == 0:
                self.returncode = -1
            self._done.set()

    def _run_one(self, command: list[str], log_file: IO[str]) -> int:
        # PYTHONUNBUFFERED: lines as they happen, not when pip exits
        env = python_environment([("PYTHONUNBUFFERED", "1")])
        try:
            self._process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, text=True, encoding="utf-8", errors="replace", bufsize=1)
        except OSError as exc:
            self._emit(log_file, f"!! could not run {command[0]}: {exc}")
            return -1
        if self._cancelled:  # cancelled while it was being started
            self._process.terminate()
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._emit(log_file, line.rstrip("\n"))
        return self._process.wait()

    def _emit(self, log_file: IO[str], line: str) -> None:
        log_file.write(line + "\n")
        log_file.flush()
        self.lines.put(line)

    def report(self) -> tuple[bool, str]:
        """(ok, message) once done: a failure says what to do next and where the log is."""
        self.poll(budget_s=0.05)
        if self._cancelled:
            return False, f"{self.title} cancelled (log: {self.log_path})"
        if self.returncode == 0:
            return True, f"{self.title} finished in {time.monotonic() - self.started:.0f} s"
        last = next((line for line in reversed(self.tail) if line.strip()
                     and not line.startswith("!! exit status")), "")
        return False, (f"{self.title} failed ({last.strip()[:200]}). "
                       f"{failure_hint(self.tail)} Log: {self.log_path}")


class SetupRuns:
    """The session's latest install and check runs, which the preferences show."""

    install: CommandRun | None = None
    check: CommandRun | None = None
    check_report: CheckReport | None = None


def default_base_python() -> str:
    """The Python that creates the backend environment: Blender's own (same version as the
    add-on's, and always there)."""
    return sys.executable
