"""The backend's `models` request: the model library of the roots in its environment (as the
add-on starts it) or named in the request, answered while a job could run."""

from __future__ import annotations

import hashlib
import os

from backend.tiny import model_files
from t2i_core import protocol


def test_models_lists_the_installs_named_in_the_environment(start_backend, tmp_path,
                                                            monkeypatch):
    installs = model_files.write_fake_installs(tmp_path / "installs")
    monkeypatch.setenv(protocol.A1111_ROOT_ENV, str(installs["a1111"]))
    monkeypatch.setenv(protocol.COMFYUI_ROOT_ENV, str(installs["comfyui"]))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    backend = start_backend()
    vae = installs["a1111"] / "models/VAE/vae-ft-mse-840000.safetensors"
    backend.send({"type": protocol.MODELS, "id": "m1", "autov2": [str(vae)]})
    reply = backend.wait_for(protocol.MODELS)
    assert reply["id"] == "m1"
    found = {os.path.relpath(e["path"], tmp_path / "installs"): e for e in reply["entries"]}
    assert set(found) == set(model_files.FILES)
    for relative, (_layout, _meta, (role, arch, bases)) in model_files.FILES.items():
        entry = found[relative]
        assert (entry["role"], entry["arch"], tuple(entry["lora_bases"])) == (role, arch, bases)
    skipped = {os.path.relpath(s["path"], tmp_path / "installs") for s in reply["skipped"]}
    assert skipped == set(model_files.BROKEN)
    assert reply["autov2"] == {str(vae): hashlib.sha256(vae.read_bytes()).hexdigest()[:10]}
    assert backend.hello()["type"] == protocol.READY  # still serving


def test_models_takes_roots_from_the_request_and_refuses_bad_ones(backend, tmp_path):
    installs = model_files.write_fake_installs(tmp_path / "installs")
    backend.send({"type": protocol.MODELS, "comfyui": str(installs["comfyui"]),
                  "hf_cache": str(tmp_path / "none"), "a1111": ""})
    reply = backend.wait_for(protocol.MODELS)
    assert {e["source"] for e in reply["entries"]} == {"comfyui"}
    assert any(e["arch"] == "qwen_image" for e in reply["entries"])  # via the yaml
    backend.send({"type": protocol.MODELS, "id": "bad", "model_folders": "not-a-list"})
    error = backend.wait_for(protocol.ERROR)
    assert error["code"] == protocol.ErrorCode.BAD_REQUEST and error["id"] == "bad"
    assert "model_folders" in error["message"]


def test_the_backends_families_agree_with_the_shared_family_info():
    import importlib

    from backend import families

    for name in families.FAMILIES:
        module = importlib.import_module(f"backend.families.{name}")
        assert module.INFO.flow_match == module.FLOW_MATCH, name
        assert tuple(getattr(module, "OPTIONAL_ROLES", ())) == module.INFO.optional_roles, name
