"""``python -m sizeseg.experiments.constrained``: the same as ``sizeseg experiment constrained``."""

from sizeseg.experiments.constrained.cli import main

raise SystemExit(main())
