"""bpy operators under `t2i.`: thin layers that read settings, call the core, report."""

from . import backend, capture, depth_preview, generate, history, outputs

MODULES = (capture, depth_preview, generate, backend, outputs, history)


def register() -> None:
    for module in MODULES:
        module.register()


def unregister() -> None:
    for module in reversed(MODULES):
        module.unregister()
