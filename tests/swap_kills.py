"""A child-process prelude that makes ``semprobe.atomic`` kill its process at one step of a swap.

Prepended to a short script that builds a directory with ``atomic_directory`` (a feature cache,
a run). The child reads ``final step exchange`` from ``sys.argv`` and SIGKILLs itself: after
building (``built``), right after the atomic exchange (``after-exchange``), or, with the exchange
disabled (``exchange`` = 0, the fallback of two renames), between the two renames
(``between-renames``). The script's own body handles ``building`` by calling ``die()``.
"""

SWAP_KILL_PRELUDE = r"""
import os, signal, sys
from pathlib import Path
from semprobe import atomic

final, step, exchange = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"

def die():
    os.kill(os.getpid(), signal.SIGKILL)

real_rename, real_exchange, real_fsync_tree = os.rename, atomic._exchange, atomic._fsync_tree
renames = []
def rename(a, b):
    renames.append((a, b))
    real_rename(a, b)
    if step == "between-renames" and len(renames) == 1:
        die()
os.rename = rename
def exchange_then_maybe_die(a, b):
    if not exchange:
        return False
    done = real_exchange(a, b)
    if step == "after-exchange":
        die()
    return done
atomic._exchange = exchange_then_maybe_die
def fsync_then_maybe_die(root):
    real_fsync_tree(root)
    if step == "built":
        die()
atomic._fsync_tree = fsync_then_maybe_die
"""
