"""bpy operators under `t2i.`: thin layers that read settings, call the core, report."""

from . import capture, depth_preview, generate

MODULES = (capture, depth_preview, generate)


def register() -> None:
    for module in MODULES:
        module.register()


def unregister() -> None:
    for module in reversed(MODULES):
        module.unregister()
