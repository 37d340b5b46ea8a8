"""`python -m tests.comfyui.dump_object_info [--url URL]`: record a real ComfyUI's GET
/object_info into tests/comfyui/data/object_info_<version>.json, the schema test_graphs.py
checks every graph against (run from `make record-comfyui`).

Without --url it starts the server named by T2I_TEST_COMFYUI / T2I_TEST_COMFYUI_PYTHON with
the tiny models (comfy_server.py), records and stops it. Compacted to what validation needs:
per node its inputs (type, and min/max or the combo's values) and its output types.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"
_KEPT_OPTIONS = ("min", "max", "options")


def compact(info: dict[str, Any]) -> dict[str, Any]:
    """Each node's inputs ({group: {name: [type or combo values, {min, max, options}]}}) and
    outputs; descriptions, tooltips, categories and display names dropped."""
    nodes: dict[str, Any] = {}
    for name in sorted(info):
        schema = info[name]
        groups: dict[str, Any] = {}
        for group in ("required", "optional"):
            specs = (schema.get("input") or {}).get(group) or {}
            kept = {}
            for key, spec in specs.items():
                kind = spec[0] if isinstance(spec, list) and spec else spec
                options = spec[1] if isinstance(spec, list) and len(spec) > 1 else {}
                if isinstance(options, dict) and options.get("image_upload"):
                    kind = []  # the server's input folder: what this machine uploaded
                extra = {k: options[k] for k in _KEPT_OPTIONS
                         if isinstance(options, dict) and k in options}
                kept[key] = [kind, extra] if extra else [kind]
            if kept:
                groups[group] = kept
        nodes[name] = {"input": groups, "output": list(schema.get("output") or [])}
    return nodes


def fetch(url: str) -> tuple[dict[str, Any], str]:
    """(GET /object_info, the server's ComfyUI version)."""
    with urllib.request.urlopen(url.rstrip("/") + "/object_info", timeout=60) as response:
        info = json.load(response)
    with urllib.request.urlopen(url.rstrip("/") + "/system_stats", timeout=10) as response:
        version = json.load(response)["system"]["comfyui_version"]
    return info, version


def record_object_info(url: str, folder: Path = DATA) -> Path:
    """Fetch a running server's schema and write it (compacted); the file written."""
    from t2i_core.files import write_bytes_atomic

    info, version = fetch(url)
    lines = [json.dumps(name) + ":" + json.dumps(node, sort_keys=True, separators=(",", ":"))
             for name, node in compact(info).items()]  # a node a line: readable diffs
    text = "{\n" + ",\n".join(lines) + "\n}\n"
    return write_bytes_atomic(folder / f"object_info_{version}.json", text.encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running ComfyUI (default: start the test server)")
    args = parser.parse_args(argv)
    if args.url:
        print(record_object_info(args.url))
        return 0
    from .comfy_server import ComfyServer, find_comfyui, tiny_models

    found = find_comfyui()
    if isinstance(found, str):
        print(f"dump_object_info: {found}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="t2i-object-info-") as work:
        server = ComfyServer(*found, tiny_models(Path(work)), Path(work))
        server.start()
        try:
            print(record_object_info(server.url))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
