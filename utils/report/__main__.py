"""``python -m utils.report``: the command line of :mod:`utils.report`."""

from .cli import main

raise SystemExit(main())
