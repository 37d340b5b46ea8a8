"""Protocol behaviour around jobs: cancel, capabilities, previews, out-of-memory, exit."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from backend.errors import BackendError
from t2i_core import protocol
from t2i_core.protocol import ErrorCode


def test_cancel_stops_within_a_step_and_skips_the_decode(backend, tiny_models, make_job,
                                                         model_spec, tmp_path):
    job = make_job(model_spec("sd15_controlnet", tiny_models("sd15_controlnet")),
                   steps=200, width=256, height=256)
    backend.send(job)
    while (event := backend.next_event())["type"] != protocol.PROGRESS:
        pass
    backend.send({"type": protocol.CANCEL, "id": job["id"]})
    late_steps = 0
    while (event := backend.next_event())["type"] == protocol.PROGRESS:
        late_steps += 1
    assert event == {"type": protocol.CANCELLED, "id": job["id"]}
    assert late_steps <= 2  # the step running when cancel arrived, and at most one more
    assert not (tmp_path / f"{job['id']}.png").exists()  # no VAE decode, no result
    assert not list((tmp_path / ".previews").glob(f"{job['id']}.*"))  # previews cleaned up
    # the next job runs normally
    assert backend.run(make_job(job["model"]))[-1]["type"] == protocol.RESULT


def test_previews_every_n_steps_and_off(backend, tiny_models, make_job, model_spec):
    model = model_spec("sd15_controlnet", tiny_models("sd15_controlnet"))
    events = backend.run(make_job(model, steps=4, preview={"every": 2, "max_size": 32}))
    with_preview = [e["step"] for e in events if "preview" in e]
    assert with_preview == [2, 4]
    events = backend.run(make_job(model, preview=False))  # JSON false
    assert not any("preview" in e for e in events)


def test_capabilities_list_families_presets_and_what_is_local(backend):
    backend.send({"type": protocol.CAPABILITIES})
    reply = backend.wait_for(protocol.CAPABILITIES)
    from backend import families

    assert [f["name"] for f in reply["families"]] == list(families.FAMILIES)
    presets = {p["name"]: p for p in reply["presets"]}
    assert presets["tiny-sd15-depth"]["present"] is True  # built locally on demand
    assert presets["sd15-depth"]["family"] == "sd15_controlnet"
    assert {p["family"] for p in reply["presets"]} == set(families.FAMILIES)
    assert "cpu" in reply["devices"]
    assert "group_offload" in reply["memory_modes"]


def test_tiny_preset_runs_offline(backend, make_job):
    from t2i_core.presets import get_preset

    final = backend.run(make_job(get_preset("tiny-sd15-depth").model_spec()))[-1]
    assert final["type"] == protocol.RESULT


def test_out_of_memory_becomes_an_error_with_a_mode_hint(tiny_models, tmp_path, monkeypatch):
    """In process: a CUDA out-of-memory raised mid-run is reported, with the next mode to try,
    and the runner stays usable."""
    from backend.runner import Runner
    from t2i_core.protocol import parse_generate

    roles = tiny_models("sd15_controlnet")
    from PIL import Image

    Image.new("RGB", (64, 64)).save(tmp_path / "depth.png")
    message = {"type": "generate", "id": "oom", "prompt": "x", "seed": 1, "steps": 1,
               "guidance": 1.0, "width": 64, "height": 64,
               "control_image": str(tmp_path / "depth.png"), "output_dir": str(tmp_path),
               "model": {"family": "sd15_controlnet", "base": str(roles["base"]),
                         "controlnet": str(roles["controlnet"])}}
    runner = Runner(tmp_path / "cache")
    runner.generate(parse_generate(message), lambda *_: None)
    family = runner.loaded.family

    def out_of_memory(*_args, **_kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(family, "run", out_of_memory)
    with pytest.raises(BackendError) as raised:
        runner.generate(parse_generate(message), lambda *_: None)
    assert raised.value.code == ErrorCode.OUT_OF_MEMORY
    # on a GPU the next memory mode; on the CPU (here) modes do not help: the size does
    expected = "Largest Image" if runner.loaded.device == "cpu" else "model_offload"
    assert expected in raised.value.hint
    monkeypatch.undo()
    assert Path(runner.generate(parse_generate(message), lambda *_: None).paths[0]).exists()


def test_backend_exits_when_stdin_closes(start_backend):
    process = start_backend()
    process.hello()
    started = time.monotonic()
    assert process.close() == 0
    assert time.monotonic() - started < 60


def test_heartbeats_come_while_idle_and_while_a_job_runs(backend, tiny_models, make_job,
                                                        model_spec):
    """The sign of life the add-on watches: about every HEARTBEAT_S, saying whether a job is
    open, also between a job's steps."""
    idle = backend.next_event(timeout=protocol.HEARTBEAT_S * 3, heartbeats=True)
    while idle["type"] != protocol.HEARTBEAT:
        idle = backend.next_event(timeout=protocol.HEARTBEAT_S * 3, heartbeats=True)
    job = make_job(model_spec("sd15_controlnet", tiny_models("sd15_controlnet")), steps=200)
    backend.send(job)
    while True:
        event = backend.next_event(timeout=protocol.HEARTBEAT_S * 3, heartbeats=True)
        if event["type"] == protocol.HEARTBEAT and event["busy"]:
            break
    backend.send({"type": protocol.CANCEL, "id": job["id"]})
    backend.wait_for(protocol.CANCELLED)
