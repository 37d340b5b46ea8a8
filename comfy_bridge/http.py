"""A small REST client for ComfyUI's API (urllib only): JSON in and out, multipart upload, the
token and extra headers on every request, a timeout on every call."""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

from t2i_core.backend_kinds import COMFYUI_HEADERS_ENV as HEADERS_ENV
from t2i_core.backend_kinds import COMFYUI_TOKEN_ENV as TOKEN_ENV

TIMEOUT_S = 30.0  # one request; /object_info of a large install takes a few seconds


class ServerUnreachable(Exception):
    """Connection refused/reset, DNS failure, timeout: no answer from the server."""


class HttpError(Exception):
    """The server answered with an error status; `body` is its text (JSON for /prompt)."""

    def __init__(self, status: int, method: str, path: str, body: str):
        super().__init__(f"{method} {path} answered {status}: {body[:300]}")
        self.status = status
        self.body = body

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def environment_headers(environ: dict[str, str] | os._Environ) -> dict[str, str]:
    """The headers the add-on passed in the environment (never argv: a token in a process
    list is readable by every user of the machine)."""
    headers: dict[str, str] = {}
    extra = environ.get(HEADERS_ENV, "")
    if extra:
        try:
            parsed = json.loads(extra)
        except ValueError as exc:
            raise ValueError(f"{HEADERS_ENV} is not a JSON object: {exc}") from None
        if not isinstance(parsed, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()):
            raise ValueError(f"{HEADERS_ENV} must be a JSON object of strings")
        headers.update(parsed)
    token = environ.get(TOKEN_ENV, "")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


@dataclass
class ComfyClient:
    url: str  # http(s)://host:port[/prefix]
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = TIMEOUT_S

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"'{self.url}' is not an http:// or https:// URL")
        self.url = self.url.rstrip("/")
        self._context = ssl.create_default_context() if parts.scheme == "https" else None

    @property
    def host(self) -> str:
        """host:port, for the `ready` event's device name."""
        parts = urllib.parse.urlsplit(self.url)
        default = 443 if parts.scheme == "https" else 80
        return f"{parts.hostname}:{parts.port or default}"

    @property
    def ws_url(self) -> str:
        parts = urllib.parse.urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return urllib.parse.urlunsplit((scheme, parts.netloc, parts.path + "/ws", "", ""))

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str = "application/json", timeout: float | None = None) -> bytes:
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout,
                                        context=self._context) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", errors="replace")
            raise HttpError(exc.code, method, path, text) from None
        except (TimeoutError, urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerUnreachable(f"{method} {self.url}{path}: {reason}") from None

    def get_json(self, path: str, timeout: float | None = None) -> Any:
        return _loads(self.request("GET", path, timeout=timeout), path)

    def post_json(self, path: str, payload: Any, timeout: float | None = None) -> Any:
        data = self.request("POST", path, json.dumps(payload).encode("utf-8"),
                            timeout=timeout)
        return _loads(data, path) if data.strip() else None

    def upload_image(self, name: str, data: bytes) -> str:
        """POST /upload/image (type input, overwrite): the name LoadImage takes."""
        boundary = uuid.uuid4().hex
        fields = [("type", "input"), ("overwrite", "true")]
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'
                 f"{value}\r\n".encode() for key, value in fields]
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
                     f'filename="{name}"\r\nContent-Type: image/png\r\n\r\n'.encode()
                     + data + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        answer = _loads(self.request("POST", "/upload/image", body,
                                     f"multipart/form-data; boundary={boundary}"),
                        "/upload/image")
        subfolder = answer.get("subfolder") or ""
        return f"{subfolder}/{answer['name']}" if subfolder else answer["name"]

    def view(self, filename: str, subfolder: str, kind: str) -> bytes:
        query = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder,
                                        "type": kind})
        return self.request("GET", f"/view?{query}")


def _loads(data: bytes, path: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        raise ServerUnreachable(f"{path} did not answer JSON (is this a ComfyUI server?): "
                                f"{data[:120]!r}") from None
