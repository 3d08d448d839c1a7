"""
test_dovecot_auth.py - SMTP AUTH against a real Dovecot (auth_backend =
dovecot): tern relays the SASL exchange to Dovecot's auth-client socket, the
protocol Postfix's smtpd_sasl_type = dovecot speaks.

The Dovecot is the suite's private one (dovecot_server.py) with a passwd-file
passdb/userdb and `service auth { unix_listener auth-tern { mode = 0666 } }`
in its own directory; tern runs as the harness runs it (started by root, then
nobody, sandboxed), so the connect to the socket happens under seccomp and
Landlock.

Checked: the mechanisms in EHLO come from Dovecot's MECH lines (PLAIN LOGIN
here; PLAIN only when Dovecot offers only PLAIN); AUTH PLAIN (smtplib, and
raw with and without an initial response) and AUTH LOGIN succeed; a wrong
password is 535 5.7.8; the name Dovecot returns is the one tern logs, uses
for the sender check and relays with (from outside mynetworks, through a
relayhost sink); Dovecot saw (auth_debug) service=smtp, tern's session id,
"secured", and both addresses and ports of the SMTP connection;
Dovecot stopped mid-run gives 454 4.7.0 with the session going on, and AUTH
works again once Dovecot is back; Dovecot's auth process stopped (SIGSTOP)
gives 454 after dovecot_auth_timeout, and AUTH works once it runs again;
check-config refuses a bad backend
configuration with file:line.
"""

import base64
import os
import re
import signal
import smtplib
import subprocess
import time

import pytest

from dovecot_server import INSTALLED, SKIP_REASON, Dovecot
from peers import Sink
from tern_harness import RUN_AS, Client, check_enhanced, make_cert, open_for, tf, tls_client_context

pytestmark = pytest.mark.skipif(not INSTALLED, reason=SKIP_REASON)

USERS = {"alice@example.com": "", "bob@localhost": ""}
PASSWORDS = {"alice@example.com": "alice-dove-1", "bob@localhost": "bob dove 2"}


def b64(s):
    return base64.b64encode(s.encode()).decode()


@pytest.fixture
def dovecot():
    d = Dovecot(USERS, passwords=PASSWORDS, auth_socket=True)
    yield d
    d.close()


@pytest.fixture
def dv_tern(make_tern, tmp_path, dovecot):
    def factory(config=None, start=True):
        cert, key = make_cert(tmp_path)
        cfg = {"tls_cert": str(cert), "tls_key": str(key), "auth_backend": "dovecot",
               "dovecot_auth_socket": dovecot.auth_socket,
               "auth_failure_delay": "0", "auth_max_failures": "5",
               "listen": "127.0.0.1:0, 127.0.0.1:0 submission"}
        cfg.update(config or {})
        t = make_tern(config=cfg)
        return t.start() if start else t
    return factory


def raw_tls(port, source=None):
    c = Client(port, source=source)
    c.read_greeting()
    c.ehlo()
    c.expect("STARTTLS", r"^220")
    c.sock = tls_client_context().wrap_socket(c.sock)
    return c


