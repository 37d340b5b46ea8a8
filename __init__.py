"""blender_t2i: depth-conditioned image generation for Blender. Registration only."""

from . import operators
from .blender_t2i.generation import queue_driver, render_hooks
from .blender_t2i.scene import history, preferences, settings
from .blender_t2i.ui import panel, preferences_ui
from .t2i_core import job_queue

# preferences_ui first: it gives the preferences their draw() before they register.
_MODULES = (preferences_ui, preferences, history, settings, operators, panel, queue_driver,
            render_hooks)


def register() -> None:
    for module in _MODULES:
        module.register()


def unregister() -> None:
    for module in reversed(_MODULES):
        module.unregister()
    job_queue.reset_job_queue()  # no backend outlives the add-on
