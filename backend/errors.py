"""Exceptions the backend turns into `error` / `cancelled` events."""

from __future__ import annotations

from t2i_core.protocol import ErrorCode


class BackendError(Exception):
    """A job failure the user can act on; `code` is one of protocol.ErrorCode. `hint` replaces
    the code's generic hint when the backend knows something more specific."""

    def __init__(self, code: str, message: str, hint: str | None = None):
        super().__init__(message)
        self.code = code
        self.hint = hint


class ModelNotFound(BackendError):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(ErrorCode.MODEL_NOT_FOUND, message, hint)


class UnsafeModelFile(BackendError):
    def __init__(self, message: str):
        super().__init__(ErrorCode.UNSAFE_MODEL_FILE, message)


class WrongModelFamily(BackendError):
    def __init__(self, message: str):
        super().__init__(ErrorCode.WRONG_MODEL_FAMILY, message)


class JobCancelled(Exception):
    """Raised from the step callback: skips the remaining steps and the VAE decode."""
