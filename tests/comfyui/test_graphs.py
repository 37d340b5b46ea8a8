"""The graphs per family against the real ComfyUI 0.3.64's schema (its GET /object_info,
recorded by dump_object_info.py), discovery on that schema, model references; and, with a real
ComfyUI (T2I_TEST_COMFYUI / T2I_TEST_COMFYUI_PYTHON), the SD 1.5 graph run on it with the tiny
checkpoint and ControlNet."""

from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from comfy_bridge.families import (
    FOLDERS,
    NOT_OFFERED,
    TINY_CHECKPOINT,
    TINY_CONTROLNET,
    ServerInfo,
    arch_from_name,
    missing_message,
    model_entries,
    preset_files,
    required_nodes,
    resolve_reference,
    role_folders,
    runnable,
)
from comfy_bridge.graphs import SAMPLERS, Uploads, build_graph
from t2i_core import png
from t2i_core.presets import FAMILY_INFO, PRESETS, REFERENCES, RENDER, TINY_COMFYUI_LORA
from t2i_core.protocol import SCHEDULERS, GenerateRequest, parse_generate

from .schema_check import graph_errors

SCHEMA: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "object_info_0.3.64.json").read_text())
RECORDED = ServerInfo.from_object_info(SCHEMA)
UPLOADS = Uploads(control="t2i_job_control.png", init="t2i_job_init.png",
                  mask="t2i_job_mask.png",
                  references=("t2i_job_reference0.png", "t2i_job_reference1.png",
                              "t2i_job_reference2.png"))
LORA_FILES = ("style_a.safetensors", "styles\\style_b.safetensors")
# Every loader input that lists a folder's files (the server fills them all from the folder).
_LISTS = {"text_encoders": (("CLIPLoader", "clip_name"), ("DualCLIPLoader", "clip_name1"),
                            ("DualCLIPLoader", "clip_name2")),
          "loras": (("LoraLoader", "lora_name"), ("LoraLoaderModelOnly", "lora_name"))}
RUNS_ON_0364 = ["sd15_controlnet", "sdxl_controlnet", "sdxl_controlnet_union", "flux_depth",
                "flux_controlnet", "qwen_image_controlnet", "qwen_image_edit", "flux_kontext"]


def with_files(server: ServerInfo, files: dict[str, list[str]]) -> ServerInfo:
    """The server with more model files (folder name -> names) and the job's uploads."""
    choices = dict(server.choices)
    folders = {folder.name: folder for folder in FOLDERS}
    for name, extra in files.items():
        folder = folders[name]
        for key in ((folder.node, folder.input), *_LISTS.get(name, ())):
            choices[key] = tuple(dict.fromkeys(choices.get(key, ()) + tuple(extra)))
    uploads = (UPLOADS.control, UPLOADS.init, UPLOADS.mask, *UPLOADS.references)
    for key in (("LoadImage", "image"), ("LoadImageMask", "image")):
        choices[key] = tuple(uploads)
    return ServerInfo(server.nodes, choices)


def preset_server() -> ServerInfo:
    """The recorded server holding the first conventional file of every preset's weights
    (what a user who downloaded the ComfyUI examples' files has), plus two LoRAs."""
    files: dict[str, list[str]] = {
        "loras": list(LORA_FILES),
        "model_patches": ["qwen_image_depth_diffsynth_controlnet.safetensors"]}
    for preset in PRESETS:
        for role, names in preset_files(preset.name).items():
            for folder in role_folders(preset.family, role, preset.weights.get(role, "")):
                files.setdefault(folder.name, []).append(names[0])
    return with_files(RECORDED, files)


SERVER = preset_server()


def request(family: str, **fields: Any) -> GenerateRequest:
    preset = next(p for p in PRESETS if p.family == family)
    message = {"type": "generate", "id": "job-7", "model": preset.model_spec(),
               "prompt": "a stone cottage", "negative_prompt": "blurry", "seed": 42,
               "steps": preset.steps, "guidance": preset.guidance,
               "control_strength": preset.control_strength, "width": 1024, "height": 768,
               "control_image": "/jobs/job-7/depth.png", "output_dir": "/jobs/job-7"}
    model = fields.pop("model", None)
    if model:
        message["model"] = {**message["model"], **model}
    message.update(fields)
    return parse_generate(message)


