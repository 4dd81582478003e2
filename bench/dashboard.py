"""Dashboard responsiveness: first paint of a run and a simplex switch, against their targets.

A demo-sized run directory (CIFAR-100-sized test split: 10,000 images of 100 classes in 20
superclasses; a SEM model with L = 64, V = 13 as ``pretrain`` builds for the synthetic data set,
and a baseline) is written with :func:`synthetic_run`, then the Streamlit script is driven
in-process with ``streamlit.testing.v1.AppTest``:

* ``first_paint_s``: a new session on the simplex browser of a run no session has opened yet:
  every Streamlit cache empty, modules already imported (as in a running server; a warm-up
  session on another run imports them);
* ``first_paint_warm_s``: a new session when another session already opened the run;
* ``simplex_switch_s``: median time of the rerun after changing the simplex index;
* ``rerun_s``: median time of a rerun that changes nothing (the script's fixed cost).
* ``first_paint_cold_s`` (``--cold``, root): first paints after dropping the page cache, against
  the same run without its simplex-major copy (``first_paint_cold_strided_s``, the baseline: a
  simplex read strided from the row-major logits).

``ratio`` is the switch time over its 300 ms target (below 1 is within target); the first paint
target is 3 s. These are server-side times; where Chromium is installed the full run also times
the page in a real browser (``browser_*``, see :func:`browser_timings`).

Run it with ``python -m bench.dashboard [--smoke] [--simplices 5000] [--cold]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench._common import machine_info, peak_rss_mb

SWITCH_TARGET_S = 0.3
FIRST_PAINT_TARGET_S = 3.0
SCRIPT = Path(__file__).resolve().parents[1] / "app" / "dashboard.py"


def synthetic_run(
    out: str | os.PathLike[str],
    per_class: int = 100,
    num_simplices: int = 64,
    vocab: int = 13,
    k: int = 10,
    k_max: int = 30,
    permutations: int = 100,
    seed: int = 0,
) -> Path:
    """Write a complete run directory with planted structure, without training or extraction.

    The test images are the built-in synthetic data set's; SEM logits are drawn so that some
    simplices encode the superclass (a vertex per superclass) and others are noise, and the probe
    weights are the class-conditional means of the SEM features, sparsified. Every file follows
    :mod:`semprobe.rundir`; the numbers are made up, so use it only to exercise readers.
    """
    from semprobe import synthetic
    from semprobe.atomic import write_json
    from semprobe.concepts import feature_concepts, simplex_concepts
    from semprobe.graph import sem_feature_name, to_networkx, top_k_graph, write_graphml
    from semprobe.relevance import relevance_curve, relevance_with_null
    from semprobe.rundir import building_run, write_dataset_files, write_run_metadata
    from semprobe.simplex_information import keep_information
    from semprobe.simplex_major import SIMPLEX_MAJOR_FILE, write_simplex_major

    rng = np.random.default_rng(seed)
    images, labels = synthetic.make_split("test", per_class, seed=seed)
    class_names = synthetic.class_names()
    superclass_of = synthetic.superclass_of()
    supers = [superclass_of[c] for c in class_names]
    super_index = {s: i for i, s in enumerate(dict.fromkeys(supers))}
    label_super = np.array([super_index[supers[c]] for c in labels])
    n, n_classes = len(labels), len(class_names)

    def probe_files(
        folder: Path,
        x: np.ndarray,
        name: str,
        spec: dict[str, Any],
        representation: str,
        tau: float | None,
        vocab_: int | None,
    ) -> None:
        rel = folder / "relevance"
        rel.mkdir(parents=True)
        centred = x - x.mean(axis=0)
        class_mean = np.stack([centred[labels == c].mean(axis=0) for c in range(n_classes)])
        cut = np.quantile(np.abs(class_mean), 0.9)
        coef = np.where(np.abs(class_mean) >= cut, class_mean / (x.std() + 1e-6), 0.0)
        scores = centred @ coef.T
        top1 = float(np.mean(scores.argmax(axis=1) == labels))
        top5 = float(np.mean((np.argsort(-scores, axis=1)[:, :5] == labels[:, None]).any(axis=1)))
        np.savez(
            rel / "probe.npz",
            coef=coef.astype(np.float32),
            intercept=np.zeros(n_classes, np.float32),
            classes=np.arange(n_classes),
            # The scaling the simplex browser's interventions apply before the weights.
            input_mean=x.mean(axis=0).astype(np.float32),
            input_std=np.full(x.shape[1], x.std() + 1e-6, dtype=np.float32),
        )
        graph = top_k_graph(coef, k)
        test = relevance_with_null(graph, supers, k, n_permutations=permutations, seed=seed)
        ks = list(range(1, min(k_max, coef.shape[1]) + 1))
        relevance_curve(coef, supers, ks, n_permutations=permutations, seed=seed).to_csv(
            rel / "curve.csv", index=False
        )
        names = [sem_feature_name(j, vocab_) if vocab_ else f"f{j}" for j in range(coef.shape[1])]
        write_graphml(to_networkx(graph, class_names, names, supers), rel / "graph.graphml")
        concepts = feature_concepts(graph, class_names, supers, vocab_, use_wordnet=False)
        concepts.insert(1, "name", [names[f] for f in concepts["feature"]])
        concepts.to_csv(rel / "feature_concepts.csv", index=False)
        if vocab_:
            simplex_concepts(concepts).to_csv(rel / "simplex_concepts.csv", index=False)
        write_json(
            folder / "model.json",
            {"model": name, "checkpoint": None, "spec": spec, "fingerprint": f"synthetic-{name}"},
        )
        write_json(
            rel / "summary.json",
            {
                "model": name,
                "checkpoint": None,
                "spec": spec,
                "fingerprint": f"synthetic-{name}",
                "dataset": f"synthetic:test={per_class}",
                "representation": representation,
                "tau": tau,
                "n_features": int(coef.shape[1]),
                "n_train": 0,
                "n_test": n,
                "probe": {
                    "top1": top1,
                    "top5": top5,
                    "sparsity": float(np.mean(coef == 0)),
                    "nonzero_weights": int(np.count_nonzero(coef)),
                },
                "relevance": test.as_dict(),
                "settings": {
                    "k": k,
                    "k_max": k_max,
                    "rule": "category",
                    "multiplicity": False,
                    "permutations": permutations,
                    "seed": seed,
                },
            },
        )

    with building_run(out) as work:
        write_dataset_files(work, class_names, superclass_of, labels, images)
        # SEM model: simplex s encodes the superclass with strength[s] (0 for pure noise).
        strength = rng.choice([0.0, 1.5, 3.0, 6.0], size=num_simplices)
        vertex_of = rng.integers(0, vocab, size=(num_simplices, len(super_index)))
        z = rng.normal(0.0, 1.0, size=(n, num_simplices, vocab)).astype(np.float32)
        planted = vertex_of[:, label_super].T  # (n, L)
        np.put_along_axis(
            z,
            planted[:, :, None],
            np.take_along_axis(z, planted[:, :, None], axis=2) + strength[None, :, None],
            axis=2,
        )
        z = z.reshape(n, num_simplices * vocab)
        tau = 0.5
        spec = {
            "backbone": "small_cnn",
            "cifar_stem": True,
            "num_simplices": num_simplices,
            "vocab": vocab,
            "tau": tau,
            "tau_target": tau,
            "method": "byol",
            "dataset": "synthetic",
        }
        sem = work / "sem"
        sem.mkdir()
        np.save(sem / "logits.npy", z.astype(np.float16))
        grouped = z.reshape(n, num_simplices, vocab) / tau
        probs = np.exp(grouped - grouped.max(axis=2, keepdims=True))
        probs /= probs.sum(axis=2, keepdims=True)
        probe_files(sem, probs.reshape(n, -1), "sem", spec, "sem", tau, vocab)
        # As the relevance analysis does: the per-simplex information is computed with the run,
        # not at the dashboard's first paint.
        keep_information(sem, z, num_simplices, vocab, labels, class_names, superclass_of)
        logits16 = np.load(sem / "logits.npy", mmap_mode="r")
        write_simplex_major(logits16, num_simplices, vocab, sem / SIMPLEX_MAJOR_FILE)
        pd.DataFrame(
            {
                "model": "sem",
                "representation": ["sem"] * 4 + ["backbone"],
                "tau": [0.1, 0.5, 1.0, 2.0, np.nan],
                "top1": [0.31, 0.35, 0.33, 0.27, 0.30],
                "top5": [0.62, 0.66, 0.64, 0.58, 0.61],
            }
        ).to_csv(sem / "tau_sweep.csv", index=False)
        # Baseline: backbone features with a weaker, noisier superclass signal.
        base = work / "baseline"
        base.mkdir()
        features = rng.normal(size=(n, 256)) + 0.8 * rng.normal(size=(20, 256))[label_super]
        spec_base = {**spec, "num_simplices": 0, "vocab": 0}
        probe_files(base, features, "baseline", spec_base, "backbone", None, None)
        write_run_metadata(
            work,
            "relevance",
            ["sem", "baseline"],
            {"dataset": f"synthetic:test={per_class}", "synthetic_run": True},
        )
    return Path(out)


def _app() -> Any:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(SCRIPT), default_timeout=120)
    at.query_params["view"] = "Simplices"
    return at


def _timed(at: Any) -> float:
    start = time.perf_counter()
    at.run()
    return time.perf_counter() - start


# Times a simplex switch inside the page: from the Enter key to the new heading with the app idle,
# so that the WebDriver round trips (tens of ms each on a busy machine) are not counted.
_SWITCH_PROBE = """
const target = arguments[0];
const busy = '[data-testid="stSkeleton"], [data-testid="stStatusWidgetRunningIcon"]';
const t = (window.__switch = {});
document.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && t.enter === undefined) t.enter = performance.now();
}, {capture: true});
const check = () => {
  const heads = Array.from(document.querySelectorAll("h2"));
  if (t.heading === undefined && heads.some((h) => h.textContent.trim() === target)) {
    t.heading = performance.now();
  }
  if (t.heading !== undefined && !document.querySelector(busy)) {
    t.idle = performance.now();
    observer.disconnect();
  }
};
const observer = new MutationObserver(check);
observer.observe(document.body, {subtree: true, childList: true, characterData: true,
                                 attributes: true});
