"""The generator process (run as `python -m backend`) and the stdlib-only parts the add-on shares.

The add-on imports only `protocol` and `presets` (stdlib). Everything else (server, runner,
families, weights, devices, preview, tiny) runs in the backend process, which alone imports
torch/diffusers.
"""

__version__ = "0.2.0"
