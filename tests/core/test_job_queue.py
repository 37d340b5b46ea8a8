"""The non-blocking job queue against the real backend process (tiny offline model)."""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
from t2i_src.t2i_core import job_request as jobs
from t2i_src.t2i_core import png
from t2i_src.t2i_core.backend_process import BackendConfig, BackendFailure
from t2i_src.t2i_core.job_queue import JobQueue, JobState, Status, UpdateKind
from t2i_src.t2i_core.job_request import JobSettings
from t2i_src.t2i_core.presets import get_preset

TINY = get_preset("tiny-sd15-depth")
BLOCK_LIMIT_S = 0.05  # the most a UI step may hold Blender's main thread


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def config(tmp_path, cache_dir):
    return BackendConfig(python=sys.executable, cache_dir=cache_dir,
                         log_path=tmp_path / "backend.log")


@pytest.fixture
def queue():
    jobs_queue = JobQueue()
    yield jobs_queue
    jobs_queue.stop()  # the queue owns its backend: stopping it stops the process


def _job(tmp_path, stem, steps=2, size=(64, 48), **fields) -> dict:
    depth = png.write_png(tmp_path / "depth.png",
                          np.tile(np.linspace(0, 255, size[0], dtype=np.uint8), (size[1], 1)))
    settings = JobSettings(preset=TINY, prompt="a red cube", negative_prompt="", seed=3,
                           steps=steps, guidance=7.5, control_strength=1.0, size=size)
    request = jobs.build_request(stem, settings, str(depth), str(tmp_path / "out"))
    return {**request, **fields}


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


def test_queued_jobs_run_in_order_and_no_step_blocks(tmp_path, config, queue):
    started = time.perf_counter()
    for name in ("first", "second", "third"):
        queue.submit(_job(tmp_path, name), config)
    submit_seconds = time.perf_counter() - started
    updates, statuses, longest = _run(queue)
    finished = [u for u in updates if u.kind != UpdateKind.PROGRESS and u.job is not None]
    assert [(u.kind, u.job.id) for u in finished] == [
        (UpdateKind.RESULT, "first"), (UpdateKind.RESULT, "second"), (UpdateKind.RESULT, "third")]
    assert all(os.path.exists(u.event["paths"][0]) for u in finished)
    assert finished[0].job.start_seconds > 0 and finished[1].job.start_seconds == 0
    assert statuses[0] == Status.STARTING and Status.LOADING in statuses
    assert statuses[-1] == Status.READY
    assert longest < BLOCK_LIMIT_S, f"a step held the main thread {longest * 1000:.1f} ms"
    assert submit_seconds < 3 * BLOCK_LIMIT_S  # launching the backend does not wait for it


def test_once_ready_the_queue_knows_which_presets_are_on_this_machine(tmp_path, config, queue):
    assert queue.preset_present("tiny-sd15-depth") is None  # nothing asked yet
    empty_cache = (("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache")),)
    queue.submit(_job(tmp_path, "only"), replace(config, env=empty_cache))
    _run(queue)
    deadline = time.monotonic() + 120  # the reply imports diffusers: slow on a busy machine
    while not queue.capabilities and time.monotonic() < deadline:
        queue.poll(timeout=0.1)
    assert queue.preset_present("tiny-sd15-depth") is True  # built locally
    assert queue.preset_present("flux-depth") is False  # no HF cache here


def test_cancel_stops_the_running_job_within_one_step_and_drops_the_waiting(
        tmp_path, config, queue):
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
    kinds = {u.job.id: u.kind for u in updates if u.kind != UpdateKind.PROGRESS and u.job}
    assert kinds == {"long": UpdateKind.CANCELLED, "waiting": UpdateKind.CANCELLED}
    assert steps_after_cancel is not None and steps_after_cancel <= 1
    queue.submit(_job(tmp_path, "after"), config)
    updates, _, _ = _run(queue)
    assert [u.kind for u in updates if u.job and u.kind != UpdateKind.PROGRESS] == ["result"]


def test_a_failing_job_is_reported_and_the_next_one_still_runs(tmp_path, config, queue):
    queue.submit(_job(tmp_path, "bad", control_image=str(tmp_path / "gone.png")), config)
    queue.submit(_job(tmp_path, "good"), config)
    updates, _, _ = _run(queue)
    done = [u for u in updates if u.job and u.kind != UpdateKind.PROGRESS]
    assert [(u.job.id, u.kind) for u in done] == [("bad", "failed"), ("good", "result")]
    assert done[0].error.code == "INPUT_NOT_FOUND" and done[0].error.hint


