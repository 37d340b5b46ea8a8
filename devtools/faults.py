"""Backend "Pythons" that misbehave the way real ones do, for fault tests.

Each writes an executable into a folder that the add-on (or a test) uses as its backend Python:
the real backend runs behind it, with one fault added. Nothing here is imported by the add-on.
"""

from __future__ import annotations

import stat
from pathlib import Path


def _executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def oom_python(python: str, folder: Path, above_pixels: int) -> Path:
    """The real backend whose UNet's forward raises torch.OutOfMemoryError (CUDA's error) for
    images over `above_pixels`, as a GPU that runs out of memory does mid-step."""
    return _executable(folder / "python-oom", f"""#!{python}
import runpy, sys
import torch
from diffusers import UNet2DConditionModel

real_forward = UNet2DConditionModel.forward


def forward(self, sample, *args, **kwargs):
    if sample.shape[-1] * sample.shape[-2] * 64 > {above_pixels}:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB "
                                     "(injected by devtools.faults)")
    return real_forward(self, sample, *args, **kwargs)


UNet2DConditionModel.forward = forward
assert sys.argv[1:3] == ["-m", "backend"], sys.argv  # how the add-on starts its backend
sys.argv = ["backend", *sys.argv[3:]]
runpy.run_module("backend", run_name="__main__", alter_sys=True)
""")


def garbling_python(python: str, folder: Path, after: bytes = b'"progress"') -> Path:
    """The real backend behind a relay that writes a line that is not protocol into the
    event stream after the first event containing `after` (as a C library printing to the
    wrong descriptor would), then relays on."""
    return _executable(folder / "python-garbling", f"""#!{python}
import subprocess, sys
child = subprocess.Popen([{python!r}, *sys.argv[1:]], stdout=subprocess.PIPE)
garbled = False
for line in child.stdout:
    sys.stdout.buffer.write(line)
    if not garbled and {after!r} in line:
        sys.stdout.buffer.write(b"libfoo: warning: this is not a protocol line\\n")
        garbled = True
    sys.stdout.buffer.flush()
sys.exit(child.wait())
""")
