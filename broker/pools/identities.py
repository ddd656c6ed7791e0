"""Identity IDs of a pool, kept in the Store: stable per login, linked and merged as AWS says.

An identity ID (``REGION:UUID``) is what a client caches and sends back, so the same login
must find the same ID on every node and after a restart: the mapping login -> ID and each
identity's record live in the :class:`~broker.store.Store` (memory, SQLite or Redis), not
in the process. AWS's rules (Cognito developer guide, "Identity pools authentication flow",
docs.aws.amazon.com/cognito/latest/developerguide/authentication-flow.html):

- a login not yet associated with any identity gets a new one, or, passed with an
  identity ID or beside a login that has one, is *linked* to that identity;
- an identity holds at most one login per provider: linking a second one is
  ``ResourceConflictException``;
- a login linked to *another* identity merges the two: one becomes the owner of every
  login and the other is disabled (here: it points to its owner, and the owner's ID is
  answered from then on);
- a guest (unauthenticated) identity that links a login becomes authenticated.

The first identity of an authenticated login gets an ID derived from the pool and the login
by HMAC (the key is derived from the broker's token key when there is one): two nodes that
see the same new login at once write the same ID, so no lock is needed for the common race.
Guest IDs are random. Merging and linking write several keys and are not atomic across
them; the last writer wins, and both writers compute the same owner (the oldest identity).
Records are kept for :data:`IDENTITY_TTL` seconds, renewed on every use.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from broker.errors import StsError
from broker.store import Store, StoreFullError, StoreUnavailableError

IDENTITY_TTL: Final = 10 * 365 * 86400.0
"""How long an identity and its logins are remembered since last used (ten years)."""
_IDENTITIES: Final = "pool-identity"
_LOGINS: Final = "pool-login"
_MAX_MERGE_HOPS: Final = 8


@dataclass(frozen=True)
class LoginRef:
    """One login as an identity records it: the provider and the subject it vouched for."""

    provider: str
    """The provider's ARN (oidc-provider or saml-provider), or the developer provider name."""
    subject: str

    @property
    def key(self) -> str:
        return f"{self.provider}\n{self.subject}"


@dataclass(frozen=True)
class IdentityRecord:
    identity_id: str
    pool_id: str
    created: float
    logins: tuple[LoginRef, ...] = ()
    merged_into: str | None = None

    @property
    def authenticated(self) -> bool:
        return bool(self.logins)

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "id": self.identity_id,
                "pool": self.pool_id,
                "created": self.created,
                "logins": [[ref.provider, ref.subject] for ref in self.logins],
                "merged_into": self.merged_into,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> IdentityRecord | None:
        """The record :meth:`to_bytes` wrote; None for anything else (fail closed)."""
        try:
            data: Any = json.loads(raw)
            return cls(
                identity_id=str(data["id"]),
                pool_id=str(data["pool"]),
                created=float(data["created"]),
                logins=tuple(LoginRef(str(p), str(s)) for p, s in data["logins"]),
                merged_into=None if data["merged_into"] is None else str(data["merged_into"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


def resource_not_found(message: str) -> StsError:
    return StsError("ResourceNotFoundException", message, 400)


class PoolIdentities:
    """The identities of every pool, over one Store."""

    def __init__(self, store: Store, *, secret: bytes) -> None:
        self._store = store
        self._key = hmac.new(secret, b"sts-broker identity pool ids", hashlib.sha256).digest()

    async def get(self, identity_id: str) -> IdentityRecord | None:
        """The live owner of ``identity_id`` (following merges), or None."""
        record = await self._read(identity_id)
        for _ in range(_MAX_MERGE_HOPS):
            if record is None or record.merged_into is None:
                return record
            record = await self._read(record.merged_into)
        return None

    async def linked(self, pool_id: str, login: LoginRef) -> IdentityRecord | None:
        """The identity ``login`` is linked to in ``pool_id``, or None."""
        found = await self._store_get(_LOGINS, f"{pool_id}\n{login.key}")
        return None if found is None else await self.get(found.decode())

    async def new_guest(self, pool_id: str, now: float) -> IdentityRecord:
        region = pool_id.split(":", 1)[0]
        record = IdentityRecord(f"{region}:{uuid.uuid4()}", pool_id, now)
        await self._write(record)
        return record

    async def resolve(
        self,
        pool_id: str,
        logins: Sequence[LoginRef],
        now: float,
        *,
        identity_id: str | None = None,
        one_per_provider: bool = True,
    ) -> IdentityRecord:
        """The identity these logins (and ``identity_id``) are, linking and merging.

        Raises ``ResourceNotFoundException`` for an unknown ``identity_id`` and
        ``ResourceConflictException`` when the result would hold two logins of one provider.
        """
        owners: list[IdentityRecord] = []
        if identity_id is not None:
            given = await self.get(identity_id)
            if given is None or given.pool_id != pool_id:
                raise resource_not_found(f"Identity '{identity_id}' not found.")
            owners.append(given)
        for login in logins:
            record = await self.linked(pool_id, login)
            if record is not None and all(o.identity_id != record.identity_id for o in owners):
                owners.append(record)
        if not owners:
            record = IdentityRecord(self._derived_id(pool_id, logins[0]), pool_id, now)
            owners.append(await self.get(record.identity_id) or record)
        owner = min(owners, key=lambda r: (r.created, r.identity_id))
        merged = list(owner.logins)
        for other in owners:
            merged.extend(ref for ref in other.logins if ref not in merged)
        merged.extend(ref for ref in logins if ref not in merged)
        if one_per_provider:
            providers = [ref.provider for ref in merged]
            twice = next((p for p in providers if providers.count(p) > 1), None)
            if twice is not None:
                raise StsError(
                    "ResourceConflictException",
                    "This identity already has a login from this provider; an identity links "
                    "only one login per provider.",
                    400,
                )
        owner = replace(owner, logins=tuple(merged))
        await self._write(owner)
        for other in owners:
            if other.identity_id != owner.identity_id:
                await self._write(replace(other, logins=(), merged_into=owner.identity_id))
        return owner

    def _derived_id(self, pool_id: str, login: LoginRef) -> str:
        digest = hmac.new(self._key, f"{pool_id}\n{login.key}".encode(), hashlib.sha256).digest()
        region = pool_id.split(":", 1)[0]
        return f"{region}:{uuid.UUID(bytes=digest[:16], version=4)}"

    async def _read(self, identity_id: str) -> IdentityRecord | None:
        raw = await self._store_get(_IDENTITIES, identity_id)
        return None if raw is None else IdentityRecord.from_bytes(raw)

    async def _write(self, record: IdentityRecord) -> None:
        try:
            await self._store.put(_IDENTITIES, record.identity_id, record.to_bytes(), IDENTITY_TTL)
            for ref in record.logins:
                await self._store.put(
                    _LOGINS,
                    f"{record.pool_id}\n{ref.key}",
                    record.identity_id.encode(),
                    IDENTITY_TTL,
                )
        except StoreFullError:
            raise StsError(
                "TooManyRequestsException", "Too many identities are stored; try later.", 400
            ) from None
        except StoreUnavailableError:
            raise _store_down() from None

    async def _store_get(self, namespace: str, key: str) -> bytes | None:
        try:
            return await self._store.get(namespace, key)
        except StoreUnavailableError:
            raise _store_down() from None


def _store_down() -> StsError:
    return StsError(
        "InternalErrorException",
        "The broker's identity store is unavailable; try again.",
        500,
        sender=False,
    )
