"""``python -m romanxr.cli``: the ``romanxr`` command."""

import sys

from romanxr.cli import main

sys.exit(main())
