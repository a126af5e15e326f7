"""``python -m helpers`` is the ``vgenre`` command."""
import sys

from helpers.cli import main

sys.exit(main())
