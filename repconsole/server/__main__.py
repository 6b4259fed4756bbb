"""``python -m repconsole.server``: the same as ``repconsole-server``."""

import sys

from repconsole.server.cli import main

sys.exit(main())
