"""``python -m repogen.cli``."""

import sys

from repogen.cli import main

sys.exit(main())
