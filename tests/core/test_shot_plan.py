"""Farm bookkeeping without Blender: the prepared shot, frame claims and records in one shared
folder (with real concurrent processes), and what a worker's exit status and environment mean."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from t2i_src.t2i_core import batch_plan, farm_worker, shot_folder, shot_plan
from t2i_src.t2i_core.backend_process import BackendConfig
from t2i_src.t2i_core.protocol import ErrorCode

ROOT = Path(__file__).resolve().parents[2]


def _settings(**changes) -> dict:
    settings = {"blend": "/shots/a.blend", "scene": "Scene", "frames": [1, 2, 3, 4],
                "model": {"family": "sd15_controlnet"}, "prompt": "a street", "prompts": {},
                "steps": 4, "seed": 7, "seed_mode": "per-frame",
                "depth_range": {"policy": "locked", "range": [2.0, 30.0]},
                "memory_mode": "auto", "device": "cuda:0"}
    return {**settings, **changes}


def _plan(**changes) -> shot_plan.ShotPlan:
    return shot_plan.ShotPlan.plan(_settings(**changes), 7, "per-frame", {3: "at night"},
                                   "a street")


def test_the_hash_covers_what_decides_the_pixels_and_not_where_it_runs():
    base = shot_plan.settings_hash(_settings())
    # another worker's path to the .blend, its GPU, or a chunk's frames: the same shot
    assert shot_plan.settings_hash(_settings(blend="Z:/shots/a.blend", device="cuda:3",
                                             frames=[2])) == base
    for change in ({"seed": 8}, {"steps": 5}, {"prompt": "a road"},
                   {"depth_range": {"policy": "locked", "range": [2.0, 31.0]}}):
        assert shot_plan.settings_hash(_settings(**change)) != base, change


def test_the_plan_holds_each_frames_seed_and_prompt():
    plan = _plan()
    assert plan.seeds == {1: 8, 2: 9, 3: 10, 4: 11}
    assert plan.prompts == {1: "a street", 2: "a street", 3: "at night", 4: "at night"}
    assert plan.depth_range == (2.0, 30.0)


def test_shot_json_round_trips_and_an_edited_one_is_refused(tmp_path):
    plan = _plan()
    plan.write(tmp_path)
    read = shot_plan.ShotPlan.read(tmp_path)
    assert read is not None
    assert read.hash == plan.hash and read.seeds == plan.seeds
    assert shot_plan.ShotPlan.read(tmp_path / "nowhere") is None
    data = json.loads((tmp_path / "shot.json").read_text())
    data["settings"]["steps"] = 40
    (tmp_path / "shot.json").write_text(json.dumps(data))
    with pytest.raises(shot_plan.ShotMismatch, match="was edited"):
        shot_plan.ShotPlan.read(tmp_path)
    (tmp_path / "shot.json").write_text("{not json")
    with pytest.raises(shot_plan.ShotMismatch, match="unreadable"):
        shot_plan.ShotPlan.read(tmp_path)


def test_a_chunk_with_other_settings_or_frames_is_refused(tmp_path):
    plan = _plan()
    plan.check_chunk(_settings(frames=[2, 3], device="cuda:1"), [2, 3], tmp_path)
    with pytest.raises(shot_plan.ShotMismatch, match=r"^seed, steps differ from the shot"):
        plan.check_chunk(_settings(seed=1, steps=9), [2, 3], tmp_path)
    with pytest.raises(shot_plan.ShotMismatch, match="depth_range differ"):
        plan.check_chunk(_settings(depth_range={"policy": "locked", "range": [1.0, 9.0]}),
                         [1], tmp_path)
    with pytest.raises(shot_plan.ShotMismatch, match=r"frames 5-6,9 are not in the shot"):
        plan.check_chunk(_settings(), [4, 5, 6, 9], tmp_path)


def test_preparing_again_compares_all_but_the_range_it_has_not_locked_yet():
    plan = _plan()
    unlocked = {"policy": "locked", "range": None}
    assert plan.same_request(_settings(depth_range=unlocked)) == []
    assert plan.same_request(_settings(depth_range=unlocked, steps=2)) == ["steps"]
    assert plan.same_request(_settings(depth_range={"policy": "auto", "range": None})) \
        == ["depth_range"]
    assert plan.same_request(_settings(depth_range=unlocked, frames=[1, 2])) == ["frames"]


@pytest.mark.parametrize(("text", "frames"), [("1-7:3", [1, 4, 7]), ("9,10,20,21",
                                                                      [9, 10, 20, 21])])
def test_frames_as_farms_write_them(text, frames):
    assert batch_plan.parse_frames(text) == frames
    assert batch_plan.frames_text([1, 2, 3, 7, 9, 10]) == "1-3,7,9-10"


# --- one folder, many workers -------------------------------------------------------------

def _folder(path: Path, host: str = "this-host", pid: int | None = None,
            stale_s: float = shot_folder.CLAIM_STALE_S) -> shot_folder.ShotFolder:
    worker = shot_folder.Worker(host=host, pid=os.getpid() if pid is None else pid,
                                chunk="1-4", device="cpu")
    return shot_folder.ShotFolder(path, _plan(), worker, stale_s=stale_s)


def _finish_frame(folder: shot_folder.ShotFolder, frame: int) -> None:
    result = folder.folder / f"frame_{frame}.png"
    result.write_bytes(f"pixels of {frame} by {folder.worker.pid}".encode())
    folder.record(frame, [result], seed=folder.shot.seeds[frame])


def _worker_process(path: str, frames: list[int], hold_s: float, queue) -> None:
    """One farm worker: claims what it can of `frames`, 'makes' each, records it."""
    folder = shot_folder.ShotFolder(Path(path), _plan(), shot_folder.Worker.this("w", "cpu"))
    made = []
    for frame in frames:
        if folder.claim(frame):
            time.sleep(hold_s)
            _finish_frame(folder, frame)
            made.append(frame)
    queue.put(made)


def test_workers_racing_for_overlapping_frames_make_each_once_and_the_manifest_lists_all(
        tmp_path):
    """Four processes started together on overlapping chunks: every frame is made by exactly
    one of them, and the merged manifest (written under the lock after each frame) lists all
    four frames once, whoever wrote it last."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    chunks = [[1, 2, 3], [2, 3, 4], [1, 4], [3, 2, 1, 4]]
    workers = [context.Process(target=_worker_process, args=(str(tmp_path), c, 0.05, queue))
               for c in chunks]
    for worker in workers:
        worker.start()
    made = sorted(f for _ in workers for f in queue.get(timeout=60))
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert made == [1, 2, 3, 4]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert sorted(manifest["frames"]) == ["1", "2", "3", "4"]
    assert manifest["shot"] == _plan().hash
    assert not list((tmp_path / ".t2i" / "claims").iterdir())
    for frame, entry in manifest["frames"].items():
        assert batch_plan.entry_intact(tmp_path, entry), frame


