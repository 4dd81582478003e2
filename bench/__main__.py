"""Run the benchmarks: ``python -m bench [NAME ...] [--smoke] [--out DIR]``.

Each benchmark runs in its own process (so peak memory is its own), prints one summary line and
writes ``<out>/<name>.json`` with the machine it ran on. ``--smoke`` runs the seconds-long
versions that CI uses to keep the benchmarks working.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

BENCHES = (
    "extraction",
    "probe",
    "entropy",
    "pretrain_step",
    "dashboard",
    "knn",
    "linear_grid",
    "probe_scale",
    "simplex_information",
)

CHILD = """
import json, sys
from importlib import import_module
from bench._common import machine_info, peak_rss_mb
result = import_module("bench." + sys.argv[1]).run(smoke=sys.argv[2] == "1")
result.setdefault("peak_rss_mb", peak_rss_mb())
result["machine"] = machine_info()
print("BENCH-RESULT " + json.dumps(result, default=str))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names",
        nargs="*",
        choices=[*BENCHES, []],
        metavar="NAME",
        help=f"benchmarks to run (default: all of {', '.join(BENCHES)})",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny, seconds-long versions")
    parser.add_argument("--out", default="bench/results", help="folder for the JSON results")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in args.names or BENCHES:
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, name, "1" if args.smoke else "0"],
            capture_output=True,
            text=True,
            check=False,
        )
        lines = [line for line in proc.stdout.splitlines() if line.startswith("BENCH-RESULT ")]
        if proc.returncode != 0 or not lines:
            failed.append(name)
            print(f"{name}: FAILED\n{proc.stderr[-3000:]}", file=sys.stderr)
            continue
        result = json.loads(lines[-1][len("BENCH-RESULT ") :])
        result["wall_s"] = time.perf_counter() - start
        (out / f"{name}{'-smoke' if args.smoke else ''}.json").write_text(
            json.dumps(result, indent=2, sort_keys=True) + "\n"
        )
        ratio = result.get("ratio")
        ratio_text = f"{ratio:.3g}" if isinstance(ratio, int | float) else str(ratio)
        print(
            f"{name}: ratio {ratio_text} vs {result.get('baseline', '?')} "
            f"({result['wall_s']:.0f} s)"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
