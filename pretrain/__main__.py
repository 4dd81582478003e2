"""``python -m pretrain``: the ``semprobe pretrain`` command without the semprobe front end."""

from __future__ import annotations

import sys

from semprobe.pretrain.cli import main

if __name__ == "__main__":
    sys.exit(main())