def test_plain_and_login_against_dovecot(dv_tern, dovecot):
    t = dv_tern()
    t.wait_log(r"dovecot auth: connected to \S+; it offers .*PLAIN.*; tern announces PLAIN LOGIN")
    c = Client(t.port)
    c.read_greeting()
    assert "AUTH" not in c.ehlo().text  # never in clear (RFC 4954 §4)
    c.close()
    c = raw_tls(t.port)
    r = c.ehlo()
    assert "AUTH PLAIN LOGIN" in r.text, r.text
    # PLAIN without an initial response: Dovecot's empty challenge is relayed
    c.expect("AUTH PLAIN", r"^334 ?$")
    c.expect(b64("\0alice@example.com\0alice-dove-1"), r"^235 2\.7\.0")
    c.expect("AUTH PLAIN", r"^503 5\.5\.1")
    c.close()
    # LOGIN: Dovecot's own prompts ("Username:", "Password:") come back as 334
    c = raw_tls(t.port)
    c.ehlo()
    c.expect("AUTH LOGIN", r"^334 VXNlcm5hbWU6$")
    c.expect(b64("bob@localhost"), r"^334 UGFzc3dvcmQ6$")
    c.expect(b64("bob dove 2"), r"^235 2\.7\.0")
    c.close()
    t.wait_log(r"auth ok user=bob@localhost method=LOGIN client=127\.0\.0\.1")
    # LOGIN with an initial response, then cancelled; an unknown mechanism
    c = raw_tls(t.port)
    c.ehlo()
    c.expect("AUTH LOGIN " + b64("bob@localhost"), r"^334 UGFzc3dvcmQ6$")
    c.expect("*", r"^501 5\.0\.0")
    c.expect("AUTH CRAM-MD5", r"^504 5\.5\.4")
    c.expect("AUTH PLAIN !!!", r"^501 5\.5\.2")
    c.expect("NOOP", r"^250")
    check_enhanced([r for r in c.replies if r.code != 334])
    c.close()
    # smtplib (PLAIN with an initial response) on the submission port
    s = smtplib.SMTP("127.0.0.1", t.port_of("submission"), local_hostname="client.test",
                     timeout=tf(15))
    s.starttls(context=tls_client_context())
    s.ehlo()
    s.login("alice@example.com", "alice-dove-1")
    s.sendmail("alice@example.com", ["bob@localhost"], b"Subject: via dovecot\r\n\r\nhi\r\n")
    s.quit()
    t.wait_delivered("bob@localhost", 1)
    t.wait_log(r"accepted session=\S+ client=127\.0\.0\.1 .*proto=ESMTPSA user=alice@example\.com")
    # what Dovecot was told (its auth_debug shows each request, resp= hidden): the
    # service, tern's session, secured (TLS), both ends of the connection
    log = dovecot.log_text()
    port = t.port_of("submission")
    assert re.search(r"client in: AUTH\t\d+\tPLAIN\tservice=smtp\tsession=S\d+\tsecured\t"
                     r"lip=127\.0\.0\.1\trip=127\.0\.0\.1\tlport=%d\trport=\d+\tresp=<hidden>"
                     % port, log), log[-3000:]
    assert "alice-dove-1" not in log and "alice-dove-1" not in t.run_log()


def test_wrong_password_535_and_logs(dv_tern, dovecot):
    t = dv_tern()
    c = raw_tls(t.port)
    c.ehlo()
    c.expect("AUTH PLAIN " + b64("\0alice@example.com\0wrong-secret-z"), r"^535 5\.7\.8")
    # Dovecot's auth penalty (anvil, per client address) delays this one ~2 s
    c.expect("AUTH PLAIN " + b64("\0nobody@example.com\0whatever-q"), r"^535 5\.7\.8")
    c.close()
    c = raw_tls(t.port, source="127.0.0.3")  # an address Dovecot holds nothing against
    c.ehlo()
    c.expect("AUTH PLAIN " + b64("\0alice@example.com\0alice-dove-1"), r"^235 2\.7\.0")
    c.close()
    t.wait_log(r"auth ok user=alice@example\.com method=PLAIN client=127\.0\.0\.3")
    log = t.run_log()
    assert "auth failed method=PLAIN client=127.0.0.1 failures=2" in log, log
    for secret in ("wrong-secret-z", "whatever-q", "alice-dove-1", "nobody@example.com"):
        assert secret not in log, secret


