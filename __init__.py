"""blender_t2i: depth-conditioned image generation for Blender. Registration only."""

from . import operators
from .blender_t2i import (
    client,
    history,
    job_queue,
    job_updates,
    panel,
    preferences,
    preferences_ui,
    render_hooks,
    settings,
)

_MODULES = (preferences, preferences_ui, history, settings, operators, panel, job_updates,
            render_hooks)


def register() -> None:
    for module in _MODULES:
        module.register()


def unregister() -> None:
    for module in reversed(_MODULES):
        module.unregister()
    job_queue.reset_job_queue()
    client.shutdown_client()  # no backend outlives the add-on
