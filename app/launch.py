"""``semprobe dashboard RUN_DIR...``: serve the Streamlit dashboard on run directories."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

SCRIPT = Path(__file__).with_name("dashboard.py")

# What the dashboard script imports (torch among them), loaded before the server listens.
PRELOAD = (
    "semprobe.app.compute",
    "semprobe.app.data",
    "semprobe.app.figures",
    "semprobe.app.page",
    "semprobe.app.views.compare",
    "semprobe.app.views.entropy",
    "semprobe.app.views.graph",
    "semprobe.app.views.relevance",
    "semprobe.app.views.runs",
    "semprobe.app.views.simplices",
    "semprobe.plots",
)


def command(
    run_dirs: Sequence[str],
    port: int = 8501,
    address: str = "127.0.0.1",
    headless: bool = True,
    preload: bool = False,
) -> list[str]:
    """The ``streamlit run`` command line that serves the dashboard on ``run_dirs``.

    With ``preload`` the server process is ``python -m semprobe.app.launch``, which imports the
    app's heavy modules before starting Streamlit (see :func:`serve`); otherwise
    ``python -m streamlit``.
    """
    return [
        sys.executable,
        # -P: the working directory is not put on sys.path, so a user's folder of the same name
        # as a module (streamlit/, semprobe/) cannot shadow it in the server.
        "-P",
        "-m",
        "semprobe.app.launch" if preload else "streamlit",
        "run",
        str(SCRIPT),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true" if headless else "false",
        # The dashboard works offline; never phone home.
        "--browser.gatherUsageStats",
        "false",
        # A viewer's toolbar: no "Deploy" button.
        "--client.toolbarMode",
        "minimal",
        # Serving, not editing: do not watch the thousands of imported modules' files.
        "--server.fileWatcherType",
        "none",
        "--",
        *[str(Path(d).expanduser().absolute()) for d in run_dirs],
    ]


def main(
    run_dirs: list[str], port: int = 8501, headless: bool = True, address: str = "127.0.0.1"
) -> int:
    """Serve the dashboard until interrupted; returns Streamlit's exit status.

    Run directories that cannot be opened are reported here and, with their reason, in the app;
    the others stay usable. If none can be opened, nothing is served.
    """
    from semprobe.errors import SemprobeError
    from semprobe.rundir import Run

    problems = []
    for path in run_dirs:
        try:
            Run(path)
        except SemprobeError as exc:
            problems.append(str(exc))
    if run_dirs and len(problems) == len(run_dirs):
        # Nothing to show: refuse rather than serve an empty page.
        raise SemprobeError(problems[0])
    for problem in problems:
        print(f"semprobe dashboard: warning: {problem}", file=sys.stderr)
    print(f"semprobe dashboard: starting on http://{address}:{port}", file=sys.stderr)
    process = subprocess.Popen(command(run_dirs, port, address, headless, preload=True))
    try:
        return process.wait()
    except KeyboardInterrupt:
        # Ctrl-C reaches the server too (same process group); let it shut down cleanly.
        try:
            return process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.terminate()
            return process.wait()


def serve(argv: Sequence[str]) -> None:
    """The server process: ``streamlit <argv>`` after importing what the first page needs.

    Streamlit imports the script's modules on the first page view, which would make the first
    visitor wait for torch and the rest (seconds); importing them before the server listens
    moves that wait before "You can now view your Streamlit app".
    """
    import importlib

    from streamlit.web.cli import main as streamlit_main

    for module in PRELOAD:
        importlib.import_module(module)

    sys.argv = ["streamlit", *argv]
    streamlit_main(prog_name="streamlit")


if __name__ == "__main__":
    serve(sys.argv[1:])
