"""The Temporal connection over TLS, mTLS and with an API key, through a real handshake: the dev
server behind a TLS-terminating proxy (tests/tcp_proxy.py) that requires a client certificate
signed by the test's CA. Certificates are made here with `cryptography`."""

from __future__ import annotations

import datetime as dt
import os
import ssl
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import hpack
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from tests.tcp_proxy import TcpProxy
from workers.cli import EXIT_CONFIG, EXIT_OK, main
from workers.config import ConfigError, load_config
from workers.temporal_tls import check_security
from workers.worker import connect

SERVER_NAME = "temporal.test"  # the only name in the server's certificate: not 127.0.0.1


@dataclass(frozen=True)
class Pem:
    cert: str
    key: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def make_ca(name: str) -> tuple[Pem, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Pem(cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key)), key


def issue(
    ca: Pem,
    ca_key: ec.EllipticCurvePrivateKey,
    name: str,
    *,
    server: bool,
    valid_days: tuple[int, int] = (-1, 30),
) -> Pem:
    key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = x509.load_pem_x509_certificate(ca.cert.encode())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=valid_days[0]))
        .not_valid_after(now + dt.timedelta(days=valid_days[1]))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [x509.ExtendedKeyUsageOID.SERVER_AUTH if server else x509.ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return Pem(cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key))


@dataclass(frozen=True)
class Pki:
    ca: Pem
    server: Pem
    client: Pem
    other_ca: Pem  # trusted by nobody here


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca, ca_key = make_ca("durapay test CA")
    other_ca, _ = make_ca("some other CA")
    return Pki(
        ca=ca,
        server=issue(ca, ca_key, SERVER_NAME, server=True),
        client=issue(ca, ca_key, "durapay-worker", server=False),
        other_ca=other_ca,
    )


def server_context(pki: Pki, tmp_path: Path) -> ssl.SSLContext:
    """TLS as a Temporal frontend with mTLS does it: HTTP/2, a client certificate required."""
    (tmp_path / "server.crt").write_text(pki.server.cert)
    (tmp_path / "server.key").write_text(pki.server.key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=pki.ca.cert)
    context.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    return context


class Http2Headers:
    """Decodes the request headers of one HTTP/2 connection (client to server) as it streams by."""

    PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

    def __init__(self, seen: list[dict[str, str]]) -> None:
        self._buffer = b""
        self._block = b""
        self._decoder = hpack.Decoder()
        self._seen = seen
        self._preface_done = False

    def __call__(self, chunk: bytes) -> None:
        self._buffer += chunk
        if not self._preface_done:
            if len(self._buffer) < len(self.PREFACE):
                return
            assert self._buffer.startswith(self.PREFACE)
            self._buffer = self._buffer[len(self.PREFACE) :]
            self._preface_done = True
        while len(self._buffer) >= 9:
            length = int.from_bytes(self._buffer[:3], "big")
            if len(self._buffer) < 9 + length:
                return
            kind, flags = self._buffer[3], self._buffer[4]
            payload = self._buffer[9 : 9 + length]
            self._buffer = self._buffer[9 + length :]
            if kind == 0x1:  # HEADERS: optional padding and priority before the block
                pad = 0
                if flags & 0x8:
                    pad, payload = payload[0], payload[1:]
                if flags & 0x20:
                    payload = payload[5:]
                self._block = payload[: len(payload) - pad]
            elif kind == 0x9:  # CONTINUATION
                self._block += payload
            else:
                continue
            if flags & 0x4:  # END_HEADERS
                self._seen.append({str(k): str(v) for k, v in self._decoder.decode(self._block)})
                self._block = b""


@pytest_asyncio.fixture
async def mtls_proxy(temporal_env: WorkflowEnvironment, pki: Pki, tmp_path: Path) -> AsyncIterator[TcpProxy]:
    port = int(temporal_env.client.service_client.config.target_host.rsplit(":", 1)[1])
    async with TcpProxy(port, ssl=server_context(pki, tmp_path)) as proxy:
        yield proxy


def tls_config(address: str, **temporal: object):
    return load_config(
        environ={}, use_default_file=False, overrides={"temporal": {"address": address, **temporal}}
    )


