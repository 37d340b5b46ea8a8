"""One record of a job: the sidecar JSON, the history's settings and the PNG text agree."""

from __future__ import annotations

import json

from t2i_src.t2i_core import job_request
from t2i_src.t2i_core.job_record import SETTINGS, JobRecord, addon_png_text
from t2i_src.t2i_core.job_request import JobSettings
from t2i_src.t2i_core.presets import get_preset
from t2i_src.t2i_core.protocol import parse_generate

TINY = get_preset("tiny-sd15-depth")


def _record() -> JobRecord:
    settings = JobSettings(preset=TINY, prompt="a barn", negative_prompt="fog", seed=9,
                           steps=4, guidance=6.5, control_strength=0.8, size=(96, 64))
    request = job_request.build_request(
        "j1", settings, "/jobs/j1_depth.png", "/jobs",
        metadata=addon_png_text(TINY.name, (1.5, 40.0)))
    return JobRecord.from_request(parse_generate(request), TINY.name, (1.5, 40.0))


def test_the_record_survives_its_json_and_keeps_the_sidecar_keys():
    record = _record().finished({"paths": ["/jobs/j1.png"], "seed": 9,
                                 "timings": {"generate": 1.25}, "peak_memory": None},
                                capture=0.123456)
    text = record.to_json()
    assert JobRecord.from_json(text) == record
    data = json.loads(text)
    assert data["model"] == "tiny-sd15-depth" and data["model_spec"]["family"]
    assert data["size"] == [96, 64] and data["depth_range"] == [1.5, 40.0]
    assert data["result"] == "/jobs/j1.png" and data["depth"] == "/jobs/j1_depth.png"
    assert data["timings"] == {"capture": 0.1235, "generate": 1.25}


def test_history_settings_and_png_text_come_from_the_same_fields():
    record = _record()
    settings = record.settings()
    assert tuple(settings) == SETTINGS
    text = record.png_text()
    assert text["t2i:prompt"] == settings["prompt"] == "a barn"
    assert text["t2i:seed"] == str(settings["seed"])
    assert text["t2i:size"] == "96x64" and text["t2i:model"] == "tiny-sd15-depth"
    assert text["t2i:depth_range"] == "1.5-40"


def test_what_the_backend_writes_plus_the_addon_metadata_is_the_whole_record():
    """The backend knows only the request; the add-on's metadata adds the rest."""
    record = _record()
    backend_side = JobRecord.from_request(parse_generate(job_request.build_request(
        "j1", JobSettings(preset=TINY, prompt="a barn", negative_prompt="fog", seed=9,
                          steps=4, guidance=6.5, control_strength=0.8, size=(96, 64)),
        "/jobs/j1_depth.png", "/jobs")))
    written = {**backend_side.png_text(), **addon_png_text(record.model, record.depth_range)}
    assert written == record.png_text()


def _parse_infotext(text: str) -> tuple[str, str, dict[str, str]]:
    """Read a `parameters` chunk the way A1111's infotext parser does: the last line holds
    `Key: value` pairs (quoted values may hold commas), the line before may be the negative."""
    import re

    lines = text.split("\n")
    pairs = dict(re.findall(r'\s*([\w ]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)', lines[-1]))
    negative = ""
    if len(lines) > 2 and lines[-2].startswith("Negative prompt: "):
        negative = lines[-2][len("Negative prompt: "):]
        lines = lines[:-1]
    return "\n".join(lines[:-1]), negative, {k: v.strip() for k, v in pairs.items()}


def test_the_parameters_chunk_is_a1111_infotext():
    record = _record()
    prompt, negative, pairs = _parse_infotext(record.png_text("EulerAncestralDiscreteScheduler")
                                              ["parameters"])
    assert (prompt, negative) == ("a barn", "fog")
    assert pairs["Steps"] == "4" and pairs["Sampler"] == "Euler a"
    assert pairs["CFG scale"] == "6.5" and pairs["Seed"] == "9" and pairs["Size"] == "96x64"
    assert pairs["Model"] == "tiny-sd15-depth"
    assert json.loads(pairs["ControlNet 0"]) == "Module: none, Model: tiny, Weight: 0.8"


def test_parameters_name_the_loras_and_the_chosen_scheduler_without_a_negative():
    from dataclasses import replace

    record = replace(_record(), negative_prompt="", scheduler="dpmpp_2m_karras", model="",
                     model_spec={"family": "sd15_controlnet",
                                 "base": "/models/Stable-diffusion/dreamshaper_8.safetensors"},
                     loras=(("/models/Lora/paper, cut.safetensors", 0.75),))
    text = record.png_text()["parameters"]
    prompt, negative, pairs = _parse_infotext(text)
    assert prompt == "a barn <lora:paper, cut:0.75>" and negative == ""
    assert "Negative prompt" not in text
    assert pairs["Sampler"] == "DPM++ 2M" and pairs["Schedule type"] == "Karras"
    assert pairs["Model"] == "dreamshaper_8" and "ControlNet 0" not in pairs
