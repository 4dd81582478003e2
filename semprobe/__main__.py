import sys

from semprobe.cli import main

sys.exit(main())