def uploads_for(job: GenerateRequest) -> Uploads:
    """What the bridge uploads for the job: its pictures, no more."""
    return Uploads(control=UPLOADS.control, init=UPLOADS.init if job.init_image else None,
                   mask=UPLOADS.mask if job.mask_image else None,
                   references=UPLOADS.references[:len(job.reference_images)])


def graph_of(family: str, server: ServerInfo | None = None, **fields: Any
             ) -> tuple[dict[str, dict], str]:
    job = request(family, **fields)
    return build_graph(job, uploads_for(job), SERVER if server is None else server)


def _variants() -> list[tuple[str, str, dict[str, Any]]]:
    cases = []
    for family in [f for f in FAMILY_INFO if f not in NOT_OFFERED]:
        info = FAMILY_INFO[family]
        cases.append((family, "plain", {}))
        cases.append((family, "odd size", {"width": 200, "height": 136}))
        cases.append((family, "loras", {"loras": [
            {"path": LORA_FILES[0], "weight": 0.8}, {"path": "styles/style_b.safetensors",
                                                     "weight": -0.5}]}))
        if RENDER in info.inputs:
            cases.append((family, "init", {"init_image": "/jobs/job-7/render.png",
                                           "strength": 0.6}))
        if info.inpaint:
            cases.append((family, "mask", {"init_image": "/jobs/job-7/render.png",
                                           "mask_image": "/jobs/job-7/mask.png"}))
        if REFERENCES in info.inputs:
            cases.append((family, "references", {"reference_images": [
                f"/jobs/job-7/ref{i}.png" for i in range(3)]}))
        if "vae" in info.optional_roles:
            parts = {role: name for role, name in preset_parts(family).items()
                     if role in info.optional_roles}
            cases.append((family, "named parts", {"model": parts}))
        if info.takes_scheduler:
            cases += [(family, f"scheduler {s}", {"scheduler": s}) for s in SCHEDULERS]
    cases.append(("qwen_image_controlnet", "DiffSynth model patch", {"model": {
        "controlnet": "qwen_image_depth_diffsynth_controlnet.safetensors"}}))
    return cases


def preset_parts(family: str) -> dict[str, str]:
    preset = next(p for p in PRESETS if p.family == family)
    return {role: names[0] for role, names in preset_files(preset.name).items()}


@pytest.mark.parametrize(("family", "case", "fields"), _variants(),
                         ids=[f"{f}-{c}" for f, c, _ in _variants()])
def test_graph_is_valid_on_comfyui_0364(family, case, fields):
    job = request(family, **fields)
    graph, save = build_graph(job, uploads_for(job), SERVER)
    absent = required_nodes(family, job) - SERVER.nodes
    runs = family in RUNS_ON_0364
    assert runs == (not absent), absent
    # A family 0.3.64 cannot run also lacks its newer combo values (CLIPLoader type "flux2"):
    # its graph is checked for structure and types only.
    assert graph_errors(graph, SCHEMA, SERVER, absent, check_combos=runs) == []
    assert {node["class_type"] for node in graph.values()} <= required_nodes(family, job)
    assert graph[save]["class_type"] == "SaveImage"
    assert "job-7" in graph[save]["inputs"]["filename_prefix"]


def test_the_check_finds_what_comfyui_rejects():
    graph, _ = graph_of("sd15_controlnet")
    assert graph_errors(graph, SCHEMA, SERVER) == []
    ids = {node["class_type"]: node_id for node_id, node in graph.items()}
    broken = json.loads(json.dumps(graph))
    sampler = broken[ids["KSampler"]]["inputs"]
    del sampler["denoise"]
    sampler["steps"] = 0
    sampler["scheduler"] = "sometimes"
    sampler["positive"] = [ids["CheckpointLoaderSimple"], 0]  # a MODEL, not CONDITIONING
    sampler["latent_image"] = ["99", 0]
    broken[ids["ControlNetApplyAdvanced"]]["inputs"]["colour"] = 1
    broken["50"] = {"class_type": "ZImageFunControlnet", "inputs": {}}
    found = graph_errors(broken, SCHEMA, SERVER)
    k = f"KSampler (node {ids['KSampler']})"
    assert sorted(found) == sorted([
        f"{k}: required input 'denoise' missing", f"{k}: steps: 0 is below the minimum 1",
        f"{k}: scheduler: 'sometimes' is not one of the server's 9 choices",
        f"{k}: positive: wants CONDITIONING, linked to CheckpointLoaderSimple output 0 (MODEL)",
        f"{k}: latent_image: links to node 99, which is not in the graph",
        f"ControlNetApplyAdvanced (node {ids['ControlNetApplyAdvanced']}): no input 'colour'",
        "ZImageFunControlnet (node 50): no such node on the server"])


