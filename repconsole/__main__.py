"""``python -m repconsole``: same as the ``repconsole`` script."""

import sys

from repconsole.cli import main

sys.exit(main())
