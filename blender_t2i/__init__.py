"""The add-on's own code, in layers that import downwards only (docs/architecture.md):

core/        pure Python + numpy: protocol, presets, requests, records, the backend process and
             job queue, batch plan, file formats, projection maths, depth encoding. The backend
             process imports this package and nothing else of the add-on.
scene/       Blender data: scene settings, preferences, history (PropertyGroups)
results/     result files become images, overlays, projections and textures
generation/  one job from the scene: capture, request, submit, apply what comes back
batch/       frame ranges headless (scripts/t2i_batch.py)
ui/          every draw(): the sidebar panel and the preferences

This __init__ stays free of bpy so that core imports in any Python.
"""
