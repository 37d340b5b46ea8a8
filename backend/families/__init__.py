"""Model families: one module each, behind the same small interface.

A family module defines:
  NAME                     the `family` value in a model spec
  WEIGHT_ROLES             the roles its spec names (e.g. base, controlnet)
  load(folders, device, dtype) -> pipeline
  generate(pipe, request, control_image, on_step) -> PIL.Image
Adding a family is one new module and one line in FAMILIES.
"""

from __future__ import annotations

from types import ModuleType

from . import sd15_controlnet

FAMILIES: dict[str, ModuleType] = {
    sd15_controlnet.NAME: sd15_controlnet,
}
