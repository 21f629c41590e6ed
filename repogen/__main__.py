"""``python -m repogen``: the same command line as the ``repogen`` script (repogen.cli)."""

import sys

from repogen.cli import main

sys.exit(main())
