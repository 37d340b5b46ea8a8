"""bpy operators under `t2i.`: thin layers that read settings, call the core, report."""

from . import (
    animation,
    backend,
    capture,
    compositor_nodes,
    depth_preview,
    generate,
    history,
    models,
    outputs,
    views,
)

MODULES = (capture, depth_preview, generate, animation, backend, outputs, views, history,
           compositor_nodes, models)


def register() -> None:
    for module in MODULES:
        module.register()


def unregister() -> None:
    for module in reversed(MODULES):
        module.unregister()
