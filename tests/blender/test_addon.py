"""The extension as Blender sees it: manifest, install, register/unregister."""

from __future__ import annotations

import bpy
import pytest

from devtools import extension

from .conftest import MODULE


def test_blenders_own_validator_accepts_the_manifest():
    assert "Success" in extension.validate()


def _t2i_classes() -> set[str]:
    found = set()
    for base in (bpy.types.Operator, bpy.types.PropertyGroup, bpy.types.AddonPreferences,
                 bpy.types.Panel):
        found |= {cls.__name__ for cls in base.__subclasses__()
                  if cls.__module__.startswith(MODULE)}
    return found


def test_registers_and_unregisters_twice_leaving_nothing_behind(addon):
    registered = _t2i_classes()
    assert {"T2I_OT_capture_depth", "T2I_OT_generate", "T2ISceneSettings"} <= registered
    try:
        for _ in range(2):
            bpy.ops.preferences.addon_disable(module=MODULE)
            assert not hasattr(bpy.types.Scene, "t2i")
            assert not hasattr(bpy.ops.t2i, "generate") or not _op_exists("t2i.generate")
            assert not any(getattr(bpy.types, name, None) for name in registered)
            assert addon.blender_t2i.core.backend_process._client is None  # no backend left running
            bpy.ops.preferences.addon_enable(module=MODULE)
            assert hasattr(bpy.types.Scene, "t2i")
            assert _op_exists("t2i.generate")
    finally:
        if MODULE not in bpy.context.preferences.addons:
            bpy.ops.preferences.addon_enable(module=MODULE)


def _op_exists(idname: str) -> bool:
    category, name = idname.split(".")
    try:
        getattr(getattr(bpy.ops, category), name).get_rna_type()
    except (AttributeError, KeyError):
        return False
    return True


@pytest.mark.parametrize("operator", ["capture_depth", "generate"])
def test_operators_refuse_a_scene_without_camera(scene, operator):
    with pytest.raises(RuntimeError, match="no active camera"):
        getattr(bpy.ops.t2i, operator)()
