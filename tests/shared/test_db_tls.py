"""A database URL's TLS parameters become an ``ssl`` argument never weaker than they ask.

Every combination of ``sslmode`` x ``channel_binding`` x ``sslrootcert`` (absent, a CA file,
``system``) against the table in docs/deploy.md: the context's verify mode, host name check
and the CA certificates it trusts. Then the parameters at the URL level: none of them reaches
``asyncpg.connect``, the unsupported ones are refused, and the log says what is not verified.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db import connect_target, create_engine, tls_argument
from tests.support.tls import TestCA

SSLMODES = [None, "disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
CHANNEL_BINDINGS = [None, "disable", "prefer", "require"]
ROOTCERTS = [None, "file", "system"]

# What the platform does, by (sslmode, channel_binding=require?, sslrootcert):
#   "default": asyncpg's own default (prefer over TCP); "off": no TLS; "allow"/"prefer": the
#   opportunistic modes; ("encrypt",): TLS without verification; ("chain", store): the
#   certificate chain against store, no host name check; ("full", store): chain and host name;
#   "refused": a ValueError at engine creation.
FULL_SYSTEM = ("full", "system")
FULL_FILE = ("full", "file")
EXPECTED: dict[tuple[str | None, bool, str | None], object] = {
    (None, False, None): "default",
    (None, False, "file"): "refused",
    (None, False, "system"): FULL_SYSTEM,
    ("disable", False, None): "off",
    ("disable", False, "file"): "refused",
    ("disable", False, "system"): "refused",
    ("allow", False, None): "allow",
    ("allow", False, "file"): "refused",
    ("allow", False, "system"): "refused",
    ("prefer", False, None): "prefer",
    ("prefer", False, "file"): "refused",
    ("prefer", False, "system"): "refused",
    ("require", False, None): ("encrypt",),
    ("require", False, "file"): ("chain", "file"),
    ("require", False, "system"): "refused",
    ("verify-ca", False, None): ("chain", "system"),
    ("verify-ca", False, "file"): ("chain", "file"),
    ("verify-ca", False, "system"): "refused",
    ("verify-full", False, None): FULL_SYSTEM,
    ("verify-full", False, "file"): FULL_FILE,
    ("verify-full", False, "system"): FULL_SYSTEM,
    # channel_binding=require: asyncpg cannot bind the channel, so verify-full stands in.
    (None, True, None): FULL_SYSTEM,
    (None, True, "file"): FULL_FILE,
    (None, True, "system"): FULL_SYSTEM,
    ("disable", True, None): "refused",
    ("disable", True, "file"): "refused",
    ("disable", True, "system"): "refused",
    ("allow", True, None): FULL_SYSTEM,
    ("allow", True, "file"): FULL_FILE,
    ("allow", True, "system"): FULL_SYSTEM,
    ("prefer", True, None): FULL_SYSTEM,
    ("prefer", True, "file"): FULL_FILE,
    ("prefer", True, "system"): FULL_SYSTEM,
    ("require", True, None): FULL_SYSTEM,
    ("require", True, "file"): FULL_FILE,
    ("require", True, "system"): FULL_SYSTEM,
    ("verify-ca", True, None): FULL_SYSTEM,
    ("verify-ca", True, "file"): FULL_FILE,
    ("verify-ca", True, "system"): FULL_SYSTEM,
    ("verify-full", True, None): FULL_SYSTEM,
    ("verify-full", True, "file"): FULL_FILE,
    ("verify-full", True, "system"): FULL_SYSTEM,
}


@pytest.fixture(scope="module")
def test_ca() -> TestCA:
    return TestCA()


@pytest.fixture(scope="module")
def ca_file(test_ca: TestCA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return test_ca.write(tmp_path_factory.mktemp("ca") / "root.crt")


def subjects(context: ssl.SSLContext) -> list[object]:
    return [cert["subject"] for cert in context.get_ca_certs()]


def assert_trusts(context: ssl.SSLContext, store: str, test_ca: TestCA) -> None:
    test_subject = ((("commonName", test_ca.name),),)
    if store == "file":
        assert subjects(context) == [test_subject]  # that CA and nothing else
    else:
        system = ssl.create_default_context()
        assert subjects(context) == subjects(system)
        assert context.cert_store_stats() == system.cert_store_stats()
        assert test_subject not in subjects(context)


@pytest.mark.parametrize("rootcert", ROOTCERTS, ids=lambda r: f"rootcert={r}")
@pytest.mark.parametrize("channel_binding", CHANNEL_BINDINGS, ids=lambda c: f"cb={c}")
@pytest.mark.parametrize("sslmode", SSLMODES, ids=lambda m: f"sslmode={m}")
def test_every_tls_combination_gives_what_the_table_says(
    sslmode: str | None,
    channel_binding: str | None,
    rootcert: str | None,
    ca_file: Path,
    test_ca: TestCA,
) -> None:
    expected = EXPECTED[(sslmode, channel_binding == "require", rootcert)]
    sslrootcert = str(ca_file) if rootcert == "file" else rootcert

    if expected == "refused":
        with pytest.raises(ValueError, match=r"sslrootcert|channel_binding|sslmode"):
            tls_argument(sslmode=sslmode, channel_binding=channel_binding, sslrootcert=sslrootcert)
        return
    tls = tls_argument(sslmode=sslmode, channel_binding=channel_binding, sslrootcert=sslrootcert)

    if expected == "default":
        assert tls.ssl is None
    elif expected == "off":
        assert tls.ssl is False
    elif expected in ("allow", "prefer"):
        assert tls.ssl == expected
    else:
        assert isinstance(expected, tuple)
        context = tls.ssl
        assert isinstance(context, ssl.SSLContext)
        assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
        kind = expected[0]
        if kind == "encrypt":
            assert context.verify_mode == ssl.CERT_NONE
            assert not context.check_hostname
        else:
            assert context.verify_mode == ssl.CERT_REQUIRED
            assert context.check_hostname == (kind == "full")
            assert_trusts(context, expected[1], test_ca)

    # The log says so wherever less than a verified certificate and host name is given for
    # what was asked, and whenever channel binding is replaced.
    weaker = expected == ("encrypt",) or expected == ("chain", "system")
    assert (tls.warning is not None) == (weaker or channel_binding == "require")


def test_unknown_values_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown sslmode"):
        tls_argument(sslmode="sometimes", channel_binding=None, sslrootcert=None)
    with pytest.raises(ValueError, match="unknown channel_binding"):
        tls_argument(sslmode="require", channel_binding="always", sslrootcert=None)
    with pytest.raises(ValueError, match="sslrootcert is empty"):
        tls_argument(sslmode="verify-full", channel_binding=None, sslrootcert="")


def test_a_missing_or_unreadable_ca_file_is_refused_at_engine_creation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot load CA certificates"):
        tls_argument(
            sslmode="verify-full", channel_binding=None, sslrootcert=str(tmp_path / "none.crt")
        )
    not_a_cert = tmp_path / "garbage.crt"
    not_a_cert.write_text("not a certificate")
    with pytest.raises(ValueError, match="cannot load CA certificates"):
        tls_argument(sslmode="verify-full", channel_binding=None, sslrootcert=str(not_a_cert))


NEON = (
    "postgresql://alex:AbC123dEf@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech/dbname"
    "?sslmode=require&channel_binding=require"
)


def test_a_neon_url_verifies_the_certificate_and_host_name_against_the_system_store() -> None:
    target = connect_target(NEON)

    context = target.connect_args["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert subjects(context) == subjects(ssl.create_default_context())


@pytest.mark.parametrize(
    "query",
    [
        "sslmode=require&channel_binding=require",
        "sslmode=verify-full&sslrootcert=system",
        "sslmode=verify-ca&sslrootcert={ca}",
        "sslmode=require&sslrootcert={ca}",
    ],
)
def test_no_libpq_tls_parameter_reaches_asyncpg_connect(query: str, ca_file: Path) -> None:
    url = "postgresql://u:p@db.example.com/d?" + query.format(ca=ca_file)
    target = connect_target(url)
    engine = create_async_engine(target.url, connect_args=target.connect_args)

    _, kwargs = engine.dialect.create_connect_args(engine.url)

    assert not {"sslmode", "sslrootcert", "channel_binding"} & set(kwargs)
    assert dict(target.url.query) == {}
    assert isinstance(target.connect_args["ssl"], ssl.SSLContext)


@pytest.mark.parametrize(
    "parameter",
    [
        "sslcert=/c.crt",
        "sslkey=/c.key",
        "sslpassword=x",
        "sslcrl=/r.crl",
        "sslnegotiation=direct",
        "ssl_min_protocol_version=TLSv1.3",
        "requiressl=1",
    ],
)
def test_unsupported_tls_parameters_are_refused_not_dropped(parameter: str) -> None:
    name = parameter.split("=", 1)[0]
    with pytest.raises(ValueError, match=f"not supported: {name}"):
        connect_target(f"postgresql://u:p@db.example.com/d?sslmode=verify-full&{parameter}")


def test_a_tls_parameter_given_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="more than once: sslmode"):
        connect_target("postgresql://u:p@h/d?sslmode=verify-full&sslmode=disable")


def test_the_engine_logs_once_what_the_driver_cannot_verify(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="shared.db"):
        create_engine(NEON)
        neon = [r.getMessage() for r in caplog.records]
        caplog.clear()
        create_engine("postgresql://u:p@db.example.com/d?sslmode=require")
        plain_require = [r.getMessage() for r in caplog.records]
        caplog.clear()
        create_engine("postgresql://u:p@db.example.com/d?sslmode=verify-full")
        verified = [r.getMessage() for r in caplog.records]

    assert len(neon) == 1
    assert "channel_binding=require cannot be honoured" in neon[0]
    assert "host name are verified against the system trust store" in neon[0]
    assert len(plain_require) == 1
    assert "does not verify the server's certificate" in plain_require[0]
    assert verified == []
