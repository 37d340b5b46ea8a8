"""Shared by the operators (kept for imports; the logic lives in blender_t2i.generation)."""

from ..blender_t2i.generation import preset_and_size

__all__ = ["preset_and_size"]
