"""Optional packages: one that is installed but fails to import is hidden from transformers and
diffusers, so only what needs it fails, with MODEL_LOAD_FAILED naming it and the fix.

Qwen-Image-Edit and FLUX.2 dev run without torchvision in test_families (CI has none); here they
run with a broken one. A broken package is simulated the way it shows up for users (a build for
another torch): a package of that name on PYTHONPATH, with its dist-info, that raises on import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from t2i_core import protocol
from t2i_core.protocol import ErrorCode

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = {"torchvision": "0.28.0", "accelerate": "1.15.0", "peft": "0.21.2"}


def _broken(folder: Path, *names: str) -> dict[str, str]:
    """PYTHONPATH with a package for each name that raises on import, as a mismatched build
    does (torchvision: "operator torchvision::nms does not exist")."""
    for name in names:
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(
            f"raise RuntimeError('{name} was built for another torch')\n")
        dist = folder / f"{name}-{VERSIONS[name]}.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {VERSIONS[name]}\n")
    return {"PYTHONPATH": str(folder)}


def _unavailable(backend) -> dict[str, dict[str, str]]:
    backend.send({"type": protocol.CAPABILITIES})
    event = backend.wait_for(protocol.CAPABILITIES)
    return {entry["package"]: entry for entry in event["unavailable"]}


def test_processor_models_run_with_a_broken_torchvision(start_backend, tiny_models, make_job,
                                                        model_spec, tmp_path):
    backend = start_backend(_broken(tmp_path / "site", "torchvision"))
    for family, tiny in (("qwen_image_edit", "qwen_image_edit"), ("flux2", "flux2_dev")):
        final = backend.run(make_job(model_spec(family, tiny_models(tiny)), guidance=1.0,
                                     preview=False))[-1]
        assert final["type"] == protocol.RESULT, (family, final)
    torchvision = _unavailable(backend)["torchvision"]
    assert torchvision["problem"].startswith("fails to import: RuntimeError")
    assert "PIL" in torchvision["needed_for"] and "Install Backend" in torchvision["fix"]


def test_a_broken_peft_and_accelerate_cost_only_what_needs_them(start_backend, tiny_models,
                                                                make_job, model_spec, tmp_path):
    """diffusers imports both at its own import: unhidden, every family would fail."""
    backend = start_backend(_broken(tmp_path / "site", "peft", "accelerate"))
    model = model_spec("sd15_controlnet", tiny_models("sd15_controlnet"))
    final = backend.run(make_job(model, preview=False))[-1]
    assert final["type"] == protocol.RESULT, final

    lora = tmp_path / "style.safetensors"
    lora.write_bytes(b"")
    final = backend.run(make_job(model, preview=False, loras=[{"path": str(lora)}]))[-1]
    assert final["type"] == protocol.ERROR, final
    assert final["code"] == ErrorCode.MODEL_LOAD_FAILED
    assert final["message"].startswith(
        "loading LoRAs needs the optional package peft, which fails to import: RuntimeError")
    assert "Install Backend" in final["hint"] and "pip-install peft" in final["hint"]
    unavailable = _unavailable(backend)
    assert all(unavailable[name]["problem"].startswith("fails to import: RuntimeError")
               for name in ("peft", "accelerate")), unavailable


CHECK = """
import json
from backend.families import common
from transformers import Qwen2VLVideoProcessor
try:
    Qwen2VLVideoProcessor()
except ImportError as exc:
    error = common.missing_package_error(exc, "loading a video processor")
    print(json.dumps({"code": error.code, "message": str(error), "hint": error.hint}))
"""


def test_an_import_error_about_an_optional_package_names_it_and_the_fix(tmp_path):
    """What transformers raises where torchvision is needed (its video processors) becomes
    MODEL_LOAD_FAILED naming torchvision, why it is unusable, and what to do."""
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([_broken(tmp_path, "torchvision")["PYTHONPATH"],
                                          str(ROOT)])}
    done = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    error = json.loads(done.stdout.strip().splitlines()[-1])
    assert error["code"] == ErrorCode.MODEL_LOAD_FAILED
    assert error["message"].startswith("loading a video processor needs the optional package "
                                       "torchvision, which fails to import: RuntimeError")
    assert "torchvision release built for this torch" in error["hint"]
