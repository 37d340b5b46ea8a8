"""What ComfyUI's answers mean for the user: its 400 node_errors, execution errors and HTTP
statuses become the protocol's error codes with messages that name the node and the file."""

from __future__ import annotations

from typing import Any

from t2i_core.protocol import ErrorCode

# ComfyUI's model folders by the loader input that picks from them: where a missing file goes.
MODEL_FOLDERS = {
    "ckpt_name": "checkpoints", "control_net_name": "controlnet", "lora_name": "loras",
    "unet_name": "diffusion_models", "vae_name": "vae", "clip_name": "text_encoders",
    "clip_name1": "text_encoders", "clip_name2": "text_encoders", "name": "model_patches",
    "model_patch_name": "model_patches",
}


class BridgeError(Exception):
    """A job failure to send as an `error` event; `hint` overrides the code's default."""

    def __init__(self, code: str, message: str, hint: str | None = None):
        super().__init__(message)
        self.code = code
        self.hint = hint


class JobCancelled(Exception):
    """The user cancelled the job: it ends with a `cancelled` event."""


def unreachable(url: str, reason: object) -> BridgeError:
    return BridgeError(ErrorCode.SERVER_UNREACHABLE,
                       f"ComfyUI at {url} is not reachable: {reason}")


def http_status_error(url: str, status: int, body: str) -> BridgeError:
    """An HTTP status the bridge did not expect (401/403 from a proxy, 404 on an old server)."""
    if status in (401, 403):
        return BridgeError(ErrorCode.SERVER_REJECTED,
                           f"ComfyUI at {url}: the server refused the token (HTTP {status})",
                           "Check the token (or the extra headers) in the add-on's "
                           "preferences against what the server or its proxy expects.")
    return BridgeError(ErrorCode.SERVER_REJECTED,
                       f"ComfyUI at {url} answered HTTP {status}: {body[:300]}")


def rejected_prompt(answer: Any, graph: dict[str, dict]) -> BridgeError:
    """A 400 from POST /prompt. A model name not in the server's list is MODEL_NOT_FOUND
    naming the file and its folder; anything else is SERVER_REJECTED naming each node."""
    if not isinstance(answer, dict):
        return BridgeError(ErrorCode.SERVER_REJECTED, f"ComfyUI refused the job: {answer!r}")
    node_errors = answer.get("node_errors") or {}
    missing, problems = [], []
    for node_id, entry in sorted(node_errors.items(), key=lambda item: _node_order(item[0])):
        if not isinstance(entry, dict):
            continue
        class_type = entry.get("class_type") or graph.get(node_id, {}).get("class_type", "?")
        for error in entry.get("errors") or ():
            info = error.get("extra_info") or {}
            name = info.get("input_name", "")
            if error.get("type") == "value_not_in_list" and name in MODEL_FOLDERS:
                missing.append((info.get("received_value"), MODEL_FOLDERS[name]))
                continue
            problems.append(f"{class_type} (node {node_id}): {_describe(error)}")
    if missing and not problems:
        files = "; ".join(f"'{value}' (put it in the server's models/{folder}/)"
                          for value, folder in missing)
        return BridgeError(ErrorCode.MODEL_NOT_FOUND,
                           f"the ComfyUI server does not have {files}",
                           "Put the file into that folder of the ComfyUI install (or its "
                           "extra_model_paths.yaml), then refresh the model list, or pick "
                           "a model the server lists in the model browser.")
    problems += [f"the server does not have '{value}' (models/{folder}/)"
                 for value, folder in missing]
    if not problems:  # no node to blame: the prompt as a whole (no outputs, unknown node)
        error = answer.get("error") or {}
        text = error.get("message", "") if isinstance(error, dict) else str(error)
        details = error.get("details", "") if isinstance(error, dict) else ""
        problems.append(f"{text} {details}".strip() or "no reason given")
    return BridgeError(ErrorCode.SERVER_REJECTED, "ComfyUI refused the job: "
                       + "; ".join(problems))


def execution_error(message: dict[str, Any]) -> BridgeError:
    """A ws `execution_error`: the node that raised, and what it raised."""
    node = f"{message.get('node_type', '?')} (node {message.get('node_id', '?')})"
    kind = str(message.get("exception_type", ""))
    text = str(message.get("exception_message", "")).strip()
    if "OutOfMemory" in kind or "out of memory" in text.lower():
        return BridgeError(ErrorCode.OUT_OF_MEMORY,
                           f"the ComfyUI server ran out of memory in {node}: {text}",
                           "Lower the size, or free the server's memory (another job's "
                           "models may be loaded); ComfyUI's --lowvram helps on small GPUs.")
    return BridgeError(ErrorCode.GENERATION_FAILED,
                       f"ComfyUI failed in {node}: {kind}: {text}".rstrip(": "),
                       "The ComfyUI server's console or log has the traceback.")


def _describe(error: dict[str, Any]) -> str:
    info = error.get("extra_info") or {}
    kind = error.get("type", "")
    name, value = info.get("input_name", ""), info.get("received_value")
    config = info.get("input_config")
    limits = config[1] if isinstance(config, list) and len(config) > 1 \
        and isinstance(config[1], dict) else {}
    if kind == "value_smaller_than_min" and "min" in limits:
        return f"{name} {value!r} is below the minimum {limits['min']}"
    if kind == "value_bigger_than_max" and "max" in limits:
        return f"{name} {value!r} is above the maximum {limits['max']}"
    message, details = error.get("message", kind), error.get("details", "")
    return f"{message}: {details}" if details and details != name else \
        f"{message}" + (f" ({name})" if name else "")


def _node_order(node_id: str) -> tuple[int, str]:
    return (int(node_id), "") if node_id.isdigit() else (1 << 30, node_id)
