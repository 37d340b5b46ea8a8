"""Every family: a tiny random model saved to disk, loaded back by the backend through the
loaders real weights use, run for 2 steps through the real protocol."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PIL import Image

from backend import families
from t2i_core import protocol

# (family, extra fields): the depth-only run of every family, plus the render/float-depth paths
CASES = [(name, {}) for name in families.FAMILIES] + [
    ("sd15_controlnet", {"init_image": "render", "strength": 0.6}),
    ("sdxl_controlnet", {"init_image": "render", "strength": 0.6}),
    ("sdxl_controlnet_union", {"init_image": "render", "strength": 0.6}),
    ("sd2_depth2img", {"depth_float": "depth_float"}),
    ("sd2_depth2img", {"init_image": "render", "strength": 0.6}),
    ("flux_kontext", {"init_image": "render"}),
    ("flux2", {"init_image": "render"}),
    ("flux2", {"reference_images": ["render", "depth"]}),
    ("qwen_image_edit", {"init_image": "render"}),
]


def _fields(extra: dict[str, Any], pictures: dict[str, Any]) -> dict[str, Any]:
    resolved: dict[str, Any] = {}
    for key, value in extra.items():
        if key in ("init_image", "depth_float"):
            resolved[key] = str(pictures[value])
        elif key == "reference_images":
            resolved[key] = [str(pictures[name]) for name in value]
        else:
            resolved[key] = value
    return resolved


@pytest.mark.parametrize(("family", "extra"), CASES,
                         ids=[f"{f}-{'+'.join(e) or 'depth'}" for f, e in CASES])
def test_family_runs_two_steps_through_the_protocol(backend, tiny_models, pictures, make_job,
                                                     model_spec, family, extra):
    job = make_job(model_spec(family, tiny_models(family)), **_fields(extra, pictures))

    events = backend.run(job)

    final = events[-1]
    assert final["type"] == protocol.RESULT, final
    progress = [e for e in events if e["type"] == protocol.PROGRESS]
    assert progress, "no progress events"
    assert [e["step"] for e in progress] == list(range(1, len(progress) + 1))
    assert all(e["total"] == progress[-1]["total"] for e in progress)
    assert all(e.get("preview", "").endswith(".png") for e in progress)
    with Image.open(final["paths"][0]) as image:
        assert image.size == (64, 64)
        assert image.text["t2i:prompt"] == "a small house"


def test_flux2_dev_loads_as_flux2pipeline_and_takes_the_guidance(backend, tiny_models, make_job,
                                                                  model_spec):
    """The flux2 family reads dev vs klein from the weights: dev (Flux2Pipeline, Mistral 3
    encoder) embeds the guidance, so changing it changes the picture."""
    model = model_spec("flux2", tiny_models("flux2_dev"))
    results = [backend.run(make_job(model, guidance=guidance, init_image=None))[-1]
               for guidance in (1.0, 4.0)]
    assert all(r["type"] == protocol.RESULT for r in results), results
    low, high = (np.asarray(Image.open(r["paths"][0]), dtype=np.int16) for r in results)
    assert low.shape == (64, 64, 3)
    assert np.abs(low - high).max() > 0


@pytest.mark.parametrize("family", ["qwen_image_edit", "flux2"])
def test_edit_models_follow_their_reference_pictures(backend, tiny_models, pictures, make_job,
                                                     model_spec, family):
    """The reference pictures reach the result: another picture, another result (Qwen-Image-Edit
    reads it through its input processor and its VAE, FLUX.2 through its VAE)."""
    model = model_spec(family, tiny_models(family))
    results = [backend.run(make_job(model, reference_images=[str(pictures[name])],
                                    guidance=1.0, preview=False))[-1]
               for name in ("render", "depth")]
    assert all(r["type"] == protocol.RESULT for r in results), results
    warm, ramp = (np.asarray(Image.open(r["paths"][0]), dtype=np.int16) for r in results)
    assert np.abs(warm - ramp).max() > 0


IMG2IMG = ["sd15_controlnet", "sdxl_controlnet", "sdxl_controlnet_union", "sd2_depth2img"]


@pytest.mark.parametrize("family", IMG2IMG)
def test_img2img_below_full_strength_starts_from_the_init_image(backend, tiny_models, pictures,
                                                                make_job, model_spec, family):
    """Below strength 1 denoising starts from the init image: another init, another picture
    (at 1.0 the init image is pure noise afterwards and could not matter)."""
    model = model_spec(family, tiny_models(family))
    results = [backend.run(make_job(model, init_image=str(pictures[name]), strength=0.6))[-1]
               for name in ("render", "depth")]
    assert all(r["type"] == protocol.RESULT for r in results), results
    warm, ramp = (np.asarray(Image.open(r["paths"][0]), dtype=np.int16) for r in results)
    assert np.abs(warm - ramp).max() > 0
