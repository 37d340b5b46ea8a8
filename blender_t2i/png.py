"""A small PNG writer (numpy + zlib): Blender ships no Pillow, and depth needs 16-bit grey.

Files are written atomically (temp file + rename) so a crash never leaves a truncated PNG.
"""

from __future__ import annotations

import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def encode_png(pixels: np.ndarray, text: dict[str, str] | None = None) -> bytes:
    """PNG bytes for uint8 or uint16 pixels shaped (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA,
    top row first. `text` goes into iTXt chunks (UTF-8)."""
    if pixels.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"PNG pixels must be uint8 or uint16, not {pixels.dtype}")
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    height, width, channels = pixels.shape
    colour_type = {1: 0, 3: 2, 4: 6}.get(channels)
    if colour_type is None:
        raise ValueError(f"PNG pixels need 1, 3 or 4 channels, not {channels}")
    bit_depth = 16 if pixels.dtype == np.uint16 else 8
    rows = pixels.astype(">u2" if bit_depth == 16 else np.uint8).reshape(height, -1).view(np.uint8)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1)  # filter 0 per row
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    body = _chunk(b"IHDR", header)
    for key, value in (text or {}).items():
        body += _chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8"))
    body += _chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + _chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def write_png(path: str | os.PathLike, pixels: np.ndarray,
              text: dict[str, str] | None = None) -> Path:
    return write_bytes_atomic(path, encode_png(pixels, text))


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
