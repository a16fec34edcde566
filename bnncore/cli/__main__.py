"""``python -m bnncore.cli``: the ``bnn`` command."""

import sys

from . import main

sys.exit(main())
