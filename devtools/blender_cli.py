"""`blender -b FILE [-y] -P SCRIPT -- ARGS` for a Python with the bpy module (Blender as a
module has no command line of its own). Farm job types and templates write Blender command
lines; tests and benches run exactly those lines through this, with the real bpy.

    python devtools/blender_cli.py -b shot.blend -y -P scripts/t2i_batch.py -- --frames 1-4

Only what farm commands use is understood: -b/--background, -y/--enable-autoexec (the bpy
module runs scripts anyway), the .blend, -P/--python SCRIPT and everything after `--`, which
the script reads from sys.argv as it does inside Blender. The exit status is the script's.
"""

from __future__ import annotations

import runpy
import sys


def main(argv: list[str]) -> int:
    ours, rest = (argv[:argv.index("--")], argv[argv.index("--"):]) if "--" in argv \
        else (argv, [])
    blend = script = None
    words = iter(ours)
    for word in words:
        if word in ("-b", "--background", "-y", "--enable-autoexec"):
            continue
        if word in ("-P", "--python"):
            script = next(words, None)
        elif word.startswith("-"):
            print(f"blender_cli: {word} is not supported", file=sys.stderr)
            return 2
        else:
            blend = word
    if script is None:
        print("blender_cli: no -P SCRIPT given", file=sys.stderr)
        return 2
    import bpy

    if blend is not None:
        bpy.ops.wm.open_mainfile(filepath=blend)
    sys.argv = ["blender", *ours, *rest]
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:  # the script's sys.exit(status), as Blender exits with it
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
