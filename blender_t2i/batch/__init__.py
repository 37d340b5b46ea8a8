"""Batch runs over frames, headless (driven by scripts/t2i_batch.py)."""
