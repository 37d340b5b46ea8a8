"""One backend process, driven through the job queue that owns it, against the real backend
(tiny offline model)."""

from __future__ import annotations

import os
import signal
import sys

import numpy as np
import pytest
from PIL import Image
from t2i_src.t2i_core import job_request as jobs
from t2i_src.t2i_core import png
from t2i_src.t2i_core.backend_process import BackendConfig, BackendFailure, BackendProcess
from t2i_src.t2i_core.job_queue import JobQueue
from t2i_src.t2i_core.job_record import JobRecord
from t2i_src.t2i_core.job_request import JobSettings
from t2i_src.t2i_core.presets import get_preset
from t2i_src.t2i_core.protocol import parse_generate

TINY = get_preset("tiny-sd15-depth")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


class Client:
    """The queue and its one backend process, started and ready."""

    def __init__(self, config: BackendConfig):
        self.config = config
        self.queue = JobQueue()
        self.queue.start(config)
        while not self.queue.backend_ready and self.queue.backend_pid is not None:
            self.queue.poll(timeout=0.1)
        self.process: BackendProcess = self.queue._process

    def run(self, request: dict, timeout: float = 120) -> dict:
        return self.queue.submit(request, self.config).wait(timeout)


@pytest.fixture
def client(tmp_path, cache_dir):
    client = Client(BackendConfig(python=sys.executable, cache_dir=cache_dir,
                                  log_path=tmp_path / "backend.log"))
    yield client
    client.queue.stop()


def _request(tmp_path, job_id, steps=2, size=(64, 48)):
    depth = png.write_png(tmp_path / "depth.png",
                          np.tile(np.linspace(0, 255, size[0], dtype=np.uint8), (size[1], 1)))
    settings = JobSettings(preset=TINY, prompt="a red cube", negative_prompt="blurry", seed=3,
                           steps=steps, guidance=7.5, control_strength=1.0, size=size)
    return jobs.build_request(job_id, settings, str(depth), str(tmp_path / "out"))


def test_one_job_through_the_real_process(client, tmp_path):
    ready = client.queue.backend_ready
    assert ready["families"] and "cpu" in ready["devices"]
    steps = []
    request = _request(tmp_path, "job-1", steps=3)
    handle = client.queue.submit(request, client.config)
    handle.on_update(lambda h, update: steps.append((update.event or {}).get("step")))
    result = handle.wait(timeout=120)
    assert [s for s in steps if s][-1] == 3  # polls may fold steps; the last one is seen
    with Image.open(result["paths"][0]) as image:
        assert image.size == (64, 48)
        assert image.info["t2i:prompt"] == "a red cube"
        assert image.info["t2i:seed"] == "3"
        # the backend's text chunks are the add-on's record of the same request
        text = {k: v for k, v in image.info.items() if k.startswith("t2i:") or k == "parameters"}
    assert text == JobRecord.from_request(parse_generate(request)).png_text(result["scheduler"])
    assert text["parameters"].startswith("a red cube\nNegative prompt: blurry\nSteps: 3, ")


def test_malformed_requests_get_errors_and_the_backend_keeps_serving(client, tmp_path):
    client.process._process.stdin.write(b"this is not json\n{\"type\": \"warp\"}\n")
    client.process._process.stdin.flush()
    replies = (event for event in iter(lambda: client.process.events.get(timeout=30), None)
               if event["type"] == "error")  # not heartbeats, nor the capabilities reply
    first, second = next(replies), next(replies)
    assert (first["type"], first["code"]) == ("error", "BAD_REQUEST")
    assert (second["type"], second["code"]) == ("error", "UNKNOWN_REQUEST")
    bad = dict(_request(tmp_path, "job-bad"), width="wide")
    with pytest.raises(BackendFailure, match="width") as failure:
        client.run(bad, timeout=30)
    assert failure.value.code == "BAD_REQUEST"
    assert client.run(_request(tmp_path, "job-after"))["paths"]


def test_missing_control_image_is_a_job_error_not_a_crash(client, tmp_path):
    request = dict(_request(tmp_path, "job-missing"), control_image=str(tmp_path / "nope.png"))
    with pytest.raises(BackendFailure) as failure:
        client.run(request)
    assert failure.value.code == "INPUT_NOT_FOUND"
    assert client.process.alive()


def test_a_killed_backend_is_reported_as_crashed(client, tmp_path):
    handle = client.queue.submit(_request(tmp_path, "job-kill", steps=200), client.config)
    pid = client.queue.backend_pid

    def on_update(h, update):
        if update.kind == "progress" and client.process.alive():
            os.kill(pid, signal.SIGKILL)

    handle.on_update(on_update)
    with pytest.raises(BackendFailure, match="stopped unexpectedly") as failure:
        handle.wait(timeout=120)
    assert failure.value.code == "BACKEND_CRASHED"
    assert not client.process.alive() and client.queue.backend_pid is None


def test_backend_exits_when_its_stdin_closes(client):
    process = client.process._process
    process.stdin.close()
    assert process.wait(timeout=30) == 0


def test_a_python_without_torch_fails_to_start_with_the_reason(tmp_path, cache_dir):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named torch' >&2\nexit 1\n")
    fake.chmod(0o755)
    queue = JobQueue()
    handle = queue.submit(_request(tmp_path, "never"),
                          BackendConfig(python=str(fake), cache_dir=cache_dir,
                                        log_path=tmp_path / "backend.log"))
    with pytest.raises(BackendFailure, match="No module named torch") as failure:
        handle.wait(timeout=60)
    assert failure.value.code == "BACKEND_START_FAILED"


def test_a_missing_python_is_a_configuration_error(tmp_path, cache_dir):
    process = BackendProcess(BackendConfig(python=str(tmp_path / "nope"), cache_dir=cache_dir,
                                           log_path=tmp_path / "backend.log"))
    with pytest.raises(BackendFailure, match="does not exist") as failure:
        process.launch()
    assert failure.value.code == "BACKEND_NOT_CONFIGURED"


def test_img2img_with_too_few_steps_for_its_strength_says_how_many(client, tmp_path):
    request = _request(tmp_path, "job-img2img", steps=1)
    request.update(init_image=request["control_image"], strength=0.6)
    with pytest.raises(BackendFailure, match="leave nothing to do") as failure:
        client.run(request)
    assert failure.value.code == "BAD_REQUEST"
    assert "at least 2 steps" in failure.value.hint
    assert client.run(dict(request, id="job-img2img-2", steps=2))["paths"]
