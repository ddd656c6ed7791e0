"""The one base every config model shares: frozen, unknown keys refused, no coercion.

Its own module so that the models of one concern (:mod:`broker.config.claims`,
:mod:`broker.config.pools`) can live beside :mod:`broker.config.schema`, which imports
them, without a circle.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigModel(BaseModel):
    """Frozen, unknown keys refused, no silent coercion (``"yes"`` is not a boolean here)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
