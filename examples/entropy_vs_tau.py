"""Entropy vs tau on the SEM checkpoint that the README demo trains.

    semprobe demo --out demo                       # once: trains demo/checkpoints/byol-sem
    python examples/entropy_vs_tau.py              # or: --checkpoint PATH --out DIR

Prints, for each temperature, the mean simplex entropy, the share of near one-hot / two-hot /
uniform simplices and the probe accuracy of f_SEM(tau), and writes a run directory with the
figures (entropy histograms per tau, accuracy vs tau) that the dashboard opens.
"""

from __future__ import annotations

import argparse
import math

from semprobe.extraction import ExtractionOptions
from semprobe.studies import ProbeSettings, Study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="demo/checkpoints/byol-sem/final.ckpt")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--out", default="runs/entropy-vs-tau")
    args = parser.parse_args()

    taus = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]
    study = Study(
        {"byol-sem": args.checkpoint},
        dataset=args.dataset,
        taus=taus,
        analyses=["entropy", "tau_sweep"],
        options=ExtractionOptions(dataset=args.dataset, progress=False),
        probe=ProbeSettings(epochs=30),
    )
    result = study.run(args.out)

    summary = result.entropy["byol-sem"].summary.set_index("tau")
    sweep = result.sweep[result.sweep["representation"] == "sem"].set_index("tau")
    vocab = int(summary["V"].iloc[0])
    print(f"{'tau':>6} {'H/lnV':>6} {'1-hot':>6} {'2-hot':>6} {'unif':>6} {'top1':>6}")
    for tau in taus:
        row = summary.loc[tau]
        print(
            f"{tau:>6g} {row['mean'] / math.log(vocab):>6.3f} {row['frac_one_hot']:>6.3f} "
            f"{row['frac_two_hot']:>6.3f} {row['frac_uniform']:>6.3f} "
            f"{sweep.loc[tau, 'top1']:>6.3f}"
        )
    print(f"figures and tables: {result.out}")


if __name__ == "__main__":
    main()
