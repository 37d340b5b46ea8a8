"""What the ComfyUI bridge costs on top of ComfyUI itself.

Warm, same graph (a fresh seed each run, so ComfyUI's cache cannot skip the sampler): (a) a job
through the bridge process driven by the add-on's JobQueue, submit -> result (uploading the
depth, queueing, following the WebSocket, fetching the result through /history and /view,
writing the PNG with its text); (b) a bare client: POST /prompt -> WebSocket
execution_success, the depth uploaded once beforehand. Runs are interleaved.

    T2I_TEST_COMFYUI=... T2I_TEST_COMFYUI_PYTHON=... \
        .venv/bin/python bench/comfyui_overhead.py [--size 64] [--steps 20] [--runs 5]

Goal: a ratio of at most 1.05 for a job over 1 s. Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from comfy_bridge.families import ServerInfo  # noqa: E402
from comfy_bridge.graphs import Uploads, build_graph  # noqa: E402
from comfy_bridge.http import ComfyClient  # noqa: E402
from comfy_bridge.websocket import WebSocket  # noqa: E402
from t2i_core import job_request, png, protocol  # noqa: E402
from t2i_core.backend_process import BackendConfig  # noqa: E402
from t2i_core.job_queue import JobQueue  # noqa: E402
from t2i_core.job_request import JobSettings  # noqa: E402
from t2i_core.presets import get_preset  # noqa: E402
from tests.comfyui.comfy_server import ComfyServer, find_comfyui, tiny_models  # noqa: E402


def make_request(work: Path, stem: str, size: int, steps: int, seed: int) -> dict:
    import numpy as np

    ramp = np.linspace(0, 65535, size).astype(np.uint16)
    depth = png.write_png(work / "depth.png", np.tile(ramp, (size, 1)))
    settings = JobSettings(preset=get_preset("tiny-sd15-depth"), prompt="a red cube",
                           negative_prompt="", seed=seed, steps=steps, guidance=7.5,
                           control_strength=1.0, size=(size, size))
    return job_request.build_request(stem, settings, str(depth), str(work / "out"))


def bare_run(client: ComfyClient, graph: dict, client_id: str) -> float:
    """POST /prompt -> execution_success, seconds."""
    ws = WebSocket.connect(f"{client.ws_url}?clientId={client_id}")
    try:
        started = time.perf_counter()
        prompt_id = client.post_json("/prompt", {"prompt": graph,
                                                 "client_id": client_id})["prompt_id"]
        while True:
            message = ws.recv(60)
            if message is None:
                raise RuntimeError("no answer from ComfyUI in 60 s")
            if message.opcode != 1:
                continue
            event = json.loads(message.text)
            data = event.get("data") or {}
            if data.get("prompt_id") == prompt_id and event["type"] in (
                    "execution_success", "execution_error"):
                if event["type"] == "execution_error":
                    raise RuntimeError(data.get("exception_message"))
                return time.perf_counter() - started
    finally:
        ws.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    # a `timeout` or Ctrl-C still stops the ComfyUI this started (the finally below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    found = find_comfyui()
    if isinstance(found, str):
        print(f"comfyui_overhead: {found}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        models = tiny_models(ROOT / ".pytest_cache" / "d" / "t2i-comfyui")
        server = ComfyServer(*found, models, work / "comfyui")
        server.start()
        queue = JobQueue()
        try:
            config = BackendConfig(python=sys.executable, cache_dir=work / "cache",
                                   log_path=work / "bridge.log", module="comfy_bridge",
                                   args=("--url", server.url))
            client = ComfyClient(server.url)
            info = ServerInfo.from_object_info(client.get_json("/object_info"))
            make_request(work, "bench_depth", args.size, args.steps, 0)  # writes depth.png
            depth_name = client.upload_image("bench_depth.png",
                                             (work / "depth.png").read_bytes())
            bridge, bare = [], []
            for run in range(args.runs + 1):  # the first of each warms up
                message = make_request(work, f"bench_{run}", args.size, args.steps, 100 + run)
                started = time.perf_counter()
                queue.submit(message, config).wait(600)
                bridge_s = time.perf_counter() - started
                request = protocol.parse_generate({**message, "seed": 1000 + run})
                graph, _ = build_graph(request, Uploads(control=depth_name), info)
                bare_s = bare_run(client, graph, uuid.uuid4().hex)
                if run:
                    bridge.append(bridge_s)
                    bare.append(bare_s)
                print(f"run {run}{' (warm-up)' if not run else ''}: bridge {bridge_s:.3f} s, "
                      f"bare ComfyUI {bare_s:.3f} s", flush=True)
        finally:
            queue.stop(wait=True)
            server.stop()
    b, c = statistics.median(bridge), statistics.median(bare)
    print(f"\n{args.size}x{args.size}, {args.steps} steps, {args.runs} runs: median bridge "
          f"{b:.3f} s, bare ComfyUI {c:.3f} s, ratio {b / c:.3f} (goal <= 1.05)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
