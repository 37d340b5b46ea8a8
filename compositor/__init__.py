"""Depth capture: compositor graphs and EXR read-back (bpy) and depth encoding (pure numpy)."""
