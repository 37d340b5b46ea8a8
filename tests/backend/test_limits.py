"""What bounds a huge job: the size limit (Largest Image) refuses it at once, and a cancel stops
it inside a step, not only between steps."""

from __future__ import annotations

import pytest

from t2i_core import protocol
from t2i_core.protocol import ErrorCode


@pytest.fixture
def sd15(tiny_models, model_spec):
    roles = tiny_models("sd15_controlnet")
    return model_spec("sd15_controlnet", {k: roles[k] for k in ("base", "controlnet")})


def test_a_job_over_the_size_limit_is_refused_before_anything_runs(
        start_backend, make_job, sd15, monkeypatch):
    monkeypatch.setenv(protocol.MAX_MEGAPIXELS_ENV, "0.01")  # 64 x 64 fits, 128 x 128 not
    backend = start_backend()
    final = backend.run(make_job(sd15, width=128, height=128))[-1]
    assert final["type"] == protocol.ERROR and final["code"] == ErrorCode.BAD_REQUEST
    assert "128x128 is 0.0 megapixels, over the limit of 0.01" in final["message"]
    assert "Largest Image" in final["message"] and "GiB" in final["message"]
    assert backend.run(make_job(sd15))[-1]["type"] == protocol.RESULT  # 64 x 64 runs


def test_the_default_limit_takes_2048_squared_and_refuses_8192_squared():
    limit = protocol.max_megapixels({})
    assert protocol.size_error(2048, 2048, limit) is None
    assert "8192x8192 is 67.1 megapixels" in protocol.size_error(8192, 8192, limit)
    assert protocol.max_megapixels({protocol.MAX_MEGAPIXELS_ENV: "nan"}) == limit
    assert protocol.max_megapixels({protocol.MAX_MEGAPIXELS_ENV: "-3"}) == limit


def test_a_cancel_stops_a_big_job_inside_its_step(backend, make_job, sd15):
    # 3 steps at 1024 x 1024: each step takes seconds here. The cancel is sent as step 1 is
    # reported, so it lands inside step 2; checked only between steps, step 2 would finish
    # and be reported first.
    job = make_job(sd15, width=1024, height=1024, steps=3, preview={"every": 1,
                                                                    "max_size": 16})
    backend.send(job)
    events = []
    while True:
        event = backend.next_event()
        if event.get("id") != job["id"]:
            continue
        events.append(event)
        if event["type"] == protocol.PROGRESS and event["step"] == 1:
            backend.send({"type": protocol.CANCEL, "id": job["id"]})
        if event["type"] in (protocol.RESULT, protocol.ERROR, protocol.CANCELLED):
            break
    assert events[-1]["type"] == protocol.CANCELLED, events[-1]
    steps = [e["step"] for e in events if e["type"] == protocol.PROGRESS]
    assert steps == [1], f"steps reported after the cancel: {steps}"
    assert backend.run(make_job(sd15))[-1]["type"] == protocol.RESULT  # and the next one runs
