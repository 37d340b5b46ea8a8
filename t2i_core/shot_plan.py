"""A shot: what every chunk of a farm render must agree on, computed once (`--prepare`).

`shot.json` in the output folder holds the run settings that decide the pixels (with the depth
range locked over the whole shot), their hash, and each frame's seed and prompt. A chunk works
its settings out the same way and refuses to run when they differ, so no worker locks a range
of its own and no folder mixes two shots.
"""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .batch_plan import RUN_ONLY_KEYS, frame_seed, frames_text, prompt_for
from .files import write_bytes_atomic

SHOT_FILE = "shot.json"
SHOT_VERSION = 1


class ShotMismatch(Exception):
    """A chunk that does not belong to the shot prepared in its folder (or no shot is there).
    Running it would mix two shots: the farm should fail the job, not retry the task."""


def pixel_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The run settings that decide what a frame looks like (all but RUN_ONLY_KEYS)."""
    return {key: value for key, value in settings.items() if key not in RUN_ONLY_KEYS}


def settings_hash(settings: dict[str, Any]) -> str:
    canonical = json.dumps(pixel_settings(settings), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def differing_keys(old: dict[str, Any], new: dict[str, Any],
                   ignore: Iterable[str] = ()) -> list[str]:
    """The pixel-deciding keys whose values differ between two run settings."""
    old, new = pixel_settings(old), pixel_settings(new)
    skip = set(ignore)
    return sorted(key for key in set(old) | set(new)
                  if key not in skip and old.get(key) != new.get(key))


def _without_locked_range(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings as given before a prepare locks the range (policy kept, range dropped)."""
    depth = dict(settings.get("depth_range") or {})
    if depth.get("policy") == "locked":
        depth["range"] = None
    return {**settings, "depth_range": depth}


@dataclass(frozen=True)
class ShotPlan:
    settings: dict[str, Any]  # run_settings with the depth range resolved for the whole shot
    seeds: dict[int, int]
    prompts: dict[int, str]
    prepare_seconds: float = 0.0
    prepared_on: str = field(default_factory=socket.gethostname)

    @classmethod
    def plan(cls, settings: dict[str, Any], base_seed: int, seed_mode: str,
             prompts: dict[int, str], default_prompt: str,
             prepare_seconds: float = 0.0) -> ShotPlan:
        frames = settings["frames"]
        return cls(settings=settings,
                   seeds={f: frame_seed(base_seed, f, seed_mode) for f in frames},
                   prompts={f: prompt_for(f, prompts, default_prompt) for f in frames},
                   prepare_seconds=prepare_seconds)

    @property
    def frames(self) -> list[int]:
        return list(self.settings["frames"])

    @property
    def hash(self) -> str:
        return settings_hash(self.settings)

    @property
    def depth_range(self) -> tuple[float, float] | None:
        value = (self.settings.get("depth_range") or {}).get("range")
        return (float(value[0]), float(value[1])) if value else None

    # --- checks ----------------------------------------------------------------------------

    def check_chunk(self, settings: dict[str, Any], frames: list[int], folder: Path) -> None:
        """Raise ShotMismatch unless a chunk with these settings and frames belongs here."""
        changed = differing_keys(self.settings, settings)
        if changed:
            raise ShotMismatch(
                f"{', '.join(changed)} differ from the shot prepared in {folder} "
                f"({SHOT_FILE}, shot {self.hash[:12]}): give every chunk the prepare step's "
                "settings, or prepare the shot again into another --out")
        outside = sorted(set(frames) - set(self.frames))
        if outside:
            raise ShotMismatch(f"frames {frames_text(outside)} are not in the shot prepared in "
                               f"{folder} (frames {frames_text(self.frames)})")

    def same_request(self, settings: dict[str, Any]) -> list[str]:
        """What differs between this plan and a prepare asked with `settings` (whose locked
        range is not computed yet): empty means the shot is already prepared."""
        keys = differing_keys(_without_locked_range(self.settings),
                              _without_locked_range(settings))
        if self.frames != list(settings["frames"]):
            keys.append("frames")
        return keys

    # --- the file --------------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps({
            "version": SHOT_VERSION, "hash": self.hash, "settings": self.settings,
            "seeds": {str(f): s for f, s in sorted(self.seeds.items())},
            "prompts": {str(f): p for f, p in sorted(self.prompts.items())},
            "prepare_seconds": round(self.prepare_seconds, 3),
            "prepared_on": self.prepared_on,
        }, indent=2) + "\n"

    def write(self, folder: Path) -> Path:
        return write_bytes_atomic(folder / SHOT_FILE, self.to_json().encode())

    @classmethod
    def read(cls, folder: Path) -> ShotPlan | None:
        """The shot prepared in `folder`, or None when there is none."""
        path = folder / SHOT_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ShotMismatch(f"{path} is unreadable ({exc}): prepare the shot again") \
                from None
        try:
            if data["version"] != SHOT_VERSION:
                raise ShotMismatch(f"{path} is version {data['version']}, this add-on reads "
                                   f"{SHOT_VERSION}: prepare the shot again")
            plan = cls(settings=data["settings"],
                       seeds={int(k): int(v) for k, v in data["seeds"].items()},
                       prompts={int(k): str(v) for k, v in data["prompts"].items()},
                       prepare_seconds=float(data.get("prepare_seconds", 0.0)),
                       prepared_on=str(data.get("prepared_on", "")))
            recorded = data["hash"]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ShotMismatch(f"{path} is not a shot file: prepare the shot again") from None
        if recorded != plan.hash:
            raise ShotMismatch(f"{path} was edited (its hash no longer matches its settings): "
                               "prepare the shot again")
        return plan
