"""Build, validate and install the extension with Blender's own tool (shipped in the bpy wheel).

    python devtools/extension.py validate
    python devtools/extension.py build [--output-dir dist]

`install()` is for code already running inside Blender (tests, the demo).
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTENSION_ID = "blender_t2i"
REPO = "user_default"
MODULE = f"bl_ext.{REPO}.{EXTENSION_ID}"


def blender_ext_script() -> Path:
    """Blender's `blender --command extension` implementation, found without importing bpy."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the bpy module is not installed in this Python")
    base = spec.submodule_search_locations[0]
    found = glob.glob(os.path.join(base, "*", "scripts", "addons_core", "bl_pkg", "cli",
                                   "blender_ext.py"))
    if not found:
        raise RuntimeError(f"blender_ext.py not found under {base}")
    return Path(found[0])


def run_blender_ext(*args: str) -> str:
    proc = subprocess.run([sys.executable, str(blender_ext_script()), *args],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"blender_ext {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def validate() -> str:
    return run_blender_ext("validate", str(ROOT))


def build(output_dir: Path) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    version = _manifest_version()
    target = output_dir / f"{EXTENSION_ID}-{version}.zip"
    if target.exists():
        target.unlink()  # blender_ext refuses to overwrite
    run_blender_ext("build", "--source-dir", str(ROOT), "--output-dir", str(output_dir))
    return target


def _manifest_version() -> str:
    import tomllib

    with open(ROOT / "blender_manifest.toml", "rb") as handle:
        return tomllib.load(handle)["version"]


def install(zip_path: Path) -> str:
    """Install and enable the zip in the running Blender; returns the add-on's module name.

    Point BLENDER_USER_RESOURCES at a scratch folder before importing bpy to keep this out of
    the real user configuration."""
    import bpy

    if MODULE in bpy.context.preferences.addons:
        return MODULE
    result = bpy.ops.extensions.package_install_files(
        filepath=str(zip_path), repo=REPO, enable_on_install=True)
    if result != {"FINISHED"} or MODULE not in bpy.context.preferences.addons:
        raise RuntimeError(f"installing {zip_path} failed: {result}")
    return MODULE


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["validate", "build"])
    parser.add_argument("--output-dir", type=Path, default=ROOT / "dist")
    args = parser.parse_args()
    if args.command == "validate":
        print(validate().strip())
    else:
        print(build(args.output_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
