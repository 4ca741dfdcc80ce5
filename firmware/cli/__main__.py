"""`python -m firmware.cli ARGS` is `rollcall ARGS`."""

import sys

from firmware.cli import main

sys.exit(main())
