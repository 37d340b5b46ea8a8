"""A small OpenEXR writer and reader (numpy + zlib) for float depth maps: no bpy, no image
datablocks.

Writes 32-bit float scanline files with ZIP compression (16 lines per block), the layout every
EXR reader (Blender, Nuke, OpenImageIO) accepts. Files are written atomically. Reads single-part
scanline files with float or half channels, uncompressed, ZIPS or ZIP: what this module writes
and what Blender writes with those settings. Anything else, or a truncated or corrupt file, is a
ValueError that says what is wrong.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .files import write_bytes_atomic

_MAGIC = b"\x76\x2f\x31\x01"
_HALF, _FLOAT = 1, 2
_ZIP_COMPRESSION = 3
_LINES_PER_BLOCK = 16
# What the reader takes: compression -> scanlines per block; pixel type -> numpy dtype.
_READ_COMPRESSIONS = {0: 1, 2: 1, _ZIP_COMPRESSION: _LINES_PER_BLOCK}  # NONE, ZIPS, ZIP
_READ_PIXEL_TYPES = {_HALF: np.dtype("<f2"), _FLOAT: np.dtype("<f4")}
_COMPRESSION_NAMES = {1: "RLE", 4: "PIZ", 5: "PXR24", 6: "B44", 7: "B44A", 8: "DWAA", 9: "DWAB"}
_SINGLE_PART_FLAGS = 0x200 | 0x800 | 0x1000  # tiled, deep, multi-part: none of them read here
MAX_SIDE = 16384  # larger files are refused before anything is allocated


def _attribute(name: str, kind: str, value: bytes) -> bytes:
    return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value


def _zip_block(raw: bytes) -> bytes:
    """OpenEXR's ZIP: bytes split into even/odd halves, delta-coded, then deflated."""
    data = np.frombuffer(raw, dtype=np.uint8)
    reordered = np.concatenate([data[0::2], data[1::2]])
    delta = reordered.astype(np.int16)
    delta[1:] = (reordered[1:].astype(np.int16) - reordered[:-1].astype(np.int16) + 128) & 0xFF
    return zlib.compress(delta.astype(np.uint8).tobytes(), 6)


def encode_exr(channels: dict[str, np.ndarray]) -> bytes:
    """EXR bytes for equally shaped (H, W) float arrays, top row first, keyed by channel name."""
    names = sorted(channels)  # EXR stores channels in alphabetical order
    planes = [np.asarray(channels[name], dtype="<f4") for name in names]
    height, width = planes[0].shape
    if any(plane.shape != (height, width) for plane in planes):
        raise ValueError("all EXR channels must have the same shape")
    chlist = b"".join(name.encode() + b"\0" + struct.pack("<iB3xii", _FLOAT, 0, 1, 1)
                      for name in names) + b"\0"
    box = struct.pack("<iiii", 0, 0, width - 1, height - 1)
    header = (_MAGIC + struct.pack("<i", 2)
              + _attribute("channels", "chlist", chlist)
              + _attribute("compression", "compression", bytes([_ZIP_COMPRESSION]))
              + _attribute("dataWindow", "box2i", box)
              + _attribute("displayWindow", "box2i", box)
              + _attribute("lineOrder", "lineOrder", b"\0")
              + _attribute("pixelAspectRatio", "float", struct.pack("<f", 1.0))
              + _attribute("screenWindowCenter", "v2f", struct.pack("<ff", 0.0, 0.0))
              + _attribute("screenWindowWidth", "float", struct.pack("<f", 1.0))
              + b"\0")
    blocks = []
    for y in range(0, height, _LINES_PER_BLOCK):
        rows = range(y, min(y + _LINES_PER_BLOCK, height))
        raw = b"".join(plane[row].tobytes() for row in rows for plane in planes)
        packed = _zip_block(raw)
        if len(packed) >= len(raw):  # incompressible blocks are stored raw, as the spec allows
            packed = raw
        blocks.append(struct.pack("<ii", y, len(packed)) + packed)
    offsets, position = [], len(header) + 8 * len(blocks)
    for block in blocks:
        offsets.append(position)
        position += len(block)
    return header + struct.pack(f"<{len(offsets)}Q", *offsets) + b"".join(blocks)


def write_exr(path: str | os.PathLike, channels: dict[str, np.ndarray]) -> Path:
    return write_bytes_atomic(path, encode_exr(channels))


def write_grey_exr(path: str | os.PathLike, values: np.ndarray) -> Path:
    """One float map as R = G = B, which every viewer shows as grey."""
    return write_exr(path, {"R": values, "G": values, "B": values})


