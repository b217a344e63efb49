"""push/site.py, the site's half of PUSH_AUTH_URL, in a plain Flask app (its test client)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
from flask import Flask, session
from flask_login import LoginManager, UserMixin, login_user, logout_user
from servers import ROOT

from push.site import init_push_auth, push_auth_blueprint


def site_with(user_id=None, **options) -> Flask:
    app = Flask(__name__)
    app.secret_key = "site-test"
    init_push_auth(app, user_id, **options)
    return app


def test_a_signed_in_user_is_named_with_how_long_the_answer_holds():
    app = site_with(lambda: session.get("uid"), expires_in=120)

    @app.get("/in")
    def sign_in():
        session["uid"] = 42
        return "ok"

    client = app.test_client()
    client.get("/in")
    answer = client.get("/push-auth")
    assert answer.status_code == 200
    assert answer.get_json() == {"user_id": "42", "expires_in": 120}
    assert answer.headers["Cache-Control"] == "no-store"


def test_nobody_signed_in_is_a_401():
    answer = site_with(lambda: None).test_client().get("/push-auth")
    assert answer.status_code == 401
    assert answer.get_json()["error"] == "unauthorized"


def test_without_a_function_flask_logins_current_user_answers():
    app = site_with()
    logins = LoginManager(app)

    class User(UserMixin):
        def __init__(self, name: str) -> None:
            self.id = name

    logins.user_loader(User)

    @app.get("/in")
    def sign_in():
        login_user(User("alice"))
        return "ok"

    @app.get("/out")
    def sign_out():
        logout_user()
        return "ok"

    client = app.test_client()
    assert client.get("/push-auth").status_code == 401
    client.get("/in")
    assert client.get("/push-auth").get_json() == {"user_id": "alice", "expires_in": 300}
    client.get("/out")
    assert client.get("/push-auth").status_code == 401


@pytest.mark.parametrize("where", ["manager", "config"])
def test_strong_session_protection_is_refused_at_registration(where):
    app = Flask(__name__)
    app.secret_key = "test"
    logins = LoginManager(app)
    if where == "manager":
        logins.session_protection = "strong"
    else:
        app.config["SESSION_PROTECTION"] = "strong"
    with pytest.raises(RuntimeError, match="strong"):
        init_push_auth(app)


def test_strong_session_protection_set_up_after_registration_is_refused_at_the_call():
    app = site_with()
    app.config["PROPAGATE_EXCEPTIONS"] = True
    LoginManager(app).session_protection = "strong"
    with pytest.raises(RuntimeError, match="strong"):
        app.test_client().get("/push-auth")


def test_basic_session_protection_is_accepted():
    app = Flask(__name__)
    app.secret_key = "test"
    LoginManager(app)  # "basic" by default
    init_push_auth(app)


@pytest.mark.parametrize(("name", "signed_in"), [("alice7", True), ("ünïcode", False)])
def test_the_example_site_signs_in_only_names_push_takes_as_user_ids(name, signed_in):
    spec = importlib.util.spec_from_file_location(
        "flask_login_site", ROOT / "examples" / "flask_login_site" / "app.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    client = module.create_site().test_client()
    client.post("/login", data={"name": name, "password": module.PASSWORD})
    answer = client.get("/push-auth")
    assert answer.status_code == (200 if signed_in else 401)


def test_the_path_is_the_sites_choice():
    client = site_with(lambda: "7", path="/internal/push-who").test_client()
    assert client.get("/internal/push-who").get_json()["user_id"] == "7"
    assert client.get("/push-auth").status_code == 404


def test_a_non_positive_expiry_is_refused_at_registration():
    with pytest.raises(ValueError, match="expires_in"):
        push_auth_blueprint(lambda: "1", expires_in=0)


def test_the_site_module_imports_flask_only_no_gevent_or_prometheus():
    """Loaded on its own (as a site would once `push` is only the producer helpers)."""
    path = str(ROOT / "push" / "site.py")
    script = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('push_site', {path!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "module.push_auth_blueprint(lambda: None)\n"
        "heavy = sorted(n for n in sys.modules if n.split('.')[0] in "
        "('gevent', 'prometheus_client', 'redis', 'flask_sock'))\n"
        "print(json.dumps(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
