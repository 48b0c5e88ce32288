"""`python -m soupviz.cli`: the `soupviz` command without the console script."""

import sys

from soupviz.cli import main

sys.exit(main())
