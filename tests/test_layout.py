"""The installed layout: our import names cannot be shadowed, and every package installs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from tests.test_dashboard import build_run

REPO = Path(__file__).resolve().parents[1]
SEMPROBE = [sys.executable, "-m", "semprobe"]


@pytest.fixture
def hostile_cwd(tmp_path: Path) -> Path:
    """A research repository with its own ``app`` and ``pretrain`` packages that must never load."""
    for name in ("app", "pretrain"):
        package = tmp_path / name
        package.mkdir()
        (package / "__init__.py").write_text(
            f"raise ImportError('the user\\'s own {name} package was imported')\n"
        )
        (package / "launch.py").write_text("raise SystemExit(99)\n")
    return tmp_path


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # No PYTHONPATH: the installed package is what runs, as for a user.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", [["pretrain", "--help"], ["demo", "--help"]])
def test_commands_ignore_a_users_app_and_pretrain(hostile_cwd: Path, command: list[str]) -> None:
    done = _run([*SEMPROBE, *command], hostile_cwd)
    assert done.returncode == 0, done.stderr
    assert f"usage: semprobe {command[0]}" in done.stdout
    assert "the user's own" not in done.stderr


def test_dashboard_serves_beside_a_users_app_package(
    hostile_cwd: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    run = build_run(tmp_path_factory.getbasetemp())
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    server = subprocess.Popen(
        [*SEMPROBE, "dashboard", str(run), "--port", str(port)],
        cwd=hostile_cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline, healthy = time.monotonic() + 90, False
        while time.monotonic() < deadline and server.poll() is None and not healthy:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health") as reply:
                    healthy = reply.status == 200
            except OSError:
                time.sleep(0.3)
        assert healthy, f"the server exited ({server.returncode})"
    finally:
        os.killpg(server.pid, signal.SIGINT)  # Ctrl-C: the launcher and its server stop
        output = server.communicate(timeout=30)[0]
    assert "the user's own" not in output, output


def test_dashboard_script_runs_with_the_users_folder_first_on_the_path(
    hostile_cwd: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The page itself, as Streamlit runs it, with the user's folder first on ``sys.path``."""
    run = build_run(tmp_path_factory.getbasetemp())
    script = textwrap.dedent(
        f"""
        import sys
        from streamlit.testing.v1 import AppTest
        import semprobe.app
        from semprobe.app import launch
        sys.argv = ["streamlit", {str(run)!r}]
        app = AppTest.from_file(str(launch.SCRIPT), default_timeout=120)
        app.run()
        assert not app.exception, [e.message for e in app.exception]
        print([t.value for t in app.sidebar.title])
        """
    )
    done = _run([sys.executable, "-c", script], hostile_cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "semprobe" in done.stdout.lower()


def test_every_package_folder_is_installed() -> None:
    """A package folder missing from pyproject's list would be absent from the wheel."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {"semprobe": "semprobe", **config["package-dir"]}
    found = set()
    for name, folder in folders.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder).parts
            found.add(".".join((name, *relative)))
    assert found == set(config["packages"])


def test_every_library_module_is_under_the_layer_contract() -> None:
    """A new library module must be named in the contract, or its imports would go unchecked."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    forbidden = next(c for c in config["contracts"] if c["type"] == "forbidden")
    upper = set(forbidden["forbidden_modules"])
    library = {
        f"semprobe.{path.stem if path.is_file() else path.name}"
        for path in (REPO / "semprobe").iterdir()
        if (path.suffix == ".py" and path.stem not in ("__init__", "__main__"))
        or (path / "__init__.py").is_file()
    } - upper
    assert library == set(forbidden["source_modules"])
