"""The Hugging Face Cache preference: a home folder or a hub folder, both understood."""

from __future__ import annotations

from pathlib import Path

from t2i_core.environment import hf_cache_environment


def test_a_home_folder_sets_home_and_its_hub(tmp_path: Path):
    home = tmp_path / "huggingface"
    (home / "hub" / "models--org--name").mkdir(parents=True)
    assert dict(hf_cache_environment(str(home))) == {
        "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub")}


def test_a_new_folder_is_taken_as_the_home_the_tooltip_names(tmp_path: Path):
    assert dict(hf_cache_environment(str(tmp_path / "hf"))) == {
        "HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub")}


def test_a_hub_folder_is_used_as_the_hub_cache(tmp_path: Path):
    named_hub = tmp_path / "huggingface" / "hub"
    named_hub.mkdir(parents=True)
    assert dict(hf_cache_environment(str(named_hub))) == {"HF_HUB_CACHE": str(named_hub)}
    # A hub folder under another name is recognised by the cached repos in it.
    other = tmp_path / "models"
    (other / "models--stable-diffusion-v1-5--stable-diffusion-v1-5").mkdir(parents=True)
    assert dict(hf_cache_environment(str(other))) == {"HF_HUB_CACHE": str(other)}


def test_the_home_gives_the_same_lookups_as_huggingface_hub(tmp_path: Path, monkeypatch):
    """What huggingface_hub itself derives from HF_HOME is the hub folder we pass."""
    import importlib

    import pytest
    constants = pytest.importorskip("huggingface_hub.constants")
    home = tmp_path / "hf-home"
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    try:
        derived = importlib.reload(constants).HF_HUB_CACHE
        assert dict(hf_cache_environment(str(home)))["HF_HUB_CACHE"] == derived
    finally:
        monkeypatch.undo()
        importlib.reload(constants)
