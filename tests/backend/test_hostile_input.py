"""Hostile requests: each gets the right error code before any generating, nothing is written
outside the job folder, nothing but regular files is read, and the backend keeps serving."""

from __future__ import annotations

import os
import time

import pytest

from t2i_core import protocol
from t2i_core.protocol import ErrorCode


def _still_serving(backend) -> None:
    assert backend.hello()["type"] == protocol.READY


def _send_raw(backend, data: bytes) -> dict:
    backend.process.stdin.flush()
    backend.process.stdin.buffer.write(data)
    backend.process.stdin.buffer.flush()
    return backend.wait_for(protocol.ERROR)


@pytest.mark.parametrize(("what", "data"), [
    ("invalid UTF-8", b'{"type": "hello", "x": "\xff\xfe"}\n'),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000 + b"\n"),
    ("a lone surrogate escape", b'{"type": "warp\\ud800"}\n'),
    ("not an object", b"[1, 2, 3]\n"),
])
def test_unreadable_lines_are_bad_requests_and_the_backend_lives(backend, what, data):
    event = _send_raw(backend, data)
    assert event["code"] in (ErrorCode.BAD_REQUEST, ErrorCode.UNKNOWN_REQUEST), what
    _still_serving(backend)


@pytest.mark.parametrize("job_id", ["../../escaped", "/tmp/absolute", "a/b", "..", ".hidden",
                                    "a\\b", "x" * 201, "tab\there"])
def test_a_job_id_that_is_not_a_plain_file_name_is_refused(backend, make_job, tmp_path,
                                                           job_id):
    job = make_job({"family": "sd15_controlnet", "base": "tiny", "controlnet": "tiny"},
                   id=job_id, output_dir=str(tmp_path / "jobs" / "one"))
    before = set(tmp_path.rglob("*"))
    backend.send(job)
    event = backend.wait_for(protocol.ERROR)
    assert event["code"] == ErrorCode.BAD_REQUEST and "'id'" in event["message"]
    assert event["id"] == job_id  # the add-on can tell which job failed
    assert set(tmp_path.rglob("*")) == before  # nothing written anywhere
    _still_serving(backend)


@pytest.mark.parametrize(("field", "value"), [
    ("output_dir", ""), ("output_dir", "relative/folder"),
    ("guidance", float("nan")), ("guidance", float("inf")), ("guidance", -1.0),
    ("control_strength", float("nan")), ("strength", float("nan")),
    ("loras", [{"path": "/x.safetensors", "weight": float("nan")}]),
    ("loras", [{"path": "/x.safetensors", "weight": float("-inf")}]),
])
def test_non_finite_numbers_and_bad_folders_are_refused_before_generating(
        backend, make_job, field, value):
    job = make_job({"family": "sd15_controlnet", "base": "tiny", "controlnet": "tiny"},
                   **{field: value})
    started = time.perf_counter()
    final = backend.run(job)[-1]
    assert final["type"] == protocol.ERROR and final["code"] == ErrorCode.BAD_REQUEST
    assert field in final["message"]
    assert time.perf_counter() - started < 30  # refused, not generated
    _still_serving(backend)


def test_a_second_job_with_the_same_id_is_refused(backend, make_job, tiny_models):
    model = {"family": "sd15_controlnet", **{k: str(v) for k, v in
                                             tiny_models("sd15_controlnet").items()
                                             if k in ("base", "controlnet")}}
    first = make_job(model, steps=200)
    backend.send(first)
    backend.send(dict(first))  # same id: its files would overwrite the first job's
    event = backend.wait_for(protocol.ERROR)
    assert event["id"] == first["id"] and "already queued" in event["message"]
    backend.send({"type": protocol.CANCEL, "id": first["id"]})
    assert backend.wait_for(protocol.CANCELLED)["id"] == first["id"]
    _still_serving(backend)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_as_an_input_picture_is_refused_not_read(backend, make_job, tiny_models,
                                                        tmp_path):
    fifo = tmp_path / "depth.png"
    os.mkfifo(fifo)  # opening it to read would block until a writer comes: forever
    model = {"family": "sd15_controlnet", **{k: str(v) for k, v in
                                             tiny_models("sd15_controlnet").items()
                                             if k in ("base", "controlnet")}}
    final = backend.run(make_job(model, control_image=str(fifo)))[-1]
    assert final["code"] == ErrorCode.BAD_REQUEST and "not a regular file" in final["message"]
    _still_serving(backend)
