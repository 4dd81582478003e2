"""Several processes, one command: ``torchrun --nproc-per-node N -m semprobe ...``.

Under ``torchrun`` (or any launcher that sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``) a command that opens a :func:`session` runs normally on rank
0, the *leader*; every other rank *serves*: it waits for the leader's requests (``extract the
rows [a, b) of this dataset with these weights``), does its part, reports, and waits again until
the leader's command ends. So the leader's code needs no change to be distributed: whatever it
extracts is sharded, and everything else (probes, tables, run directories) runs once.

The control messages and the weights travel over a gloo process group on the CPU (the weights
once per extraction; features never travel: each rank writes its rows into the shared cache).
A group's operations wait for the slowest member; the timeout is ``$SEMPROBE_DIST_TIMEOUT``
seconds (default a week, since workers wait through the leader's probe fits).
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from semprobe.errors import SemprobeError

Handler = Callable[["Session", dict[str, Any]], None]
_ACTIVE: Session | None = None


@dataclass(frozen=True)
class Session:
    """The process group of a distributed command, as seen by one rank."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def broadcast_object(self, obj: Any = None) -> Any:
        """The leader's ``obj`` on every rank."""
        import torch.distributed as dist

        holder = [obj]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_tensors(self, tensors: list[torch.Tensor]) -> None:
        """The leader's values of ``tensors`` (CPU, same shapes on every rank), in place."""
        import torch.distributed as dist

        for tensor in tensors:
            dist.broadcast(tensor, src=0)

    def device(self, requested: str) -> str:
        """This rank's device for a requested one: its own GPU (``LOCAL_RANK``) for ``cuda``."""
        return f"cuda:{self.local_rank}" if requested.startswith("cuda") else requested


def current() -> Session | None:
    """The session of the running command, or None outside one (or with a single process)."""
    return _ACTIVE


def launcher_environment() -> tuple[int, int, int] | None:
    """``(rank, world_size, local_rank)`` set by ``torchrun``, or None for a single process."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return None
        return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0"))
    except (KeyError, ValueError) as exc:
        raise SemprobeError(f"bad distributed environment (RANK, WORLD_SIZE): {exc}") from None


class session:  # a context manager, named like open()
    """``with session(handlers) as leader:``: run the block on rank 0, serve on the others.

    ``leader`` is True on rank 0 (and in a single process, where nothing else happens); the
    other ranks serve the leader's requests with ``handlers`` (request ``op`` -> handler) inside
    ``__enter__`` and get False once the leader's block has ended. The leader's block ending
    with an exception stops the others too.

    Examples
    --------
    >>> with session({}) as leader:  # no torchrun: one process, the leader
    ...     leader
    True
    """

    def __init__(self, handlers: Mapping[str, Handler]) -> None:
        self.handlers = dict(handlers)
        self.session: Session | None = None

    def __enter__(self) -> bool:
        global _ACTIVE
        environment = launcher_environment()
        if environment is None or _ACTIVE is not None:
            return True
        import torch.distributed as dist

        rank, world, local_rank = environment
        seconds = float(os.environ.get("SEMPROBE_DIST_TIMEOUT", 7 * 24 * 3600))
        dist.init_process_group(
            "gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=seconds)
        )
        self.session = _ACTIVE = Session(rank, world, local_rank)
        if self.session.leader:
            return True
        try:
            self._serve()
        finally:
            self._close()
        return False

    def _serve(self) -> None:
        assert self.session is not None
        while True:
            request = self.session.broadcast_object()
            if request["op"] in ("stop", "abort"):
                return
            self.handlers[request["op"]](self.session, request)

    def __exit__(self, kind: Any, *_: Any) -> None:
        if self.session is None or not self.session.leader:
            return
        try:
            if kind is None:
                self.session.broadcast_object({"op": "stop"})
            else:  # best effort: the failure may be a rank that is gone
                with contextlib.suppress(Exception):
                    self.session.broadcast_object({"op": "abort"})
        finally:
            self._close()

    def _close(self) -> None:
        global _ACTIVE
        import torch.distributed as dist

        _ACTIVE = None
        if dist.is_initialized():
            dist.destroy_process_group()
