"""python -m api ...  (same as the `salient` command)."""
import sys

from api.cli import main

sys.exit(main())
