"""The generator process, run as `python -m backend` by its own interpreter.

It alone imports torch and diffusers. Of the add-on it imports only the pure package
`t2i_core` (protocol, presets, PNG writing); the add-on never imports this package.
"""

__version__ = "0.2.0"
