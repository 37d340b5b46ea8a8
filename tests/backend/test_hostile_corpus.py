"""Every case of the hostile corpus (hostile_cases.py) against one real backend: each is answered
with a clear error code before any generating, the backend keeps serving, nothing is written
outside the job folder, nothing but regular files is read (a FIFO or a device would hang it).

Run with `-s` to print the table the closing notes quote."""

from __future__ import annotations

import queue
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from t2i_core import protocol

from .hostile_cases import CASES, Case, Scratch

ROOT = Path(__file__).resolve().parents[2]
ANSWER_S = 60.0  # a refusal is immediate; a model load on 2 busy cores is the slow part


@dataclass
class Outcome:
    answered: bool = False  # a hang when False
    clear: bool = False  # an error event with one of the case's codes and a message
    crashed: bool = False
    wrote_outside: bool = False
    generated: bool = False  # a progress or result event came first
    code: str = ""


OUTCOMES: dict[str, Outcome] = {}


def _tree(folder: Path) -> set[str]:
    return {str(p) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def scratch_root(tmp_path_factory, tiny_models, pictures) -> Any:
    root = tmp_path_factory.mktemp("hostile")
    models = {family: tiny_models(family)
              for family in ("sd15_controlnet", "sd2_depth2img", "sdxl_controlnet")}
    return root, models, pictures["depth"]


def _answer(backend, case: Case, job_id: str | None) -> tuple[list[dict], bool]:
    """Events up to the case's answer; (events, answered)."""
    seen: list[dict] = []
    while True:
        try:
            event = backend.next_event(timeout=ANSWER_S)
        except queue.Empty:
            return seen, False
        except AssertionError:  # the backend exited: a crash, counted by the caller
            return seen, True
        if case.job and event.get("id") != job_id:
            continue
        if not case.job and event["type"] not in (protocol.ERROR, protocol.RESULT):
            continue
        seen.append(event)
        if event["type"] in (protocol.ERROR, protocol.RESULT, protocol.CANCELLED):
            return seen, True


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_hostile_input_gets_a_clear_error_and_the_backend_keeps_serving(
        backend, scratch_root, case):
    root, models, depth = scratch_root
    folder = root / f"case{CASES.index(case)}"
    folder.mkdir()
    out = folder / "out"
    model = {"family": "sd15_controlnet", "base": str(models["sd15_controlnet"]["base"]),
             "controlnet": str(models["sd15_controlnet"]["controlnet"])}
    job_id = f"hostile{CASES.index(case)}"
    job = {"type": protocol.GENERATE, "id": job_id, "model": model, "prompt": "a house",
           "seed": 1, "steps": 2, "guidance": 3.0, "width": 64, "height": 64,
           "control_image": str(depth), "output_dir": str(out), "preview": False}
    line = case.line(Scratch(folder=folder, job=job, models=models, depth=depth))
    before_root, before_repo = _tree(root), set(p.name for p in ROOT.iterdir())
    outcome = OUTCOMES.setdefault(case.name, Outcome())

    assert backend.process.stdin is not None
    backend.process.stdin.buffer.write(line)
    backend.process.stdin.buffer.flush()
    events, outcome.answered = _answer(backend, case, job_id)
    outcome.crashed = backend.process.poll() is not None
    final = events[-1] if events else {}
    outcome.code = final.get("code", final.get("type", ""))
    outcome.generated = any(e["type"] in (protocol.PROGRESS, protocol.RESULT) for e in events)
    outcome.clear = (final.get("type") == protocol.ERROR and final.get("code") in case.codes
                     and bool(final.get("message")))
    written = {p for p in _tree(root) - before_root if not p.startswith(str(out))}
    written |= {p for p in set(p.name for p in ROOT.iterdir()) - before_repo}
    outcome.wrote_outside = bool(written)
    shutil.rmtree(out, ignore_errors=True)

    assert outcome.answered, f"no answer in {ANSWER_S:.0f} s: the backend hangs"
    assert not outcome.crashed, "the backend exited"
    assert not outcome.generated, f"it generated before refusing: {events}"
    assert outcome.clear, f"expected {case.codes}, got {final}"
    assert not outcome.wrote_outside, f"wrote outside the job folder: {written}"
    assert backend.hello()["type"] == protocol.READY  # and keeps serving


def test_the_corpus_is_large_and_every_case_was_survived():
    assert len(CASES) >= 150, len(CASES)
    assert len({c.name for c in CASES}) == len(CASES), "case names must be unique"
    tried = [OUTCOMES[c.name] for c in CASES if c.name in OUTCOMES]
    table = {"tried": len(tried), "clear errors": sum(o.clear for o in tried),
             "crashes": sum(o.crashed for o in tried),
             "hangs": sum(not o.answered for o in tried),
             "generated first": sum(o.generated for o in tried),
             "writes outside": sum(o.wrote_outside for o in tried)}
    print("\nhostile inputs:", ", ".join(f"{k} {v}" for k, v in table.items()))
    if len(tried) < len(CASES):
        pytest.skip("run the whole module to count every case")
    assert table["clear errors"] == table["tried"] == len(CASES)
