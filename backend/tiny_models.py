"""`tiny-sd15-depth`: a random-weight SD 1.5 + depth ControlNet built locally on first use.

It has the real architecture classes at toy sizes, is saved as ordinary diffusers folders and is
loaded back through the same loader real weights use, so the demo and the tests run the whole
code path with no download. It makes noise, not pictures.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

import torch

log = logging.getLogger("blender_t2i.backend")

TINY_SD15_FOLDER = "tiny-sd15-depth-v2"
_MARKER = "complete.json"


def _bytes_to_unicode() -> dict[int, str]:
    """The byte -> printable-character table of byte-level BPE (as in GPT-2/CLIP)."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


def write_clip_tokenizer_files(folder: Path) -> None:
    """A minimal byte-level BPE vocabulary CLIPTokenizer can load offline."""
    symbols = list(_bytes_to_unicode().values())
    vocab_list = symbols + [s + "</w>" for s in symbols]
    merges = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("i", "n"), ("e", "r</w>")]
    vocab_list += ["".join(pair) for pair in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab_list)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges))


def build_tiny_sd15_depth(folder: Path) -> None:
    """Write `base/` (an SD 1.5 pipeline) and `controlnet/` into `folder`."""
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    blocks = dict(block_out_channels=(4, 8), layers_per_block=2, cross_attention_dim=32,
                  down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), norm_num_groups=1)
    unet = UNet2DConditionModel(sample_size=32, in_channels=4, out_channels=4,
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), **blocks)
    # The conditioning embedding downsamples by 2 ** (n - 1): it must match the VAE's factor,
    # 8 as in real SD 1.5 (a smaller factor makes attention over huge latents crawl).
    controlnet = ControlNetModel(conditioning_embedding_out_channels=(8, 8, 16, 16),
                                 in_channels=4, **blocks)
    vae = AutoencoderKL(block_out_channels=[4, 4, 8, 8], in_channels=3, out_channels=3,
                        down_block_types=["DownEncoderBlock2D"] * 4,
                        up_block_types=["UpDecoderBlock2D"] * 4,
                        latent_channels=4, norm_num_groups=2)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=37, layer_norm_eps=1e-5,
        num_attention_heads=4, num_hidden_layers=2, pad_token_id=1, vocab_size=1000,
        max_position_embeddings=77, projection_dim=32))
    with tempfile.TemporaryDirectory() as tmp:
        write_clip_tokenizer_files(Path(tmp))
        tokenizer = CLIPTokenizer.from_pretrained(tmp, model_max_length=77)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    base = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                   unet=unet, scheduler=scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    base.save_pretrained(folder / "base", safe_serialization=True)
    controlnet.save_pretrained(folder / "controlnet", safe_serialization=True)


def ensure_tiny_sd15_depth(cache_dir: Path) -> Path:
    """The tiny model's folder, built on first use. Built in a temp folder and renamed into
    place, so a crash mid-build never leaves a half-written model that later loads fail on."""
    target = cache_dir / TINY_SD15_FOLDER
    if (target / _MARKER).exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=cache_dir))
    try:
        build_tiny_sd15_depth(staging)
        (staging / _MARKER).write_text(json.dumps({"model": "tiny-sd15-depth", "version": 1}))
        if target.exists():  # an incomplete earlier build
            shutil.rmtree(target)
        staging.rename(target)
        log.info("built tiny-sd15-depth in %s", target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
