"""A stand-in for bpy.types.UILayout that checks every draw call against this Blender's own
RNA: the layout function and its keywords exist, icons are valid, every `prop` names a real
property of its data, every `operator` is registered and only its real properties are set.
Headless Blender never draws a region, so this is how panel code gets exercised."""

from __future__ import annotations

from typing import Any

import bpy

_LAYOUT = bpy.types.UILayout.bl_rna
_CONTAINERS = {"row", "column", "box", "split", "grid_flow", "column_flow"}


def _icons() -> set[str]:
    return {item.identifier for item in _LAYOUT.functions["label"].parameters["icon"].enum_items}


def operator_rna(idname: str):
    category, name = idname.split(".")
    try:
        return getattr(getattr(bpy.ops, category), name).get_rna_type()
    except (AttributeError, KeyError):
        raise AssertionError(f"operator {idname} is not registered") from None


class OperatorProperties:
    def __init__(self, idname: str):
        object.__setattr__(self, "_rna", operator_rna(idname))
        object.__setattr__(self, "_idname", idname)

    def __setattr__(self, name: str, value: Any) -> None:
        assert name in self._rna.properties, f"{self._idname} has no property '{name}'"


class RecordingLayout:
    icons: set[str] = set()

    def __init__(self, calls: list):
        object.__setattr__(self, "calls", calls)
        if not RecordingLayout.icons:
            RecordingLayout.icons = _icons()

    def __setattr__(self, name: str, value: Any) -> None:
        assert name in _LAYOUT.properties, f"UILayout has no attribute '{name}'"

    def __getattr__(self, name: str):
        function = _LAYOUT.functions.get(name)
        if function is None:
            raise AssertionError(f"UILayout.{name} does not exist in Blender {bpy.app.version}")
        params = {p.identifier for p in function.parameters}

        def call(*args: Any, **kwargs: Any):
            unknown = set(kwargs) - params
            assert not unknown, f"UILayout.{name} has no keyword(s) {unknown}"
            icon = kwargs.get("icon")
            assert icon is None or icon in self.icons, f"unknown icon '{icon}'"
            self.calls.append((name, args, kwargs))
            if name in _CONTAINERS:
                return RecordingLayout(self.calls)
            if name in {"prop", "prop_enum"}:
                data, prop = args[0], args[1]
                assert data is not None, f"prop '{prop}' drawn from None"
                assert prop in data.bl_rna.properties, f"{data} has no property '{prop}'"
            if name == "operator":
                return OperatorProperties(args[0])
            if name == "template_list":
                assert args[3] in args[2].bl_rna.properties and args[5] in args[4].bl_rna.properties
            return None

        return call

    def texts(self) -> list[str]:
        return [str(kwargs.get("text", "")) for _name, _args, kwargs in self.calls]

    def operators(self) -> list[str]:
        return [args[0] for name, args, _kwargs in self.calls if name == "operator"]


class PanelSelf:
    """What a Panel/UIList/AddonPreferences draw method reads from `self`."""

    def __init__(self, layout: RecordingLayout, **attributes: Any):
        self.layout = layout
        self.__dict__.update(attributes)


def draw(draw_function, context=None, **attributes: Any) -> RecordingLayout:
    layout = RecordingLayout([])
    draw_function(PanelSelf(layout, **attributes), context or bpy.context)
    return layout