def test_a_killed_backend_fails_its_jobs_and_the_next_submit_restarts_it(tmp_path, config, queue):
    queue.submit(_job(tmp_path, "doomed", steps=300), config)
    queue.submit(_job(tmp_path, "behind"), config)
    deadline = time.monotonic() + 120
    updates = []
    while queue.active and time.monotonic() < deadline:
        for update in queue.poll(timeout=0.05):
            updates.append(update)
            if update.kind == UpdateKind.PROGRESS and update.event["step"] == 1:
                os.kill(queue.backend_pid, signal.SIGKILL)
    failed = [u for u in updates if u.kind == UpdateKind.FAILED]
    assert [u.job.id for u in failed] == ["doomed", "behind"]
    assert failed[0].error.code == "BACKEND_CRASHED"
    assert queue.status == Status.ERROR and "stopped unexpectedly" in queue.message
    queue.submit(_job(tmp_path, "again"), config)
    updates, _, _ = _run(queue)
    assert [u.kind for u in updates if u.job and u.kind != UpdateKind.PROGRESS] == ["result"]


def test_a_backend_python_that_does_not_exist_is_refused_at_submit(tmp_path, config, queue):
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


def test_stop_cancels_and_reports_stopped(tmp_path, config, queue):
    queue.start(config)
    while queue.status == Status.STARTING:
        queue.poll(timeout=0.1)
    assert queue.status == Status.READY
    queue.submit(_job(tmp_path, "cut", steps=300), config)
    queue.stop()
    assert queue.status == Status.STOPPED and not queue.busy
    assert [u.kind for u in queue.poll()] == [UpdateKind.CANCELLED]


def test_previews_come_as_a_path_that_may_be_gone(tmp_path):
    from t2i_src.t2i_core.job_queue import preview_file

    image = png.write_png(tmp_path / "step.png", np.zeros((8, 8), np.uint8))
    assert preview_file({"preview": str(image)}) == image
    assert preview_file({"preview": str(tmp_path / "gone.png")}) is None
    assert preview_file({"step": 1}) is None


def test_a_handle_follows_its_job_and_wait_returns_its_result(tmp_path, config, queue):
    seen = []
    first = queue.submit(_job(tmp_path, "watched", steps=3), config)
    first.on_update(lambda handle, update: seen.append((handle.id, update.kind)) or
                    [("INFO", f"{update.kind} {handle.step}/{handle.total}")])
    second = queue.submit(_job(tmp_path, "next"), config)
    assert (first.state, second.state) == (JobState.QUEUED, JobState.QUEUED)
    result = first.wait(timeout=120)
    assert first.state == JobState.DONE and first.result is result
    assert os.path.exists(result["paths"][0]) and first.step == 3 == first.total
    assert seen[-1] == ("watched", UpdateKind.RESULT)
    assert {kind for _id, kind in seen} == {UpdateKind.PROGRESS, UpdateKind.RESULT}
    assert first.reports[-1] == ("INFO", "result 3/3")  # what the callbacks said, in order
    assert second.wait(timeout=120)["paths"] and second.state == JobState.DONE


def test_cancelling_a_waiting_handle_leaves_the_others(tmp_path, config, queue):
    first = queue.submit(_job(tmp_path, "one"), config)
    dropped = queue.submit(_job(tmp_path, "two"), config)
    third = queue.submit(_job(tmp_path, "three"), config)
    dropped.cancel()
    with pytest.raises(BackendFailure) as failure:
        dropped.wait(timeout=5)
    assert failure.value.code == "CANCELLED" and dropped.state == JobState.CANCELLED
    assert first.wait(timeout=120) and third.wait(timeout=120)


def test_wait_with_a_timeout_gives_up_and_cancels_the_job(tmp_path, config, queue):
    slow = queue.submit(_job(tmp_path, "slow", steps=300), config)
    with pytest.raises(BackendFailure, match="not done after") as failure:
        slow.wait(timeout=0.5)
    assert failure.value.code == "BACKEND_TIMEOUT"
    _run(queue)  # the cancel reaches the backend and the job ends as cancelled
    assert slow.state == JobState.CANCELLED


def test_a_job_id_already_queued_is_refused(tmp_path, config, queue):
    queue.submit(_job(tmp_path, "twin"), config)
    with pytest.raises(ValueError, match="already queued"):
        queue.submit(_job(tmp_path, "twin"), config)


HOSTILE_BACKEND = """
import json, sys
out = sys.stdout
for line in sys.stdin:
    message = json.loads(line)
    if message["type"] == "hello":
        out.write(json.dumps({"type": "ready", "protocol": 1, "families": [], "devices": []}))
    elif message["type"] == "generate":
        if message["prompt"] == "garbage first":  # unreadable lines, then a good result
            out.buffer.write(b"[" * 100000 + b"\\n" + b"\\xff\\xfe\\n")
            out.flush()
        paths = {"outside": ["/etc/hostname"], "none": None,
                 "climbs": [message["output_dir"] + "/../../x.png"],
                 "garbage first": [message["output_dir"] + "/ok.png"]}[message["prompt"]]
        out.write(json.dumps({"type": "result", "id": message["id"], "paths": paths,
                              "seed": 1, "timings": {}}))
    else:
        continue
    out.write("\\n")
    out.flush()
"""


