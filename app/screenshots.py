"""Drive the dashboard in headless Chromium: a served app, a browser, and the docs' screenshots.

``python -m semprobe.app.screenshots --out docs/img RUN_DIR [RUN_DIR...]`` serves the dashboard on
the runs, opens every view in headless Chromium and writes ``dashboard-<view>.png``. The browser
tests use :func:`serve` and :func:`chromium` too. Selenium is pointed at the system's Chromium
and chromedriver (``/usr/bin`` by default, or ``$CHROMIUM`` / ``$CHROMEDRIVER``): it never
downloads a driver.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from semprobe.app.launch import command

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")

#: View name -> (file name, extra URL parameters, text to wait for).
SHOTS: dict[str, tuple[str, dict[str, str], str]] = {
    "Runs": ("dashboard-runs.png", {}, "Runs"),
    "Simplices": ("dashboard-simplex.png", {}, "Intervene on this simplex"),
    "Search": ("dashboard-search.png", {"search_by": "test image"}, "the probe predicts"),
    "Graph": ("dashboard-graph.png", {}, "2-neighbours of"),
    "Relevance": ("dashboard-relevance.png", {}, "Relevance vs K"),
    "Entropy": ("dashboard-entropy.png", {}, "Mean entropy per class"),
    "Compare": ("dashboard-compare.png", {}, "Compare two models"),
}


def missing_browser() -> str | None:
    """Why a headless browser cannot run here, or None."""
    for what, path in (("Chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)):
        if not Path(path).is_file() or not os.access(path, os.X_OK):
            return f"{what} not found at {path}"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    return None


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(
    run_dirs: Sequence[str],
    port: int | None = None,
    timeout: float = 60.0,
    preload: bool = False,
) -> Iterator[str]:
    """Serve the dashboard in a subprocess; yields its URL and always stops the server.

    ``preload=False`` runs ``streamlit run app/dashboard.py`` itself; ``True`` the server of
    ``semprobe dashboard`` (see :func:`semprobe.app.launch.serve`).
    """
    port = port or free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command(run_dirs, port=port, preload=preload), stdout=log, stderr=subprocess.STDOUT
        )
        try:
            yield _wait_until_up(process, log, f"http://127.0.0.1:{port}", timeout)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_up(process: subprocess.Popen[bytes], log: Any, url: str, timeout: float) -> str:
    """Wait for the server's health check; raise with its output if it exits or hangs."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"the dashboard server exited: {log.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return url
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the dashboard server did not answer within {timeout:.0f} s")
        time.sleep(0.2)


@contextlib.contextmanager
def chromium(width: int = 1600, height: int = 1200) -> Iterator[Any]:
    """A headless Chromium driven by the system's chromedriver; always quits."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="semprobe-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        "--hide-scrollbars",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def page_url(base: str, view: str, **params: str) -> str:
    """The URL of a view (the ``view`` widget is bound to the URL)."""
    return f"{base}/?{urlencode({'view': view, **params})}"


def wait_for_text(driver: Any, text: str, timeout: float = 60.0) -> None:
    """Wait until ``text`` is on the page and the app has stopped running."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    busy = '[data-testid="stSkeleton"], [data-testid="stStatusWidgetRunningIcon"]'

    def ready(d: Any) -> bool:
        body = d.find_element(By.TAG_NAME, "body").text
        return text in body and not d.find_elements(By.CSS_SELECTOR, busy)

    WebDriverWait(driver, timeout, poll_frequency=0.25).until(ready)


def settle(driver: Any, seconds: float = 1.5) -> None:
    """Let charts finish drawing (plotly and Vega render after the script has run)."""
    time.sleep(seconds)


def capture(
    url: str,
    out: Path,
    views: Sequence[str] = tuple(SHOTS),
    params: dict[str, str] | None = None,
) -> list[Path]:
    """Screenshot each view of the dashboard served at ``url`` into ``out``.

    ``params`` are URL parameters of the bound widgets (``model``, ``simplex``, ``category``,
    ``k``, ``tau``), applied to every view.
    """
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with chromium(1600, 1500) as driver:
        for view in views:
            name, extra, text = SHOTS[view]
            driver.get(page_url(url, view, **extra, **(params or {})))
            wait_for_text(driver, text)
            settle(driver)
            path = out / name
            driver.save_screenshot(str(path))
            written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Screenshots of every dashboard view.")
    parser.add_argument("run_dirs", nargs="+")
    parser.add_argument("--out", default="docs/img")
    parser.add_argument("--views", nargs="*", default=list(SHOTS), choices=list(SHOTS))
    parser.add_argument("--model", help="run/model shown by the single-model views")
    parser.add_argument("--simplex", type=int, help="simplex of the simplex browser")
    parser.add_argument("--category", help="category of the graph view (a class name)")
    parser.add_argument("--k", type=int, help="K of the graph view")
    parser.add_argument("--tau", help="SEM temperature, one of the slider's values (e.g. 0.1)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other URL-bound widget, e.g. compare_b=run/model (repeatable)",
    )
    args = parser.parse_args(argv)
    reason = missing_browser()
    if reason:
        parser.error(reason)
    params = {
        key: str(value)
        for key, value in (
            ("model", args.model),
            ("simplex", args.simplex),
            ("category", args.category),
            ("k", args.k),
            ("tau", args.tau),
        )
        if value is not None
    }
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--set takes KEY=VALUE, got {item!r}")
        params[key] = value
    with serve(args.run_dirs) as url:
        for path in capture(url, Path(args.out), args.views, params):
            print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
