"""The model library on fake A1111 and ComfyUI installs filled with tiny real safetensors files
of every family, ControlNet, LoRA, VAE and text encoder kind (backend/tiny/model_files.py)."""

from __future__ import annotations

import hashlib
import json
import os
import time

import pytest
from safetensors import safe_open

from backend.tiny import model_files
from t2i_core import model_library as lib


@pytest.fixture
def installs(tmp_path):
    return model_files.write_fake_installs(tmp_path)


def _roots(installs, **more) -> lib.Roots:
    return lib.Roots(a1111=str(installs["a1111"]), comfyui=str(installs["comfyui"]), **more)


def test_the_fake_files_are_real_safetensors(installs, tmp_path):
    for relative, (layout, _metadata, _expected) in model_files.FILES.items():
        with safe_open(tmp_path / relative, "np") as handle:
            assert set(handle.keys()) == set(layout)


def test_every_file_gets_its_family_and_role(installs, tmp_path):
    library = lib.scan(_roots(installs))
    found = {os.path.relpath(e.path, tmp_path): e for e in library.entries}
    for relative, (_layout, _metadata, (role, arch, bases)) in model_files.FILES.items():
        entry = found.get(relative)
        assert entry is not None, f"{relative} not listed"
        assert (entry.role, entry.arch, entry.lora_bases) == (role, arch, bases), relative
    assert len(found) == len(model_files.FILES)


def test_source_says_which_install_a_file_came_from(installs, tmp_path):
    library = lib.scan(lib.Roots(comfyui=str(installs["comfyui"])))
    sources = {os.path.relpath(e.path, tmp_path).split("/")[0]: e.source
               for e in library.entries}
    # ComfyUI's yaml reaches the A1111 folders and the extra folder
    assert sources == {"a1111": "comfyui", "comfyui": "comfyui", "extra": "comfyui"}
    only_a1111 = lib.scan(lib.Roots(a1111=str(installs["a1111"])))
    assert {e.source for e in only_a1111.entries} == {"a1111"}
    assert not any("/comfyui/" in e.path for e in only_a1111.entries)


def test_broken_files_are_skipped_with_a_note(installs, tmp_path):
    library = lib.scan(_roots(installs))
    skipped = {os.path.relpath(path, tmp_path): why for path, why in library.skipped}
    assert set(skipped) == set(model_files.BROKEN)
    for relative, what in model_files.BROKEN.items():
        assert what in skipped[relative], (relative, skipped[relative])


def test_a_dangling_link_and_a_fifo_are_skipped_not_fatal(installs):
    loras = installs["a1111"] / "models/Lora"
    (loras / "moved.safetensors").symlink_to(loras / "no-such-file.safetensors")
    os.mkfifo(loras / "pipe.safetensors")  # opening it would block a scan for ever
    library = lib.scan(_roots(installs))
    skipped = dict(library.skipped)
    assert "cannot be read" in skipped[str(loras / "moved.safetensors")]
    assert "not a regular file" in skipped[str(loras / "pipe.safetensors")]
    assert library.find("teapot_sd15.safetensors") is not None  # the rest is listed


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_a_file_without_read_permission_is_skipped_not_fatal(installs):
    locked = installs["a1111"] / "models/Lora/teapot_sd15.safetensors"
    locked.chmod(0)
    try:
        library = lib.scan(_roots(installs))
    finally:
        locked.chmod(0o644)
    assert any(path == str(locked) and "Permission denied" in why
               for path, why in library.skipped)
    assert library.find(str(locked)) is None


def test_training_metadata_gives_trigger_words_and_tags(installs):
    library = lib.scan(_roots(installs))
    teapot = library.find("teapot_sd15.safetensors")
    assert teapot.trigger_words == ("sks teapot",)
    assert teapot.tags == ("sks teapot", "table", "studio light")
    assert teapot.base_model_hint == "sd15"
    flux = library.find("flux_peft.safetensors")
    assert flux.trigger_words == ("ohwx", "film grain")


def test_the_extra_model_paths_subset_of_yaml(installs):
    sections = lib.parse_extra_model_paths(
        (installs["comfyui"] / "extra_model_paths.yaml").read_text())
    assert sections["a111"]["loras"] == ["models/Lora", "models/LyCORIS"]
    assert sections["a111"]["base_path"] == ["../a1111/"]
    assert sections["mine"]["controlnet"] == ["control"]
    assert sections["mine"]["loras"] == ["lora"]


