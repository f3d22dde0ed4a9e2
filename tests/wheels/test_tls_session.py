"""The wheels HTTP session loads each CA bundle once, and verifies exactly as requests does.

A real TLS server on loopback, with certificates made here by a throwaway CA: what is trusted
is trusted, what is not (another CA, the wrong host name, the default bundle) is refused, two
bundles never mix, and many connections parse their bundle once.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

x509 = pytest.importorskip("cryptography.x509", reason="cryptography makes the test certificates")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from mlops_cli.wheels.index import make_session  # noqa: E402


def _name(text):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _ca(tmp_path, label):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(label))
        .issuer_name(_name(label))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / f"{label}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, path


def _server_cert(tmp_path, ca, names):
    ca_key, ca_cert, _ = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    sans = [x509.IPAddress(ipaddress.ip_address(n)) if n[0].isdigit() else x509.DNSName(n) for n in names]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = tmp_path / f"server-{'-'.join(names)}.pem"
    pem.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return pem


class _Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 - http.server's name
        body = b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def tls_server():
    servers = []

    def start(pem):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
        server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pem)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"https://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()


@pytest.fixture
def bundle_env(monkeypatch):
    """Point requests' CA bundle variable at a file (None: requests' own default, certifi)."""
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)

    def use(path):
        if path is None:
            monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
        else:
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(path))

    return use


def _refused(session, url):
    import requests

    with pytest.raises(requests.exceptions.SSLError):
        session.get(url, timeout=10)


def test_trusted_server_many_connections_one_bundle_parse(tmp_path, tls_server, bundle_env, monkeypatch):
    ca = _ca(tmp_path, "test-ca")
    url = tls_server(_server_cert(tmp_path, ca, ["127.0.0.1"]))
    bundle_env(ca[2])
    loads = []
    real = ssl.SSLContext.load_verify_locations
    monkeypatch.setattr(
        ssl.SSLContext, "load_verify_locations", lambda self, *a, **k: (loads.append((a, k)), real(self, *a, **k))[1]
    )
    session = make_session(["https://127.0.0.1/simple"], workers=8)
    barrier = threading.Barrier(6)
    answers = []

    def fetch():
        barrier.wait()  # all at once: each needs a connection of its own
        answers.append(session.get(url, timeout=10).text)

    threads = [threading.Thread(target=fetch) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == ["hello"] * 6
    opened = sum(pool.num_connections for pool in session.get_adapter(url).poolmanager.pools._container.values())
    assert opened >= 2  # several connections really were opened ...
    assert len(loads) == 1  # ... and the bundle was parsed once, not once each


def test_untrusted_ca_wrong_host_and_default_bundle_are_refused(tmp_path, tls_server, bundle_env):
    ca, other = _ca(tmp_path, "test-ca"), _ca(tmp_path, "other-ca")
    good = tls_server(_server_cert(tmp_path, ca, ["127.0.0.1"]))
    wrong_host = tls_server(_server_cert(tmp_path, ca, ["files.example.org"]))
    bundle_env(other[2])
    _refused(make_session(["https://127.0.0.1/simple"]), good)  # signed by a CA the bundle lacks
    bundle_env(ca[2])
    _refused(make_session(["https://127.0.0.1/simple"]), wrong_host)  # trusted CA, another host's name
    bundle_env(None)
    _refused(make_session(["https://127.0.0.1/simple"]), good)  # certifi does not know the test CA


def test_two_bundles_in_one_session_never_mix(tmp_path, tls_server, bundle_env):
    ca, other = _ca(tmp_path, "test-ca"), _ca(tmp_path, "other-ca")
    url = tls_server(_server_cert(tmp_path, ca, ["127.0.0.1"]))
    session = make_session(["https://127.0.0.1/simple"])
    bundle_env(ca[2])
    assert session.get(url, timeout=10).text == "hello"
    bundle_env(other[2])
    session.get_adapter(url).close()  # no kept-alive connection from the first bundle's pool
    _refused(session, url)  # the first bundle's CA did not leak into the second's context
    bundle_env(ca[2])
    assert session.get(url, timeout=10).text == "hello"
