"""The non-blocking job queue against the real backend process (tiny offline model)."""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
from t2i_src.blender_t2i.core import job_request as jobs
from t2i_src.blender_t2i.core import png
from t2i_src.blender_t2i.core.backend_process import BackendConfig, BackendFailure, shutdown_client
from t2i_src.blender_t2i.core.job_queue import JobQueue, Status, UpdateKind
from t2i_src.blender_t2i.core.presets import get_preset

TINY = get_preset("tiny-sd15-depth")
BLOCK_LIMIT_S = 0.05  # the most a UI step may hold Blender's main thread


@dataclass
class Job:
    stem: str
    request: dict[str, Any]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def config(tmp_path, cache_dir):
    yield BackendConfig(python=sys.executable, cache_dir=cache_dir,
                        log_path=tmp_path / "backend.log")
    shutdown_client()


def _job(tmp_path, stem, steps=2, size=(64, 48), **fields) -> Job:
    depth = png.write_png(tmp_path / "depth.png",
                          np.tile(np.linspace(0, 255, size[0], dtype=np.uint8), (size[1], 1)))
    request = jobs.generate_request(stem, TINY, "a red cube", "", 3, steps, 7.5, 1.0, size,
                                    str(depth), str(tmp_path / "out"))
    return Job(stem, {**request, **fields})


def _run(jobs_queue: JobQueue, limit_s: float = 120) -> tuple[list, list[str], float]:
    """Step like the UI timer does until idle: (updates, statuses seen, longest step)."""
    updates, statuses, longest = [], [], 0.0
    deadline = time.monotonic() + limit_s
    while jobs_queue.active and time.monotonic() < deadline:
        started = time.perf_counter()
        updates += jobs_queue.poll()
        longest = max(longest, time.perf_counter() - started)
        if not statuses or statuses[-1] != jobs_queue.status:
            statuses.append(jobs_queue.status)
        time.sleep(0.01)
    assert not jobs_queue.active, "the queue did not finish in time"
    return updates, statuses, longest


def test_queued_jobs_run_in_order_and_no_step_blocks(tmp_path, config):
    queue = JobQueue()
    started = time.perf_counter()
    for name in ("first", "second", "third"):
        queue.submit(_job(tmp_path, name), config)
    submit_seconds = time.perf_counter() - started
    updates, statuses, longest = _run(queue)
    finished = [u for u in updates if u.kind != UpdateKind.PROGRESS and u.job is not None]
    assert [(u.kind, u.job.stem) for u in finished] == [
        (UpdateKind.RESULT, "first"), (UpdateKind.RESULT, "second"), (UpdateKind.RESULT, "third")]
    assert all(os.path.exists(u.event["paths"][0]) for u in finished)
    assert finished[0].start_seconds > 0 and finished[1].start_seconds == 0
    assert statuses[0] == Status.STARTING and Status.LOADING in statuses
    assert statuses[-1] == Status.READY
    assert longest < BLOCK_LIMIT_S, f"a step held the main thread {longest * 1000:.1f} ms"
    assert submit_seconds < 3 * BLOCK_LIMIT_S  # launching the backend does not wait for it


def test_once_ready_the_queue_knows_which_presets_are_on_this_machine(tmp_path, config):
    queue = JobQueue()
    assert queue.preset_present("tiny-sd15-depth") is None  # nothing asked yet
    empty_cache = (("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache")),)
    queue.submit(_job(tmp_path, "only"), replace(config, env=empty_cache))
    _run(queue)
    deadline = time.monotonic() + 30
    while not queue.capabilities and time.monotonic() < deadline:
        queue.poll(timeout=0.1)
    assert queue.preset_present("tiny-sd15-depth") is True  # built locally
    assert queue.preset_present("flux-depth") is False  # no HF cache here


def test_cancel_stops_the_running_job_within_one_step_and_drops_the_waiting(tmp_path, config):
    queue = JobQueue()
    queue.submit(_job(tmp_path, "long", steps=300), config)
    queue.submit(_job(tmp_path, "waiting"), config)
    steps_after_cancel = None
    updates = []
    deadline = time.monotonic() + 120
    while queue.active and time.monotonic() < deadline:
        for update in queue.poll(timeout=0.05):
            updates.append(update)
            if update.kind == UpdateKind.PROGRESS:
                if steps_after_cancel is None and update.event["step"] >= 2:
                    queue.cancel()
                    steps_after_cancel = 0
                elif steps_after_cancel is not None:
                    steps_after_cancel += 1
    kinds = {u.job.stem: u.kind for u in updates if u.kind != UpdateKind.PROGRESS and u.job}
    assert kinds == {"long": UpdateKind.CANCELLED, "waiting": UpdateKind.CANCELLED}
    assert steps_after_cancel is not None and steps_after_cancel <= 1
    queue.submit(_job(tmp_path, "after"), config)
    updates, _, _ = _run(queue)
    assert [u.kind for u in updates if u.job and u.kind != UpdateKind.PROGRESS] == ["result"]


