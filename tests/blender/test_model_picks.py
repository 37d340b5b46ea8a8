"""Your own models in real Blender: the library lists a fake A1111 and ComfyUI install, the
panel's picks and LoRA stack generate through the backend (tiny SD 1.5 files that really load),
a LoRA's weight changes the picture, Reuse Settings puts the picks back, and a wrong-family
pick is refused before anything is captured. Also the batch script's --base/--lora flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest

from backend.tiny import model_files
from devtools.scenes import add_camera, add_plane

from .conftest import MODULE, backend_python
from .layout_probe import RecordingLayout, draw

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "t2i_batch.py"
COMMIT = "0123456789abcdef0123456789abcdef01234567"

# Builds, in the backend's Python (torch), the tiny SD 1.5 model, files of it that really load
# (an A1111-layout checkpoint, two LoRAs) and an HF cache holding it under the sd15-depth
# preset's repo ids: the single file's config comes from there, as for a user.
_BUILD = """
import json, os, sys
from pathlib import Path
from backend.tiny.models import build_sd15_controlnet
from backend.tiny.model_files import add_loadable_sd15
root = Path(sys.argv[1])
roles = build_sd15_controlnet(root / "tiny")
files = add_loadable_sd15(root, roles["base"])
hub = root / "hf" / "hub"
for repo, role in (("stable-diffusion-v1-5/stable-diffusion-v1-5", "base"),
                   ("lllyasviel/control_v11f1p_sd15_depth", "controlnet")):
    name = "models--" + repo.replace("/", "--")
    (hub / name / "snapshots").mkdir(parents=True)
    os.symlink(roles[role], hub / name / "snapshots" / sys.argv[2])
    (hub / name / "refs").mkdir()
    (hub / name / "refs" / "main").write_text(sys.argv[2])
    os.symlink(hub / name, root / "hf" / name)  # the cache whether hf/ or hf/hub is meant
print(json.dumps({k: str(v) for k, v in files.items()}))
"""


@pytest.fixture(scope="module")
def installs(tmp_path_factory):
    root = tmp_path_factory.mktemp("installs")
    paths = model_files.write_fake_installs(root)
    python = backend_python()
    if python is None:
        pytest.fail("no backend Python: set T2I_BACKEND_PYTHON to a Python with torch")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    built = subprocess.run([python, "-c", _BUILD, str(root), COMMIT], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    files = json.loads(built.stdout.strip().splitlines()[-1])
    return {**paths, **{k: Path(v) for k, v in files.items()}, "hf": root / "hf",
            "root": root}


@pytest.fixture
def library(addon, installs):
    """The preferences pointed at the fake installs; the session's library forgotten after."""
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.a1111_root = str(installs["a1111"])
    prefs.comfyui_root = str(installs["comfyui"])
    prefs.hf_cache = str(installs["hf"])
    state = addon.blender_t2i.scene.library
    state.forget()
    yield state
    state.forget()
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.a1111_root = prefs.comfyui_root = prefs.hf_cache = ""


def _scene_to_generate(scene):
    add_camera(scene)
    add_plane(scene)
    settings = scene.t2i
    settings.model_preset = "sd15-depth"
    settings.prompt = "a teapot"
    settings.use_render_size = False
    settings.width, settings.height, settings.steps, settings.seed = 64, 64, 2, 3
    return settings


def _result_pixels() -> np.ndarray:
    image = bpy.data.images["T2I Result"]
    return np.array(image.pixels[:], dtype=np.float32)


def test_rescan_lists_every_install_with_families_and_the_search_puts_fits_first(
        scene, library, installs):
    assert bpy.ops.t2i.rescan_models() == {"FINISHED"}
    found = library.scanned()
    for relative, (_layout, _meta, (role, arch, bases)) in model_files.FILES.items():
        entry = found.find(str(installs["root"] / relative))
        assert entry is not None, relative
        assert (entry.role, entry.arch, entry.lora_bases) == (role, arch, bases), relative
    tiny = found.find(str(installs["checkpoint"]))
    assert (tiny.role, tiny.arch) == ("checkpoint", "sd15")
    kohya = found.find(str(installs["kohya"]))
    assert kohya.lora_bases == ("sd15",) and kohya.trigger_words == ("tiny teapot",)
    repo = found.find("stable-diffusion-v1-5/stable-diffusion-v1-5")
    assert (repo.source, repo.role, repo.arch) == ("hf", "checkpoint", "sd15")
    skipped = {os.path.relpath(p, installs["root"]) for p, _why in found.skipped}
    assert skipped == set(model_files.BROKEN)
    candidates = library.search("base", "sd15_controlnet", "")
    labels = dict(candidates)
    fitting = [not label.endswith("another family") for _ref, label in candidates]
    assert fitting == sorted(fitting, reverse=True)  # those that fit come first
    assert candidates.index(next(c for c in candidates if "sdxl_base" in c[0])) > \
        candidates.index(next(c for c in candidates if "tiny_sd15" in c[0]))
    assert labels[str(installs["comfyui"] / "models/checkpoints/sdxl_base.safetensors")] \
        .endswith(": another family")
    assert all("lora" not in ref.lower() for ref, _label in candidates)
    assert library.search("lora", "sd15_controlnet", "kohya") == [
        (str(installs["kohya"]), "tiny_kohya (LoRA for SD 1.5)"),
        (str(installs["comfyui"] / "models/loras/flux_kohya.safetensors"),
         "flux_kohya (LoRA for FLUX.1): for another base"),
        (str(installs["comfyui"] / "models/loras/sdxl_kohya.safetensors"),
         "sdxl_kohya (LoRA for SDXL): for another base")]


