"""pyproject.toml: `pip install .` gives the producer helpers with redis alone, and
`pip install '.[server]'` the service. Built and installed into throwaway venvs from the
local package index (no network), from a copy of the checkout so that setuptools' build/
and *.egg-info land in tmp_path."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIP = shutil.ignore_patterns(
    ".venv", ".git", "var", "test-output", "build", "dist", "*.egg-info", "__pycache__", ".*cache"
)

pytestmark = pytest.mark.install


def _venv(path: Path) -> Path:
    venv.EnvBuilder(with_pip=True).create(path)
    return path / "bin" / "python"


def _run(python: Path, *args: str, cwd: Path) -> str:
    result = subprocess.run(
        [str(python), *args], cwd=cwd, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_pip_install_gives_producer_with_redis_alone_and_server_extra_gives_service(tmp_path):
    source = tmp_path / "push"
    shutil.copytree(ROOT, source, ignore=SKIP, symlinks=True)

    plain = _venv(tmp_path / "plain")
    _run(plain, "-m", "pip", "install", "--quiet", str(source), cwd=tmp_path)
    probe = (
        "import importlib.util, push\n"
        "from push import publish, publish_many\n"
        "print(push.__file__)\n"
        "print(importlib.util.find_spec('redis') is not None)\n"
        "print(importlib.util.find_spec('flask') is not None)\n"
    )
    where, has_redis, has_flask = _run(plain, "-c", probe, cwd=tmp_path).split()
    assert str(tmp_path / "plain") in where
    assert (has_redis, has_flask) == ("True", "False")

    server = _venv(tmp_path / "server")
    _run(server, "-m", "pip", "install", "--quiet", f"{source}[server]", cwd=tmp_path)
    probe = (
        "from push.service import create_app\n"
        "app = create_app({'PUSH_DEMO': True})\n"
        "client = app.test_client()\n"
        "print(client.get('/static/push.js').status_code, client.get('/').status_code)\n"
        "print(sorted(p.name for p in __import__('pathlib').Path(app.root_path, 'storage', 'lua')"
        ".glob('*.lua'))[:1])\n"
    )
    statuses, lua = _run(server, "-c", probe, cwd=tmp_path).splitlines()
    assert statuses == "200 200"
    assert lua != "[]"


def test_the_redis_the_package_accepts_is_no_older_than_the_one_tested():
    """A producer that already has an older redis must not get one push cannot import
    with (redis.maint_notifications came with redis 7): the floor is the pinned version."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (declared,) = [d for d in project["dependencies"] if d.startswith("redis")]
    pinned = re.search(r"^redis==(\d+)\.(\d+)", (ROOT / "requirements.txt").read_text(), re.M)
    floor = re.search(r">=(\d+)\.(\d+)", declared)
    assert floor is not None, declared
    assert floor.groups() == pinned.groups(), (declared, pinned.group(0))
