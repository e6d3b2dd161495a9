"""`python -m creative4u` runs the CLI (the guard matters: vLLM's engine starts with spawn)."""

import sys

from creative4u.cli import main

if __name__ == "__main__":
    sys.exit(main())
