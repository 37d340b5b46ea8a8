"""Exceptions the backend turns into `error` / `cancelled` events."""

from __future__ import annotations

from .protocol import ErrorCode


class BackendError(Exception):
    """A job failure the user can act on; `code` is one of protocol.ErrorCode."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class ModelNotFound(BackendError):
    def __init__(self, message: str):
        super().__init__(ErrorCode.MODEL_NOT_FOUND, message)


class JobCancelled(Exception):
    """Raised from the step callback: skips the remaining steps and the VAE decode."""
