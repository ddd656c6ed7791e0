"""``rediss://`` against a real ``redis-server`` speaking TLS only, with a private CA.

The store must verify the server: with the CA named in ``redis.tls_ca_file`` it works, with
the system's CAs (which never signed this server) or another CA it refuses to talk at all,
as ``StoreUnavailableError``, so the broker fails closed rather than sending replay markers
and sessions to whoever answers on that port.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from broker.clock import SystemClock
from broker.config import load_config
from broker.store import RedisStore, StoreUnavailableError, open_configured_store
from tests.redis_server import RedisServer, TlsFiles, running_redis

PASSWORD = "tls-redis-pw-2718"


def _ca(folder: Path, name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = folder / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, path


def _server_files(folder: Path) -> TlsFiles:
    ca_key, ca_cert, ca_path = _ca(folder, "test-ca")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "redis.test")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = folder / "server.pem", folder / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return TlsFiles(cert=cert_path, key=key_path, ca=ca_path)


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    files = _server_files(tmp_path_factory.mktemp("redis-tls"))
    with running_redis(password=PASSWORD, tls=files) as server:
        yield server


def test_rediss_with_the_private_ca_claims_once(tls_redis: RedisServer) -> None:
    assert tls_redis.tls is not None and tls_redis.url.startswith("rediss://")

    async def run() -> None:
        # A TLS handshake on a loaded 2-core machine can take longer than the 0.5 s default.
        store = RedisStore(
            tls_redis.url,
            key_prefix="tls1:",
            tls_ca_file=str(tls_redis.tls.ca),
            connect_timeout=5,
            timeout=5,
        )
        try:
            assert await store.claim("replay", "assertion-1", 30)
            assert not await store.claim("replay", "assertion-1", 30)
            await store.put("web-session", "s", b"data", 30)
            assert await store.get("web-session", "s") == b"data"
        finally:
            await store.close()

    asyncio.run(run())


@pytest.mark.parametrize("trust", ["system CAs", "another CA"])
def test_rediss_refuses_a_server_its_cas_did_not_sign(
    tls_redis: RedisServer, tmp_path: Path, trust: str
) -> None:
    ca_file = None if trust == "system CAs" else str(_ca(tmp_path, "other-ca")[2])

    async def run() -> None:
        store = RedisStore(tls_redis.url, key_prefix="tls2:", tls_ca_file=ca_file)
        try:
            with pytest.raises(StoreUnavailableError) as caught:
                await store.claim("replay", "x", 30)
            message = str(caught.value)
            assert message.startswith(f"Redis at 127.0.0.1:{tls_redis.port} cannot be reached")
            assert "CERTIFICATE_VERIFY_FAILED" in message or "certificate verify" in message
            assert PASSWORD not in message
        finally:
            await store.close()

    asyncio.run(run())


def test_the_config_names_the_ca_and_the_store_uses_it(
    tls_redis: RedisServer, tmp_path: Path
) -> None:
    assert tls_redis.tls is not None
    (tmp_path / "ca.pem").write_bytes(tls_redis.tls.ca.read_bytes())
    path = tmp_path / "broker.yaml"
    path.write_text(
        "public_url: http://127.0.0.1:8080\n"
        f"state: rediss://:${{REDIS_PASSWORD}}@127.0.0.1:{tls_redis.port}/0\n"
        "redis:\n  tls_ca_file: ca.pem\n"
        "accounts: {}\n"
    )
    config = load_config(path, environ={"REDIS_PASSWORD": PASSWORD})
    assert config.redis.tls_ca_file == str(tmp_path / "ca.pem")

    async def run() -> None:
        store = open_configured_store(config, SystemClock())
        try:
            assert await store.claim("mfa", "device#1", 30)
        finally:
            await store.close()

    asyncio.run(run())