async def start_and_describe(config, task_queue: str) -> str:
    """Start a workflow over the connection `config` describes and read it back: two RPCs, each
    through the handshake. No worker is needed to see it RUNNING."""
    client = await connect(config)
    handle = await client.start_workflow(
        "NoSuchWorkflowType", id=f"tls-{uuid.uuid4().hex[:8]}", task_queue=task_queue
    )
    try:
        return str((await handle.describe()).status)
    finally:
        await handle.terminate()


async def test_mtls_connects_end_to_end(mtls_proxy: TcpProxy, pki: Pki, task_queue: str) -> None:
    config = tls_config(
        mtls_proxy.address,
        tls_ca_cert=pki.ca.cert,
        tls_client_cert=pki.client.cert,
        tls_client_key=pki.client.key,
        tls_server_name=SERVER_NAME,
    )
    assert await start_and_describe(config, task_queue) == str(WorkflowExecutionStatus.RUNNING)


async def test_plaintext_against_tls_fails_clearly(mtls_proxy: TcpProxy) -> None:
    with pytest.raises(
        ConnectionError, match=r"cannot reach Temporal at .* \[plaintext; set \[temporal\] tls"
    ):
        await connect(tls_config(mtls_proxy.address))


async def test_wrong_ca_fails_clearly(mtls_proxy: TcpProxy, pki: Pki) -> None:
    config = tls_config(
        mtls_proxy.address,
        tls_ca_cert=pki.other_ca.cert,
        tls_client_cert=pki.client.cert,
        tls_client_key=pki.client.key,
        tls_server_name=SERVER_NAME,
    )
    with pytest.raises(ConnectionError) as failed:
        await connect(config)
    message = str(failed.value)
    assert message.startswith(f"cannot reach Temporal at {mtls_proxy.address} (temporal.address)")
    assert "UnknownIssuer" in message, message  # the handshake's own reason
    assert message.endswith(
        "[TLS: the server's certificate was refused; check temporal.tls_ca_cert and tls_server_name]"
    )


async def test_missing_client_certificate_fails_clearly(mtls_proxy: TcpProxy, pki: Pki) -> None:
    config = tls_config(mtls_proxy.address, tls_ca_cert=pki.ca.cert, tls_server_name=SERVER_NAME)
    with pytest.raises(ConnectionError) as failed:
        await connect(config)
    message = str(failed.value)
    assert message.startswith(f"cannot reach Temporal at {mtls_proxy.address} (temporal.address)")
    assert message.endswith(
        "[TLS without a client certificate; if the server requires mTLS, "
        "set temporal.tls_client_cert and tls_client_key]"
    ), message


async def test_api_key_is_sent_as_a_bearer_token(
    temporal_env: WorkflowEnvironment, pki: Pki, tmp_path: Path, task_queue: str
) -> None:
    """What Temporal Cloud reads: the `authorization` header of every gRPC call, over TLS."""
    seen: list[dict[str, str]] = []
    port = int(temporal_env.client.service_client.config.target_host.rsplit(":", 1)[1])
    context = server_context(pki, tmp_path)
    context.verify_mode = ssl.CERT_NONE  # API key instead of a client certificate
    api_key = f"dp-test-{uuid.uuid4().hex}"
    async with TcpProxy(port, ssl=context, sniffer=lambda: Http2Headers(seen)) as proxy:
        config = tls_config(
            proxy.address, tls_ca_cert=pki.ca.cert, tls_server_name=SERVER_NAME, api_key=api_key
        )
        assert await start_and_describe(config, task_queue) == str(WorkflowExecutionStatus.RUNNING)
    calls = [headers for headers in seen if ":path" in headers]
    assert {headers[":path"].rsplit("/", 1)[1] for headers in calls} >= {
        "StartWorkflowExecution",
        "DescribeWorkflowExecution",
    }
    assert {headers.get("authorization") for headers in calls} == {f"Bearer {api_key}"}


# --- config check ------------------------------------------------------------------------------