def _one(graph: dict, cls: str) -> dict:
    found = [node["inputs"] for node in graph.values() if node["class_type"] == cls]
    assert len(found) == 1, (cls, len(found))
    return found[0]


def _source(graph: dict, link: list) -> dict:
    return graph[link[0]]


def test_sd15_graph_carries_the_job_settings():
    job = request("sd15_controlnet", seed=9, steps=3, guidance=6.5, control_strength=0.4,
                  width=96, height=64)
    graph, _ = build_graph(job, uploads_for(job), SERVER)
    sampler = _one(graph, "KSampler")
    assert (sampler["seed"], sampler["steps"], sampler["cfg"], sampler["denoise"]) == \
        (9, 3, 6.5, 1.0)
    assert (sampler["sampler_name"], sampler["scheduler"]) == ("euler", "normal")
    applied = _one(graph, "ControlNetApplyAdvanced")
    assert applied["strength"] == 0.4
    scaled = _source(graph, applied["image"])  # the depth, scaled to the job's size
    assert (scaled["class_type"], scaled["inputs"]["width"], scaled["inputs"]["height"]) == \
        ("ImageScale", 96, 64)
    assert _source(graph, scaled["inputs"]["image"])["inputs"]["image"] == UPLOADS.control
    latent = _source(graph, sampler["latent_image"])
    assert latent["class_type"] == "EmptyLatentImage"
    assert (latent["inputs"]["width"], latent["inputs"]["height"]) == (96, 64)
    assert _one(graph, "CheckpointLoaderSimple")["ckpt_name"] == TINY_CHECKPOINT
    assert _one(graph, "ControlNetLoader")["control_net_name"] == TINY_CONTROLNET
    texts = sorted(n["inputs"]["text"] for n in graph.values()
                   if n["class_type"] == "CLIPTextEncode")
    assert texts == ["a stone cottage", "blurry"]


def test_loras_chain_in_order_into_the_sampler():
    job = request("sd15_controlnet", loras=[{"path": LORA_FILES[0], "weight": 0.8},
                                            {"path": "styles/style_b.safetensors",
                                             "weight": 0.3}])
    graph, _ = build_graph(job, uploads_for(job), SERVER)
    first = _source(graph, _one(graph, "KSampler")["model"])
    assert (first["class_type"], first["inputs"]["lora_name"], first["inputs"]["strength_model"]) \
        == ("LoraLoader", "styles\\style_b.safetensors", 0.3)  # the server's own spelling
    second = _source(graph, first["inputs"]["model"])
    assert (second["inputs"]["lora_name"], second["inputs"]["strength_clip"]) == \
        (LORA_FILES[0], 0.8)
    assert _source(graph, second["inputs"]["model"])["class_type"] == "CheckpointLoaderSimple"
    job = request("flux_depth", loras=[{"path": LORA_FILES[0], "weight": 0.8}])
    graph, _ = build_graph(job, uploads_for(job), SERVER)
    assert _source(graph, _one(graph, "KSampler")["model"])["class_type"] == \
        "LoraLoaderModelOnly"