def test_the_models_panel_shows_picks_trigger_words_and_a_lora_that_does_not_fit(
        addon, scene, library, installs):
    settings = _scene_to_generate(scene)
    panel = addon.blender_t2i.ui.panel
    assert "Library: not scanned yet" in draw(panel.T2I_PT_models.draw).texts()
    bpy.ops.t2i.rescan_models()
    settings.base_model = str(installs["checkpoint"])
    bpy.ops.t2i.lora_add()
    settings.loras[0].path = str(installs["kohya"])
    bpy.ops.t2i.lora_add()
    settings.loras[1].path = str(installs["comfyui"] / "models/loras/sdxl_kohya.safetensors")
    layout = draw(panel.T2I_PT_models.draw)
    texts = layout.texts()
    assert "tiny_sd15 (SD 1.5 checkpoint)" in texts
    assert "Made for SDXL, not SD 1.5" in texts  # the selected (second) LoRA
    assert "scheduler" in [args[1] for name, args, _k in layout.calls if name == "prop"]
    settings.lora_index = 0
    assert "Trigger: tiny teapot" in draw(panel.T2I_PT_models.draw).texts()
    row = RecordingLayout([])
    panel.T2I_UL_loras.draw_item(None, bpy.context, row, settings, settings.loras[0], 0,
                                 settings, "lora_index")
    assert "tiny_kohya" in row.texts()
    settings.base_model = str(installs["comfyui"] / "models/checkpoints/sdxl_base.safetensors")
    assert "sdxl_base (SDXL checkpoint): not for this preset" in \
        draw(panel.T2I_PT_models.draw).texts()
    settings.model_preset = "flux-controlnet-depth"  # flow matching: no scheduler choice
    drawn = [args[1] for name, args, _k in draw(panel.T2I_PT_models.draw).calls
             if name == "prop"]
    assert "scheduler" not in drawn
    assert "vae_model" in drawn  # ComfyUI keeps FLUX's VAE as a file of its own


def test_a_picked_checkpoint_and_lora_generate_and_the_weight_changes_the_result(
        addon, scene, library, installs, backend):
    settings = _scene_to_generate(scene)
    settings.base_model = str(installs["checkpoint"])
    assert bpy.ops.t2i.generate() == {"FINISHED"}
    plain = _result_pixels()
    bpy.ops.t2i.lora_add()
    settings.loras[0].path = str(installs["kohya"])
    settings.loras[0].weight = 1.0
    settings.scheduler = "euler"
    assert bpy.ops.t2i.generate() == {"FINISHED"}
    with_lora = _result_pixels()
    record = json.loads(Path(bpy.data.images["T2I Result"].filepath).with_suffix(".json")
                        .read_text())
    assert record["model_spec"]["base"] == str(installs["checkpoint"])
    assert record["loras"] == [[str(installs["kohya"]), 1.0]]
    assert record["scheduler"] == "euler"
    settings.loras[0].weight = 0.0
    assert bpy.ops.t2i.generate() == {"FINISHED"}
    zero = _result_pixels()
    settings.loras[0].enabled = False
    settings.scheduler = "default"
    assert bpy.ops.t2i.generate() == {"FINISHED"}
    again = _result_pixels()
    assert np.array_equal(again, plain)  # same seed, same base, no LoRA
    assert np.abs(with_lora - plain).max() > 0.05  # the LoRA at weight 1 changes it
    assert not np.array_equal(with_lora, zero)  # and its weight matters
    # Reuse Settings of the LoRA job (history: newest first) puts picks, LoRA, scheduler back
    settings.base_model = ""
    settings.loras.clear()
    assert bpy.ops.t2i.reuse_settings(index=2) == {"FINISHED"}
    assert settings.base_model == str(installs["checkpoint"])
    assert [(item.path, item.weight, item.enabled) for item in settings.loras] == [
        (str(installs["kohya"]), 1.0, True)]
    assert settings.scheduler == "euler"


