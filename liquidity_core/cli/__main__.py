"""``python -m liquidity_core.cli``."""

import sys

from liquidity_core.cli import main

sys.exit(main())
