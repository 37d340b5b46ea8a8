"""Record and replay the bridge's conversation with ComfyUI, so CI (no ComfyUI) still checks
the client. The proxy sits between the bridge and the real server (HTTP and the WebSocket
passed through byte for byte) and writes every exchange; the replay server answers from a
recording and fails the test when the bridge sends a request other than the recorded one
(method, path, query, JSON body after normalisation).

Normalisation: the bridge's client id, its session token (in upload names) and the prompt ids
it makes become <client_id>, <session>, <prompt_1>...; the replay puts this run's values back.
Binary bodies are kept as sha256 + size (+ base64 under 64 KiB); multipart uploads as their
fields, file name and file hash. WebSocket messages are kept in order, each with the index of
the job exchange it followed, so the replay sends it only after that request."""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import http.client
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RECORDINGS = Path(__file__).resolve().parent / "recordings"
SMALL = 64 << 10
# Requests any thread may send at any time (hello, capabilities, models): not an anchor for
# the order of WebSocket messages.
DISCOVERY = ("/system_stats", "/object_info", "/models")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
CLIENT = re.compile(r"clientId=([0-9a-f]{32})")
# The add-on's job stems (job_request.new_job_stem: date-time-unique_preset_sSEED) name the
# uploads and the result prefix: a Blender run makes new ones every time.
STAMP = re.compile(r"\d{8}-\d{6}-\d{10}")
SESSION = re.compile(r'filename="t2i_.*_([0-9a-f]{8})_(?:control|init|mask|reference\d+)\.')
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Names:
    """The run-specific strings and their placeholders, learned as they appear."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}  # actual -> placeholder

    def learn_client(self, client_id: str) -> None:
        if client_id not in self.values:
            self.values[client_id] = "<client_id>"
            self.values[client_id[:8]] = "<session>"

    def learn_session(self, session: str) -> None:
        """The uploads come before the client id is seen: their names carry its first part."""
        self.values.setdefault(session, "<session>")

    def learn_stamp(self, stamp: str) -> None:
        if stamp not in self.values:
            count = sum(v.startswith("<stamp_") for v in self.values.values())
            self.values[stamp] = f"<stamp_{count + 1}>"

    def learn_prompt(self, prompt_id: str) -> None:
        if prompt_id not in self.values:
            count = sum(v.startswith("<prompt_") for v in self.values.values())
            self.values[prompt_id] = f"<prompt_{count + 1}>"

    def normalise(self, value: Any) -> Any:
        if isinstance(value, str):
            for actual in sorted(self.values, key=len, reverse=True):
                value = value.replace(actual, self.values[actual])
            return value
        if isinstance(value, list):
            return [self.normalise(v) for v in value]
        if isinstance(value, dict):
            return {self.normalise(k): self.normalise(v) for k, v in value.items()}
        return value

    def restore(self, value: Any) -> Any:
        reverse = {v: k for k, v in self.values.items()}
        if isinstance(value, str):
            return re.sub(r"<(?:client_id|session|prompt_\d+|stamp_\d+)>",
                          lambda m: reverse.get(m.group(0), m.group(0)), value)
        if isinstance(value, list):
            return [self.restore(v) for v in value]
        if isinstance(value, dict):
            return {self.restore(k): self.restore(v) for k, v in value.items()}
        return value


# --- HTTP on a raw socket (one request per connection, as urllib sends them) -------------


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    raw_head: bytes = b""

    @property
    def is_websocket(self) -> bool:
        return self.headers.get("upgrade", "").lower() == "websocket"


def read_request(conn: socket.socket) -> Request | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return Request(method, target, headers, body, head)


def send_response(conn: socket.socket, status: int, content_type: str, body: bytes) -> None:
    reason = http.client.responses.get(status, "")
    conn.sendall(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                 f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)


def binary_record(data: bytes) -> dict[str, Any]:
    entry: dict[str, Any] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    if len(data) < SMALL:
        entry["base64"] = base64.b64encode(data).decode()
    return entry


def binary_bytes(entry: dict[str, Any]) -> bytes:
    if "base64" not in entry:
        raise AssertionError(f"the recording kept only the hash of a {entry['size']}-byte body")
    return base64.b64decode(entry["base64"])


def request_body(request: Request, names: Names) -> Any:
    """What of a request's body is compared: JSON after normalisation, a multipart upload's
    fields and file hash, other bytes' hash."""
    kind = request.headers.get("content-type", "")
    if not request.body:
        return None
    if kind.startswith("application/json"):
        return names.normalise(json.loads(request.body))
    if kind.startswith("multipart/form-data"):
        boundary = kind.split("boundary=", 1)[1].encode()
        fields: dict[str, Any] = {}
        for part in request.body.split(b"--" + boundary)[1:-1]:
            head, _, value = part.strip(b"\r\n").partition(b"\r\n\r\n")
            header = head.decode("latin-1")
            name = re.search(r'name="([^"]*)"', header).group(1)
            filename = re.search(r'filename="([^"]*)"', header)
            if filename:
                fields[name] = {"filename": names.normalise(filename.group(1)),
                                **{k: v for k, v in binary_record(value).items()
                                   if k != "base64"}}
            else:
                fields[name] = value.decode("utf-8")
        return {"multipart": fields}
    return binary_record(request.body)


