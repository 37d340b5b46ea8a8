"""Writing files so that a reader never sees half of one: temp file in the same folder, then
rename (atomic on every platform Blender runs on)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _read_umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it: put it straight back
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once, at import: os.umask is process-wide


def give_user_mode(path: str | os.PathLike) -> None:
    """The permissions a plain `open()` would have given (0644 under umask 022): mkstemp
    makes 0600 files that other users of a farm or a shared drive could not read."""
    os.chmod(path, 0o666 & ~_UMASK)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        give_user_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def os_error_text(exc: OSError) -> str:
    """An OSError (full disk, read-only folder, missing drive) as a sentence for a report."""
    where = f" '{exc.filename}'" if exc.filename else ""
    reason = exc.strerror or str(exc)
    return (f"could not write or read{where}: {reason}. Free some space, or set an Output "
            "Folder you can write to")
