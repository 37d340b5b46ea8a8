"""The generator process (run as `python -m backend`) and the stdlib-only parts the add-on shares.

Only the backend process imports torch/diffusers, and only from modules the add-on never imports
(runner, families, tiny_models, devices).
"""

__version__ = "0.1.0"
