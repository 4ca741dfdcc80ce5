"""`python -m firmware` runs the device loop (same as `rollcall run`)."""

import sys

from firmware.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
