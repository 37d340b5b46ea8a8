"""The ComfyUI bridge: a process that speaks the add-on's protocol v1 (docs/protocol.md) on
stdin/stdout and runs each job on a ComfyUI server over its HTTP and WebSocket API.

`python -m comfy_bridge --url http://host:8188`. Standard library and t2i_core only, so it
runs in Blender's bundled Python with nothing installed (docs/comfyui.md).
"""

__version__ = "0.1.0"