def _without_input_files(info: Any) -> Any:
    """/object_info with the input folder's listing (LoadImage's choices) emptied: it grows
    with every upload, which would make each answer a new file; the bridge never reads it."""
    for node in ("LoadImage", "LoadImageMask"):
        spec = (((info.get(node) or {}).get("input") or {}).get("required") or {}).get("image") \
            if isinstance(info, dict) else None
        if isinstance(spec, list) and spec and isinstance(spec[0], list):
            spec[0] = []
    return info


def response_record(status: int, content_type: str, body: bytes, names: Names,
                    blobs: dict[str, bytes], path: str = "") -> dict[str, Any]:
    """`blobs` collects the shared files (written only when the recording is saved)."""
    entry: dict[str, Any] = {"status": status, "content_type": content_type}
    if content_type.startswith("application/json"):
        value = names.normalise(json.loads(body))
        if path == "/object_info":
            value = _without_input_files(value)
        text = json.dumps(value, sort_keys=True)
        if len(text) > SMALL:  # /object_info: one shared file per distinct answer
            name = f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.json.gz"
            blobs.setdefault(name, gzip.compress(text.encode(), mtime=0))
            entry["json_file"] = name
        else:
            entry["json"] = value
    elif content_type.startswith("text/"):
        entry["text"] = names.normalise(body.decode("utf-8", errors="replace"))
    else:
        entry["binary"] = binary_record(body)
    return entry


def response_bytes(entry: dict[str, Any], names: Names, blobs: Path) -> bytes:
    if "json_file" in entry:
        value = json.loads(gzip.decompress((blobs / entry["json_file"]).read_bytes()))
        return json.dumps(names.restore(value)).encode()
    if "json" in entry:
        return json.dumps(names.restore(entry["json"])).encode()
    if "text" in entry:
        return names.restore(entry["text"]).encode()
    return binary_bytes(entry["binary"])


def learn(request: Request, names: Names) -> None:
    """Pick the run's ids out of a request before it is normalised."""
    found = CLIENT.search(request.target)
    if found:
        names.learn_client(found.group(1))
    head = request.target + request.body[:4096].decode("latin-1")
    for stamp in STAMP.findall(head):
        names.learn_stamp(stamp)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        session = SESSION.search(request.body[:4096].decode("latin-1"))
        if session:
            names.learn_session(session.group(1))
    if request.headers.get("content-type", "").startswith("application/json") \
            and request.body:
        body = json.loads(request.body)
        if isinstance(body, dict):
            if isinstance(body.get("client_id"), str):
                names.learn_client(body["client_id"])
            if isinstance(body.get("prompt_id"), str) and UUID.fullmatch(body["prompt_id"]):
                names.learn_prompt(body["prompt_id"])


def normalised(request: Request, names: Names) -> tuple[str, Any]:
    """(path, body) as recordings keep them, after learning the run's ids from the request."""
    learn(request, names)
    return names.normalise(request.target), request_body(request, names)


# --- WebSocket frames (server -> client direction, unmasked) ---------------------------------


def split_frames(buffer: bytearray) -> list[tuple[int, bytes, bytes]]:
    """Complete frames at the front of `buffer` (removed): (opcode, payload, raw bytes)."""
    frames = []
    while len(buffer) >= 2:
        length, offset = buffer[1] & 0x7F, 2
        if length == 126:
            if len(buffer) < 4:
                break
            length, offset = int.from_bytes(buffer[2:4], "big"), 4
        elif length == 127:
            if len(buffer) < 10:
                break
            length, offset = int.from_bytes(buffer[2:10], "big"), 10
        mask = 4 if buffer[1] & 0x80 else 0
        end = offset + mask + length
        if len(buffer) < end:
            break
        payload = bytes(buffer[offset + mask:end])
        if mask:
            key = buffer[offset:offset + 4]
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        frames.append((buffer[0] & 0x0F, payload, bytes(buffer[:end])))
        del buffer[:end]
    return frames


def server_frame(opcode: int, payload: bytes) -> bytes:
    length = len(payload)
    if length < 126:
        head = bytes([0x80 | opcode, length])
    elif length < 65536:
        head = bytes([0x80 | opcode, 126]) + length.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 127]) + length.to_bytes(8, "big")
    return head + payload


