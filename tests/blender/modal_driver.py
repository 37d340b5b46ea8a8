"""The modal operator driven by hand: headless Blender has no event loop to call modal()."""

from __future__ import annotations

import time
from types import SimpleNamespace

import bpy

TIMER_INTERVAL_S = 0.05


class ModalDriver:
    """Calls the operator's modal() with a real window timer, as the event loop would."""

    def __init__(self, operator_class):
        self.wm = bpy.context.window_manager
        self.timer = self.wm.event_timer_add(TIMER_INTERVAL_S, window=self.wm.windows[0])
        self.reports: list[tuple[str, str]] = []
        self.op = SimpleNamespace(_timer=self.timer, report=self._report)
        self.modal = operator_class.modal
        self.longest = 0.0
        self.ticks = 0

    def _report(self, level: set[str], message: str) -> None:
        self.reports.append((next(iter(level)), message))

    def event(self, kind: str = "TIMER") -> set[str]:
        event = SimpleNamespace(type=kind, value="PRESS", timer=self.timer)
        started = time.perf_counter()
        result = self.modal(self.op, bpy.context, event)
        self.longest = max(self.longest, time.perf_counter() - started)
        self.ticks += 1
        return result

    def run(self, limit_s: float = 120.0, on_tick=None) -> set[str]:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            result = self.event()
            if result != {"PASS_THROUGH"}:
                return result  # the modal removed its timer
            if on_tick is not None:
                on_tick(self)
            time.sleep(TIMER_INTERVAL_S)
        self.wm.event_timer_remove(self.timer)
        raise AssertionError("the modal operator did not finish")
