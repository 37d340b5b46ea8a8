"""Put the user's scene back exactly, also when a capture fails half-way.

Every change a capture or preview makes goes through a `Restorer`: it remembers the first
value it overwrote (per owner and attribute) and any undo step registered with `on_restore`,
and undoes everything in reverse order. Reverse order matters: settings changed after the
engine switch are put back while that engine is still active, the engine last.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import bpy

log = logging.getLogger("blender_t2i")


class Restorer:
    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []
        self._seen: set[tuple[int, str]] = set()

    def set(self, owner: Any, attr: str, value: Any) -> None:
        """setattr, remembering the value it replaces the first time."""
        key = (owner.as_pointer(), attr)
        if key not in self._seen:
            self._seen.add(key)
            old = getattr(owner, attr)
            self._undo.append(lambda: _put_back(owner, attr, old))
        if getattr(owner, attr) != value:
            setattr(owner, attr, value)

    def set_many(self, owner: Any, **values: Any) -> None:
        for attr, value in values.items():
            self.set(owner, attr, value)

    def set_if_present(self, owner: Any, **values: Any) -> None:
        """For settings that some Blender versions or engines lack."""
        for attr, value in values.items():
            if hasattr(owner, attr):
                self.set(owner, attr, value)

    def on_restore(self, undo: Callable[[], None]) -> None:
        self._undo.append(undo)

    def restore(self) -> None:
        """Undo everything; one failing step does not stop the others."""
        first_error: BaseException | None = None
        while self._undo:
            undo = self._undo.pop()
            try:
                undo()
            except Exception as exc:
                log.exception("restoring the scene after a depth capture failed")
                first_error = first_error or exc
        self._seen.clear()
        if first_error is not None:
            raise first_error


def _put_back(owner: Any, attr: str, old: Any) -> None:
    if getattr(owner, attr) != old:
        setattr(owner, attr, old)


@contextmanager
def restoring() -> Iterator[Restorer]:
    """A Restorer that undoes its changes when the block ends, however it ends."""
    restorer = Restorer()
    try:
        yield restorer
    finally:
        restorer.restore()


def remove_new_render_result_on_restore(restorer: Restorer) -> None:
    """A render creates the "Render Result" image; one that did not exist before is removed
    when the restorer restores, so our renders leave no new datablock."""
    if not any(image.type == "RENDER_RESULT" for image in bpy.data.images):
        restorer.on_restore(_remove_render_results)


def _remove_render_results() -> None:
    for image in [i for i in bpy.data.images if i.type == "RENDER_RESULT"]:
        bpy.data.images.remove(image)
