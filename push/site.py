"""The site's half of PUSH_AUTH_URL: a view that tells the push service who a session is.

A plain Flask app registers it in one line:

    init_push_auth(app)                        # from flask_login.current_user
    init_push_auth(app, user_id=lambda: session.get("uid"))

and sets PUSH_AUTH_URL=https://<site>/push-auth on the push service. The view answers
`200 {"user_id": "42", "expires_in": 300}` for a signed-in user and 401 otherwise. The
service ends such a stream at its own clock's now + expires_in + PUSH_JWT_LEEWAY_S (one
rule for every stream), and cuts an expires_in past PUSH_JWT_MAX_AGE_S to it. This
module imports Flask only (flask_login when no `user_id` function is given): no gevent,
no prometheus_client, nothing of the push service itself.

Flask-Login's session protection: the hook is called by the push service, from its own
address with its own User-Agent, so the session identifier Flask-Login derives from them
never matches the browser's. "strong" would then log every user out on every call: it is
refused (RuntimeError) when the blueprint is registered, or at the first call when the
LoginManager is set up later. "basic" (Flask-Login's default) only marks the session not
fresh on such a call: `fresh_login_required` views then ask the user to log in again.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Flask, Response, current_app, jsonify
from flask.blueprints import BlueprintSetupState

#: Seconds a stream opened with the session lives before it reconnects and the site is
#: asked again: an open stream outlives a logout by at most this long.
DEFAULT_EXPIRES_IN_S = 300
#: Where the view answers (the value to put in PUSH_AUTH_URL, after the site's origin).
DEFAULT_PATH = "/push-auth"

UserId = Callable[[], "str | int | None"]


def flask_login_user_id() -> str | None:
    """The signed-in user's id according to flask_login, or None."""
    from flask_login import current_user

    if current_user is None or not current_user.is_authenticated:
        return None
    return current_user.get_id()


def refuse_strong_session_protection(app: Flask) -> None:
    """RuntimeError when Flask-Login's session protection is "strong" on `app` (see the
    module's text): every hook call would log the user out."""
    manager = getattr(app, "login_manager", None)
    mode = app.config.get("SESSION_PROTECTION", getattr(manager, "session_protection", None))
    if manager is not None and str(mode).lower() == "strong":
        raise RuntimeError(
            "push_auth_blueprint: Flask-Login's session protection is 'strong' "
            "(SESSION_PROTECTION or login_manager.session_protection), which logs the user "
            "out on every call from the push service (another address and User-Agent); "
            "use 'basic' or None"
        )


def _answer(body: dict[str, object], status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    response.headers["Vary"] = "Cookie, Authorization"
    return response


def push_auth_blueprint(
    user_id: UserId | None = None,
    *,
    path: str = DEFAULT_PATH,
    expires_in: int = DEFAULT_EXPIRES_IN_S,
) -> Blueprint:
    """A blueprint with one GET view at `path` answering the push service's hook.

    `user_id` returns the signed-in user's id (None: nobody); without it flask_login's
    current_user is asked, and flask_login must be installed."""
    if user_id is None:
        try:
            import flask_login  # noqa: F401
        except ImportError:
            raise RuntimeError(
                "push_auth_blueprint: pass user_id=<function>, or install Flask-Login"
            ) from None
        user_id = flask_login_user_id
    if expires_in <= 0:
        raise ValueError("expires_in must be a positive number of seconds")
    who = user_id
    bp = Blueprint("push_auth", __name__)
    by_flask_login = user_id is flask_login_user_id

    @bp.record_once
    def check_session_protection(state: BlueprintSetupState) -> None:
        if by_flask_login:
            refuse_strong_session_protection(state.app)

    @bp.get(path)
    def push_auth() -> Response:
        if by_flask_login:
            refuse_strong_session_protection(current_app)
        found = who()
        if found is None or found == "":
            return _answer({"error": "unauthorized", "detail": "nobody is signed in"}, 401)
        return _answer({"user_id": str(found), "expires_in": expires_in}, 200)

    return bp


def init_push_auth(
    app: Flask,
    user_id: UserId | None = None,
    *,
    path: str = DEFAULT_PATH,
    expires_in: int = DEFAULT_EXPIRES_IN_S,
) -> Blueprint:
    """Register the hook's view on `app` (see push_auth_blueprint)."""
    bp = push_auth_blueprint(user_id, path=path, expires_in=expires_in)
    app.register_blueprint(bp)
    return bp