def test_a_failing_job_is_reported_and_the_next_one_still_runs(tmp_path, config):
    queue = JobQueue()
    queue.submit(Job("bad", {**_job(tmp_path, "bad").request,
                             "control_image": str(tmp_path / "gone.png")}), config)
    queue.submit(_job(tmp_path, "good"), config)
    updates, _, _ = _run(queue)
    done = [u for u in updates if u.job and u.kind != UpdateKind.PROGRESS]
    assert [(u.job.stem, u.kind) for u in done] == [("bad", "failed"), ("good", "result")]
    assert done[0].error.code == "INPUT_NOT_FOUND" and done[0].error.hint


def test_a_killed_backend_fails_its_jobs_and_the_next_submit_restarts_it(tmp_path, config):
    queue = JobQueue()
    queue.submit(_job(tmp_path, "doomed", steps=300), config)
    queue.submit(_job(tmp_path, "behind"), config)
    deadline = time.monotonic() + 120
    updates = []
    while queue.active and time.monotonic() < deadline:
        for update in queue.poll(timeout=0.05):
            updates.append(update)
            if update.kind == UpdateKind.PROGRESS and update.event["step"] == 1:
                os.kill(queue._client.pid, signal.SIGKILL)
    failed = [u for u in updates if u.kind == UpdateKind.FAILED]
    assert [u.job.stem for u in failed] == ["doomed", "behind"]
    assert failed[0].error.code == "BACKEND_CRASHED"
    assert queue.status == Status.ERROR and "stopped unexpectedly" in queue.message
    queue.submit(_job(tmp_path, "again"), config)
    updates, _, _ = _run(queue)
    assert [u.kind for u in updates if u.job and u.kind != UpdateKind.PROGRESS] == ["result"]


def test_a_backend_python_that_does_not_exist_is_refused_at_submit(tmp_path, config):
    queue = JobQueue()
    bad = BackendConfig(python=str(tmp_path / "nope"), cache_dir=config.cache_dir,
                        log_path=config.log_path)
    with pytest.raises(BackendFailure, match="does not exist") as failure:
        queue.submit(_job(tmp_path, "never"), bad)
    assert failure.value.code == "BACKEND_NOT_CONFIGURED"
    assert queue.status == Status.ERROR and not queue.busy


def test_a_python_that_cannot_run_the_backend_fails_the_job_with_its_log(tmp_path, config):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'No module named torch' >&2\nexit 1\n")
    fake.chmod(0o755)
    queue = JobQueue()
    queue.submit(_job(tmp_path, "never"),
                 BackendConfig(python=str(fake), cache_dir=config.cache_dir,
                               log_path=config.log_path))
    updates, _, _ = _run(queue, limit_s=30)
    assert [u.kind for u in updates] == [UpdateKind.FAILED]
    assert updates[0].error.code == "BACKEND_START_FAILED"
    assert "No module named torch" in queue.message


def test_stop_cancels_and_reports_stopped(tmp_path, config):
    queue = JobQueue()
    queue.start(config)
    while queue.status == Status.STARTING:
        queue.poll(timeout=0.1)
    assert queue.status == Status.READY
    queue.submit(_job(tmp_path, "cut", steps=300), config)
    queue.stop()
    assert queue.status == Status.STOPPED and not queue.busy
    assert [u.kind for u in queue.poll()] == [UpdateKind.CANCELLED]


def test_previews_come_as_a_path_or_as_base64_data(tmp_path):
    from t2i_src.blender_t2i.core.job_queue import preview_file

    image = png.write_png(tmp_path / "step.png", np.zeros((8, 8), np.uint8))
    assert preview_file({"preview": str(image)}, tmp_path) == image
    assert preview_file({"preview": {"path": str(image)}}, tmp_path) == image
    encoded = __import__("base64").b64encode(image.read_bytes()).decode()
    for value in (encoded, "data:image/png;base64," + encoded):
        path = preview_file({"preview": value}, tmp_path / "scratch")
        assert path.read_bytes() == image.read_bytes()
    assert preview_file({"preview": str(tmp_path / "gone.png")}, tmp_path) is None
    assert preview_file({"step": 1}, tmp_path) is None
    assert preview_file({"preview": "not base64!"}, tmp_path) is None