@pytest.mark.parametrize("forgery", ["outside", "none", "climbs"])
def test_a_result_that_names_no_file_in_the_job_folder_fails_the_job(tmp_path, config, queue,
                                                                     forgery):
    """The add-on loads only what lies in the job folder it gave: a backend answering with
    /etc/hostname, no paths, or a path that climbs out is a failed job, not a result."""
    (tmp_path / "hostile.py").write_text(HOSTILE_BACKEND)
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} {tmp_path / 'hostile.py'}\n")
    fake.chmod(0o755)
    handle = queue.submit(_job(tmp_path, "forged", prompt=forgery),
                          replace(config, python=str(fake)))
    with pytest.raises(BackendFailure, match=r"job folder|no result file") as failure:
        handle.wait(timeout=30)
    assert failure.value.code == "GENERATION_FAILED" and handle.result is None


def test_garbage_on_the_event_stream_fails_the_job_clearly_and_restarts(tmp_path, config,
                                                                        queue):
    """A 100,000-bracket line or invalid UTF-8 among the events: the reader survives, the job
    fails with a clear BACKEND_CRASHED, the backend is replaced and the next job runs."""
    (tmp_path / "hostile.py").write_text(HOSTILE_BACKEND)
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} {tmp_path / 'hostile.py'}\n")
    fake.chmod(0o755)
    hostile = replace(config, python=str(fake))
    handle = queue.submit(_job(tmp_path, "noisy", prompt="garbage first"), hostile)
    with pytest.raises(BackendFailure, match="not protocol") as failure:
        handle.wait(timeout=30)
    assert failure.value.code == "BACKEND_CRASHED"
    first_pid = queue.backend_pid
    assert first_pid is None  # killed with its stream
    again = queue.submit(_job(tmp_path, "clean", prompt="climbs"), hostile)
    with pytest.raises(BackendFailure, match="job folder"):  # a fresh one answered
        again.wait(timeout=30)


def test_stopping_a_frozen_backend_returns_at_once_and_it_is_killed(tmp_path, config, queue):
    """A backend that stops answering (SIGSTOP) cannot hold the main thread: stop() returns
    in milliseconds and the process is killed on a thread after the stop timeout."""
    queue.start(config)
    while queue.status == Status.STARTING:
        queue.poll(timeout=0.1)
    pid = queue.backend_pid
    os.kill(pid, signal.SIGSTOP)
    started = time.perf_counter()
    queue.stop()
    assert time.perf_counter() - started < BLOCK_LIMIT_S
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break  # killed and reaped
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)
        raise AssertionError("the frozen backend was left running")


def test_a_frozen_backend_is_noticed_killed_and_replaced(tmp_path, config, record_property):
    """SIGSTOP mid-job: the heartbeats stop, the job fails with BACKEND_TIMEOUT once the
    silence limit passes, the process is killed, and the next job runs on a fresh backend."""
    queue = JobQueue(silence_limit=4.0)
    try:
        handle = queue.submit(_job(tmp_path, "frozen", steps=300), config)
        frozen = {}

        def freeze(h, update):
            if update.kind == UpdateKind.PROGRESS and not frozen:
                frozen["pid"], frozen["at"] = queue.backend_pid, time.monotonic()
                os.kill(frozen["pid"], signal.SIGSTOP)

        handle.on_update(freeze)
        with pytest.raises(BackendFailure, match="sent nothing") as failure:
            handle.wait(timeout=180)
        detected = time.monotonic() - frozen["at"]
        assert failure.value.code == "BACKEND_TIMEOUT"
        assert 4.0 <= detected < 15.0, detected
        again = queue.submit(_job(tmp_path, "after", steps=2), config)
        assert again.wait(timeout=180)["paths"]
        generating_again = time.monotonic() - frozen["at"]
        assert queue.backend_pid != frozen["pid"]
        with pytest.raises(ProcessLookupError):
            os.kill(frozen["pid"], 0)  # killed, not left stopped
        record_property("hang_detected_s", round(detected, 1))
        record_property("generating_again_s", round(generating_again, 1))
        print(f"hang detected after {detected:.1f} s, next result {generating_again:.1f} s "
              "after the freeze")
    finally:
        queue.stop()


def test_a_job_submitted_after_an_unnoticed_crash_fails_the_lost_job_and_runs(
        tmp_path, config, queue):
    """The batch's case: the backend dies while the main thread captures the next frame and
    submits it before any poll has read the exit. The job that was running must fail (so it is
    retried), not wait forever on a replaced process whose successor's heartbeats hide it."""
    lost = queue.submit(_job(tmp_path, "lost", steps=300), config)
    while lost.step < 1:
        queue.poll(timeout=0.1)
    pid = queue.backend_pid
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while queue._process.alive() and time.monotonic() < deadline:  # no poll meanwhile
        time.sleep(0.05)
    after = queue.submit(_job(tmp_path, "after", steps=2), config)
    with pytest.raises(BackendFailure) as failure:
        lost.wait(timeout=60)
    assert failure.value.code == "BACKEND_CRASHED", failure.value.report()
    assert after.wait(timeout=180)["paths"]
    assert queue.backend_pid != pid
