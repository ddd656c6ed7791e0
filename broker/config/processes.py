"""What a config must hold before more than one process may serve it.

Each ``serve --workers N`` worker is its own process, exactly like another node: whatever a
process keeps only in itself, or makes up at start-up, the others do not share. With one
worker that is a warning at most (a restart forgets); with several it breaks a promise
silently, so the broker refuses to start and says which key to set:

- ``state: memory``: each worker would remember its own one-time values, so a TOTP code or a
  single-use assertion or token could be accepted once per worker, and a browser session or
  a CLI device code would only work on the worker that made it;
- no ``token_keys``: each worker would seal with its own random key, so credentials minted by
  one are refused by the others (``InvalidClientTokenId``), and so would browser cookies;
- no ``issuer.keys`` while an account uses outbound web identity federation: each worker
  would publish its own JWKS, so a relying party could verify a token only by luck;
- no SAML SP key pair while SAML providers are configured: each worker would publish its own
  SP certificate in its metadata, so IdPs would encrypt to a key most workers lack.
"""

from __future__ import annotations

from broker.config.fields import KeyPath, format_key_path
from broker.config.loader import ConfigError, Problem
from broker.config.schema import BrokerConfig


def several_processes_problems(config: BrokerConfig, processes: int) -> list[tuple[KeyPath, str]]:
    """(key path, reason) for each per-process secret or memory ``processes`` would not share."""
    if processes <= 1:
        return []
    many = f"with {processes} workers"
    found: list[tuple[KeyPath, str]] = []
    if config.state == "memory":
        found.append(
            (
                ("state",),
                f"'memory' cannot be served {many}: each would have its own memory, so a TOTP "
                "code, a single-use assertion or token could be accepted once per worker (a "
                "replay would pass) and a browser session would work on one worker only; use "
                "sqlite:///path/to/file.db (one host) or redis://host:port/db (several)",
            )
        )
    if not config.token_keys:
        found.append(
            (
                ("token_keys",),
                f"must be set {many}: each would seal session tokens with its own random key, "
                "so credentials minted by one worker would be refused by the others; add one "
                "made with 'sts-broker keygen'",
            )
        )
    if not config.issuer.keys and any(
        account.outbound_web_identity_federation for account in config.accounts.values()
    ):
        found.append(
            (
                ("issuer", "keys"),
                f"must be set {many} when an account uses outbound_web_identity_federation: "
                "each worker would sign GetWebIdentityToken with its own key and publish its "
                "own JWKS",
            )
        )
    if config.saml.sp_key_file is None and any(
        account.saml_providers for account in config.accounts.values()
    ):
        found.append(
            (
                ("saml", "sp_key_file"),
                f"must be set (with sp_cert_file) {many} when SAML providers are configured: "
                "each worker would make its own SP key pair and publish a different "
                "certificate in its metadata",
            )
        )
    return found


def check_processes(config: BrokerConfig, processes: int) -> None:
    """Raise :class:`ConfigError` listing every reason ``processes`` cannot serve ``config``."""
    problems = []
    for key_path, reason in several_processes_problems(config, processes):
        file, line = config.locate(key_path)
        problems.append(Problem(file, line, format_key_path(key_path), reason))
    if problems:
        raise ConfigError(problems)
