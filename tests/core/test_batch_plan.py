"""Batch bookkeeping without Blender: frames, output names, seeds, prompts, manifest/resume."""

from __future__ import annotations

import json

import pytest
from t2i_src.t2i_core import batch_plan as plan


@pytest.mark.parametrize(("text", "frames"), [
    ("1-5", [1, 2, 3, 4, 5]),
    ("1,5,9-11", [1, 5, 9, 10, 11]),
    ("10-20x5", [10, 15, 20]),
    ("3, 1-2,3", [1, 2, 3]),
    ("-2-1", [-2, -1, 0, 1]),
])
def test_frames(text, frames):
    assert plan.parse_frames(text) == frames


@pytest.mark.parametrize("text", ["", "a-b", "5-1", "1-4x0", "1..4"])
def test_bad_frames_say_how_to_write_them(text):
    with pytest.raises(plan.PlanError, match="--frames"):
        plan.parse_frames(text)


def test_output_pattern_pads_like_blender(tmp_path):
    pattern = plan.OutputPattern.parse(str(tmp_path / "sh010_####_v2"))
    assert pattern.folder == tmp_path
    assert pattern.stem(7) == "sh010_0007_v2"
    assert plan.OutputPattern.parse(str(tmp_path / "shots")).stem(12) == "frame_0012"
    with pytest.raises(plan.PlanError, match="file name"):
        plan.OutputPattern.parse(str(tmp_path / "a_##" / "b"))


def test_seeds():
    assert plan.frame_seed(100, 7, "fixed") == 100
    assert plan.frame_seed(100, 7, "per-frame") == 107


def test_prompts_hold_until_the_next_listed_frame(tmp_path):
    text = tmp_path / "prompts.txt"
    text.write_text("# shot 10\n1: a foggy street\n24: the same street at night\n")
    prompts = plan.load_prompts(text)
    assert plan.prompt_for(0, prompts, "default") == "default"
    assert plan.prompt_for(23, prompts, "default") == "a foggy street"
    assert plan.prompt_for(30, prompts, "default") == "the same street at night"
    as_json = tmp_path / "prompts.json"
    as_json.write_text(json.dumps({"1": "a", "3": "b"}))
    assert plan.load_prompts(as_json) == {1: "a", 3: "b"}
    bad = tmp_path / "bad.txt"
    bad.write_text("frame one: nope\n")
    with pytest.raises(plan.PlanError, match=r"bad\.txt:1"):
        plan.load_prompts(bad)


def test_size():
    assert plan.parse_size("768x512") == (768, 512)
    with pytest.raises(plan.PlanError, match="WIDTHxHEIGHT"):
        plan.parse_size("768")


def _files(folder, frame):
    files = []
    for suffix in (".png", "_depth.png"):
        path = folder / f"frame_{frame:04d}{suffix}"
        path.write_bytes(f"{frame}{suffix}".encode())
        files.append(path)
    return files


def test_manifest_resume_trusts_only_intact_frames(tmp_path):
    settings = {"model": "tiny", "seed": 1, "steps": 2}
    manifest = plan.Manifest(tmp_path, settings)
    for frame in (1, 2, 3):
        manifest.add(frame, _files(tmp_path, frame), seed=1)
    (tmp_path / "frame_0002.png").write_bytes(b"truncated")  # changed after it was recorded
    (tmp_path / "frame_0003_depth.png").unlink()
    resumed = plan.Manifest.resume(tmp_path, settings)
    assert [f for f in (1, 2, 3, 4) if resumed.is_done(f)] == [1]


def test_resume_refuses_different_settings(tmp_path):
    plan.Manifest(tmp_path, {"model": "tiny", "seed": 1}).save()
    with pytest.raises(plan.PlanError, match="seed differ"):
        plan.Manifest.resume(tmp_path, {"model": "tiny", "seed": 2})


@pytest.mark.parametrize(("key", "old", "new"), [
    ("prompt", "a foggy street", "a sunny street"), ("prompts", {"1": "a"}, {"1": "b"}),
    ("encoding", "inverse", "linear"), ("memory_mode", "full", "fp8"),
    ("a_setting_added_later", None, 3)])
def test_resume_refuses_any_change_that_decides_pixels(tmp_path, key, old, new):
    plan.Manifest(tmp_path, {"model": "tiny", key: old, "frames": [1, 2]}).save()
    with pytest.raises(plan.PlanError, match=f"{key} differ"):
        plan.Manifest.resume(tmp_path, {"model": "tiny", key: new, "frames": [1, 2]})


def test_resume_allows_another_frame_range_and_a_moved_blend(tmp_path):
    plan.Manifest(tmp_path, {"model": "tiny", "frames": [1, 2], "blend": "/a.blend"}).save()
    plan.Manifest.resume(tmp_path, {"model": "tiny", "frames": [1, 2, 3], "blend": "/b.blend"})


def test_manifest_is_valid_json_after_every_frame(tmp_path):
    manifest = plan.Manifest(tmp_path, {})
    manifest.add(5, _files(tmp_path, 5), seed=3)
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert data["frames"]["5"]["files"] == ["frame_0005.png", "frame_0005_depth.png"]
    assert set(data["frames"]["5"]["sha256"]) == {"frame_0005.png", "frame_0005_depth.png"}


def test_eta():
    assert plan.eta_text(42) == "42s"
    assert plan.eta_text(125) == "2m05s"
    assert plan.eta_text(3725) == "1h02m"
