"""The app factory the multiprocess test's uvicorn workers import (``factory=True``).

Each worker process builds its own broker from ``$STS_BROKER_CONFIG``, as a serve with
several workers does; ``PROMETHEUS_MULTIPROC_DIR`` is already set when it starts.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette

from broker.app import create_app, load_broker_config


def app() -> Starlette:
    return create_app(load_broker_config(os.environ["STS_BROKER_CONFIG"]))