def test_img2img_and_mask():
    graph, save = graph_of("sd15_controlnet", init_image="/j/render.png",
                                      strength=0.6)
    sampler = _one(graph, "KSampler")
    assert sampler["denoise"] == 0.6
    assert _source(graph, sampler["latent_image"])["class_type"] == "VAEEncode"
    assert "SetLatentNoiseMask" not in {n["class_type"] for n in graph.values()}
    graph, save = graph_of("sd15_controlnet", init_image="/j/render.png",
                                      mask_image="/j/mask.png")
    sampler = _one(graph, "KSampler")
    assert sampler["denoise"] == 1.0  # the protocol's default with a mask
    noise_mask = _source(graph, sampler["latent_image"])
    assert noise_mask["class_type"] == "SetLatentNoiseMask"
    assert _one(graph, "LoadImageMask") == {"image": UPLOADS.mask, "channel": "red"}
    pasted = _source(graph, graph[save]["inputs"]["images"])
    assert pasted["class_type"] == "ImageCompositeMasked"  # kept part: the init's pixels


def test_scheduler_mapping():
    for scheduler, pair in SAMPLERS.items():
        graph, _ = graph_of("sd15_controlnet", scheduler=scheduler)
        sampler = _one(graph, "KSampler")
        assert (sampler["sampler_name"], sampler["scheduler"]) == pair
    graph, _ = graph_of("flux_controlnet")
    sampler = _one(graph, "KSampler")
    assert (sampler["sampler_name"], sampler["scheduler"], sampler["cfg"]) == \
        ("euler", "simple", 1.0)


def test_family_specifics():
    graph, _ = graph_of("sdxl_controlnet_union")
    assert _one(graph, "SetUnionControlNetType")["type"] == "depth"
    assert _one(graph, "VAELoader")["vae_name"] == preset_parts("sdxl_controlnet_union")["vae"]

    graph, _ = graph_of("flux_depth", guidance=10.0)
    assert _one(graph, "FluxGuidance")["guidance"] == 10.0
    assert _one(graph, "DualCLIPLoader")["type"] == "flux"
    sampler = _one(graph, "KSampler")
    assert _source(graph, sampler["latent_image"])["class_type"] == \
        "InstructPixToPixConditioning"
    assert _source(graph, sampler["negative"])["class_type"] == "InstructPixToPixConditioning"

    graph, _ = graph_of("qwen_image_controlnet")  # InstantX
    assert "vae" in _one(graph, "ControlNetApplyAdvanced")
    graph, _ = graph_of("qwen_image_controlnet", model={
        "controlnet": "qwen_image_depth_diffsynth_controlnet.safetensors"})
    patched = _source(graph, _one(graph, "KSampler")["model"])
    assert patched["class_type"] == "QwenImageDiffsynthControlnet"
    assert patched["inputs"]["strength"] == 1.0

    graph, _ = graph_of("qwen_image_edit", init_image="/j/render.png")
    encoders = [n["inputs"] for n in graph.values()
                if n["class_type"] == "TextEncodeQwenImageEditPlus"]
    assert sorted(e["prompt"] for e in encoders) == ["a stone cottage", "blurry"]
    first = _source(graph, _source(graph, encoders[0]["image1"])["inputs"]["image"])
    assert first["inputs"]["image"] == UPLOADS.init  # the render, then the depth
    second = _source(graph, _source(graph, encoders[0]["image2"])["inputs"]["image"])
    assert second["inputs"]["image"] == UPLOADS.control

    kontext = [graph_of("flux_kontext", **fields)[0] for fields in (
        {}, {"init_image": "/j/render.png"})]
    pictures = [[n["inputs"]["image"] for n in graph.values() if n["class_type"] == "LoadImage"]
                for graph in kontext]
    assert pictures == [[UPLOADS.control], [UPLOADS.init]]  # the render, else the depth
    graph, _ = graph_of("flux_kontext", reference_images=["/j/a.png", "/j/b.png"])
    # explicit references replace the render and the depth
    assert len([n for n in graph.values() if n["class_type"] == "ReferenceLatent"]) == 2


