"""Refusals: every bad request gets an HTTP status and a JSON body naming the problem."""

from __future__ import annotations

from flask import Flask, Response, jsonify


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


def refusal_response(refusal: Refusal) -> Response:
    response = jsonify(error=refusal.error, detail=refusal.detail)
    response.status_code = refusal.status
    response.headers.update(refusal.headers)
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    app.register_error_handler(Refusal, refusal_response)
    for status, error in ((404, "not_found"), (405, "method_not_allowed")):
        app.register_error_handler(
            status,
            lambda exc, status=status, error=error: refusal_response(
                Refusal(status, error, exc.description)
            ),
        )
