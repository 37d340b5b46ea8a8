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
                   depth=request.control_image)

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
        data["depth_range"] = list(self.depth_range) if self.depth_range else None
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str) -> JobRecord:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["size"] = tuple(data["size"])
        data["loras"] = tuple(tuple(lora) for lora in data.get("loras", ()))
        if data.get("depth_range") is not None:
            data["depth_range"] = tuple(data["depth_range"])
        return cls(**data)

    def png_text(self) -> dict[str, str]:
        """The PNG text chunks of the result: the settings that made it, as `t2i:` keys."""
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
                **addon_png_text(self.model, self.depth_range)}


def addon_png_text(preset: str, depth_range: tuple[float, float] | None) -> dict[str, str]:
    """The part of png_text only the add-on knows (the backend sees neither): it travels in
    the request's `metadata`, and the backend adds it to the result's text chunks."""
    text = {}
    if preset:
        text[PNG_PREFIX + "model"] = preset
    if depth_range is not None:
        text[PNG_PREFIX + "depth_range"] = f"{depth_range[0]:.6g}-{depth_range[1]:.6g}"
    return text