def test_discovery_on_comfyui_0364():
    able, missing = runnable(RECORDED)
    assert able == RUNS_ON_0364
    assert missing == {"sd2_depth2img": [], "wan_vace": [],
                       "zimage_controlnet": ["ZImageFunControlnet"],
                       "flux2": ["EmptyFlux2LatentImage", "Flux2Scheduler"]}
    assert missing_message("flux2", missing["flux2"]) == (
        "this ComfyUI lacks EmptyFlux2LatentImage, Flux2Scheduler: update it or install the "
        "node pack that provides it")
    assert "not offered on ComfyUI" in missing_message("sd2_depth2img", [])
    with pytest.raises(ValueError, match="not offered on ComfyUI"):
        graph_of("sd2_depth2img")
    # a server without the model-patch nodes cannot run the DiffSynth path
    older = ServerInfo(RECORDED.nodes - {"QwenImageDiffsynthControlnet"}, RECORDED.choices)
    assert runnable(older)[1]["qwen_image_controlnet"] == ["QwenImageDiffsynthControlnet"]


def test_references_resolve_to_server_names():
    server = with_files(RECORDED, {"checkpoints": ["sd15\\dreamshaper_8.safetensors",
                                                    "v1-5-pruned-emaonly-fp16.safetensors"]})
    resolve = resolve_reference
    assert resolve("sd15_controlnet", "base", "tiny", server) == TINY_CHECKPOINT
    assert resolve("sd15_controlnet", "controlnet", "tiny", server) == TINY_CONTROLNET
    for spelling in ("sd15\\dreamshaper_8.safetensors", "sd15/dreamshaper_8.safetensors",
                     "checkpoints/sd15/dreamshaper_8.safetensors",
                     "/home/me/models/dreamshaper_8.safetensors"):
        assert resolve("sd15_controlnet", "base", spelling, server) == \
            "sd15\\dreamshaper_8.safetensors"
    # a preset's HF id: the conventional names, whichever the server has
    assert resolve("sd15_controlnet", "base", "stable-diffusion-v1-5/stable-diffusion-v1-5",
                   server) == "v1-5-pruned-emaonly-fp16.safetensors"
    with pytest.raises(ValueError) as missing:
        resolve("sd15_controlnet", "controlnet", "lllyasviel/control_v11f1p_sd15_depth", server)
    assert "control_v11f1p_sd15_depth.safetensors" in str(missing.value)
    assert "models/controlnet/" in str(missing.value)
    with pytest.raises(ValueError) as missing:
        resolve("flux_depth", "base", "my_flux.safetensors", server)
    assert "'my_flux.safetensors'" in str(missing.value)
    assert "models/diffusion_models/" in str(missing.value)
    with pytest.raises(ValueError, match="models/model_patches/"):
        resolve("zimage_controlnet", "controlnet", "fun.safetensors", server)
    with pytest.raises(ValueError, match="models/loras/"):
        resolve("sd15_controlnet", "lora", "nope.safetensors", server)
    with pytest.raises(ValueError, match=r"only SD 1\.5 has one"):
        resolve("flux_depth", "base", "tiny", server)
    # a split family's spec that names no VAE / text encoders gets the family's usual files
    flux = with_files(RECORDED, {"diffusion_models": ["flux1-depth-dev.safetensors"],
                                 "text_encoders": ["clip_l.safetensors",
                                                   "t5xxl_fp8_e4m3fn.safetensors"]})
    with pytest.raises(ValueError, match=r"put ae\.safetensors into its models/vae/ folder"):
        graph_of("flux_depth", server=flux)
    graph, _ = graph_of("flux_depth", server=with_files(flux, {"vae": ["ae.safetensors"]}))
    assert _one(graph, "DualCLIPLoader")["clip_name2"] == "t5xxl_fp8_e4m3fn.safetensors"
    assert _one(graph, "VAELoader")["vae_name"] == "ae.safetensors"
    # FLUX.2 dev and klein have their own text encoders
    for base, encoder in (("black-forest-labs/FLUX.2-dev", "mistral_3_small_flux2_bf16"),
                          ("flux2_dev_fp8mixed.safetensors", "mistral_3_small_flux2_bf16"),
                          ("black-forest-labs/FLUX.2-klein-4B", "qwen_3_4b")):
        graph, _ = graph_of("flux2", model={"base": base})
        assert _one(graph, "CLIPLoader")["clip_name"] == f"{encoder}.safetensors"


