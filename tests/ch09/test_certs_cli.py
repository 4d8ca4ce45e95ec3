"""`python -m ch09_security certs`: what it writes, and how.

The files are read back with `cryptography`: a CA, a server certificate
naming `localhost` and `127.0.0.1` for serving only, a client
certificate for showing only, both signed by the CA; keys readable by
their owner alone, even where a file was readable by others before;
no CA key anywhere. `test_serve.py` serves with them.
"""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from ch09_security.__main__ import main

FILES = {"ca.pem", "server.pem", "server-key.pem", "client.pem",
         "client-key.pem"}


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def names_of(cert: x509.Certificate) -> list[str]:
    alternative = cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    return [str(name.value) for name in alternative]


def usages_of(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(
        x509.ExtendedKeyUsage).value)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_certs_writes_a_ca_a_server_and_a_client_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "tls"
    assert main(["certs", "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == FILES  # no CA key
    ca = certificate(out / "ca.pem")
    server = certificate(out / "server.pem")
    client = certificate(out / "client.pem")
    for leaf in (server, client):
        leaf.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(
        x509.BasicConstraints).value.ca
    assert names_of(server) == ["localhost", "127.0.0.1"]
    assert usages_of(server) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert usages_of(client) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert mode_of(out) == 0o700
    assert mode_of(out / "server-key.pem") == 0o600
    assert mode_of(out / "client-key.pem") == 0o600
    printed = capsys.readouterr().out
    assert f"--tls-cert {out / 'server.pem'}" in printed


def test_more_names_join_localhost_on_the_server_certificate(
    tmp_path: Path,
) -> None:
    assert main(["certs", "--out", str(tmp_path), "--name", "speech",
                 "--name", "10.0.0.5", "--days", "7"]) == 0
    server = certificate(tmp_path / "server.pem")
    assert names_of(server) == ["localhost", "127.0.0.1", "speech",
                                "10.0.0.5"]
    addresses = server.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(
            x509.IPAddress)
    assert ipaddress.ip_address("10.0.0.5") in addresses
    lifetime = (server.not_valid_after_utc - server.not_valid_before_utc)
    assert 7 <= lifetime.days <= 8  # seven days, and the skew allowance


def test_a_second_run_replaces_the_set_and_keys_stay_private(
    tmp_path: Path,
) -> None:
    key = tmp_path / "server-key.pem"
    key.write_text("left over, readable by anyone\n")
    key.chmod(0o644)
    assert main(["certs", "--out", str(tmp_path)]) == 0
    first_ca = (tmp_path / "ca.pem").read_bytes()
    assert mode_of(key) == 0o600
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert main(["certs", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "ca.pem").read_bytes() != first_ca


@pytest.mark.parametrize("days", ["0", "-3", "soon"])
def test_a_lifetime_that_is_not_a_positive_number_of_days_is_refused(
    tmp_path: Path, days: str, capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["certs", "--out", str(tmp_path), "--days", days])
    assert exited.value.code == 2
    assert "not a positive number of days" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_an_output_that_cannot_be_written_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert main(["certs", "--out", str(blocked / "tls")]) == 1
    assert capsys.readouterr().err.startswith("error: ")
