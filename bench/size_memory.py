"""How much working memory a job needs per megapixel: the figure behind Largest Image.

SD 1.5's real UNet and VAE shapes (random weights: memory does not depend on the values) run
one denoising step (classifier-free guidance: a batch of 2) and one VAE decode at two sizes, each
in a fresh process; the peak resident memory above the loaded weights, divided by the size
difference, is the slope in GiB per megapixel. Measured in fp32 on the CPU; fp16 on a GPU
halves it (t2i_core.protocol.GIB_PER_MEGAPIXEL_FP16 holds that half).

    .venv/bin/python bench/size_memory.py [--sides 256 384]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

_CHILD = r"""
import json, resource, sys
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
torch.set_grad_enabled(False)
side = int(sys.argv[1])
unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8,
                            block_out_channels=(320, 640, 1280, 1280), layers_per_block=2)
vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), latent_channels=4, layers_per_block=2,
                    down_block_types=("DownEncoderBlock2D",) * 4,
                    up_block_types=("UpDecoderBlock2D",) * 4)
kib = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
loaded = kib()
latents = torch.randn(2, 4, side // 8, side // 8)
text = torch.randn(2, 77, 768)
unet(latents, 500, encoder_hidden_states=text)
after_unet = kib()
vae.decode(latents[:1])
print(json.dumps({"side": side, "loaded_kib": loaded, "unet_kib": after_unet - loaded,
                  "total_kib": kib() - loaded}))
"""


def measure(side: int) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(side)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sides", type=int, nargs=2, default=(256, 384))
    args = parser.parse_args()
    small, large = (measure(side) for side in args.sides)
    megapixels = [r["side"] ** 2 / 1e6 for r in (small, large)]
    slope = (large["total_kib"] - small["total_kib"]) / 2**20 / (megapixels[1] - megapixels[0])
    for r, mp in zip((small, large), megapixels, strict=True):
        print(f"{r['side']}x{r['side']} ({mp:.3f} MP): weights {r['loaded_kib'] / 2**20:.2f} GiB "
              f"resident; above them, UNet step {r['unet_kib'] / 2**20:.2f} GiB, "
              f"with VAE decode {r['total_kib'] / 2**20:.2f} GiB")
    print(f"slope: {slope:.2f} GiB per megapixel in fp32 -> {slope / 2:.2f} in fp16")


if __name__ == "__main__":
    main()
