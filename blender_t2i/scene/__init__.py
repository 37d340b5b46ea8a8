"""Blender data the add-on keeps: per-scene settings, preferences and the result history."""
