"""Temporal mode without Blender: which frames start fresh, how a carried frame's init picture
and mask are made from the warped previous result, and how a family takes them.

The warp and the occlusion mask themselves are `t2i_core/motion.py`'s; this module turns them
into what a generate request carries (docs/temporal.md):

- families that inpaint (`FamilyInfo.inpaint`) get the warped picture as `init_image` and a
  mask: white where the previous frame cannot be carried (occluded, newly revealed, come into
  the frame), `1 - carry` grey where it can; the backend regenerates the white part from noise
  under the depth control and pastes the init back weighted by the grey, so `carry` 1 keeps
  the carried pixels exactly and 0 regenerates every frame;
- edit families (reference pictures) get the warped picture as their first reference;
- the others cannot be offered temporal mode (`temporal_kind` says so).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .presets import FAMILY_INFO, REFERENCES, FamilyInfo

INPAINT, REFERENCE = "inpaint", "reference"


@dataclass(frozen=True)
class TemporalOptions:
    """The temporal settings of one shot."""

    carry: float = 0.85  # how strongly frame N carries into N+1, 0..1
    keyframe_every: int = 0  # a fresh frame every K frames of the shot; 0: only the first
    mask_dilate: int = 2  # render pixels the occlusion mask grows by
    threshold_px: float = 1.0  # forward-backward miss (render pixels) that counts as occluded

    def check(self) -> None:
        if not 0.0 <= self.carry <= 1.0:
            raise ValueError(f"the carry {self.carry:g} is not between 0 and 1")
        if self.keyframe_every < 0:
            raise ValueError(f"the keyframe interval {self.keyframe_every} is negative: use 0 "
                             "(only the first frame fresh) or more")
        if self.mask_dilate < 0:
            raise ValueError(f"the mask dilation {self.mask_dilate} px is negative")

    def to_dict(self) -> dict[str, float | int]:
        return {"carry": round(self.carry, 6), "keyframe_every": self.keyframe_every,
                "mask_dilate": self.mask_dilate, "threshold_px": self.threshold_px}


def temporal_families() -> list[str]:
    return [info.label for info in FAMILY_INFO.values()
            if info.inpaint or REFERENCES in info.inputs]


def temporal_kind(family: FamilyInfo) -> str:
    """How `family` takes the carried frame (INPAINT or REFERENCE); ValueError when it can
    take it neither way."""
    if family.inpaint:
        return INPAINT
    if REFERENCES in family.inputs:
        return REFERENCE
    raise ValueError(f"temporal mode is not offered for {family.label}: it takes neither a "
                     f"mask nor reference pictures (use one of: {', '.join(temporal_families())})")


def is_keyframe(index: int, every: int) -> bool:
    """Whether the shot's `index`-th frame (0 = the first) starts fresh."""
    return index == 0 or (every > 0 and index % every == 0)


def carried_grey(carry: float) -> int:
    """The mask's grey on carried pixels: the share of the regenerated picture in them."""
    return round(255 * (1.0 - carry))


def init_and_mask(warped: np.ndarray, occluded: np.ndarray, carry: float,
                  fill: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(init picture (h, w, 3) uint8, mask (h, w) uint8) for a carried frame: the warped
    previous result where it is valid; where it is not, `fill` (the frame's colour render) or,
    without one, the mean colour of the carried pixels (neutral in the picture's own palette,
    so the regenerated part does not start from a colour foreign to the shot)."""
    warped = np.asarray(warped)[..., :3]
    occluded = np.asarray(occluded, bool)
    if warped.shape[:2] != occluded.shape:
        raise ValueError(f"the warped picture {warped.shape[1]}x{warped.shape[0]} and the "
                         f"occlusion mask {occluded.shape[1]}x{occluded.shape[0]} differ")
    init = warped.astype(np.uint8).copy()
    if fill is not None:
        init[occluded] = np.asarray(fill)[..., :3][occluded]
    elif occluded.any():
        kept = warped[~occluded]
        neutral = kept.mean(axis=0) if len(kept) else np.full(3, 128.0)
        init[occluded] = np.rint(neutral).astype(np.uint8)
    mask = np.where(occluded, 255, carried_grey(carry)).astype(np.uint8)
    return init, mask