def test_dovecot_user_relays_and_owns_its_sender(dv_tern, tmp_path):
    sink = Sink()
    try:
        t = dv_tern(config={"relayhost": sink.spec, "retry_min": "1s", "retry_max": "2s"})
        c = raw_tls(t.port, source="127.0.0.2")  # outside mynetworks
        c.ehlo()
        c.expect("MAIL FROM:<bob@localhost>", r"^250")
        c.expect("RCPT TO:<someone@far.example>", r"^554 5\.7\.1")  # not yet
        c.expect("RSET", r"^250")
        c.expect("AUTH PLAIN " + b64("\0bob@localhost\0bob dove 2"), r"^235")
        # the name Dovecot returned is what the sender check uses
        c.expect("MAIL FROM:<alice@example.com>", r"^553 5\.7\.1")
        c.expect("MAIL FROM:<bob@localhost>", r"^250")
        c.expect("RCPT TO:<someone@far.example>", r"^250")
        c.expect("DATA", r"^354")
        c.send("Subject: relayed after dovecot auth\r\n\r\nhello\r\n.\r\n")
        assert c.reply().code == 250
        c.expect("QUIT", r"^221")
        check_enhanced(c.replies)
        c.close()
        deadline = time.monotonic() + tf(15)
        while not sink.messages:
            assert time.monotonic() < deadline, t.tail()
            time.sleep(0.05)
        assert b"relayed after dovecot auth" in sink.messages[0]["data"]
        assert sink.messages[0]["rcpts"] == ["someone@far.example"] or \
            "someone@far.example" in str(sink.messages[0]["rcpts"])
        t.wait_log(r"auth ok user=bob@localhost method=PLAIN client=127\.0\.0\.2")
    finally:
        sink.close()


def test_dovecot_down_454_then_recovers(dv_tern, dovecot):
    t = dv_tern()
    t.wait_log(r"dovecot auth: connected to")
    c = raw_tls(t.port)
    c.ehlo()
    c.expect("AUTH PLAIN " + b64("\0alice@example.com\0alice-dove-1"), r"^235")
    c.close()
    dovecot.stop()
    t.wait_log(r"dovecot auth: \S+: connection lost")
    c = raw_tls(t.port)
    r = c.ehlo()
    assert "AUTH PLAIN LOGIN" in r.text  # still offered: the failure is temporary
    for _ in range(3):  # not counted as failures (auth_max_failures = 5 is not reached either)
        c.expect("AUTH PLAIN " + b64("\0alice@example.com\0alice-dove-1"), r"^454 4\.7\.0")
    c.expect("AUTH LOGIN", r"^454 4\.7\.0")
    c.expect("NOOP", r"^250")  # the session goes on
    t.wait_log(r"auth temporary failure method=PLAIN client=127\.0\.0\.1 reason=\"dovecot: ")
    assert dovecot.start(), dovecot.log_text()
    # the same session: tern connects again on the next AUTH
    deadline = time.monotonic() + tf(15)
    while True:
        c.send("AUTH PLAIN " + b64("\0alice@example.com\0alice-dove-1") + "\r\n")
        r = c.reply()
        if r.code == 235:
            break
        assert r.code == 454 and time.monotonic() < deadline, (r, t.tail())
        time.sleep(0.2)
    c.expect("MAIL FROM:<alice@example.com>", r"^250")
    c.expect("QUIT", r"^221")
    c.close()
    t.wait_log(r"dovecot auth: connected to")


def test_dovecot_slow_454_then_recovers(dv_tern, dovecot):
    """Dovecot's auth process stopped (SIGSTOP): no answer within
    dovecot_auth_timeout is 454 4.7.0; once it runs again, AUTH works."""
    t = dv_tern(config={"dovecot_auth_timeout": "2s"})
    t.wait_log(r"dovecot auth: connected to")
    pids = dovecot.pids("auth")
    assert pids, dovecot.log_text()
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    try:
        c = raw_tls(t.port)
        c.ehlo()
        start = time.monotonic()
        c.expect("AUTH PLAIN " + b64("\0alice@example.com\0alice-dove-1"), r"^454 4\.7\.0")
        assert time.monotonic() - start >= 1.5
        c.expect("NOOP", r"^250")
        t.wait_log(r"reason=\"dovecot: no answer in time\"")
    finally:
        for p in pids:
            os.kill(p, signal.SIGCONT)
    deadline = time.monotonic() + tf(15)
    while True:
        c.send("AUTH PLAIN " + b64("\0alice@example.com\0alice-dove-1") + "\r\n")
        r = c.reply()
        if r.code == 235:
            break
        assert r.code == 454 and time.monotonic() < deadline, (r, t.tail())
        time.sleep(0.2)
    c.close()


