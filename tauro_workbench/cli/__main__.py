"""``python -m tauro_workbench.cli``."""

from __future__ import annotations

from tauro_workbench.cli import main

raise SystemExit(main())
