"""``python -m initlab.cli``: the same as the ``initlab`` command."""

import sys

from initlab.cli import main

sys.exit(main())
