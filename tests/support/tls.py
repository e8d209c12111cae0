"""Test certificate authorities and server certificates, made with ``cryptography``, and a
TLS-terminating front for the test PostgreSQL (whose build has no TLS of its own)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.engine import make_url


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes


class TestCA:
    """A self-signed CA that issues server certificates for the names it is given."""

    __test__ = False  # not a test class

    def __init__(self, name: str = "todo-platform test CA") -> None:
        self.name = name
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def write(self, path: Path) -> Path:
        """The CA certificate as a file, as ``sslrootcert`` names one."""
        path.write_bytes(self.cert_pem)
        return path

    def issue(self, *names: str) -> Issued:
        """A server certificate for host names and IP addresses (subject alternative names)."""
        key = ec.generate_private_key(ec.SECP256R1())
        alt_names: list[x509.GeneralName] = []
        for name in names:
            try:
                alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt_names.append(x509.DNSName(name))
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        return Issued(cert.public_bytes(serialization.Encoding.PEM), key_pem)


# PostgreSQL's SSLRequest: length 8, then the code 1234 5679.
SSL_REQUEST = struct.pack("!ii", 8, 80877103)


@dataclass
class PostgresTlsFront:
    """Speaks PostgreSQL's TLS negotiation with the certificate it is given, then relays the
    decrypted stream to the real server, as a TLS-terminating proxy (Neon's own, PgBouncer)
    does. A handler for ``tests.support.raw_server.raw_server``; ``handshakes`` counts the
    TLS sessions completed, ``refused`` the handshakes the client broke off."""

    issued: Issued
    database_url: str
    handshakes: int = 0
    refused: int = 0
    _context: ssl.SSLContext = field(init=False)

    def __post_init__(self) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory(prefix="todo-platform-tls-front-") as directory:
            cert, key = Path(directory) / "server.crt", Path(directory) / "server.key"
            cert.write_bytes(self.issued.cert_pem)
            key.write_bytes(self.issued.key_pem)
            self._context.load_cert_chain(cert, key)

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if await reader.readexactly(8) != SSL_REQUEST:
            return  # a client that does not ask for TLS gets no server here
        writer.write(b"S")
        await writer.drain()
        try:
            await writer.start_tls(self._context)
        except (ssl.SSLError, ConnectionError):
            self.refused += 1
            return
        self.handshakes += 1
        upstream_reader, upstream_writer = await open_postgres(self.database_url)
        try:
            await asyncio.gather(
                pump(reader, upstream_writer),
                pump(upstream_reader, writer),
                return_exceptions=True,  # either side hanging up ends the relay
            )
        finally:
            upstream_writer.close()


async def open_postgres(database_url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw connection to the server of ``database_url`` (its host, or its socket directory)."""
    url = make_url(database_url)
    port = postgres_port(database_url)
    if url.host:
        return await asyncio.open_connection(url.host, port)
    socket_dir = url.query["host"]
    assert isinstance(socket_dir, str)
    return await asyncio.open_unix_connection(f"{socket_dir}/.s.PGSQL.{port}")


def postgres_port(database_url: str) -> int:
    """The server's port: the URL's, or its ``port`` query parameter, or PostgreSQL's own."""
    url = make_url(database_url)
    return url.port or int(str(url.query.get("port") or 5432))


async def pump(
    source: asyncio.StreamReader,
    sink: asyncio.StreamWriter,
    record: bytearray | None = None,
    *,
    close_sink: bool = True,
) -> None:
    """Copy ``source`` to ``sink`` (and to ``record``, if given) until it ends; then close
    ``sink``, unless ``close_sink`` is false (a relay that decides itself when its side ends)."""
    try:
        while chunk := await source.read(65536):
            if record is not None:
                record.extend(chunk)
            sink.write(chunk)
            await sink.drain()
    finally:
        if close_sink:
            sink.close()
