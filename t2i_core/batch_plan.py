"""Plan and bookkeeping for batch runs, without Blender: frames, names, seeds, prompts, manifest.

The manifest (`manifest.json` in the output folder) is the run's memory: settings, and for each
finished frame its seed, files, their sha256 and timings. It is rewritten atomically after each
frame, so a run killed at any moment leaves a manifest that lists only complete frames; `--resume`
trusts a frame only if every file it lists still exists with the same hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .files import write_bytes_atomic

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
# The run settings that do not change what a frame looks like; every other one does, and
# resuming (or a farm chunk, shot_plan.py) with a different value would mix two shots in one
# folder. The .blend's path differs between farm workers; the device is each worker's own GPU
# (the frame's record keeps which one made it).
RUN_ONLY_KEYS = ("blend", "frames", "device")


class PlanError(ValueError):
    """Bad batch arguments or a manifest that cannot be resumed; the message says what to do."""


def parse_frames(text: str) -> list[int]:
    """'1-48', '1,5,9-12', '10-20x2' or '10-20:2' (every 2nd, the second as Open Job
    Description writes it) -> sorted unique frame numbers."""
    frames: set[int] = set()
    for part in text.replace(" ", "").split(","):
        match = re.fullmatch(r"(-?\d+)(?:-(-?\d+)(?:[x:](\d+))?)?", part)
        if not match:
            raise PlanError(f"--frames: cannot read '{part}' (use e.g. 1-48, 1,5,9-12 or 1-48x2)")
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) is not None else start
        step = int(match.group(3) or 1)
        if end < start or step < 1:
            raise PlanError(f"--frames: '{part}' is an empty range")
        frames.update(range(start, end + 1, step))
    if not frames:
        raise PlanError("--frames: no frames given")
    return sorted(frames)


def frames_text(frames: list[int]) -> str:
    """Sorted frames written back compactly: [1, 2, 3, 7, 9, 10] -> '1-3,7,9-10'."""
    runs: list[list[int]] = []
    for frame in sorted(set(frames)):
        if runs and frame == runs[-1][1] + 1:
            runs[-1][1] = frame
        else:
            runs.append([frame, frame])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def parse_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)[xX](\d+)", text.strip())
    if not match or int(match.group(1)) <= 0 or int(match.group(2)) <= 0:
        raise PlanError(f"--size: '{text}' is not WIDTHxHEIGHT (e.g. 768x512)")
    return int(match.group(1)), int(match.group(2))


@dataclass(frozen=True)
class OutputPattern:
    """Where frame files go. Like Blender's output path: '#'s are the zero-padded frame
    number ('shots/sh010_####' -> shots/sh010_0007.png); a plain folder gets 'frame_####'."""

    folder: Path
    name: str  # file name stem with '#'s

    @classmethod
    def parse(cls, text: str) -> OutputPattern:
        path = Path(os.path.expanduser(text))
        if "#" in str(path.parent):
            raise PlanError("--out: '#' frame padding may only appear in the file name")
        if "#" not in path.name:
            return cls(folder=path, name="frame_####")
        return cls(folder=path.parent, name=path.name)

    def stem(self, frame: int) -> str:
        match = re.search(r"#+", self.name)
        assert match is not None
        width = len(match.group(0))
        number = f"{frame:0{width}d}" if frame >= 0 else f"-{-frame:0{width - 1}d}"
        return self.name[:match.start()] + number + self.name[match.end():]


def frame_seed(base_seed: int, frame: int, mode: str) -> int:
    if mode == "fixed":
        return base_seed
    if mode == "per-frame":
        return (base_seed + frame) % 2**31
    raise PlanError(f"--seed-mode: '{mode}' is not fixed or per-frame")


def load_prompts(path: Path) -> dict[int, str]:
    """A prompts file: JSON {"1": "...", "24": "..."} or lines 'FRAME: prompt'. A prompt holds
    from its frame until the next listed frame (like a keyframe)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanError(f"--prompts: cannot read {path}: {exc.strerror}") from None
    prompts: dict[int, str] = {}
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
            prompts = {int(k): str(v) for k, v in data.items()}
        except (ValueError, AttributeError):
            raise PlanError(f"--prompts: {path} must be a JSON object of frame -> prompt") \
                from None
    else:
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            match = re.fullmatch(r"\s*(-?\d+)\s*:\s*(.*)", line)
            if not match:
                raise PlanError(f"--prompts: {path}:{number} is not 'FRAME: prompt'")
            prompts[int(match.group(1))] = match.group(2).strip()
    if not prompts:
        raise PlanError(f"--prompts: {path} lists no prompts")
    return prompts


def prompt_for(frame: int, prompts: dict[int, str], default: str) -> str:
    keys = [k for k in prompts if k <= frame]
    return prompts[max(keys)] if keys else default


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def frame_entry(files: list[Path], **info: Any) -> dict[str, Any]:
    """A finished frame as the manifest lists it: its info, files and their sha256."""
    return {**info, "files": [f.name for f in files],
            "sha256": {f.name: sha256(f) for f in files}}


def entry_intact(folder: Path, entry: dict[str, Any]) -> bool:
    """Done means: every file the entry lists is still there with the hash recorded."""
    for name, digest in entry.get("sha256", {}).items():
        path = folder / name
        if not path.is_file() or sha256(path) != digest:
            return False
    return bool(entry.get("sha256"))


class Manifest:
    def __init__(self, folder: Path, settings: dict[str, Any]):
        self.path = folder / MANIFEST
        self.folder = folder
        self.settings = settings
        self.frames: dict[int, dict[str, Any]] = {}

    @classmethod
    def resume(cls, folder: Path, settings: dict[str, Any]) -> Manifest:
        """The existing manifest's finished frames, if its settings match these."""
        manifest = cls(folder, settings)
        if not manifest.path.exists():
            return manifest
        try:
            data = json.loads(manifest.path.read_text(encoding="utf-8"))
            old_settings, frames = data["settings"], data["frames"]
        except (ValueError, KeyError, TypeError):
            raise PlanError(f"--resume: {manifest.path} is unreadable; move it away to start "
                            "over") from None
        keys = sorted((set(old_settings) | set(settings)) - set(RUN_ONLY_KEYS))
        changed = [key for key in keys if old_settings.get(key) != settings.get(key)]
        if changed:
            raise PlanError(f"--resume: {', '.join(changed)} differ from the run in "
                            f"{folder}; use another --out or drop --resume")
        manifest.frames = {int(k): v for k, v in frames.items()}
        return manifest

    def is_done(self, frame: int) -> bool:
        entry = self.frames.get(frame)
        return bool(entry) and entry_intact(self.folder, entry)

    def add(self, frame: int, files: list[Path], **info: Any) -> None:
        self.frames[frame] = frame_entry(files, **info)
        self.save()

    def save(self) -> None:
        data = {"version": MANIFEST_VERSION, "settings": self.settings,
                "frames": {str(k): self.frames[k] for k in sorted(self.frames)}}
        write_bytes_atomic(self.path, (json.dumps(data, indent=2) + "\n").encode())


def eta_text(seconds: float) -> str:
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
