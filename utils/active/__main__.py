"""``python -m utils.active``: run the experiment of chapter 10 and write its results file (:func:`utils.active.cli.main`)."""

from .cli import main

raise SystemExit(main())
