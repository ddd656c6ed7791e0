"""sts-broker: a federation identity broker that speaks the AWS STS Query protocol."""

from __future__ import annotations

__version__ = "0.1.0"
