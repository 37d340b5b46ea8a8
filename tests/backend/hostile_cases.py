"""The hostile-input corpus: lines and requests a buggy or malicious caller could send the backend.

Each case is a name, the bytes of one request line (built in a scratch folder of its own, so
files it needs exist), and the error codes a clear refusal may carry. test_hostile_corpus.py
sends every one to one backend and checks the answer; the counts go in the closing notes.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from t2i_core.protocol import MAX_LINE, ErrorCode

BAD = ErrorCode.BAD_REQUEST
UNKNOWN = ErrorCode.UNKNOWN_REQUEST
MISSING = ErrorCode.INPUT_NOT_FOUND
NO_MODEL = ErrorCode.MODEL_NOT_FOUND
UNSAFE = ErrorCode.UNSAFE_MODEL_FILE
CORRUPT = ErrorCode.MODEL_LOAD_FAILED
FAMILY = ErrorCode.WRONG_MODEL_FAMILY


@dataclass
class Scratch:
    """What a case may build on: its own folder, a valid job, tiny models and pictures."""

    folder: Path
    job: dict[str, Any]  # a valid sd15 generate request writing into `folder / "out"`
    models: dict[str, dict[str, Path]]  # family -> role -> folder (sd15_controlnet, sd2, sdxl)
    depth: Path  # a valid 64 x 64 depth PNG

    def file(self, name: str, data: bytes) -> str:
        path = self.folder / name
        path.write_bytes(data)
        return str(path)

    def fifo(self, name: str = "pipe.png") -> str:
        path = self.folder / name
        os.mkfifo(path)  # opening it to read blocks until a writer comes: forever
        return str(path)


@dataclass(frozen=True)
class Case:
    name: str
    line: Callable[[Scratch], bytes]
    codes: tuple[str, ...]
    job: bool = True  # the answer carries the job's id (False: a line-level refusal)


def _raw(data: bytes) -> Callable[[Scratch], bytes]:
    return lambda _s: data


def _job(**fields: Any) -> Callable[[Scratch], bytes]:
    """The valid job with `fields` replaced (a value of _DROP removes the field)."""
    def build(s: Scratch) -> bytes:
        message = dict(s.job)
        for key, value in fields.items():
            value = value(s) if callable(value) else value
            if value is _DROP:
                message.pop(key, None)
            else:
                message[key] = value
        return _dumps(message)
    return build


def _model(**roles: Any) -> Callable[[Scratch], bytes]:
    """The valid job with its model spec's roles replaced."""
    def build(s: Scratch) -> bytes:
        model = dict(s.job["model"])
        for key, value in roles.items():
            model[key] = value(s) if callable(value) else value
        return _dumps({**s.job, "model": model})
    return build


_DROP = object()


def _dumps(message: dict[str, Any]) -> bytes:
    # allow_nan: a hostile caller writes NaN and Infinity, which Python's json reads back
    return json.dumps(message, allow_nan=True).encode("utf-8", "surrogatepass") + b"\n"


# --- files a hostile caller points at ----------------------------------------------------------

