"""Refusals: every bad request gets an HTTP status and a JSON body naming the problem.

The exceptions only: any layer may raise them; push/edge/errors.py turns them into answers."""

from __future__ import annotations


class Refusal(Exception):
    """A request the service answers with `status` and `{"error": ..., "detail": ...}`."""

    def __init__(
        self, status: int, error: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}


class HookUnavailable(Exception):
    """The site's auth hook (push/identity/site_hook.py) gave no usable answer: the client should
    come back shortly."""
