"""Backend set-up from Blender: install (offline, from a local folder of stand-in wheels),
check, start/stop, logs, model folders; bad settings give reports, not tracebacks."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace

import bpy
import pytest

from devtools.wheels import build_backend_wheelhouse

from .conftest import MODULE


@pytest.fixture
def prefs(addon):
    prefs = bpy.context.preferences.addons[MODULE].preferences
    saved = {name: getattr(prefs, name) for name in ("backend_python", "wheel_folder",
                                                     "hf_cache")}
    yield prefs
    for name, value in saved.items():
        setattr(prefs, name, value)
    prefs.model_folders.clear()


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory):
    install = sys.modules[MODULE].t2i_core.backend_install
    return build_backend_wheelhouse(tmp_path_factory.mktemp("wheels"),
                                    [*install.TORCH_PACKAGES, *install.BACKEND_PACKAGES,
                                     *install.DATA_PACKAGES])


def test_install_from_a_wheel_folder_then_check_the_new_environment(
        addon, prefs, wheelhouse, tmp_path):
    prefs.wheel_folder = str(wheelhouse)
    venv = tmp_path / "backend-venv"
    assert bpy.ops.t2i.install_backend(flavour="cpu", target=str(venv)) == {"FINISHED"}
    python = addon.t2i_core.backend_install.venv_python(venv)
    assert python.exists()
    run = addon.t2i_core.backend_install.SetupRuns.install
    assert "Successfully installed" in run.log_path.read_text()
    prefs.backend_python = str(python)
    assert bpy.ops.t2i.check_backend() == {"FINISHED"}
    report = addon.t2i_core.backend_install.SetupRuns.check_report
    assert report.ok and "torch 2.13.0 (CPU only)" in report.summary


def test_a_failed_install_says_what_to_do_and_where_the_log_is(prefs, tmp_path):
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    prefs.wheel_folder = str(empty)
    with pytest.raises(RuntimeError, match="no build for this Python") as failure:
        bpy.ops.t2i.install_backend(flavour="cuda", target=str(tmp_path / "venv"))
    assert "install.log" in str(failure.value)


def test_a_wheel_folder_that_does_not_exist_is_reported(prefs, tmp_path):
    prefs.wheel_folder = str(tmp_path / "nowhere")
    with pytest.raises(RuntimeError, match="does not exist"):
        bpy.ops.t2i.install_backend(target=str(tmp_path / "venv"))


@pytest.mark.skipif(bpy.app.online_access, reason="online access is allowed here")
def test_installing_without_online_access_or_wheels_is_refused(prefs, tmp_path):
    prefs.wheel_folder = ""
    with pytest.raises(RuntimeError, match="Online Access"):
        bpy.ops.t2i.install_backend(target=str(tmp_path / "venv"))


def test_install_progress_streams_into_the_ui_without_blocking_it(addon, tmp_path):
    """The modal install's timer path with a command we control: lines show before it ends,
    and no timer step holds the main thread."""
    install = addon.t2i_core.backend_install
    release = tmp_path / "release"
    script = tmp_path / "fake_pip.py"
    script.write_text("import os, time\nprint('Collecting torch==2.13.0')\n"
                      f"while not os.path.exists({str(release)!r}): time.sleep(0.01)\n"
                      "print('Successfully installed torch-2.13.0')\n")
    run = install.CommandRun([[sys.executable, str(script)]], tmp_path / "install.log",
                             "Install backend (cpu)").start()
    wm = bpy.context.window_manager
    timer = wm.event_timer_add(0.1, window=wm.windows[0])
    operator_class = addon.operators.backend.T2I_OT_install_backend
    reports = []
    op = SimpleNamespace(_run=run, _timer=timer, report=lambda level, text: reports.append(text))
    op.finish = lambda finished: operator_class.finish(op, finished)
    event = SimpleNamespace(type="TIMER", value="NOTHING", timer=timer)
    longest, result = 0.0, {"PASS_THROUGH"}
    deadline = time.monotonic() + 30
    while result == {"PASS_THROUGH"} and time.monotonic() < deadline:
        started = time.perf_counter()
        result = operator_class.modal(op, bpy.context, event)
        longest = max(longest, time.perf_counter() - started)
        if run.tail and run.tail[-1] == "Collecting torch==2.13.0":
            release.touch()  # the line reached the UI while the command still ran
        time.sleep(0.02)
    assert result == {"FINISHED"} and release.exists()
    assert reports and "finished" in reports[-1]
    assert longest < 0.05


def test_check_reports_what_a_python_lacks(prefs, tmp_path):
    bare = tmp_path / "bare-python"
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")  # no site-packages
    bare.chmod(0o755)
    prefs.backend_python = str(bare)
    with pytest.raises(RuntimeError, match=r"lacks torch.*Install Backend"):
        bpy.ops.t2i.check_backend()


def test_check_and_start_report_a_backend_path_that_does_not_exist(prefs, tmp_path):
    prefs.backend_python = str(tmp_path / "no-python")
    with pytest.raises(RuntimeError, match="does not exist"):
        bpy.ops.t2i.check_backend()
    with pytest.raises(RuntimeError, match="does not exist"):
        bpy.ops.t2i.backend_start()


def test_start_and_stop_the_backend(addon, backend):
    jobs = addon.t2i_core.job_queue.get_job_queue()
    assert bpy.ops.t2i.backend_start() == {"FINISHED"}
    assert jobs.status == "ready" and jobs.backend_pid is not None
    assert bpy.ops.t2i.backend_stop() == {"FINISHED"}
    assert jobs.status == "stopped" and jobs.backend_pid is None


def test_model_folders_and_cache_reach_the_backend_environment(addon, prefs, tmp_path):
    prefs.hf_cache = str(tmp_path / "hf")
    assert bpy.ops.t2i.model_folder_add() == {"FINISHED"}
    prefs.model_folders[0].path = str(tmp_path / "ComfyUI" / "models")
    assert bpy.ops.t2i.model_folder_add() == {"FINISHED"}
    assert bpy.ops.t2i.model_folder_remove() == {"FINISHED"}
    env = dict(addon.blender_t2i.scene.preferences.backend_config(bpy.context).env)
    assert env.pop("T2I_MAX_MEGAPIXELS")  # always sent (the preference has a default)
    assert env == {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"),
                   "T2I_MODEL_FOLDERS": str(tmp_path / "ComfyUI" / "models")}


def test_open_log_names_the_log_headless(addon):
    logs = Path(addon.blender_t2i.scene.preferences.user_path("logs"))
    (logs / "backend.log").touch()
    assert bpy.ops.t2i.open_log(which="backend") == {"FINISHED"}
