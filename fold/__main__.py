"""Entry point of ``python -m fold``."""

import sys

from fold.cli import main

sys.exit(main())
