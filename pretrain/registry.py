"""The LightningModule class of each ``--method`` (one module per method)."""

from __future__ import annotations

import importlib

from semprobe.pretrain.base import SSLMethod
from semprobe.pretrain.config import METHODS

# method name -> (module, class), imported on first use.
_CLASSES = {
    "byol": ("semprobe.pretrain.byol", "BYOL"),
    "mocov2plus": ("semprobe.pretrain.mocov2plus", "MoCoV2Plus"),
    "simclr": ("semprobe.pretrain.simclr", "SimCLR"),
    "barlowtwins": ("semprobe.pretrain.barlowtwins", "BarlowTwins"),
    "vicreg": ("semprobe.pretrain.vicreg", "VICReg"),
    "swav": ("semprobe.pretrain.swav", "SwAV"),
    "dino": ("semprobe.pretrain.dino", "DINO"),
}
assert tuple(_CLASSES) == METHODS, "every method needs its class"


def method_class(method: str) -> type[SSLMethod]:
    """The class that trains ``method``.

    Examples
    --------
    >>> method_class("swav").__name__
    'SwAV'
    """
    module, name = _CLASSES[method]
    cls = getattr(importlib.import_module(module), name)
    if not issubclass(cls, SSLMethod):
        raise TypeError(f"{module}.{name} is not an SSLMethod")
    return cls