def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("DURAPAY_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(Path(__file__).parent)  # no ./durapay.toml here


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_config_check_shows_the_certificates_and_their_expiry(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_environment(monkeypatch)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    # The key from the secrets directory, the certificates named by path in the file.
    write(secrets, "temporal__tls_client_key", pki.client.key)
    config = write(
        tmp_path,
        "durapay.toml",
        f'[payment.mock]\nenabled = true\n[temporal]\ntls_ca_cert_file = "{write(tmp_path, "ca.crt", pki.ca.cert)}"\n'
        f'tls_client_cert_file = "{write(tmp_path, "client.crt", pki.client.cert)}"\n'
        f'tls_server_name = "{SERVER_NAME}"\n',
    )
    assert main(["--config", str(config), "--secrets-dir", str(secrets), "config", "check"]) == EXIT_OK
    out = capsys.readouterr().out
    expiry = x509.load_pem_x509_certificate(pki.client.cert.encode()).not_valid_after_utc
    assert "# temporal connection: TLS, CA from tls_ca_cert, client certificate (mTLS), server name" in out
    assert "# temporal.tls_client_cert: CN=durapay-worker, valid" in out
    assert f"to {expiry:%Y-%m-%d}; key matches" in out
    assert "# temporal.tls_ca_cert: CN=durapay test CA" in out
    assert 'temporal.tls_client_key = "**********"' in out
    assert 'temporal.tls_client_cert = "(PEM)"' in out
    key_lines = [line for line in pki.client.key.splitlines() if not line.startswith("-----")]
    assert not any(line in out for line in key_lines)


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("missing file", "tls_ca_cert_file: cannot read"),
        ("key of another certificate", "temporal.tls_client_key does not belong to temporal.tls_client_cert"),
        ("expired", "temporal.tls_client_cert expired on"),
        ("cert without key", "mTLS needs both tls_client_cert and tls_client_key"),
        ("not a certificate", "temporal.tls_ca_cert: not a PEM certificate"),
    ],
)
def test_config_check_refuses_bad_tls_material(
    pki: Pki,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    problem: str,
    message: str,
) -> None:
    clean_environment(monkeypatch)
    ca, ca_key = make_ca("CA")
    keys: dict[str, Callable[[], dict[str, str]]] = {
        "missing file": lambda: {"tls_ca_cert_file": str(tmp_path / "nope.crt")},
        "key of another certificate": lambda: {
            "tls_client_cert": pki.client.cert,
            "tls_client_key": issue(ca, ca_key, "x", server=False).key,
        },
        "expired": lambda: {
            "tls_client_cert": (old := issue(ca, ca_key, "old", server=False, valid_days=(-60, -1))).cert,
            "tls_client_key": old.key,
        },
        "cert without key": lambda: {"tls_client_cert": pki.client.cert},
        "not a certificate": lambda: {
            "tls_ca_cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        },
    }
    temporal = keys[problem]()
    lines = []
    for key, value in temporal.items():
        text = value.replace("\n", "\\n")
        lines.append(f'{key} = "{text}"')
    toml = "[payment.mock]\nenabled = true\n[temporal]\n" + "\n".join(lines) + "\n"
    config = write(tmp_path, "durapay.toml", toml)
    assert main(["--config", str(config), "config", "check"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.startswith("durapay: ") and message in err, err


def test_tls_material_from_file_variables(pki: Pki, tmp_path: Path) -> None:
    """`DURAPAY_..._FILE` names the file, as for every other secret."""
    config = load_config(
        environ={
            "DURAPAY_TEMPORAL__TLS_CLIENT_KEY_FILE": str(write(tmp_path, "k.pem", pki.client.key)),
            "DURAPAY_TEMPORAL__TLS_CLIENT_CERT_FILE": str(write(tmp_path, "c.pem", pki.client.cert)),
        },
        use_default_file=False,
    )
    assert check_security(config.temporal)[-1].endswith("; key matches")
    assert pki.client.key not in repr(config)


def test_check_security_describes_plaintext() -> None:
    config = load_config(environ={}, use_default_file=False)
    assert check_security(config.temporal) == ["temporal connection: plaintext (no TLS)"]
    with pytest.raises(ConfigError):
        load_config(environ={}, use_default_file=False, overrides={"temporal": {"tls_client_key": "x"}})
