"""The two kinds of backend the add-on can drive, and how each is launched.

Both speak the same JSON-lines protocol (docs/protocol.md), so the queue, the watchdog, the
panel and the batch script do not know which one runs:

- local: `python -m backend`, the diffusers process in the backend environment.
- ComfyUI: `python -m comfy_bridge --url URL`, a stdlib-only process that turns each job into a
  ComfyUI API graph and talks to a ComfyUI server over HTTP and its WebSocket
  (docs/comfyui.md). It needs nothing installed, so it runs in Blender's own Python.

The server's token and extra headers travel in the bridge's environment, never on its command
line (where `ps` would show them to every user of the machine)."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit, urlunsplit

LOCAL = "local"
COMFYUI = "comfyui"
KINDS = (LOCAL, COMFYUI)

BACKEND_MODULE = "backend"
BRIDGE_MODULE = "comfy_bridge"

COMFYUI_TOKEN_ENV = "T2I_COMFYUI_TOKEN"  # sent as "Authorization: Bearer <token>"
COMFYUI_HEADERS_ENV = "T2I_COMFYUI_HEADERS"  # a JSON object of extra request headers
DEFAULT_COMFYUI_URL = "http://127.0.0.1:8188"

# RFC 7230 token characters: a header name with anything else is refused by HTTP servers
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def check_server_url(url: str) -> str:
    """The ComfyUI server's address, normalised (no trailing slash); ValueError says what is
    wrong with it in words an artist can act on."""
    text = url.strip()
    if not text:
        raise ValueError("no ComfyUI server URL is set: enter one in the preferences, e.g. "
                         f"{DEFAULT_COMFYUI_URL}")
    if "://" not in text:
        text = "http://" + text  # "127.0.0.1:8188" is how ComfyUI prints its address
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"the ComfyUI URL '{url}' must start with http:// or https://")
    if not parts.hostname:
        raise ValueError(f"the ComfyUI URL '{url}' names no host")
    try:
        parts.port  # noqa: B018 (raises on a port that is not a number in range)
    except ValueError:
        raise ValueError(f"the ComfyUI URL '{url}' has a bad port") from None
    if parts.query or parts.fragment:
        raise ValueError(f"the ComfyUI URL '{url}' must not have a query or a #fragment")
    if any(ord(c) < 33 for c in text):
        raise ValueError(f"the ComfyUI URL '{url}' contains spaces or control characters")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def parse_headers(text: str) -> dict[str, str]:
    """Extra headers as the preferences hold them: `Name: value` pairs, one per line or
    separated by `;` (what an authenticating proxy in front of ComfyUI asks for)."""
    headers: dict[str, str] = {}
    for item in re.split(r"[;\n]", text):
        if not item.strip():
            continue
        name, colon, value = item.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not _HEADER_NAME.match(name):
            raise ValueError(f"the header '{item.strip()}' is not 'Name: value'")
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError(f"the header '{name}' has a control character in its value")
        headers[name] = value
    return headers


def comfyui_launch(url: str, token: str = "", headers: str = ""
                   ) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """(arguments after `-m comfy_bridge`, extra environment) for a ComfyUI server;
    ValueError when the URL or the headers are unusable."""
    env: list[tuple[str, str]] = []
    if token.strip():
        env.append((COMFYUI_TOKEN_ENV, token.strip()))
    extra = parse_headers(headers)
    if extra:
        env.append((COMFYUI_HEADERS_ENV, json.dumps(extra)))
    return ("--url", check_server_url(url)), tuple(env)
