"""What the four protocol views share: finding the opened runs that hold a protocol's tables.

A protocol's tables sit at the top of a run directory (``knn.csv``, ``linear_table.csv``, ...;
see :mod:`semprobe.protocols.reports`), in protocol runs and in studies alike. They are read
through :class:`semprobe.rundir.Run`, which refuses paths that leave the run, and cached per run
stamp, so a rebuilt run is read afresh.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from semprobe.app.data import open_run
from semprobe.app.page import OpenedRun, shown_errors
from semprobe.errors import SemprobeError
from semprobe.protocols.reports import TABLES

# The table a view cannot do without (the others are optional).
REQUIRED = {"linear_grid": "linear_table"}


@st.cache_data(show_spinner=False, max_entries=256)
def run_table(run_path: str, stamp: str, name: str) -> pd.DataFrame | None:
    """``<name>.csv`` at the top of a run, or None when the run has none."""
    run, _ = open_run(run_path)
    path = run.path_of(f"{name}.csv", must_exist=False)
    if not path.exists():
        return None
    try:
        return pd.read_csv(path)
    except Exception as exc:  # any parser error means a damaged file
        raise SemprobeError(f"cannot read {path}: {exc}") from None


def runs_with(
    opened: list[OpenedRun], protocol: str
) -> list[tuple[OpenedRun, dict[str, pd.DataFrame]]]:
    """The opened runs that hold ``protocol``'s tables, each with its tables by name."""
    found = []
    for item in opened:
        if item.run is None:
            continue
        tables: dict[str, pd.DataFrame] = {}
        with shown_errors(f"{item.label}: {protocol} tables"):
            for name in TABLES[protocol]:
                table = run_table(str(item.run.root), item.stamp, name)
                if table is not None:
                    tables[name] = table
            if REQUIRED.get(protocol, protocol) in tables:
                found.append((item, tables))
    return found


def none_found(protocol: str, command: str) -> None:
    """The message of a view with no run to show."""
    st.info(
        f"No opened run holds {protocol} results: `semprobe {command} CHECKPOINT... --out RUN` "
        f'writes one, and so does a study with "{protocol}" among its analyses.'
    )
