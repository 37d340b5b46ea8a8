"""The Blender-facing layers, above t2i_core (pure) and compositor (depth capture, node
graphs), each importing only the ones below it (docs/architecture.md):

scene/       Blender data: scene settings, preferences, history (PropertyGroups)
results/     result files become images, overlays, projections and textures
generation/  one job from the scene: capture, request, submit, apply what comes back
batch/       frame ranges headless (scripts/t2i_batch.py)
ui/          every draw(): the sidebar panel and the preferences

This __init__ does nothing: the extension's root __init__ registers.
"""