def test_model_entries_are_the_servers_files():
    entries = model_entries(SERVER)
    by_reference = {(e["path"].split("/")[0], e["reference"]): e for e in entries}
    tiny = by_reference[("checkpoints", TINY_CHECKPOINT)]
    assert (tiny["source"], tiny["role"], tiny["arch"]) == ("comfyui_server", "checkpoint",
                                                            "sd15")
    assert by_reference[("model_patches", "qwen_image_depth_diffsynth_controlnet"
                         ".safetensors")]["role"] == "controlnet"
    assert by_reference[("loras", "styles\\style_b.safetensors")]["name"] == \
        "style_b.safetensors"
    assert {e["role"] for e in entries} == {"checkpoint", "controlnet", "lora",
                                            "diffusion_model", "text_encoder", "vae"}
    # the conventional names say the arch (the model browser offers a file to its families)
    archs = {e["reference"]: e["arch"] for e in entries}
    for name, arch in (("sd_xl_base_1.0.safetensors", "sdxl"),
                       ("controlnet-union-sdxl-1.0-promax.safetensors", "sdxl_union"),
                       ("flux1-depth-dev.safetensors", "flux1_depth"),
                       ("flux1-dev-kontext_fp8_scaled.safetensors", "flux1"),
                       ("z_image_turbo_bf16.safetensors", "zimage"),
                       ("qwen_image_vae.safetensors", "qwen_vae"), ("ae.safetensors", "flux_vae"),
                       ("sdxl_vae_fp16_fix.safetensors", "sd_vae"), ("clip_l.safetensors", "clip"),
                       ("t5xxl_fp16.safetensors", "t5"), (LORA_FILES[0], "")):
        assert archs[name] == arch, name
    assert arch_from_name("checkpoints", "sd15\\dreamshaper_8.safetensors") == "sd15"
    assert arch_from_name("checkpoints", "dreamshaper_8.safetensors") == ""


# --- the real server ------------------------------------------------------------------------


def _depth_png(path: Path, ramp: str) -> None:
    """An 8-bit grey depth picture (near = white); ComfyUI 0.3.64's LoadImage reads a 16-bit
    PNG (PIL mode I;16) as if every value above 255 were white."""
    y, x = np.mgrid[0:64, 0:64] / 63.0
    value = x if ramp == "x" else 1.0 - y
    png.write_png(path, np.round(value * 255).astype(np.uint8))


