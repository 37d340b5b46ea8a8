"""blender_t2i: depth-conditioned image generation for Blender. Registration only."""

from . import operators
from .blender_t2i import client, preferences, settings

_MODULES = (preferences, settings, operators)


def register() -> None:
    for module in _MODULES:
        module.register()


def unregister() -> None:
    for module in reversed(_MODULES):
        module.unregister()
    client.shutdown_client()  # no backend outlives the add-on