"""


DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def drop_page_cache() -> None:
    """Write back and drop the kernel's page cache, so that the next reads come from the disk."""
    os.sync()
    DROP_CACHES.write_text("1\n")


def clone_run(run_dir: Path, name: str, simplex_copy: bool) -> Path:
    """A hard-linked clone of ``run_dir`` named ``name`` (no extra disk), with or without its
    simplex-major copies.

    A clone is a run no session has opened (the dashboard's caches are keyed by the run's
    path), on the same files: without the copies the dashboard reads a simplex from the
    row-major logits, the baseline of the copy's first paint.
    """
    from semprobe.simplex_major import SIMPLEX_MAJOR_FILE

    clone = run_dir.with_name(name)
    shutil.copytree(run_dir, clone, copy_function=os.link)
    if not simplex_copy:
        for copy in clone.glob(f"*/{SIMPLEX_MAJOR_FILE}"):
            copy.unlink()
    return clone


def paired_clones(run_dir: Path, prefix: str, rounds: int) -> list[tuple[str, Path]]:
    """``rounds`` pairs of clones, ``("copy", ...)`` and ``("strided", ...)``, in alternating
    order so that neither always goes first."""
    pairs = []
    for r in range(rounds):
        kinds = ("strided", "copy") if r % 2 == 0 else ("copy", "strided")
        for kind in kinds:
            clone = clone_run(run_dir, f"{prefix}-{kind}-{r}", simplex_copy=kind == "copy")
            pairs.append((kind, clone))
    return pairs