def test_a_claim_whose_worker_died_on_this_host_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    gone = _folder(tmp_path, pid=int(dead.stdout))
    assert gone.claim(2)
    live_elsewhere = _folder(tmp_path, host="other-host", pid=1)
    assert not live_elsewhere.claim(2)  # another host cannot see the pid: the claim is fresh
    retry = _folder(tmp_path)
    assert retry.claim(2)
    assert retry.holder(2)["pid"] == os.getpid()
    assert not _folder(tmp_path, pid=1).claim(2)  # and now it is held by a live process


def test_a_claim_left_untouched_is_taken_over_from_any_host(tmp_path):
    other = _folder(tmp_path, host="other-host", pid=12345)
    assert other.claim(3)
    assert not _folder(tmp_path, stale_s=60).claim(3)
    old = time.time() - 120
    os.utime(tmp_path / ".t2i" / "claims" / "3.claim", (old, old))
    assert _folder(tmp_path, stale_s=60).claim(3)


def test_held_claims_are_kept_fresh_and_let_go(tmp_path):
    folder = _folder(tmp_path)
    claim = tmp_path / ".t2i" / "claims" / "1.claim"
    with folder.claims_kept_fresh(every_s=0.05):
        assert folder.claim(1)
        old = time.time() - 500
        os.utime(claim, (old, old))
        time.sleep(0.3)
        assert time.time() - claim.stat().st_mtime < 5
    assert not claim.exists()  # a worker that stops lets its unfinished frames go