def _png(width: int, height: int, body: bytes | None = None) -> bytes:
    """A PNG whose header declares width x height (RGB, 8 bit) around `body` (default: the
    real rows, zlib-compressed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    if body is None:
        body = zlib.compress(b"".join(b"\0" + b"\x80" * (3 * width) for _ in range(height)))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) \
        + chunk(b"IEND", b"")


def _bomb(s: Scratch) -> str:
    # 100,000 x 100,000 declared: 30 GB once decoded (Pillow's bomb limit is 179 MP)
    return s.file("bomb.png", _png(100_000, 100_000, zlib.compress(b"\0" * 1000)))


def _truncated_png(s: Scratch) -> str:
    return s.file("cut.png", s.depth.read_bytes()[:60])


def _text_as_png(s: Scratch) -> str:
    return s.file("notes.png", b"this is not a picture\n")


def _empty(s: Scratch) -> str:
    return s.file("empty.png", b"")


def _folder(s: Scratch) -> str:
    path = s.folder / "a-folder.png"
    path.mkdir()
    return str(path)


def _fifo_link(s: Scratch) -> str:
    target = s.fifo("target-pipe")
    link = s.folder / "link.png"
    link.symlink_to(target)
    return str(link)


def _safetensors(header: bytes, body: bytes = b"", length: int | None = None) -> bytes:
    return struct.pack("<Q", len(header) if length is None else length) + header + body


def _st_truncated(s: Scratch) -> str:
    header = json.dumps({"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}})
    return s.file("cut.safetensors", _safetensors(header.encode(), b"\0" * 10))


def _st_huge_length(s: Scratch) -> str:
    return s.file("huge.safetensors", _safetensors(b"{}", length=2**63))


def _st_not_json(s: Scratch) -> str:
    return s.file("garbled.safetensors", _safetensors(b"{not json at all"))


def _st_not_table(s: Scratch) -> str:
    return s.file("list.safetensors", _safetensors(b"[1, 2, 3]"))


def _st_offsets_beyond(s: Scratch) -> str:
    header = json.dumps({"w": {"dtype": "F32", "shape": [1024, 1024],
                               "data_offsets": [0, 4 * 1024 * 1024]}})
    return s.file("short.safetensors", _safetensors(header.encode(), b"\0" * 16))


def _st_empty(s: Scratch) -> str:
    return s.file("empty.safetensors", b"")


def _pickle_ckpt(s: Scratch) -> str:
    return s.file("model.ckpt", b"\x80\x02}q\x00.")  # a (harmless) pickle


def _pickle_named_safetensors(s: Scratch) -> str:
    return s.file("pickle.safetensors", b"PK\x03\x04" + b"\0" * 100)  # torch.save's zip


def _pickle_folder(s: Scratch) -> str:
    folder = s.folder / "pickle-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x02}q\x00.")
    return str(folder)


def _npy(s: Scratch, name: str, array: Any) -> str:
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=True)
    return s.file(name, buffer.getvalue())


def _sd2(**fields: Any) -> Callable[[Scratch], bytes]:
    """An SD 2 depth2img job (the one family that reads depth_float) with `fields`."""
    def build(s: Scratch) -> bytes:
        model = {"family": "sd2_depth2img", "base": str(s.models["sd2_depth2img"]["base"])}
        message = {**s.job, "model": model}
        for key, value in fields.items():
            message[key] = value(s) if callable(value) else value
        return _dumps(message)
    return build


def _other_family_base(s: Scratch) -> str:
    return str(s.models["sdxl_controlnet"]["base"])


def _other_family_controlnet(s: Scratch) -> str:
    return str(s.models["sdxl_controlnet"]["controlnet"])


def _long_id(n: int) -> str:
    return "x" * n


def _lines() -> list[Case]:
    cases = [
        # bytes that are not UTF-8
        Case("a 0xFF byte", _raw(b'{"type": "hello", "x": "\xff"}\n'), (BAD,), job=False),
        Case("a UTF-16 BOM", _raw(b'\xfe\xff{"type": "hello"}\n'), (BAD,), job=False),
        Case("an overlong encoding", _raw(b'{"type": "hel\xc0\xafo"}\n'), (BAD,), job=False),
        Case("a cut multibyte sequence", _raw(b'{"type": "\xe2\x82"}\n'), (BAD,), job=False),
        Case("a UTF-8 encoded surrogate", _raw(b'{"type": "\xed\xa0\x80"}\n'), (BAD,),
             job=False),
        Case("Latin-1 text", _raw('{"type": "café"}\n'.encode("latin-1")), (BAD,), job=False),
        Case("a 5-byte sequence", _raw(b'{"type": "\xf8\x88\x80\x80\x80"}\n'), (BAD,),
             job=False),
        Case("a code point above U+10FFFF", _raw(b'{"type": "\xf4\x90\x80\x80"}\n'), (BAD,),
             job=False),
        Case("a raw NUL inside a string", _raw(b'{"type": "hel\x00lo"}\n'), (BAD,), job=False),
        Case("a UTF-8 BOM", _raw(b'\xef\xbb\xbf{"type": "hello", "id": "x"}\n'), (BAD,),
             job=False),
        Case("an escaped lone surrogate", _raw(b'{"type": "warp\\ud800"}\n'), (BAD, UNKNOWN),
             job=False),
        # nesting
        *(Case(f"{n:,} nested arrays", _raw(b"[" * n + b"]" * n + b"\n"), (BAD,), job=False)
          for n in (1_000, 10_000, 100_000)),
        *(Case(f"{n:,} nested objects", _raw(b'{"a":' * n + b"1" + b"}" * n + b"\n"), (BAD,),
               job=False) for n in (1_000, 100_000)),
        Case("nesting inside a generate", _raw(b'{"type": "generate", "id": "n", "model": '
                                               + b"[" * 50_000 + b"]" * 50_000 + b"}\n"),
             (BAD,), job=False),
        # JSON, but not a message
        *(Case(f"a bare {what}", _raw(data + b"\n"), (BAD,), job=False) for what, data in (
            ("number", b"1"), ("string", b'"generate"'), ("null", b"null"), ("true", b"true"),
            ("list", b'[{"type": "hello"}]'), ("empty object", b"{}"))),
        *(Case(f"a 'type' that is {what}", _raw(b'{"type": ' + data + b"}\n"), (BAD,),
               job=False) for what, data in (
            ("a number", b"5"), ("null", b"null"), ("a list", b'["generate"]'),
            ("an object", b"{}"), ("a boolean", b"true"))),
        # not JSON
        *(Case(f"JSON with {what}", _raw(data + b"\n"), (BAD,), job=False) for what, data in (
            ("its end cut off", b'{"type": "gen'), ("a trailing comma", b'{"type": "hello",}'),
            ("single quotes", b"{'type': 'hello'}"), ("unquoted keys", b"{type: 1}"),
            ("two objects on a line", b'{"type": "hello"}{"type": "hello"}'),
            ("a comment", b'{"type": "hello"} // hi'), ("a hex number", b'{"type": 0x10}'),
            ("a bare word", b"hello"))),
        Case("an integer of 5,000 digits", _raw(b'{"type": "hello", "n": ' + b"9" * 5000
                                                + b"}\n"), (BAD,), job=False),
        Case("a line over the size limit", _raw(b'{"type": "hello", "pad": "'
                                                + b"a" * (MAX_LINE + 10) + b'"}\n'),
             (BAD,), job=False),
        # not a request this backend knows
        *(Case(f"request type {kind!r}", _raw(json.dumps({"type": kind}).encode() + b"\n"),
               (UNKNOWN,), job=False)
          for kind in ("warp", "", "GENERATE", "hello ", "generate\x00", "__init__")),
        Case("cancel without an id", _raw(b'{"type": "cancel"}\n'), (BAD,), job=False),
        Case("cancel with a numeric id", _raw(b'{"type": "cancel", "id": 5}\n'), (BAD,),
             job=False),
    ]
    return cases


_REQUIRED = ("id", "model", "prompt", "seed", "steps", "guidance", "width", "height",
             "control_image", "output_dir")


def _fields() -> list[Case]:
    cases = [Case(f"no '{name}'", _job(**{name: _DROP}), (BAD,), job=name != "id")
             for name in _REQUIRED]
    wrong_types: list[tuple[str, Any]] = [
        ("model", "tiny"), ("model", []), ("model", None), ("prompt", 5), ("prompt", None),
        ("prompt", ["a", "b"]), ("negative_prompt", 5), ("seed", "7"), ("seed", 7.5),
        ("seed", True), ("seed", None), ("steps", "2"), ("steps", 2.5), ("steps", True),
        ("guidance", "3"), ("guidance", None), ("guidance", True), ("guidance", [3]),
        ("width", "64"), ("width", 64.0), ("height", [64]), ("height", None),
        ("control_image", 5), ("control_image", None), ("control_image", ["/x.png"]),
        ("output_dir", 5), ("output_dir", None), ("init_image", 5), ("metadata", "x"),
        ("metadata", [1]), ("strength", "0.5"), ("reference_images", "/x.png"),
        ("reference_images", [5]), ("reference_images", [""]), ("depth_float", 5),
        ("loras", "/x.safetensors"), ("loras", [5]), ("loras", [{}]), ("loras", [{"path": ""}]),
        ("loras", [{"path": "/x.safetensors", "weight": "1"}]),
        ("loras", [{"path": "/x.safetensors", "weight": True}]),
        ("loras", {"path": "/x.safetensors"}), ("memory_mode", "turbo"), ("memory_mode", 5),
        ("scheduler", "magic"), ("scheduler", None), ("preview", 5), ("preview", "yes"),
        ("preview", {"every": -1}), ("preview", {"max_size": 0}),
        ("preview", {"max_size": 10**6}), ("preview", {"every": True}),
        ("preview", {"every": 1.5}),
    ]
    cases += [Case(f"'{name}' = {value!r}"[:80], _job(**{name: value}), (BAD,))
              for name, value in wrong_types]
    out_of_range: list[tuple[str, Any]] = [
        ("steps", 0), ("steps", -1), ("steps", 1001), ("steps", 10**9), ("width", 0),
        ("width", 7), ("width", -64), ("width", 8193), ("width", 10**9), ("height", 0),
        ("height", 100_000), ("seed", -1), ("seed", 2**32), ("seed", 2**64),
        ("guidance", float("nan")), ("guidance", float("inf")), ("guidance", float("-inf")),
        ("guidance", -1.0), ("control_strength", float("nan")),
        ("control_strength", -0.5), ("control_strength", float("inf")), ("strength", 0),
        ("strength", -0.1), ("strength", 1.5), ("strength", float("nan")),
        ("strength", float("inf")),
        ("loras", [{"path": "/x.safetensors", "weight": float("nan")}]),
        ("loras", [{"path": "/x.safetensors", "weight": float("-inf")}]),
    ]
    cases += [Case(f"'{name}' = {value!r}"[:80], _job(**{name: value}), (BAD,))
              for name, value in out_of_range]
    # JSON's 1e400 overflows to inf in Python's reader
    cases += [Case("'guidance' = 1e400 in the JSON", lambda s: _job(guidance=12345.0)(s).replace(
        b"12345.0", b"1e400"), (BAD,)),
              Case("a LoRA weight of 1e400 in the JSON", lambda s: _job(
                  loras=[{"path": "/x.safetensors", "weight": 12345.0}])(s).replace(
                  b"12345.0", b"1e400"), (BAD,))]
    # ids name the result file: anything but a plain file name could write elsewhere
    bad_ids = ["../../escaped", "/tmp/absolute", "a/b", "..", ".", ".hidden", "a\\b",
               _long_id(201), _long_id(5000), "tab\there", "", "new\nline", "a:b", "nul\x00",
               "rtl\u202eoverride", "bell\x07"]
    cases += [Case(f"job id {job_id[:40]!r} ({len(job_id)} characters)", _job(id=job_id),
                   (BAD,), job=False)
              for job_id in bad_ids]
    cases += [
        Case("output_dir ''", _job(output_dir=""), (BAD,)),
        Case("a relative output_dir", _job(output_dir="relative/folder"), (BAD,)),
        Case("output_dir '~/x' (relative)", _job(output_dir="~/x"), (BAD,)),
        Case("output_dir with a NUL", _job(output_dir="/tmp/a\x00b"), (BAD,)),
        Case("output_dir that is a file", _job(output_dir=lambda s: s.file("f.txt", b"x")),
             (BAD,)),
        Case("output_dir under a file", _job(
            output_dir=lambda s: s.file("g.txt", b"x") + "/sub"), (BAD,)),
        Case("output_dir that cannot be made", _job(output_dir="/proc/t2i-cannot/out"),
             (BAD,)),
        Case("metadata with non-text values", _job(metadata={"a": {"b": 1}}), (BAD,)),
        Case("a metadata key of 1 MB", _job(metadata={"k" * 1_000_000: "v"}), (BAD,)),
    ]
    return cases


def _files() -> list[Case]:
    pictures: list[tuple[str, Callable[[Scratch], str], tuple[str, ...]]] = [
        ("does not exist", lambda s: str(s.folder / "gone.png"), (MISSING,)),
        ("relative", lambda s: "depth.png", (BAD,)),
        ("a folder", _folder, (BAD,)),
        ("/dev/zero", lambda s: "/dev/zero", (BAD,)),
        ("/dev/stdin", lambda s: "/dev/stdin", (BAD,)),
        ("a FIFO", lambda s: s.fifo(), (BAD,)),
        ("a link to a FIFO", _fifo_link, (BAD,)),
        ("an empty file", _empty, (BAD,)),
        ("a cut-off PNG", _truncated_png, (BAD,)),
        ("text named .png", _text_as_png, (BAD,)),
        ("a decompression bomb", _bomb, (BAD,)),
        ("a path with a NUL", lambda s: str(s.depth) + "\x00x", (BAD,)),
    ]
    cases = [Case(f"control image: {what}", _job(control_image=path), codes)
             for what, path, codes in pictures]
    cases += [Case(f"init image: {what}", _job(init_image=path, strength=0.5), codes)
              for what, path, codes in pictures if what in (
                  "does not exist", "a folder", "a FIFO", "a cut-off PNG",
                  "a decompression bomb", "/dev/zero")]
    cases += [Case(f"reference image: {what}", _job(reference_images=lambda s, p=path: [p(s)]),
                   codes)
              for what, path, codes in pictures if what in (
                  "does not exist", "a FIFO", "a decompression bomb", "text named .png")]
    cases += [
        Case("depth_float: a pickled object array", _sd2(
            depth_float=lambda s: _npy(s, "obj.npy", [{"a": 1}, None])), (BAD,)),
        Case("depth_float: a 3-D array", _sd2(
            depth_float=lambda s: _npy(s, "cube.npy", [[[1.0]]])), (BAD,)),
        Case("depth_float: a cut-off .npy", _sd2(
            depth_float=lambda s: s.file("cut.npy", b"\x93NUMPY\x01\x00")), (BAD,)),
        Case("depth_float: an EXR that is text", _sd2(
            depth_float=lambda s: s.file("fake.exr", b"v/1\x01 not an exr")), (BAD,)),
        Case("depth_float: a FIFO", _sd2(depth_float=lambda s: s.fifo("depth.npy")), (BAD,)),
        Case("depth_float: does not exist", _sd2(
            depth_float=lambda s: str(s.folder / "none.npy")), (MISSING,)),
    ]
    weights: list[tuple[str, Callable[[Scratch], str], tuple[str, ...]]] = [
        ("does not exist", lambda s: str(s.folder / "none.safetensors"), (NO_MODEL,)),
        ("a folder with nothing in it", lambda s: _folder(s), (NO_MODEL, CORRUPT)),
        ("a FIFO", lambda s: s.fifo("lora.safetensors"), (BAD, CORRUPT)),
        ("a pickle .ckpt", _pickle_ckpt, (UNSAFE,)),
        ("a pickle named .safetensors", _pickle_named_safetensors, (UNSAFE,)),
        ("a cut-off safetensors", _st_truncated, (CORRUPT,)),
        ("a safetensors header of 2^63 bytes", _st_huge_length, (CORRUPT,)),
        ("a safetensors header that is not JSON", _st_not_json, (CORRUPT,)),
        ("a safetensors header that is a list", _st_not_table, (CORRUPT,)),
        ("safetensors offsets beyond the file", _st_offsets_beyond, (CORRUPT,)),
        ("an empty safetensors", _st_empty, (CORRUPT,)),
    ]
    cases += [Case(f"LoRA: {what}", _job(loras=lambda s, p=path: [{"path": p(s),
                                                                     "weight": 1.0}]), codes)
              for what, path, codes in weights]
    cases += [Case("LoRA: a path that climbs out", _job(
        loras=[{"path": "../../../../etc/passwd", "weight": 1.0}]), (NO_MODEL, BAD))]
    cases += [Case(f"ControlNet: {what}", _model(controlnet=path), codes)
              for what, path, codes in weights if what not in ("a folder with nothing in it",)]
    cases += [
        Case("ControlNet: a folder of pickles", _model(controlnet=_pickle_folder), (UNSAFE,)),
        Case("base: a folder of pickles", _model(base=_pickle_folder), (UNSAFE,)),
        Case("base: does not exist", _model(base=lambda s: str(s.folder / "nowhere")),
             (NO_MODEL,)),
        Case("base: /dev/zero", _model(base="/dev/zero"), (BAD, NO_MODEL, CORRUPT)),
        Case("base: a repo id that climbs out", _model(base="../../../etc"), (NO_MODEL, BAD)),
        Case("base: SDXL's in an SD 1.5 job", _model(base=_other_family_base), (FAMILY,)),
        Case("ControlNet: SDXL's in an SD 1.5 job", _model(controlnet=_other_family_controlnet),
             (FAMILY,)),
        Case("an unknown family", _model(family="sd9"), (BAD,)),
        Case("a family that is a number", _model(family=15), (BAD,)),
        Case("no family", lambda s: _dumps({**s.job, "model": {"base": "x"}}), (BAD,)),
        Case("a device that does not exist", _model(device="cuda:99"), (BAD,)),
        Case("a dtype that does not exist", _model(dtype="float3"), (BAD,)),
    ]
    return cases


CASES: list[Case] = [*_lines(), *_fields(), *_files()]