def first_paints(times: list[tuple[str, float]], prefix: str) -> dict[str, Any]:
    """Median first paint with and without the copy, their ratio and every time measured."""
    copy = statistics.median(t for kind, t in times if kind == "copy")
    strided = statistics.median(t for kind, t in times if kind == "strided")
    return {
        f"{prefix}_s": round(copy, 3),
        f"{prefix}_strided_s": round(strided, 3),
        f"{prefix}_ratio": round(copy / strided, 3),
        f"{prefix}_all": [[kind, round(t, 3)] for kind, t in times],
    }


def cold_first_paints(run_dir: Path, rounds: int) -> dict[str, Any]:
    """Server first paints (AppTest) of clones of ``run_dir`` after dropping the page cache."""
    import streamlit as st

    times = []
    for kind, folder in paired_clones(run_dir, "cold", rounds):
        os.environ["SEMPROBE_RUNS"] = str(folder)
        st.cache_data.clear()
        st.cache_resource.clear()
        gc.collect()  # unmaps the memory maps of the runs opened before (mapped pages stay warm)
        drop_page_cache()
        at = _app()
        times.append((kind, _timed(at)))
        _check(at)
    return first_paints(times, "first_paint_cold")


def browser_timings(
    run_dir: Path,
    warm_up: Path,
    num_simplices: int,
    repeats: int = 5,
    cold: bool = False,
    rounds: int = 1,
) -> dict[str, Any]:
    """Page timings in headless Chromium, on the server that ``semprobe dashboard`` starts.

    * ``browser_first_page_s``: the first page of a freshly started server (the last one
      started; the browser compiles Streamlit's scripts: most of it), on the small ``warm_up``
      run;
    * ``browser_first_paint_s``: then the simplex browser of a clone of ``run_dir`` that no page
      has shown yet (its arrays are read, its simplex computed from the simplex-major copy and
      its thumbnails encoded), the median of ``rounds``; ``browser_first_paint_strided_s`` the
      same for a clone without the copy (the simplex read from the row-major logits);
    * ``browser_simplex_switch_s``: median time in the page from pressing Enter in the simplex
      input to the new simplex's heading with the app idle again (server run, transfer and
      drawing).

    ``cold`` drops the page cache before each first paint (root only): the run's files then
    come from the disk, as for a run nobody has opened since the machine started.
    """
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from semprobe.app.screenshots import chromium, page_url, serve, wait_for_text

    def open_page(url: str, folder: Path, heading: str) -> float:
        start = time.perf_counter()
        driver.get(page_url(url, "Simplices", model=f"{folder.name}/sem"))
        wait_for_text(driver, heading, timeout=120)
        return time.perf_counter() - start

    paints = []
    with chromium() as driver:
        # One server per first paint: a server keeps the arrays of every run it opened mapped,
        # and the kernel cannot drop mapped pages, so the clones' shared files would stay warm.
        for kind, folder in paired_clones(run_dir, "browser", rounds):
            with serve([str(warm_up), str(folder)], preload=True) as url:
                first_page = open_page(url, warm_up, "Simplex 0")
                if cold:
                    drop_page_cache()
                paints.append(
                    (kind, open_page(url, folder, f"{folder.name}/sem · L={num_simplices}"))
                )
        with serve([str(run_dir)], preload=True) as url:
            open_page(url, run_dir, f"{run_dir.name}/sem · L={num_simplices}")
            times = []
            for i in range(1, repeats + 1):
                simplex = i % num_simplices
                driver.execute_script(_SWITCH_PROBE, f"Simplex {simplex}")
                field = driver.find_element(By.CSS_SELECTOR, '[data-testid="stNumberInputField"]')
                field.send_keys(Keys.CONTROL, "a")
                field.send_keys(str(simplex), Keys.ENTER)
                WebDriverWait(driver, 60, poll_frequency=0.05).until(
                    lambda d: d.execute_script("return window.__switch.idle !== undefined")
                )
                timing = driver.execute_script("return window.__switch")
                times.append((timing["idle"] - timing["enter"]) / 1000)
    return {
        "browser_first_page_s": round(first_page, 3),
        **first_paints(paints, "browser_first_paint"),
        "browser_cold": cold,
        "browser_simplex_switch_s": round(statistics.median(times), 3),
    }