def _run(url: str, graph: dict, save: str, timeout: float = 120.0) -> np.ndarray:
    body = json.dumps({"prompt": graph, "client_id": "t2i-test-graphs"}).encode()
    post = urllib.request.Request(url + "/prompt", body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(post, timeout=30) as response:
            prompt_id = json.load(response)["prompt_id"]
    except urllib.error.HTTPError as exc:
        raise AssertionError(exc.read().decode(errors="replace")) from None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{url}/history/{prompt_id}", timeout=10) as response:
            entry = json.load(response).get(prompt_id)
        if entry and entry.get("status", {}).get("completed") is not None:
            assert entry["status"]["status_str"] == "success", entry["status"]
            image = entry["outputs"][save]["images"][0]
            query = urllib.parse.urlencode({k: image[k] for k in ("filename", "subfolder",
                                                                  "type")})
            with urllib.request.urlopen(f"{url}/view?{query}", timeout=30) as response:
                return np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB"))
        time.sleep(0.2)
    raise AssertionError(f"no result in {timeout:.0f} s")


@pytest.fixture
def live_server(comfyui):
    """The session's one ComfyUI (conftest.py): never two servers at once."""
    server, _proxy = comfyui
    if server.process is None or server.process.poll() is not None:
        server.start()  # a bridge case before killed it
    return server


def test_sd15_graph_runs_on_the_real_server(live_server):
    url = live_server.url
    with urllib.request.urlopen(url + "/object_info", timeout=60) as response:
        info = ServerInfo.from_object_info(json.load(response))
    assert "sd15_controlnet" in runnable(info)[0]
    inputs = live_server.work / "input"
    for name, ramp in (("depth_x.png", "x"), ("depth_y.png", "y")):
        _depth_png(inputs / name, ramp)
    pictures = []
    for depth in ("depth_x.png", "depth_y.png"):
        job = request("sd15_controlnet", steps=2, width=64, height=64, id=f"graphs-{depth[6]}",
                      model={"base": "tiny", "controlnet": "tiny"})
        graph, save = build_graph(job, Uploads(control=depth), info)
        pictures.append(_run(url, graph, save).astype(float))
    assert pictures[0].shape[:2] == (64, 64)
    assert pictures[0].std() > 1.0  # a picture, not a flat fill
    assert np.abs(pictures[0] - pictures[1]).mean() > 1.0  # the depth reaches the result

    # a LoRA (kohya format) through LoraLoader: every key lands, and it changes the picture
    job = request("sd15_controlnet", steps=2, width=64, height=64, id="graphs-lora",
                  model={"base": "tiny", "controlnet": "tiny"},
                  loras=[{"path": TINY_COMFYUI_LORA, "weight": 1.0}])
    graph, save = build_graph(job, Uploads(control="depth_x.png"), info)
    with_lora = _run(url, graph, save).astype(float)
    assert np.abs(with_lora - pictures[0]).mean() > 1.0
    assert "lora key not loaded" not in live_server.log_path.read_text(errors="replace")

    # inpainting: white regenerates, black keeps the init picture's very pixels
    init = np.zeros((48, 48, 3), np.uint8)
    init[..., 0], init[:, 24:, 2] = 200, 90
    mask = np.zeros((48, 48), np.uint8)
    mask[:, :24] = 255
    png.write_png(inputs / "init.png", init)
    png.write_png(inputs / "mask.png", mask)
    job = request("sd15_controlnet", steps=2, width=48, height=48, id="graphs-mask",
                  init_image="/j/init.png", mask_image="/j/mask.png",
                  model={"base": "tiny", "controlnet": "tiny"})
    graph, save = build_graph(job, Uploads(control="depth_x.png", init="init.png",
                                           mask="mask.png"), info)
    result = _run(url, graph, save)
    assert np.array_equal(result[:, 24:], init[:, 24:])
    assert np.abs(result[:, :24].astype(float) - init[:, :24]).mean() > 5.0


# A model file input is the one thing a real server may reject in a valid graph of ours: it
# lacks the file (here: all but the tiny ones).
_MODEL_INPUTS = {"ckpt_name", "control_net_name", "lora_name", "unet_name", "clip_name",
                 "clip_name1", "clip_name2", "vae_name", "name"}


def _post(url: str, body: dict) -> None:
    request = urllib.request.Request(url, json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).close()


def test_every_graph_passes_the_real_servers_validation(live_server):
    """POST /prompt validates a graph as the server will run it: its node errors may only be
    missing model files; a family the server lacks nodes for is refused as an invalid prompt."""
    for name in (UPLOADS.control, UPLOADS.init, UPLOADS.mask, *UPLOADS.references):
        png.write_png(live_server.work / "input" / name, np.zeros((64, 64), np.uint8))
    for family, case, fields in _variants():
        job = request(family, **fields)
        graph, _ = build_graph(job, uploads_for(job), SERVER)
        body = json.dumps({"prompt": graph, "client_id": "t2i-test-graphs"}).encode()
        post = urllib.request.Request(live_server.url + "/prompt", body,
                                      {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(post, timeout=30) as response:
                queued = json.load(response)
        except urllib.error.HTTPError as exc:
            answer = json.loads(exc.read())
        else:  # all its files are on the server (the tiny SD 1.5 jobs): stop it
            _post(live_server.url + "/queue", {"delete": [queued["prompt_id"]]})
            _post(live_server.url + "/interrupt", {})
            assert family == "sd15_controlnet" and not job.loras, (family, case)
            continue
        if family not in RUNS_ON_0364:
            assert answer["error"]["type"] == "invalid_prompt", (family, case, answer)
            continue
        problems = [(node["class_type"], error["type"],
                     error.get("extra_info", {}).get("input_name"))
                    for node in answer["node_errors"].values() for error in node["errors"]]
        assert problems, (family, case, answer)
        assert all(kind == "value_not_in_list" and name in _MODEL_INPUTS
                   for _, kind, name in problems), (family, case, problems)
