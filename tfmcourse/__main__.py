"""``python -m tfmcourse`` is the ``tfmcourse`` command."""

import sys

from tfmcourse.cli import main

sys.exit(main())
