"""Entry point of `python -m benchmark`."""
import sys

from .cli import main

sys.exit(main())