def read_exr(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The channels of an EXR file as (H, W) float32 arrays, top row first (see decode_exr)."""
    return decode_exr(Path(path).read_bytes())


def read_grey_exr(path: str | os.PathLike) -> np.ndarray:
    """The one float map in an EXR: its Z channel, else its only channel, else R (what
    write_grey_exr writes: R = G = B)."""
    channels = read_exr(path)
    if "Z" in channels:
        return channels["Z"]
    if len(channels) == 1:
        return next(iter(channels.values()))
    if "R" in channels:
        return channels["R"]
    raise ValueError(f"no Z, R or single channel to read depth from (it has "
                     f"{', '.join(sorted(channels))})")


def decode_exr(data: bytes) -> dict[str, np.ndarray]:
    """The channels of single-part scanline EXR bytes as (H, W) float32 arrays, top row first.
    Raises ValueError for a truncated or corrupt file or a layout this reader does not take."""
    if data[:4] != _MAGIC:
        raise ValueError("not an OpenEXR file (wrong magic number)")
    reader = _Reader(data, 4)
    version = reader.int32()
    if version & 0xFF != 2 or version & _SINGLE_PART_FLAGS:
        raise ValueError(f"only single-part scanline OpenEXR 2 files are read (version field "
                         f"{version:#x})")
    header = {}
    while name := reader.text():
        kind = reader.text()
        header[name] = (kind, reader.take(reader.int32()))
    for name in ("channels", "compression", "dataWindow"):
        if name not in header:
            raise ValueError(f"the header has no '{name}'")
    compression = header["compression"][1][:1]
    lines_per_block = _READ_COMPRESSIONS.get(compression[0]) if compression else None
    if lines_per_block is None:
        name = _COMPRESSION_NAMES.get(compression[0], "unknown") if compression else "missing"
        raise ValueError(f"{name} compression is not read here: save the EXR with ZIP, ZIPS or "
                         f"no compression")
    channels = _channel_list(header["channels"][1])
    window = header["dataWindow"][1]
    if len(window) != 16:
        raise ValueError("the data window is not a box2i")
    x0, y0, x1, y1 = struct.unpack("<iiii", window)
    width, height = x1 - x0 + 1, y1 - y0 + 1
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise ValueError(f"the data window is {width}x{height}: not 1 to {MAX_SIDE} pixels a side")
    blocks = -(-height // lines_per_block)
    offsets = struct.unpack(f"<{blocks}Q", reader.take(8 * blocks))
    line_bytes = width * sum(dtype.itemsize for _, dtype in channels)
    planes = {name: np.zeros((height, width), np.float32) for name, _ in channels}
    done = np.zeros(blocks, bool)
    for offset in offsets:
        block = _Reader(data, offset)
        y = block.int32() - y0
        index, misaligned = divmod(y, lines_per_block)
        if misaligned or not 0 <= index < blocks or done[index]:
            raise ValueError(f"a block starts at an unexpected line {y + y0}")
        lines = min(lines_per_block, height - y)
        raw = _unpack_block(block.take(block.int32()), lines * line_bytes, compression[0])
        position = 0
        for row in range(y, y + lines):
            for name, dtype in channels:
                planes[name][row] = np.frombuffer(raw, dtype, width, position)
                position += width * dtype.itemsize
        done[index] = True
    return planes


class _Reader:
    """Bounds-checked reads from bytes: running off the end is a ValueError, not an IndexError."""

    def __init__(self, data: bytes, position: int):
        self.data = data
        self.position = position

    def take(self, size: int) -> bytes:
        if size < 0 or self.position + size > len(self.data):
            raise ValueError(f"the file is truncated (needs {size} bytes at {self.position}, "
                             f"has {len(self.data)})")
        self.position += size
        return self.data[self.position - size:self.position]

    def int32(self) -> int:
        return struct.unpack("<i", self.take(4))[0]

    def text(self) -> str:
        end = self.data.find(b"\0", self.position, self.position + 256)
        if end < 0:
            raise ValueError(f"the file is truncated or corrupt (no name ends at "
                             f"{self.position})")
        return self.take(end - self.position + 1)[:-1].decode("latin-1")


def _channel_list(chlist: bytes) -> list[tuple[str, np.dtype]]:
    reader, channels = _Reader(chlist, 0), []
    while name := reader.text():
        pixel_type = reader.int32()
        reader.take(4)  # pLinear and reserved
        sampling = (reader.int32(), reader.int32())
        if pixel_type not in _READ_PIXEL_TYPES or sampling != (1, 1):
            raise ValueError(f"channel '{name}' is not a full-resolution float or half channel")
        channels.append((name, _READ_PIXEL_TYPES[pixel_type]))
    if not channels:
        raise ValueError("the file has no channels")
    return channels


def _unpack_block(packed: bytes, raw_size: int, compression: int) -> bytes:
    """A block's scanline bytes. ZIP(S) blocks that would not shrink are stored as they are."""
    if compression == 0 or len(packed) == raw_size:
        if len(packed) != raw_size:
            raise ValueError(f"an uncompressed block holds {len(packed)} bytes, not {raw_size}")
        return packed
    inflater = zlib.decompressobj()
    try:
        delta = inflater.decompress(packed, raw_size)  # never more than the block can hold
        # The rest is at most the stream's end and checksum, which must check out.
        extra = inflater.decompress(inflater.unconsumed_tail, 1)
    except zlib.error as exc:
        raise ValueError(f"a compressed block is corrupt: {exc}") from None
    if len(delta) != raw_size or extra or not inflater.eof:
        raise ValueError(f"a compressed block does not hold {raw_size} bytes of scanlines")
    values = np.frombuffer(delta, np.uint8).astype(np.int64)
    values[1:] -= 128  # undo the predictor: each byte was stored as a difference + 128
    reordered = (np.cumsum(values) & 0xFF).astype(np.uint8)
    half = (raw_size + 1) // 2
    raw = np.empty(raw_size, np.uint8)
    raw[0::2], raw[1::2] = reordered[:half], reordered[half:]
    return raw.tobytes()