def test_a_warm_scan_reads_no_header_and_a_changed_file_is_read_again(installs, tmp_path):
    cache_file = tmp_path / "cache" / "library.json"
    cold = lib.scan(_roots(installs), lib.ScanCache(cache_file))
    assert cold.headers_read == len(model_files.FILES) + 3  # + the three broken .safetensors
    warm = lib.scan(_roots(installs), lib.ScanCache(cache_file))
    assert warm.headers_read == 0
    assert [e.to_json() for e in warm.entries] == [e.to_json() for e in cold.entries]
    assert warm.skipped == cold.skipped
    changed = installs["a1111"] / "models/Lora/sd2_style.safetensors"
    model_files.write_safetensors(changed, model_files.LORA_SDXL)
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 1))
    again = lib.scan(_roots(installs), lib.ScanCache(cache_file))
    assert again.headers_read == 1
    assert again.find(str(changed)).lora_bases == ("sdxl",)


def test_autov2_is_a1111s_hash_and_is_cached(installs, tmp_path):
    path = installs["a1111"] / "models/VAE/vae-ft-mse-840000.safetensors"
    cache = lib.ScanCache(tmp_path / "cache.json")
    value = lib.autov2(path, cache)
    assert value == hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    stored = json.loads((tmp_path / "cache.json").read_text())
    assert stored["files"][str(path)]["autov2"] == value
    path.chmod(0o000) if os.geteuid() != 0 else None  # cached: not read again
    try:
        if os.geteuid() != 0:
            assert lib.autov2(path, lib.ScanCache(tmp_path / "cache.json")) == value
    finally:
        path.chmod(0o644)


def test_hf_cache_repos_and_loose_files(installs, tmp_path):
    cache = tmp_path / "hf"
    commit = "0" * 40
    repo = cache / "models--someone--sd15-diffusers"
    (repo / "snapshots" / commit / "unet").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit / "model_index.json").write_text(
        json.dumps({"_class_name": "StableDiffusionPipeline"}))
    loras = cache / "models--someone--loras" / "snapshots" / commit
    model_files.write_safetensors(loras / "style" / "flux.safetensors",
                                  model_files.LORA_FLUX_KOHYA)
    library = lib.scan(lib.Roots(hf_cache=str(cache)))
    pipeline = library.find("someone/sd15-diffusers")
    assert (pipeline.role, pipeline.arch, pipeline.source) == ("checkpoint", "sd15", "hf")
    lora = library.find("someone/loras/style/flux.safetensors")
    assert lora.role == "lora" and lora.lora_bases == ("flux1", "flux1_depth")


def test_the_default_hf_cache_follows_huggingface_hubs_rule():
    assert lib.default_hf_cache({"HF_HUB_CACHE": "/a"}) == "/a"
    assert lib.default_hf_cache({"HF_HOME": "/h"}) == os.path.join("/h", "hub")
    assert lib.default_hf_cache({"XDG_CACHE_HOME": "/x"}) == os.path.join("/x", "huggingface",
                                                                          "hub")


def test_picks_of_the_wrong_family_are_refused_with_the_reason(installs):
    library = lib.scan(_roots(installs))
    sdxl = library.find("sdxl_base.safetensors")
    sd15 = library.find("sd15_layout.safetensors")
    assert lib.pick_problem(sd15, sd15.path, "sd15_controlnet", "base") is None
    problem = lib.pick_problem(sdxl, sdxl.path, "sd15_controlnet", "base", "SD 1.5 + ControlNet")
    assert "SDXL checkpoint" in problem and "SD 1.5 + ControlNet" in problem
    lora = library.find("teapot_sd15.safetensors")
    assert lib.pick_problem(lora, lora.path, "sd15_controlnet", "base") is not None
    union = library.find("xinsir-union-promax.safetensors")
    assert lib.pick_problem(union, union.path, "sdxl_controlnet_union", "controlnet") is None
    assert lib.pick_problem(union, union.path, "sdxl_controlnet", "controlnet") is not None
    assert "not on this machine" in lib.pick_problem(None, "/gone.safetensors",
                                                     "sd15_controlnet", "base")
    assert lib.lora_fits(lora, "sd15") is True
    assert lib.lora_fits(lora, "sdxl") is False
