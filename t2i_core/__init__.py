"""The pure package: Python and numpy only, nothing here imports bpy or torch.

The protocol and presets both sides share, building and validating requests, the record of a
job, the backend process and the job queue that owns it, the batch plan, a farm shot's plan and
shared folder and a worker's exit statuses, PNG/EXR and atomic file writing, projection maths,
depth encoding, and motion between frames (flow, warp and occlusion from the vector pass). The
add-on imports it from every layer; the backend process imports it and nothing else of the
add-on (docs/architecture.md).
"""
