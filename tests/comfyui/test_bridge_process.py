"""The bridge process without a ComfyUI: an unreachable URL still answers `ready` (no families)
and says why; bad lines are answered and it keeps serving; a proxy refusing the token is
SERVER_REJECTED; closing stdin ends it within about 2 s."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bridge(url: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "comfy_bridge", "--url", url], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)


def _events(process: subprocess.Popen, count: int, timeout: float = 30) -> list[dict]:
    found: list[dict] = []

    def read() -> None:
        while len(found) < count:
            line = process.stdout.readline()
            if not line:
                return
            event = json.loads(line)
            if event["type"] != "heartbeat":
                found.append(event)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    return found


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_server_answers_ready_then_says_why_and_bad_lines_are_answered(
        tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}"
    process = _bridge(url)
    try:
        process.stdin.write(b'{"type":"hello"}\n\xff\xfe not json\n{"type":"nope"}\n')
        job = {"type": "generate", "id": "j1", "model": {"family": "sd15_controlnet",
                                                          "base": "tiny", "controlnet": "tiny"},
               "prompt": "p", "seed": 1, "steps": 2, "guidance": 7.5, "width": 64,
               "height": 64, "control_image": str(tmp_path / "d.png"),
               "output_dir": str(tmp_path)}
        process.stdin.write((json.dumps(job) + "\n").encode())
        process.stdin.flush()
        ready, unreachable, bad, unknown, accepted, failed = _events(process, 6)
    finally:
        process.stdin.close()
    assert ready["type"] == "ready" and ready["families"] == []
    assert ready["devices"] == [f"comfyui:127.0.0.1:{url.rsplit(':', 1)[1]}"]
    assert unreachable["code"] == "SERVER_UNREACHABLE" and "id" not in unreachable
    assert unreachable["message"].startswith(f"ComfyUI at {url} is not reachable: ")
    assert bad["code"] == "BAD_REQUEST" and unknown["code"] == "UNKNOWN_REQUEST"
    assert accepted["type"] == "accepted"
    assert failed["code"] == "SERVER_UNREACHABLE" and failed["id"] == "j1"
    started = time.monotonic()
    process.wait(10)
    assert time.monotonic() - started < 4.0


class _Refusing(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:
        _Refusing.seen.append(self.headers.get("Authorization", ""))
        self.send_response(401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_refused_token_is_server_rejected_and_the_token_travels_in_the_header():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    process = _bridge(f"http://127.0.0.1:{server.server_port}", T2I_COMFYUI_TOKEN="s3cret")
    try:
        process.stdin.write(b'{"type":"hello"}\n')
        process.stdin.flush()
        ready, refused = _events(process, 2)
    finally:
        process.stdin.close()
        process.wait(10)
        server.shutdown()
    assert ready["families"] == []
    assert refused["code"] == "SERVER_REJECTED" and "refused the token" in refused["message"]
    assert _Refusing.seen[0] == "Bearer s3cret"
    assert "s3cret" not in " ".join(process.args)  # never on the command line