def test_a_wrong_family_or_missing_pick_is_refused_before_any_capture(scene, library, installs):
    settings = _scene_to_generate(scene)
    cases = [
        ("base_model", str(installs["comfyui"] / "models/checkpoints/sdxl_base.safetensors"),
         r"'sdxl_base' is an SDXL checkpoint, which SD 1\.5 \+ ControlNet cannot use"),
        ("controlnet_model", str(installs["comfyui"] / "models/controlnet/"
                                                       "flux-controlnet-union-pro.safetensors"),
         "is a FLUX.1 ControlNet"),
        ("base_model", str(installs["root"] / "gone.safetensors"), "not on this machine"),
        ("base_model", str(installs["a1111"] / "models/Stable-diffusion/truncated.safetensors"),
         "truncated"),
    ]
    for prop, value, message in cases:
        setattr(settings, prop, value)
        with pytest.raises(RuntimeError, match=message):
            bpy.ops.t2i.generate()
        setattr(settings, prop, "")
        assert "T2I Depth" not in bpy.data.images  # nothing was captured
    settings.model_preset = "flux-controlnet-depth"
    settings.scheduler = "dpmpp_2m"
    with pytest.raises(RuntimeError, match="flow-matching scheduler only"):
        bpy.ops.t2i.generate()
    assert "T2I Depth" not in bpy.data.images


def _blend(path: Path) -> Path:
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 64, 64
    scene.frame_start = scene.frame_end = 1
    add_camera(scene)
    add_plane(scene)
    scene.t2i.prompt = "a teapot"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path


def _batch(installs, *args: str):
    env = {**os.environ, "HF_HUB_CACHE": str(installs["hf"] / "hub"),
           "T2I_A1111_ROOT": str(installs["a1111"])}
    command = [sys.executable, str(SCRIPT), *args, "--backend-python", backend_python()]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)


def test_batch_help_documents_the_model_flags(installs):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0
    for option in ("--base", "--controlnet", "--lora", "FILE:WEIGHT", "--scheduler"):
        assert option in proc.stdout


def test_batch_flags_pick_base_loras_and_scheduler(tmp_path, installs, backend):
    blend = _blend(tmp_path / "shot.blend")
    out = tmp_path / "out"
    proc = _batch(installs, str(blend), "--preset", "sd15-depth", "--steps", "2",
                  "--base", "tiny_sd15.safetensors", "--lora", f"{installs['kohya']}:0.7",
                  "--lora", str(installs["peft"]), "--scheduler", "euler",
                  "--depth-range", "auto", "--out", str(out / "f_#"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads((out / "f_1.json").read_text())
    assert record["model_spec"]["base"] == str(installs["checkpoint"])  # found by name
    assert record["loras"] == [[str(installs["kohya"]), 0.7], [str(installs["peft"]), 1.0]]
    assert record["scheduler"] == "euler"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["picks"] == {"base": str(installs["checkpoint"])}


def test_batch_refuses_a_wrong_family_base_and_warns_of_a_lora_for_another_base(
        tmp_path, installs, backend):
    blend = _blend(tmp_path / "shot.blend")
    out = tmp_path / "out"
    sdxl = str(installs["comfyui"] / "models/checkpoints/sdxl_base.safetensors")
    proc = _batch(installs, str(blend), "--preset", "sd15-depth", "--base", sdxl,
                  "--out", str(out / "f_#"))
    assert proc.returncode == 2
    assert "'sdxl_base' is an SDXL checkpoint" in proc.stderr
    assert not out.exists()  # refused before any render
    sdxl_lora = str(installs["comfyui"] / "models/loras/sdxl_kohya.safetensors")
    proc = _batch(installs, str(blend), "--preset", "sd15-depth", "--lora", f"{sdxl_lora}:0.5",
                  "--dry-run", "--out", str(out / "f_#"))
    assert proc.returncode == 0, proc.stderr
    assert "warning: the LoRA 'sdxl_kohya' was made for SDXL, not SD 1.5" in proc.stdout
    proc = _batch(installs, str(blend), "--lora", "x.safetensors:heavy", "--out", str(out))
    assert proc.returncode == 2 and "must be a number" in proc.stderr
