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


def memory_capped_python(python: str, folder: Path, limit_bytes: int) -> Path:
    """The real Python with its address space capped (RLIMIT_AS): an allocation past the cap
    fails for real inside torch, as it does on a machine that runs out of memory."""
    return _executable(folder / "python-capped", f"#!/bin/sh\nulimit -v {limit_bytes // 1024}\n"
                                                 f'exec "{python}" "$@"\n')


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