def run(
    smoke: bool = False,
    browser: bool | None = None,
    num_simplices: int | None = None,
    cold: bool = False,
) -> dict[str, Any]:
    """Time the dashboard on a synthetic run; ``smoke`` uses a tiny run and fewer repeats.

    ``browser`` (default: when not ``smoke`` and Chromium is installed) adds the timings of
    :func:`browser_timings`; ``num_simplices`` replaces L (64; the paper's models have 5000).
    ``cold`` adds first paints from a dropped page cache, with and without the simplex-major
    copy, in three rounds of alternating order (``first_paint_cold_*``, and the browser's).
    """
    import streamlit as st

    from semprobe.app.screenshots import missing_browser

    if browser is None:
        browser = not smoke and missing_browser() is None
    if cold and not os.access(DROP_CACHES, os.W_OK):
        raise SystemExit(f"--cold needs write access to {DROP_CACHES} (root)")
    rounds = 3 if cold else 1

    per_class, simplices, vocab = (2, 16, 8) if smoke else (100, 64, 13)
    num_simplices = num_simplices or simplices
    repeats = 3 if smoke else 9
    previous = os.environ.get("SEMPROBE_RUNS")
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = synthetic_run(
            Path(tmp) / "run", per_class, num_simplices, vocab, permutations=20 if smoke else 100
        )
        warm_up = synthetic_run(Path(tmp) / "warm-up", 1, 4, 3, k_max=5, permutations=5)
        try:
            # A running server has imported everything: import on another run first.
            os.environ["SEMPROBE_RUNS"] = str(warm_up)
            _check(_app(), run_first=True)
            os.environ["SEMPROBE_RUNS"] = str(run_dir)
            st.cache_data.clear()
            st.cache_resource.clear()
            at = _app()
            first_paint = _timed(at)
            _check(at)
            warm = _app()
            first_paint_warm = _timed(warm)
            _check(warm)
            switches, reruns = [], []
            for i in range(1, repeats + 1):
                at.number_input(key="simplex").set_value(i % num_simplices)
                switches.append(_timed(at))
                _check(at, i % num_simplices)
                reruns.append(_timed(at))
            in_cold = cold_first_paints(run_dir, rounds) if cold else {}
            in_browser = (
                browser_timings(run_dir, warm_up, num_simplices, cold=cold, rounds=rounds)
                if browser
                else {}
            )
        finally:
            if previous is None:
                os.environ.pop("SEMPROBE_RUNS", None)
            else:
                os.environ["SEMPROBE_RUNS"] = previous
    switch = statistics.median(switches)
    return {
        "name": "dashboard",
        "baseline": f"targets: simplex switch {SWITCH_TARGET_S * 1000:.0f} ms, first paint "
        f"{FIRST_PAINT_TARGET_S:.0f} s (ratio = switch / target)",
        "first_paint_s": round(first_paint, 4),
        "first_paint_warm_s": round(first_paint_warm, 4),
        "simplex_switch_s": round(switch, 4),
        "simplex_switch_max_s": round(max(switches), 4),
        "rerun_s": round(statistics.median(reruns), 4),
        "ratio": round(switch / SWITCH_TARGET_S, 3),
        "first_paint_ratio": round(first_paint / FIRST_PAINT_TARGET_S, 3),
        **in_cold,
        **in_browser,
        "run": {"n_test": per_class * 100, "L": num_simplices, "V": vocab, "smoke": smoke},
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "machine": machine_info(),
    }


def _check(at: Any, simplex: int = 0, run_first: bool = False) -> None:
    """Refuse to time a page that failed: the numbers would be meaningless."""
    if run_first:
        at.run()
    if at.exception or at.error:
        problems = [e.value for e in at.exception] + [e.value for e in at.error]
        raise RuntimeError(f"the dashboard failed: {problems}")
    headers = [h.value for h in at.header]
    if f"Simplex {simplex}" not in headers:
        raise RuntimeError(f"expected 'Simplex {simplex}' on the page, got {headers}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run, a few repeats")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium timings")
    parser.add_argument("--simplices", type=int, help="L of the SEM model (default 64)")
    parser.add_argument(
        "--cold", action="store_true", help="also time first paints from a dropped page cache"
    )
    args = parser.parse_args()
    browser = False if args.no_browser else None
    print(json.dumps(run(args.smoke, browser, args.simplices, args.cold), indent=2))


if __name__ == "__main__":
    main()
