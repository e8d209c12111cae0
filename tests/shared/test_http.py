"""The one TLS context of the platform's outgoing HTTPS verifies servers."""

from __future__ import annotations

import ssl

from shared.http import system_trust


def test_outgoing_https_verifies_certificate_and_host_against_a_loaded_ca_store() -> None:
    trust = system_trust()
    assert trust is system_trust()
    assert trust.verify_mode is ssl.CERT_REQUIRED
    assert trust.check_hostname
    assert trust.cert_store_stats()["x509_ca"] > 0
