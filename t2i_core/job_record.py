"""One record of a job's settings and outcome. The sidecar JSON beside a result, the .blend's
history entry and the result PNG's text chunks are all views of a JobRecord, so they cannot
drift apart. The backend writes the PNG text from the same class (`png_text`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .protocol import GenerateRequest

PNG_PREFIX = "t2i:"
A1111_KEY = "parameters"  # the PNG text chunk A1111 writes its settings to
# diffusers scheduler class -> A1111's sampler and schedule type names
A1111_SAMPLERS: dict[str, tuple[str, str]] = {
    "EulerDiscreteScheduler": ("Euler", ""),
    "EulerAncestralDiscreteScheduler": ("Euler a", ""),
    "DDIMScheduler": ("DDIM", ""),
    "PNDMScheduler": ("PLMS", ""),
    "DPMSolverMultistepScheduler": ("DPM++ 2M", ""),
    "UniPCMultistepScheduler": ("UniPC", ""),
    "LMSDiscreteScheduler": ("LMS", ""),
    "HeunDiscreteScheduler": ("Heun", ""),
    "FlowMatchEulerDiscreteScheduler": ("Euler", "Simple"),
}
# the protocol's scheduler choices -> the class the backend runs for each
_SCHEDULER_CLASSES = {"euler": "EulerDiscreteScheduler",
                      "euler_a": "EulerAncestralDiscreteScheduler", "ddim": "DDIMScheduler",
                      "dpmpp_2m": "DPMSolverMultistepScheduler",
                      "dpmpp_2m_karras": "DPMSolverMultistepScheduler",
                      "unipc": "UniPCMultistepScheduler"}
# What the history keeps and "Reuse Settings" puts back: the settings that make an image.
SETTINGS = ("model", "prompt", "negative_prompt", "seed", "steps", "guidance",
            "control_strength", "size")


@dataclass(frozen=True)
class JobRecord:
    model: str  # the preset's name ("" for a model spec of the user's own)
    model_spec: dict[str, Any]  # the model spec sent
    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    guidance: float
    control_strength: float
    size: tuple[int, int]
    loras: tuple[tuple[str, float], ...] = ()
    scheduler: str = "default"
    depth_range: tuple[float, float] | None = None  # metres: what white and black mean
    depth: str = ""  # the control image sent
    result: str = ""  # the result image
    timings: dict[str, float] = field(default_factory=dict)
    peak_memory: int | None = None  # bytes on the GPU (CUDA), for sizing farm nodes
    # the pictures besides the depth: init (render or a carried frame), mask, references
    init_image: str = ""
    strength: float | None = None
    mask_image: str = ""
    reference_images: tuple[str, ...] = ()
    # a temporal frame: {"keyframe": bool, "carried_from": frame or None, "carry": ...}
    temporal: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_request(cls, request: GenerateRequest, preset: str = "",
                     depth_range: tuple[float, float] | None = None) -> JobRecord:
        return cls(model=preset or str(request.model.get("preset", "")),
                   model_spec=request.model,
                   prompt=request.prompt, negative_prompt=request.negative_prompt,
                   seed=request.seed, steps=request.steps, guidance=request.guidance,
                   control_strength=request.control_strength,
                   size=(request.width, request.height),
                   loras=tuple((lora.path, lora.weight) for lora in request.loras),
                   scheduler=request.scheduler, depth_range=depth_range,
                   depth=request.control_image, init_image=request.init_image or "",
                   strength=request.strength if request.init_image else None,
                   mask_image=request.mask_image or "",
                   reference_images=tuple(request.reference_images))

    def finished(self, result: dict[str, Any], **timings: float) -> JobRecord:
        """The record once the backend's `result` event is in (`timings`: the add-on's own,
        e.g. capture and backend start, beside the backend's)."""
        return replace(self, seed=result.get("seed", self.seed), result=result["paths"][0],
                       timings={**{k: round(v, 4) for k, v in timings.items()},
                                **result.get("timings", {})},
                       peak_memory=result.get("peak_memory"))

    def settings(self) -> dict[str, Any]:
        """The SETTINGS fields (history entries)."""
        return {name: getattr(self, name) for name in SETTINGS}

    def to_json(self) -> str:
        data = asdict(self)
        data["size"] = list(self.size)
        data["loras"] = [list(lora) for lora in self.loras]
        data["reference_images"] = list(self.reference_images)
        data["depth_range"] = list(self.depth_range) if self.depth_range else None
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str) -> JobRecord:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["size"] = tuple(data["size"])
        data["loras"] = tuple(tuple(lora) for lora in data.get("loras", ()))
        data["reference_images"] = tuple(data.get("reference_images", ()))
        if data.get("depth_range") is not None:
            data["depth_range"] = tuple(data["depth_range"])
        return cls(**data)

    def png_text(self, scheduler_class: str = "") -> dict[str, str]:
        """The PNG text chunks of the result: the settings that made it, as `t2i:` keys, and
        A1111's `parameters` chunk (`scheduler_class`: the diffusers scheduler that ran)."""
        text = {
            "prompt": self.prompt, "negative_prompt": self.negative_prompt,
            "seed": str(self.seed), "steps": str(self.steps), "guidance": str(self.guidance),
            "control_strength": str(self.control_strength),
            "size": f"{self.size[0]}x{self.size[1]}",
            "model": self.model or json.dumps(self.model_spec, sort_keys=True),
        }
        if self.loras:
            text["loras"] = ", ".join(f"{path}:{weight}" for path, weight in self.loras)
        if self.scheduler != "default":
            text["scheduler"] = self.scheduler
        return {**{PNG_PREFIX + key: value for key, value in text.items()},
                A1111_KEY: self.a1111_parameters(scheduler_class),
                **addon_png_text(self.model, self.depth_range)}

    def a1111_parameters(self, scheduler_class: str = "") -> str:
        """The settings as A1111 writes them ("infotext"), which A1111, Forge, ComfyUI and
        image sites read: the prompt (with A1111's `<lora:name:weight>` tags, which is how
        A1111 itself records LoRAs), a `Negative prompt:` line, then `Key: value` pairs."""
        prompt = " ".join([self.prompt, *(f"<lora:{_stem(path)}:{weight:g}>"
                                          for path, weight in self.loras)]).strip()
        lines = [prompt]
        if self.negative_prompt:
            lines.append(f"Negative prompt: {self.negative_prompt}")
        sampler, schedule = A1111_SAMPLERS.get(scheduler_class) or A1111_SAMPLERS.get(
            _SCHEDULER_CLASSES.get(self.scheduler, ""), ("", ""))
        if self.scheduler == "dpmpp_2m_karras":
            schedule = "Karras"
        pairs = [("Steps", str(self.steps)), ("Sampler", sampler), ("Schedule type", schedule),
                 ("CFG scale", f"{self.guidance:g}"), ("Seed", str(self.seed)),
                 ("Size", f"{self.size[0]}x{self.size[1]}"), ("Model", self.model_name())]
        controlnet = self.model_spec.get("controlnet")
        if isinstance(controlnet, str) and controlnet:
            pairs.append(("ControlNet 0", json.dumps(
                f"Module: none, Model: {_stem(controlnet)}, Weight: {self.control_strength:g}")))
        pairs.append(("Version", "blender_t2i"))
        lines.append(", ".join(f"{key}: {_infotext_value(value)}" for key, value in pairs
                               if value))
        return "\n".join(lines)

    def model_name(self) -> str:
        """The model as A1111 names it: the preset, else the base weights' file stem or repo."""
        base = self.model_spec.get("base")
        return self.model or (_stem(base) if isinstance(base, str) and base else "")


def addon_png_text(preset: str, depth_range: tuple[float, float] | None) -> dict[str, str]:
    """The part of png_text only the add-on knows (the backend sees neither): it travels in
    the request's `metadata`, and the backend adds it to the result's text chunks."""
    text = {}
    if preset:
        text[PNG_PREFIX + "model"] = preset
    if depth_range is not None:
        text[PNG_PREFIX + "depth_range"] = f"{depth_range[0]:.6g}-{depth_range[1]:.6g}"
    return text


def _stem(reference: str) -> str:
    """A weights reference's short name: a file's stem, a folder's or repo's last part."""
    name = reference.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return name[: -len(".safetensors")] if name.endswith(".safetensors") else name


def _infotext_value(value: str) -> str:
    """A1111 splits the pairs at commas and colons; a value holding one is quoted."""
    if value.startswith('"') or not any(c in value for c in ',:\n'):
        return value
    return json.dumps(value)