def test_reload_switches_dovecot_socket(dv_tern, dovecot):
    """SIGHUP with another dovecot_auth_socket: tern leaves the old Dovecot
    and asks the new one; the file backend can be switched to as well."""
    other = Dovecot({"carol@localhost": ""}, passwords={"carol@localhost": "carol-dove-3"},
                    auth_socket=True)
    try:
        t = dv_tern()
        t.wait_log(r"dovecot auth: connected to %s;" % re.escape(dovecot.auth_socket))
        t.config["dovecot_auth_socket"] = other.auth_socket
        t.write_files()
        t.signal(signal.SIGHUP)
        t.wait_log(r"reload: applied: .*Dovecot authentication at %s" % re.escape(other.auth_socket))
        t.wait_log(r"dovecot auth: connected to %s;" % re.escape(other.auth_socket))
        c = raw_tls(t.port)
        c.ehlo()
        c.expect("AUTH PLAIN " + b64("\0alice@example.com\0alice-dove-1"), r"^535 5\.7\.8")
        c.expect("AUTH PLAIN " + b64("\0carol@localhost\0carol-dove-3"), r"^235")
        c.close()
        # back to no backend at all: AUTH is no longer offered
        t.config["auth_backend"] = None
        t.config["dovecot_auth_socket"] = None
        t.config["listen"] = "127.0.0.1:0"
        t.write_files()
        t.signal(signal.SIGHUP)
        t.wait_log(r"reload: applied: .*no password file")
        c = raw_tls(t.port)
        assert "AUTH" not in c.ehlo().text
        c.expect("AUTH PLAIN " + b64("\0carol@localhost\0carol-dove-3"), r"^502 5\.5\.1")
        c.close()
    finally:
        other.close()


def test_dovecot_offers_only_plain(make_tern, tmp_path):
    d = Dovecot(USERS, passwords=PASSWORDS, auth_socket=True,
                extra_conf="")  # AUTH_CONF says plain login; override after it
    try:
        conf = d.conf.read_text().replace("auth_mechanisms = plain login", "auth_mechanisms = plain")
        d.stop()
        d.conf.write_text(conf)
        assert d.start(), d.log_text()
        cert, key = make_cert(tmp_path)
        t = make_tern(config={"tls_cert": str(cert), "tls_key": str(key), "auth_backend": "dovecot",
                              "dovecot_auth_socket": d.auth_socket, "auth_failure_delay": "0"})
        t.start()
        t.wait_log(r"dovecot auth: connected to \S+; it offers PLAIN; tern announces PLAIN$")
        c = raw_tls(t.port)
        r = c.ehlo()
        assert "AUTH PLAIN" in r.text and "LOGIN" not in r.text, r.text
        c.expect("AUTH LOGIN", r"^504 5\.5\.4")
        c.expect("AUTH PLAIN " + b64("\0bob@localhost\0bob dove 2"), r"^235")
        c.close()
    finally:
        d.close()


def test_check_config_dovecot_keys(make_tern):
    for cfg, want in [
        ({"auth_backend": "ldap"}, r"auth_backend: \"ldap\": must be file \(auth_users\) or dovecot"),
        ({"auth_backend": "dovecot"}, r"auth_backend = dovecot needs dovecot_auth_socket"),
        ({"auth_backend": "dovecot", "dovecot_auth_socket": "inet:dovecot.example:12345"},
         r"HOST must be a numeric IP address"),
        ({"auth_backend": "dovecot", "dovecot_auth_socket": "run/auth"},
         r"expected an absolute socket path"),
        ({"dovecot_auth_socket": "/run/dovecot/auth-client"},
         r"dovecot_auth_socket is set but auth_backend is not dovecot"),
    ]:
        t = make_tern(config=cfg)
        r = subprocess.run(t.command("check-config"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=t.env(), timeout=tf(30))
        out = (r.stdout + r.stderr).decode()
        assert r.returncode != 0, (cfg, out)
        assert re.search(r"tern\.conf:\d+: .*" + want, out), (cfg, out)
    t = make_tern(config={"auth_backend": "dovecot", "dovecot_auth_socket": "inet:[::1]:12345"})
    if RUN_AS:
        open_for(RUN_AS, t.dir)  # as start() does: the daemon's user must reach its files
    r = subprocess.run(t.command("check-config"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=t.env(), timeout=tf(30))
    assert r.returncode == 0, (r.stdout + r.stderr).decode()
