"""`python -m broker` runs the same command line as `sts-broker`."""

from __future__ import annotations

from broker.cli import main

raise SystemExit(main())
