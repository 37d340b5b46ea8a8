"""The extension as Blender sees it: manifest, install, register/unregister."""

from __future__ import annotations

import bpy
import pytest

from devtools import extension

from .conftest import MODULE


def test_blenders_own_validator_accepts_the_manifest():
    assert "Success" in extension.validate()


def _t2i_classes() -> list[type]:
    found = []
    for base in (bpy.types.Operator, bpy.types.PropertyGroup, bpy.types.AddonPreferences,
                 bpy.types.Panel, bpy.types.UIList):
        found += [cls for cls in base.__subclasses__() if cls.__module__.startswith(MODULE)]
    return found


def test_registers_and_unregisters_twice_leaving_nothing_behind(addon):
    registered = [cls for cls in _t2i_classes() if cls.is_registered]
    names = {cls.__name__ for cls in registered}
    assert {"T2I_OT_capture_depth", "T2I_OT_generate", "T2ISceneSettings", "T2IPreferences",
            "T2I_PT_main"} <= names
    try:
        for _ in range(2):
            bpy.ops.preferences.addon_disable(module=MODULE)
            assert not hasattr(bpy.types.Scene, "t2i")
            assert not _op_exists("t2i.generate")
            assert not [cls.__name__ for cls in registered if cls.is_registered]
            assert addon.t2i_core.job_queue._jobs is None  # no queue, so no backend
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
