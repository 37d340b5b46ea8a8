"""Step previews from a TAESD in the local HF cache (random-weight stand-ins for
madebyollin/taesd and taef1): used when present, decoded the way the pipeline would decode."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


def _taesd(latent_channels: int, **config: float):
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    return AutoencoderTiny(latent_channels=latent_channels, encoder_block_out_channels=(4,) * 4,
                           decoder_block_out_channels=(4,) * 4, **config)


def _saved_taesd(folder: Path, latent_channels: int) -> Path:
    _taesd(latent_channels).save_pretrained(folder, safe_serialization=True)
    return folder


def test_flux_preview_is_the_pipelines_decode_with_taesd_as_its_vae(tiny_models):
    """The preview sees FLUX's packed patch grid; it must unpack and unscale it exactly as
    FluxPipeline's final decode would with the TAESD in place of its VAE."""
    from diffusers import FluxControlPipeline

    from backend.families import common
    from backend.preview import TaesdPreview

    pipe = FluxControlPipeline.from_pretrained(tiny_models("flux_depth")["base"])
    pipe.vae = _taesd(1, scaling_factor=1.5, shift_factor=0.1)
    grid = torch.randn(1, 4, 4, 6, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = common.flux_decode(pipe, grid)[0]
    preview = TaesdPreview(pipe.vae).rgb(grid[0])
    assert preview.shape == expected.shape == (3, 64, 96)
    torch.testing.assert_close(preview, expected)


@pytest.mark.parametrize(("family", "repo", "channels"), [
    ("sd15_controlnet", "madebyollin/taesd", 4),
    ("flux_depth", "madebyollin/taef1", 1),
])
def test_previews_use_a_cached_taesd(start_backend, tiny_models, make_job, model_spec, hf_cache,
                                     tmp_path, family, repo, channels):
    hf_cache(repo, _saved_taesd(tmp_path / "taesd", channels))
    backend = start_backend()
    backend.hello()
    events = backend.run(make_job(model_spec(family, tiny_models(family)), steps=2,
                                  preview={"every": 1}))
    assert events[-1]["type"] == "result", events[-1]
    assert [e["step"] for e in events if e.get("preview", "").endswith(".png")] == [1, 2]
    log = (tmp_path / "backend.log").read_text()
    assert f"previews for {family} use {repo}" in log
    assert "previews disabled" not in log
