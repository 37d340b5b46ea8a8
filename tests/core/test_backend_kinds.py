"""Backend kinds: what the preferences' ComfyUI settings become, and what they refuse."""

from __future__ import annotations

import json

import pytest

from t2i_core import backend_kinds as kinds


@pytest.mark.parametrize(("given", "expected"), [
    ("http://127.0.0.1:8188", "http://127.0.0.1:8188"),
    ("127.0.0.1:8188", "http://127.0.0.1:8188"),  # as ComfyUI prints it
    ("https://gpu.studio.example/comfy/", "https://gpu.studio.example/comfy"),
    ("  http://[::1]:8188/ ", "http://[::1]:8188"),
])
def test_server_urls_are_normalised(given, expected):
    assert kinds.check_server_url(given) == expected


@pytest.mark.parametrize(("given", "says"), [
    ("", "no ComfyUI server URL"),
    ("ftp://host:21", "http:// or https://"),
    ("http://", "names no host"),
    ("http://host:99999", "bad port"),
    ("http://host:8188/?token=x", "query"),
    ("http://host:8188/a b", "spaces"),
])
def test_bad_server_urls_say_what_is_wrong(given, says):
    with pytest.raises(ValueError, match=says):
        kinds.check_server_url(given)


def test_headers_parse_from_one_line_or_many():
    assert kinds.parse_headers("X-Api-Key: abc; CF-Access-Client-Id: id.x\nX-Empty:") == {
        "X-Api-Key": "abc", "CF-Access-Client-Id": "id.x", "X-Empty": ""}
    assert kinds.parse_headers("  ") == {}


@pytest.mark.parametrize("bad", ["no colon here", "Bad Name: x", ": value", "X: a\x07b"])
def test_bad_headers_are_refused(bad):
    with pytest.raises(ValueError):
        kinds.parse_headers(bad)


def test_the_token_and_headers_go_in_the_environment_not_the_command_line():
    args, env = kinds.comfyui_launch("gpu-box:8188", " s3cret ", "X-Team: fx")
    assert args == ("--url", "http://gpu-box:8188")
    assert "s3cret" not in " ".join(args)
    values = dict(env)
    assert values[kinds.COMFYUI_TOKEN_ENV] == "s3cret"
    assert json.loads(values[kinds.COMFYUI_HEADERS_ENV]) == {"X-Team": "fx"}
    assert kinds.comfyui_launch("localhost:8188")[1] == ()
