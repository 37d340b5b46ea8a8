"""Backend set-up without a network: the pip command lines, the check, the streaming runner,
and a real venv + pip install from a local folder of stand-in wheels."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from t2i_src.t2i_core import backend_install as install

from devtools.wheels import build_backend_wheelhouse


def test_cpu_install_creates_the_venv_and_takes_torch_from_pypi(tmp_path):
    venv = tmp_path / "backend-venv"
    commands = install.install_commands("/usr/bin/python3", venv, "cpu")
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    assert commands == [
        ["/usr/bin/python3", "-m", "venv", str(venv)],
        [*pip, "torch==2.13.0", "torchvision==0.28.0"],
        [*pip, *install.BACKEND_PACKAGES],
        [*pip, "--no-deps", "open-clip-torch==3.3.0"],
    ]


def test_cuda_install_takes_only_torch_and_torchvision_from_the_cu128_index(tmp_path):
    commands = install.install_commands("/usr/bin/python3", tmp_path / "v", "cuda")
    torch_command, packages_command = commands[1], commands[2]
    assert torch_command[-4:] == ["--index-url", "https://download.pytorch.org/whl/cu128",
                                  "torch==2.13.0", "torchvision==0.28.0"]
    assert "--index-url" not in packages_command


def test_a_wheel_folder_means_no_index_and_an_existing_venv_is_reused(tmp_path):
    venv = tmp_path / "v"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    commands = install.install_commands("/usr/bin/python3", venv, "cuda", find_links="/wheels")
    assert len(commands) == 3  # no venv command
    for command in commands:
        assert command[6:9] == ["--no-index", "--find-links", "/wheels"]
        assert "--index-url" not in command


def test_an_unknown_flavour_is_refused():
    with pytest.raises(ValueError, match="rocm"):
        install.install_commands("python", Path("v"), "rocm")


def _check_output(python=(3, 11, 9), **packages):
    found = {name: "1.0" for name in (*install.REQUIRED, *install.OPTIONAL)}
    found.update(packages)
    torch = {"cuda": False, "devices": []}
    return "noise\nT2I-CHECK " + json.dumps({"python": list(python), "packages": found,
                                             "torch": torch})


def test_check_names_missing_packages_and_what_to_do():
    report = install.parse_check(_check_output(diffusers=None, peft=None), 0, "py")
    assert not report.ok and report.missing == ["diffusers", "peft"]
    assert "Install Backend" in report.next_step


def test_check_refuses_an_old_python_and_an_interpreter_that_does_not_run():
    assert "too old" in install.parse_check(_check_output(python=(3, 8, 1)), 0, "py").summary
    broken = install.parse_check("bash: py: command not found", 127, "/opt/py")
    assert not broken.ok and "/opt/py" in broken.summary and broken.next_step


def test_check_passes_a_complete_environment():
    report = install.parse_check(_check_output(torch="2.13.0"), 0, "py")
    assert report.ok and "torch 2.13.0 (CPU only)" in report.summary
    assert report.next_step == ""


def test_check_without_torchvision_is_ready_but_says_what_it_costs():
    report = install.parse_check(_check_output(torchvision=None), 0, "py")
    assert report.ok and report.missing == []
    assert "no torchvision: Qwen-Image-Edit and FLUX.2 dev prepare their input pictures on " \
        "the slower PIL path (both still run)" in report.summary
    assert "Install Backend" in report.next_step


def test_failure_hints_follow_pips_words():
    assert "internet" in install.failure_hint(["Temporary failure in name resolution"])
    assert "no build" in install.failure_hint(["ERROR: No matching distribution found for x"])
    assert "no build" in install.failure_hint(["ERROR: ResolutionImpossible: for help visit"])
    assert "log" in install.failure_hint(["something else"])


def _script(tmp_path, body: str) -> list[str]:
    path = tmp_path / "tool.py"
    path.write_text(body)
    return [sys.executable, str(path)]


def test_output_streams_while_the_command_runs_and_lands_in_the_log(tmp_path):
    release = tmp_path / "release"
    command = _script(tmp_path, "import os, time\nprint('Collecting torch')\n"
                      f"while not os.path.exists({str(release)!r}): time.sleep(0.01)\n"
                      "print('Successfully installed torch')\n")
    run = install.CommandRun([command], tmp_path / "install.log", "Install").start()
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while "Collecting torch" not in seen and time.monotonic() < deadline:
        seen += run.poll()
        time.sleep(0.01)
    assert "Collecting torch" in seen and not run.done  # a line before the command ended
    release.touch()
    assert run.wait(30)
    seen += run.poll()
    assert seen[-1] == "Successfully installed torch"
    assert run.report()[0]
    assert "Successfully installed torch" in (tmp_path / "install.log").read_text()


def test_a_failing_command_stops_the_run_and_the_report_says_what_next(tmp_path):
    failing = _script(tmp_path, "import sys\nprint('ERROR: No matching distribution found "
                      "for torch==2.13.0')\nsys.exit(1)\n")
    marker = tmp_path / "ran"
    never = [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    run = install.CommandRun([failing, never], tmp_path / "install.log", "Install").start()
    assert run.wait(30)
    ok, message = run.report()
    assert not ok and run.failed_command == failing
    assert "No matching distribution" in message and "no build" in message
    assert str(tmp_path / "install.log") in message
    assert not marker.exists()


def test_cancel_terminates_the_running_command(tmp_path):
    run = install.CommandRun([[sys.executable, "-c", "import time; time.sleep(60)"]],
                             tmp_path / "install.log", "Install").start()
    time.sleep(0.3)
    run.cancel()
    assert run.wait(10)
    assert run.report() == (False, f"Install cancelled (log: {tmp_path / 'install.log'})")


def test_offline_install_into_a_new_venv_then_check_it(tmp_path):
    wheels = build_backend_wheelhouse(
        tmp_path / "wheels",
        [*install.TORCH_PACKAGES, *install.BACKEND_PACKAGES, *install.DATA_PACKAGES])
    venv = tmp_path / "backend-venv"
    commands = install.install_commands(sys.executable, venv, "cpu", find_links=str(wheels))
    run = install.CommandRun(commands, tmp_path / "install.log", "Install backend").start()
    assert run.wait(300)
    assert run.report()[0], run.report()[1]
    python = str(install.venv_python(venv))
    check = install.CommandRun([install.check_command(python)], tmp_path / "check.log",
                               "Check").start()
    assert check.wait(60)
    report = install.parse_check("\n".join(check.poll(budget_s=1)), check.returncode, python)
    assert report.ok, report.summary
    assert "torch 2.13.0 (CPU only)" in report.summary


def test_check_runs_the_imports_and_names_a_broken_diffusers(tmp_path):
    """Installed is not enough: the real check script, in a Python whose diffusers raises on
    import, says so instead of "ready"."""
    import os
    import subprocess
    import sys

    shadow = tmp_path / "shadow" / "diffusers"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('libtorch_cuda.so: cannot open')\n")
    env = {**os.environ, "PYTHONPATH": str(shadow.parent)}
    proc = subprocess.run(install.check_command(sys.executable), capture_output=True,
                          text=True, env=env, timeout=300)
    report = install.parse_check(proc.stdout + proc.stderr, proc.returncode, sys.executable)
    assert not report.ok and report.missing == ["diffusers"]
    assert "diffusers (ImportError: libtorch_cuda.so: cannot open)" in report.summary
    assert "Install Backend" in report.next_step
