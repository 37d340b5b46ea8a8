"""Many workers, one output folder: frame claims, per-frame records, the merged manifest.

    <out>/shot.json                 the prepared shot (shot_plan.py)
    <out>/.t2i/claims/<frame>.claim made with O_EXCL by the worker that makes the frame
    <out>/.t2i/frames/<frame>.json  the frame's record, written atomically once it is done
    <out>/manifest.json             merged from the records under a file lock after each frame

A frame is made by whoever claims it first, so chunks that overlap neither lose nor duplicate
frames. A claim stays fresh while its worker lives (a thread touches it); one whose worker
died (same host: its process is gone; any host: untouched for CLAIM_STALE_S) is taken over,
which is how a farm's retry of a killed task redoes only that task's unfinished frames.
Everything here is plain files, so it works on the shared drives farms use (NFS, SMB).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from .batch_plan import MANIFEST, MANIFEST_VERSION, entry_intact, frame_entry
from .files import give_user_mode, write_bytes_atomic
from .shot_plan import ShotPlan

STATE_DIR = ".t2i"
CLAIM_REFRESH_S = 10.0  # how often a worker touches the claims it holds
CLAIM_STALE_S = 120.0  # an untouched claim is abandoned after this (allows clock skew)


@dataclass(frozen=True)
class Worker:
    """Who made a frame: the farm's logs and the manifest name it."""

    host: str
    pid: int
    chunk: str
    device: str

    @classmethod
    def this(cls, chunk: str, device: str) -> Worker:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None and device.startswith("cuda"):
            device = f"{device} (CUDA_VISIBLE_DEVICES={visible})"
        return cls(host=socket.gethostname(), pid=os.getpid(), chunk=chunk, device=device)


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill there terminates the process: leave it to the claim's age
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[IO[bytes]]:
    """An exclusive lock on `path` for the block; the OS drops it if the process dies."""
    with open(path, "a+b") as handle:
        if os.name == "nt":
            import msvcrt

            while True:
                try:
                    msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:  # LK_LOCK gives up after ten tries of a second each
                    continue
            try:
                yield handle
            finally:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield handle
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class ShotFolder:
    def __init__(self, folder: Path, shot: ShotPlan, worker: Worker,
                 stale_s: float = CLAIM_STALE_S):
        self.folder = folder
        self.shot = shot
        self.worker = worker
        self.stale_s = stale_s
        self.claims = folder / STATE_DIR / "claims"
        self.records = folder / STATE_DIR / "frames"
        self.held: set[int] = set()  # frames this worker has claimed and not yet recorded
        self._held_lock = threading.Lock()
        for path in (self.claims, self.records):
            path.mkdir(parents=True, exist_ok=True)

    # --- state of a frame ------------------------------------------------------------------

    def _claim_path(self, frame: int) -> Path:
        return self.claims / f"{frame}.claim"

    def _record_path(self, frame: int) -> Path:
        return self.records / f"{frame}.json"

    def record_of(self, frame: int) -> dict[str, Any] | None:
        """The frame's record if it belongs to this shot (a half-written one cannot exist)."""
        try:
            record = json.loads(self._record_path(frame).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if record.get("shot") == self.shot.hash else None

    def is_done(self, frame: int) -> bool:
        """Recorded for this shot, with every file still there and unchanged."""
        record = self.record_of(frame)
        return record is not None and entry_intact(self.folder, record["entry"])

    def holder(self, frame: int) -> dict[str, Any] | None:
        """Who holds the frame's claim ({} for a claim not written yet), None if no one."""
        try:
            text = self._claim_path(frame).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError:
            return {}
        try:
            return json.loads(text) if text else {}
        except ValueError:
            return {}

    def _stale(self, frame: int, holder: dict[str, Any]) -> bool:
        if holder.get("host") == self.worker.host and isinstance(holder.get("pid"), int) \
                and holder["pid"] != self.worker.pid and not _alive(holder["pid"]):
            return True
        try:
            age = time.time() - self._claim_path(frame).stat().st_mtime
        except FileNotFoundError:
            return False
        return age > self.stale_s

    # --- claiming --------------------------------------------------------------------------

    def claim(self, frame: int) -> bool:
        """Claim the frame for this worker: False if another live worker has it or it is
        done. An abandoned claim is taken over."""
        path = self._claim_path(frame)
        for _attempt in range(3):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                holder = self.holder(frame)
                if holder is None:
                    continue  # released just now: try again
                if not self._stale(frame, holder) or not self._take_over(frame, holder):
                    return False
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({**asdict(self.worker), "claimed": time.time()}, handle)
            give_user_mode(path)
            # the holder before us may have finished it between our look and our claim
            if self.is_done(frame):
                path.unlink(missing_ok=True)
                return False
            with self._held_lock:
                self.held.add(frame)
            return True
        return False

    def _take_over(self, frame: int, holder: dict[str, Any]) -> bool:
        """Move an abandoned claim aside (only one worker's rename succeeds); if what moved
        is not the claim judged abandoned, a live worker's fresh claim, put it back."""
        path = self._claim_path(frame)
        aside = path.with_name(f"{path.name}.stale-{self.worker.host}-{self.worker.pid}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return True  # someone else moved it: the O_EXCL create decides
        try:
            moved = json.loads(aside.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            moved = {}
        if moved != holder:
            with contextlib.suppress(FileExistsError, OSError):
                os.link(aside, path)  # never over a claim made meanwhile
            aside.unlink(missing_ok=True)
            return False
        aside.unlink(missing_ok=True)
        return True

    def release(self, frame: int) -> None:
        """Give up a claim this worker holds (a failed frame: another worker may do it)."""
        with self._held_lock:
            if frame not in self.held:
                return
            self.held.discard(frame)
        holder = self.holder(frame)
        if holder and holder.get("pid") == self.worker.pid \
                and holder.get("host") == self.worker.host:
            self._claim_path(frame).unlink(missing_ok=True)

    def release_all(self) -> None:
        for frame in sorted(self.held):
            self.release(frame)

    @contextlib.contextmanager
    def claims_kept_fresh(self, every_s: float = CLAIM_REFRESH_S) -> Iterator[None]:
        """Touch the held claims from a thread while the block runs (Blender's main thread
        is busy waiting on the backend), so other workers see this one is alive."""
        stop = threading.Event()

        def touch() -> None:
            while not stop.wait(every_s):
                with self._held_lock:
                    frames = list(self.held)
                for frame in frames:
                    with contextlib.suppress(OSError):
                        os.utime(self._claim_path(frame))

        thread = threading.Thread(target=touch, name="t2i-claims", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            self.release_all()

    # --- finishing -------------------------------------------------------------------------

    def record(self, frame: int, files: list[Path], **info: Any) -> dict[str, Any]:
        """The frame is done: its record (atomic), the manifest merged again, then the claim
        let go, in that order, so a frame is never unclaimed and unrecorded."""
        entry = frame_entry(files, **info, worker=asdict(self.worker))
        write_bytes_atomic(self._record_path(frame), (json.dumps(
            {"shot": self.shot.hash, "frame": frame, "entry": entry}, indent=2) + "\n").encode())
        self.merge_manifest()
        with self._held_lock:
            self.held.discard(frame)
        self._claim_path(frame).unlink(missing_ok=True)
        return entry

    def merge_manifest(self) -> dict[str, Any]:
        """manifest.json from every record of this shot, each frame once; under a lock, so
        two workers' merges never undo each other."""
        with _exclusive(self.folder / STATE_DIR / "manifest.lock"):
            frames = {}
            for frame in self.shot.frames:
                record = self.record_of(frame)
                if record is not None:
                    frames[str(frame)] = record["entry"]
            data = {"version": MANIFEST_VERSION, "shot": self.shot.hash,
                    "settings": self.shot.settings, "frames": frames}
            write_bytes_atomic(self.folder / MANIFEST, (json.dumps(data, indent=2) + "\n")
                               .encode())
        return data
