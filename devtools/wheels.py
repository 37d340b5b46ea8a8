"""Stand-in wheels for install tests: the backend's package names with tiny modules, so pip
installs from a local folder (--no-index --find-links) exactly as it would from an index."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

# distribution name -> (version, import name, module source)
FAKE_TORCH = ('__version__ = "{version}"\n'
              "class cuda:\n"
              "    @staticmethod\n"
              "    def is_available():\n"
              "        return False\n")


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(folder: Path, dist: str, version: str, module: str, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    normal = dist.replace("-", "_")
    info = f"{normal}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": source.format(version=version).encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: t2i-tests\nRoot-Is-Purelib: true\n"
                         b"Tag: py3-none-any\n",
    }
    record = [_record_line(name, data) for name, data in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = folder / f"{normal}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def build_backend_wheelhouse(folder: Path, requirements: list[str]) -> Path:
    """One stand-in wheel per `name==version` requirement (torch gets a `cuda` stub)."""
    for requirement in requirements:
        dist, _, version = requirement.partition("==")
        module = {"pillow": "PIL", "huggingface-hub": "huggingface_hub"}.get(
            dist, dist.replace("-", "_"))
        source = FAKE_TORCH if dist == "torch" else '__version__ = "{version}"\n'
        build_wheel(folder, dist, version, module, source)
    return folder