def test_a_done_frame_is_not_claimed_again_until_its_files_change(tmp_path):
    folder = _folder(tmp_path)
    assert folder.claim(4)
    _finish_frame(folder, 4)
    assert folder.is_done(4) and not _folder(tmp_path).claim(4)
    (tmp_path / "frame_4.png").write_bytes(b"edited")
    assert not folder.is_done(4)
    assert _folder(tmp_path).claim(4)


def test_records_of_another_shot_do_not_count(tmp_path):
    folder = _folder(tmp_path)
    assert folder.claim(1)
    _finish_frame(folder, 1)
    other = shot_folder.ShotFolder(tmp_path, _plan(steps=9), folder.worker)
    assert not other.is_done(1)
    assert other.merge_manifest()["frames"] == {}


# --- what a worker needs, what its exit status means ---------------------------------------

@pytest.mark.parametrize(("code", "status"), [
    (ErrorCode.GENERATION_FAILED, 1), (ErrorCode.BACKEND_CRASHED, 1),
    (ErrorCode.BACKEND_TIMEOUT, 1), (ErrorCode.WRONG_MODEL_FAMILY, 2),
    (ErrorCode.UNSAFE_MODEL_FILE, 2), (ErrorCode.MODEL_NOT_FOUND, 4),
    (ErrorCode.OUT_OF_MEMORY, 4), (ErrorCode.BACKEND_START_FAILED, 4),
])
def test_backend_failures_become_what_a_farm_can_act_on(code, status):
    assert farm_worker.exit_status_for(code) == status


def test_devices_the_worker_lacks_are_named_with_what_it_has():
    problem = farm_worker.device_problem
    assert problem("cuda:1", ["cuda:0", "cuda:1", "cpu"], {}) is None
    assert problem("cuda", ["cuda:0", "cpu"], {}) is None
    assert problem("auto", ["cpu"], {}) is None
    assert problem("cuda:1", ["cuda:0", "cpu"], {"CUDA_VISIBLE_DEVICES": "3"}) == (
        "--device cuda:1 is not on this worker (CUDA_VISIBLE_DEVICES='3'); its backend has: "
        "cuda:0, cpu")
    assert farm_worker.parse_device(" CUDA:2 ") == "cuda:2"
    with pytest.raises(ValueError, match="cuda:N"):
        farm_worker.parse_device("gpu0")


def test_the_farms_model_cache_wins_over_saved_preferences(tmp_path):
    config = BackendConfig(python="/py", cache_dir=tmp_path, log_path=tmp_path / "log",
                           env=(("HF_HUB_CACHE", "/prefs/hf"), ("T2I_MODEL_FOLDERS", "/prefs/m")))
    kept = farm_worker.worker_backend_config(config, {})
    assert kept.env == config.env
    farm = farm_worker.worker_backend_config(config, {"HF_HOME": "/farm/hf",
                                                      "T2I_MODEL_FOLDERS": "/farm/m"})
    assert farm.env == ()  # the backend inherits the farm's variables instead
    assert farm_worker.model_cache_text(farm, {"HF_HOME": "/farm/hf"}) == "HF_HOME=/farm/hf"


def test_the_readme_shows_the_exit_table_the_script_uses():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\d)` \| (.+?) \| (.+?) \|$", readme, re.MULTILINE)
    assert [(int(s), m, a) for s, m, a in rows] == list(farm_worker.EXIT_TABLE)
