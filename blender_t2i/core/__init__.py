"""Pure Python and numpy: nothing here imports bpy or torch (tests/core runs it in plain Python)."""
