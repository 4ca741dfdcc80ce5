"""`python -m console` serves the web console (same as `rollcall console`)."""

import sys

from firmware.cli import main

if __name__ == "__main__":
    sys.exit(main(["console", *sys.argv[1:]]))
