"""A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives.

Fixtures (registered with ``pytest_plugins = ["mail_server"]``):

``mail_server(security="none", login=None)``
    starts a server and returns a `MailServer`: plain SMTP, STARTTLS or
    implicit TLS (``"ssl"``) with a certificate for 127.0.0.1 made for the
    test (point ``SSL_CERT_FILE`` at ``server.ca_file`` so clients trust it),
    and optionally a required login ``(user, password)``. Stopped at the end.
``dead_smtp_port``
    a loopback port nobody listens on: an SMTP server that is down.
"""

import datetime
import ipaddress
import ssl
from email import message_from_bytes, policy

import pytest

from ports import free_port


class MailServer:
    def __init__(self, controller, mailbox, ca_file):
        self.controller = controller
        self.mailbox = mailbox
        self.host = "127.0.0.1"
        self.port = controller.port
        self.ca_file = ca_file  # the certificate to trust, or None for plain SMTP

    @property
    def messages(self):
        """[Received], in the order they arrived."""
        return list(self.mailbox.received)


class Received:
    def __init__(self, envelope, session, implicit_tls):
        self.sender = envelope.mail_from
        self.recipients = list(envelope.rcpt_tos)
        self.message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        self.authenticated = bool(getattr(session, "authenticated", False))
        self.tls = implicit_tls or session.ssl is not None  # STARTTLS, or an SSL-only server

    @property
    def body(self):
        return self.message.get_body(("plain",)).get_content()


class _Mailbox:
    def __init__(self, implicit_tls):
        self.received = []
        self.implicit_tls = implicit_tls

    async def handle_DATA(self, server, session, envelope):
        self.received.append(Received(envelope, session, self.implicit_tls))
        return "250 Message accepted for delivery"


class _Login:
    def __init__(self, user, password):
        self.user, self.password = user.encode(), password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        ok = auth_data.login == self.user and auth_data.password == self.password
        return AuthResult(success=ok, handled=False)


def make_certificate(directory):
    """A self-signed certificate for 127.0.0.1 and localhost: (cert file, key file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_file, key_file


def start_mail_server(directory, security="none", login=None):
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        pytest.skip("aiosmtpd is not installed (pip install -e '.[test]')")
    mailbox, options, ca_file = _Mailbox(implicit_tls=security == "ssl"), {}, None
    if security != "none":
        ca_file, key_file = make_certificate(directory)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(ca_file), str(key_file))
        options["ssl_context" if security == "ssl" else "tls_context"] = context
        if security == "starttls":
            options["require_starttls"] = True
    if login is not None:
        options.update(authenticator=_Login(*login), auth_required=True, auth_require_tls=security != "none")
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(), **options)
    controller.start()
    return MailServer(controller, mailbox, ca_file)


@pytest.fixture
def mail_server(tmp_path):
    """Start SMTP servers for the test: ``mail_server(security=..., login=...)``."""
    servers = []

    def start(security="none", login=None):
        server = start_mail_server(tmp_path, security, login)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.controller.stop()


@pytest.fixture
def dead_smtp_port():
    """A loopback port with no SMTP server: connection refused."""
    return free_port()
