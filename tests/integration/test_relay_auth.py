"""
test_relay_auth.py - AUTH to the relay host (issue 3: "Relay host (smarthost)
for all non-local mail, optionally with AUTH PLAIN/LOGIN to it over TLS").

An aiosmtpd relay with STARTTLS that requires AUTH (RFC 4954) checks the
credentials from relayhost_auth_file: right ones -> the mail is relayed under
TLS and authenticated; wrong ones -> deferred (4.7.8, never bounced: it is
our configuration's problem); a relay that offers no TLS -> credentials are
never sent (deferred, 4.7.0); a credentials file others may read -> tern
refuses to start.
"""

import os
import socket
import ssl
import subprocess
import time

import pytest

from tern_harness import RUN_AS, TERN_BIN, make_cert, open_for, tf

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
from aiosmtpd.smtp import AuthResult  # noqa: E402


class Relay:
    def __init__(self):
        self.messages = []
        self.logins = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append({"to": list(envelope.rcpt_tos), "tls": session.ssl is not None,
                              "authenticated": bool(session.authenticated),
                              "user": session.auth_data})
        return "250 2.0.0 Ok: relayed"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def relay_peer(tmp_path):
    started = []

    def start(tls=True, mechanisms=None):
        h = Relay()

        def authenticator(server, session, envelope, mechanism, auth_data):
            h.logins.append((mechanism, auth_data.login, auth_data.password))
            ok = auth_data.login == b"tern-user" and auth_data.password == b"s3cret pass"
            # handled=False: aiosmtpd (1.4.3) itself answers 535 5.7.8 to a
            # failure; with handled=True and no message it never answers
            return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)
        kw = {"authenticator": authenticator, "auth_required": True, "auth_require_tls": True}
        if mechanisms is not None:
            # aiosmtpd offers PLAIN and LOGIN; leave out the others
            kw["auth_exclude_mechanism"] = [m for m in ("PLAIN", "LOGIN") if m not in mechanisms]
        if tls:
            cert = make_cert(tmp_path, name="relay")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(cert[0]), str(cert[1]))
            kw.update(tls_context=ctx, require_starttls=True)
        port = free_port()
        c = aiosmtpd_controller.Controller(h, hostname="127.0.0.1", port=port, **kw)
        c.start()
        started.append(c)
        return h, port
    yield start
    for c in started:
        c.stop()


def auth_file(tmp_path, text="tern-user s3cret pass\n", mode=0o600):
    p = tmp_path / "relay-auth"
    p.write_text("# user password\n" + text)
    os.chmod(p, mode)
    return p


def wait_for(pred, timeout=15):
    deadline = time.monotonic() + tf(timeout)
    while not pred():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_auth_to_relayhost(make_tern, relay_peer, tmp_path):
    h, port = relay_peer()
    t = make_tern(config={"relayhost": "[127.0.0.1]:%d" % port,
                          "relayhost_auth_file": str(auth_file(tmp_path))}).start()
    t.send("someone@far.example")
    wait_for(lambda: h.messages)
    m = h.messages[0]
    assert m["tls"] and m["authenticated"] and m["user"] == b"tern-user", m
    assert m["to"] == ["someone@far.example"], m
    assert h.logins[0][0] in ("PLAIN", "LOGIN")
    t.wait_log(r"to=<someone@far\.example> relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+ .*status=sent")
    # the password never reaches the log
    assert "s3cret" not in t.log


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_auth_mechanism_offered_alone(make_tern, relay_peer, tmp_path, mech):
    """A relay that offers only AUTH LOGIN (RFC 4954 with the draft LOGIN
    exchange: 334 VXNlcm5hbWU6, 334 UGFzc3dvcmQ6) or only AUTH PLAIN (RFC 4616)
    gets that mechanism, and the mail is relayed."""
    h, port = relay_peer(mechanisms=[mech])
    t = make_tern(config={"relayhost": "[127.0.0.1]:%d" % port,
                          "relayhost_auth_file": str(auth_file(tmp_path))}).start()
    t.send("someone@far.example")
    wait_for(lambda: h.messages)
    assert [l[0] for l in h.logins] == [mech], h.logins
    assert h.logins[0][1:] == (b"tern-user", b"s3cret pass"), h.logins
    m = h.messages[0]
    assert m["tls"] and m["authenticated"] and m["user"] == b"tern-user", m
    t.wait_log(r"to=<someone@far\.example> relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+ .*status=sent")
    assert "s3cret" not in t.log


def test_wrong_password_defers(make_tern, relay_peer, tmp_path):
    h, port = relay_peer()
    t = make_tern(config={"relayhost": "[127.0.0.1]:%d" % port, "retry_min": "1h",
                          "retry_max": "2h",
                          "relayhost_auth_file": str(auth_file(tmp_path, "tern-user Zq9-not-the-password\n"))}
                  ).start()
    t.send("someone@far.example")
    t.wait_log(r"to=<someone@far\.example> .*status=deferred \(451 4\.7\.8 AUTH to ")
    assert not h.messages
    assert "Zq9-not-the-password" not in t.log


def test_no_tls_no_credentials(make_tern, relay_peer, tmp_path):
    h, port = relay_peer(tls=False)
    t = make_tern(config={"relayhost": "[127.0.0.1]:%d" % port, "retry_min": "1h",
                          "retry_max": "2h",
                          "relayhost_auth_file": str(auth_file(tmp_path))}).start()
    t.send("someone@far.example")
    t.wait_log(r"status=deferred \(451 4\.7\.0 AUTH to .* not attempted: the session is not encrypted")
    assert not h.logins and not h.messages


def test_credentials_file_must_be_private(make_tern, tmp_path):
    t = make_tern(config={"relayhost": "[127.0.0.1]:9",
                          "relayhost_auth_file": str(auth_file(tmp_path, mode=0o644))})
    if RUN_AS:
        open_for(RUN_AS, t.dir)
    r = subprocess.run(t.command("run"), capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "readable by group or others" in r.stdout + r.stderr
