"""Revoking a role's active sessions: "sessions of this role issued up to T are denied".

A sealed session token verifies with no lookup, so without this a leaked role credential
would live until it expires. AWS's answer is "Revoke active sessions", an inline deny on
``aws:TokenIssueTime`` earlier than now attached to the role; here the same fact is one
record in the :class:`~broker.store.Store` (every node of a cluster reads the same store, so
every node sees it), written by ``sts-broker revoke-sessions`` or the admin API, and checked
on every signed use of a session of that role: the STS API, the authorization API and the
console federation's ``getSigninToken``.

Which sessions:

- every session of the role whose ``issued_at`` is at or before the revocation's second
  (sessions carry their issue time in whole seconds, so one minted in the same second as
  the revocation is denied too: fail closed; from the next second on, new ones work);
- chained sessions included, whichever way: a session *of* the role made by chaining, and a
  session of another role made *from* a revoked session of this role (each token lists the
  roles of the sessions it was chained from). AWS's own deny reaches only the role's
  sessions; here a leaked credential cannot outlive its revocation by chaining first.

The record lives :data:`RECORD_SECONDS`, longer than any session issued before it can; a
second revocation of the same role moves T forward, never back.

**The cost on the hot path.** A signed call with a role session would read the store once
more; the answer is cached per role for ``revocation.cache_seconds`` (default 5; 0 reads the
store on every call), so a revocation written on one node (or by the CLI) takes effect on
the others within that many seconds; on the node that wrote it, at once. Calls with
long-term keys, GetSessionToken and GetFederationToken sessions never read it. A store that
cannot be read fails the call (closed), as every other store read does.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.clock import Clock, iso8601
from broker.errors import access_denied
from broker.identity.session_tokens import SessionClaims, role_arn_of
from broker.jsonread import JsonRefusedError, read_json
from broker.store import Store

NAMESPACE = "revoked-sessions"
RECORD_SECONDS = 43200 + 900
"""The longest role session (12 hours) plus a margin for clock skew: after that, no session
issued before the revocation is alive, and the record can go."""
DEFAULT_CACHE_SECONDS = 5.0
_MAX_CACHED = 4096
"""Roles remembered; only roles of verified session tokens are looked up, so the set is
bounded by the config's roles in practice, and the bound holds whatever the tokens say."""


@dataclass(frozen=True)
class Revocation:
    """Sessions of ``role_arn`` issued at or before ``before`` (epoch seconds) are denied."""

    role_arn: str
    before: int


class SessionRevocations:
    """Writes revocations to the store and checks sessions against them (cached briefly)."""

    def __init__(
        self, store: Store, clock: Clock, *, cache_seconds: float = DEFAULT_CACHE_SECONDS
    ) -> None:
        self._store = store
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, int | None]] = {}

    async def revoke(self, role_arn: str) -> Revocation:
        """Deny the sessions of ``role_arn`` issued up to now (never earlier than before)."""
        now = self._clock.time()
        before = int(now)
        earlier = _cutoff(await self._store.get(NAMESPACE, role_arn))
        if earlier is not None and earlier != _DAMAGED and earlier > before:
            before = earlier  # an earlier revocation dated later (another node's clock)
        await self._store.put(NAMESPACE, role_arn, b'{"before":%d}' % before, RECORD_SECONDS)
        self._remember(role_arn, before, now)
        return Revocation(role_arn, before)

    async def check(self, claims: SessionClaims | None) -> None:
        """Refuse (AccessDenied) a role session a revocation reaches; others pass at once."""
        own = role_arn_of(claims) if claims is not None else None
        if claims is None or own is None:
            return
        for role_arn in dict.fromkeys((own, *claims.chain_roles)):
            before = await self.cutoff(role_arn)
            if before is not None and claims.issued_at <= before:
                when = (
                    "(the revocation record is unreadable: revoke again to repair it)"
                    if before == _DAMAGED
                    else f"issued up to {iso8601(before)}"
                )
                raise access_denied(
                    f"User: {claims.arn} is not authorized to perform this action: the active "
                    f"sessions of {role_arn} {when} were revoked. Get new credentials."
                )

    async def cutoff(self, role_arn: str) -> int | None:
        """The revocation time of ``role_arn`` (cached), or None if it has none."""
        now = self._clock.time()
        cached = self._cache.get(role_arn)
        if cached is not None and now < cached[0]:
            return cached[1]
        before = _cutoff(await self._store.get(NAMESPACE, role_arn))
        self._remember(role_arn, before, now)
        return before

    def _remember(self, role_arn: str, before: int | None, now: float) -> None:
        if self._cache_seconds <= 0:
            return
        if len(self._cache) >= _MAX_CACHED and role_arn not in self._cache:
            self._cache.clear()
        self._cache[role_arn] = (now + self._cache_seconds, before)


_DAMAGED = 2**53
"""What an unreadable record reads as: every session of the role is denied until the record
expires or a revocation overwrites it."""


def _cutoff(raw: bytes | None) -> int | None:
    """The ``before`` of a stored record; a record that is not ours reads as "everything
    up to now", so a damaged record denies rather than forgets (fail closed)."""
    if raw is None:
        return None
    try:
        value = read_json(raw, max_size=256, max_depth=1)
    except JsonRefusedError:
        value = None
    before = value.get("before") if isinstance(value, dict) else None
    if isinstance(before, int) and not isinstance(before, bool):
        return before
    return _DAMAGED