# --- the recording proxy -----------------------------------------------------------------------


@dataclass
class Recording:
    exchanges: list[dict[str, Any]] = field(default_factory=list)
    ws: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self, case: str) -> str:
        return json.dumps({"case": case, "exchanges": self.exchanges, "ws": self.ws},
                          indent=1, sort_keys=True)


class _Listener:
    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True
        self.sock.close()


class RecordingProxy(_Listener):
    """Passes everything to `upstream` (host, port) and records it."""

    def __init__(self, upstream_port: int, blobs: Path = RECORDINGS / "shared"):
        self.upstream_port = upstream_port
        self.blobs = blobs
        self.names = Names()
        self.recording = Recording()
        self.lock = threading.Lock()
        self._ws_count = 0
        self._states_kept: set[int] = set()
        self._blobs: dict[str, bytes] = {}
        super().__init__()

    def start_case(self) -> None:
        with self.lock:
            self.names, self.recording, self._ws_count = Names(), Recording(), 0
            self._states_kept = set()
            self._blobs = {}

    def _anchor(self) -> int:
        """The index of the newest job exchange (not discovery): what a ws message followed."""
        for entry in reversed(self.recording.exchanges):
            if not entry["path"].startswith(DISCOVERY):
                return entry["i"]
        return -1

    def _add(self, entry: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            entry["i"] = len(self.recording.exchanges)
            self.recording.exchanges.append(entry)
        return entry

    def _serve(self, conn: socket.socket) -> None:
        try:
            request = read_request(conn)
            if request is None:
                return
            with self.lock:
                path, body = normalised(request, self.names)
            if request.is_websocket:
                self._websocket(conn, request, path)
                return
            try:
                upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port,
                                                      timeout=60)
                headers = {k: v for k, v in request.headers.items()
                           if k not in ("host", "connection", "content-length")}
                upstream.request(request.method, request.target, body=request.body or None,
                                 headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                kind = answer.getheader("Content-Type", "application/octet-stream")
                upstream.close()
            except OSError:
                self._add({"method": request.method, "path": path, "body": body,
                           "unreachable": True})
                return  # the bridge sees the connection drop, as with the server itself
            with self.lock:
                response = response_record(answer.status, kind, data, self.names,
                                           self._blobs, path)
            self._add({"method": request.method, "path": path, "body": body,
                       "response": response})
            send_response(conn, answer.status, kind, data)
        finally:
            conn.close()

    def _websocket(self, conn: socket.socket, request: Request, path: str) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
        except OSError:
            self._add({"method": "GET", "path": path, "body": None, "unreachable": True})
            return
        with self.lock:
            number = self._ws_count
            self._ws_count += 1
        upstream.sendall(request.raw_head + b"\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = upstream.recv(65536)
            if not chunk:
                break
            head += chunk
        self._add({"method": "GET", "path": path, "body": None, "websocket": number})
        handshake, _, rest = head.partition(b"\r\n\r\n")
        conn.sendall(handshake + b"\r\n\r\n")
        upstream.settimeout(None)
        client_done = threading.Event()

        def client_to_server() -> None:  # the bridge's close frame; forwarded untouched
            try:
                while chunk := conn.recv(65536):
                    upstream.sendall(chunk)
            except OSError:
                pass
            client_done.set()
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_RDWR)

        threading.Thread(target=client_to_server, daemon=True).start()
        buffer = bytearray(rest)
        try:
            while True:
                for opcode, payload, raw in split_frames(buffer):
                    self._record_ws(number, opcode, payload)
                    conn.sendall(raw)
                chunk = upstream.recv(65536)
                if not chunk:
                    break
                buffer += chunk
        except OSError:
            pass
        if not client_done.is_set():  # the server went away under a live connection
            with self.lock:
                self.recording.ws.append({"conn": number, "after": self._anchor(),
                                          "drop": True})
        upstream.close()

    def _record_ws(self, number: int, opcode: int, payload: bytes) -> None:
        with self.lock:
            entry: dict[str, Any] = {"conn": number, "after": self._anchor(), "opcode": opcode}
            if opcode == 1:
                entry["json"] = self.names.normalise(json.loads(payload))
                # ComfyUI's per-node state after every step, which the bridge does not read:
                # the first of a connection is kept (the bridge must skip it), not 40 of them
                if entry["json"].get("type") == "progress_state":
                    if number in self._states_kept:
                        return
                    self._states_kept.add(number)
            elif opcode == 2:
                entry["binary"] = binary_record(payload)
            else:
                entry["payload"] = base64.b64encode(payload).decode()
            self.recording.ws.append(entry)

    def save(self, case: str) -> Path:
        RECORDINGS.mkdir(parents=True, exist_ok=True)
        path = RECORDINGS / f"{case}.json"
        with self.lock:
            path.write_text(self.recording.to_json(case) + "\n", encoding="utf-8")
            self.blobs.mkdir(parents=True, exist_ok=True)
            for name, data in self._blobs.items():
                if not (self.blobs / name).exists():
                    (self.blobs / name).write_bytes(data)
        return path


# --- the replay server -------------------------------------------------------------------------


class ReplayServer(_Listener):
    """Answers from a recording. `mismatches` lists every request that differed from it; the
    test asserts it is empty (and the bridge, answered nothing for them, fails loudly too)."""

    def __init__(self, case: str, blobs: Path = RECORDINGS / "shared"):
        data = json.loads((RECORDINGS / f"{case}.json").read_text(encoding="utf-8"))
        self.exchanges: list[dict[str, Any]] = data["exchanges"]
        self.ws: list[dict[str, Any]] = data["ws"]
        self.blobs = blobs
        self.names = Names()
        self.used: set[int] = set()
        self.mismatches: list[str] = []
        self.cond = threading.Condition()
        super().__init__()

    def _match(self, method: str, path: str, body: Any) -> dict[str, Any] | None:
        """The first unused recorded exchange for this method and path (a polled one, e.g.
        GET /queue, may repeat its last answer); its body must be the recorded one."""
        same = [e for e in self.exchanges if e["method"] == method and e["path"] == path]
        fresh = [e for e in same if e["i"] not in self.used]
        if not same:
            self.mismatches.append(f"{method} {path}: not in the recording")
            return None
        entry = fresh[0] if fresh else same[-1]
        if entry.get("body") != body:
            self.mismatches.append(
                f"{method} {path}: body differs from the recording:\n  sent     "
                f"{json.dumps(body, sort_keys=True)[:2000]}\n  recorded "
                f"{json.dumps(entry.get('body'), sort_keys=True)[:2000]}")
            return None
        self.used.add(entry["i"])
        self.cond.notify_all()
        return entry

    def _serve(self, conn: socket.socket) -> None:
        try:
            request = read_request(conn)
            if request is None:
                return
            with self.cond:
                path, body = normalised(request, self.names)
                entry = self._match(request.method, path, body)
            if entry is None:
                send_response(conn, 599, "text/plain", b"not as recorded")
                return
            if entry.get("unreachable"):
                return  # close without an answer, as the dead server did
            if "websocket" in entry:
                self._websocket(conn, request, entry)
                return
            response = entry["response"]
            with self.cond:
                data = response_bytes(response, self.names, self.blobs)
            send_response(conn, response["status"], response["content_type"], data)
        finally:
            conn.close()

    def _websocket(self, conn: socket.socket, request: Request, entry: dict[str, Any]) -> None:
        key = request.headers["sec-websocket-key"]
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        closed = threading.Event()

        def read_client() -> None:
            try:
                while conn.recv(65536):
                    pass
            except OSError:
                pass
            closed.set()

        threading.Thread(target=read_client, daemon=True).start()
        for message in [m for m in self.ws if m["conn"] == entry["websocket"]]:
            with self.cond:  # wait for the request it followed
                while message["after"] >= 0 and message["after"] not in self.used \
                        and not closed.is_set() and not self.closed:
                    self.cond.wait(0.1)
                if closed.is_set() or self.closed:
                    return
                if message.get("drop"):
                    conn.shutdown(socket.SHUT_RDWR)
                    return
                if message["opcode"] == 1:
                    frame = server_frame(1, json.dumps(self.names.restore(message["json"]))
                                         .encode())
                elif message["opcode"] == 2:
                    frame = server_frame(2, binary_bytes(message["binary"]))
                else:
                    frame = server_frame(message["opcode"], base64.b64decode(message["payload"]))
            try:
                conn.sendall(frame)
            except OSError:
                return
        closed.wait(60)

    def unused(self) -> list[str]:
        """Recorded job requests the bridge never sent. Discovery and polls (GET /queue,
        /history) may come a different number of times, and a request repeated in the
        recording (a second interrupt at exit) counts as sent when one like it was."""
        def key(entry: dict[str, Any]) -> str:
            return json.dumps([entry["method"], entry["path"], entry.get("body")],
                              sort_keys=True)

        sent = {key(e) for e in self.exchanges if e["i"] in self.used}
        return [f"{e['method']} {e['path']}" for e in self.exchanges
                if key(e) not in sent and not e["path"].startswith(DISCOVERY)
                and not (e["method"] == "GET" and (e["path"] == "/queue"
                                                   or e["path"].startswith("/history")))]
