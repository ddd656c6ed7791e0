"""Throttling: token buckets per principal, per source address and per action, kept in the Store.

On by default, as AWS's is. A call over its limit is refused as AWS refuses it
(:class:`Throttled`: ``Throttling``, HTTP 400, "Rate exceeded", which botocore retries with
backoff); the browser sign-in pages and the CLI's device-code endpoints have limits of their
own and answer in their own shapes. docs/throttling.md says what is counted and why.
"""

from __future__ import annotations

from broker.throttling.buckets import Throttle, Throttled, address_key, federated_principal

__all__ = ["Throttle", "Throttled", "address_key", "federated_principal"]
