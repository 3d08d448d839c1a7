"""
test_tls.py - inbound TLS: STARTTLS on the smtp port (RFC 3207), implicit TLS
on smtps (RFC 8314), the configured protocol range, the STARTTLS command
injection (CVE-2011-0411), TLS in the Received header and the log, certificate
reload on SIGHUP, and handshakes that do not hold up other sessions.
"""

import os
import pwd
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

import tern_harness

from tern_harness import Client, Mail, check_enhanced, make_cert, tf, tls_client_context


@pytest.fixture
def tls_tern(make_tern, tmp_path):
    def factory(config=None, **kw):
        cert, key = make_cert(tmp_path)
        cfg = {"tls_cert": str(cert), "tls_key": str(key),
               "listen": "127.0.0.1:0 smtps"}
        cfg.update(config or {})
        return make_tern(config=cfg, **kw).start()
    return factory


def starttls_client(t, port=None):
    """A raw client after EHLO and STARTTLS: its socket wrapped in TLS."""
    c = Client(port or t.port)
    c.read_greeting()
    c.ehlo()
    r = c.cmd("STARTTLS")
    assert r.code == 220 and r.text.startswith("220 2.0.0"), r
    c.sock = tls_client_context().wrap_socket(c.sock)
    return c


def test_starttls_offered_and_delivery_under_tls(tls_tern):
    t = tls_tern()
    s = t.smtp()
    code, resp = s.ehlo()
    assert b"STARTTLS" in resp
    s.starttls(context=tls_client_context())
    code, resp = s.ehlo()
    assert code == 250 and b"STARTTLS" not in resp  # RFC 3207 §4.2: not again
    s.sendmail("sender@example.com", ["alice@localhost"], b"Subject: tls\r\n\r\nunder TLS\r\n")
    s.quit()
    m = Mail(t.wait_delivered("alice@localhost", 1)[0])
    rcv = m.get("Received")
    assert "with ESMTPS id" in rcv, rcv
    assert re.search(r"\(using TLSv1\.[23] with cipher [A-Z0-9_-]+\)", rcv), rcv
    t.wait_log(r"tls session=S\w+ client=127\.0\.0\.1 version=TLSv1\.[23] cipher=\S+")


def test_no_certificate_no_starttls(tern):
    with tern.client() as c:
        c.read_greeting()
        r = c.ehlo()
        assert "STARTTLS" not in r.text
        r = c.cmd("STARTTLS")
        assert r.code == 502, r
        check_enhanced(c.replies)


def test_starttls_resets_the_session(tls_tern):
    t = tls_tern()
    c = Client(t.port)
    c.read_greeting()
    c.ehlo()
    c.expect("MAIL FROM:<a@example.com>", r"^250")
    c.expect("STARTTLS", r"^503 5\.5\.1 Error: MAIL transaction in progress")
    c.expect("HELO client.test", r"^250")  # HELO is forgotten too
    c.expect("STARTTLS", r"^220 2\.0\.0")
    c.sock = tls_client_context().wrap_socket(c.sock)
    # no HELO, no transaction survives the handshake (RFC 3207 §4.2)
    c.expect("RCPT TO:<alice@localhost>", r"^503 5\.5\.1")
    c.expect("MAIL FROM:<a@example.com>", r"^503 5\.5\.1")
    c.ehlo()
    c.expect("STARTTLS", r"^503 5\.5\.1")
    c.expect("QUIT", r"^221")
    check_enhanced(c.replies)
    c.close()


def test_pipelined_command_after_starttls_is_discarded(tls_tern):
    """CVE-2011-0411: what came in the same write as STARTTLS is not executed."""
    t = tls_tern()
    c = Client(t.port)
    c.read_greeting()
    c.ehlo()
    c.send("STARTTLS\r\nRSET\r\n")
    r = c.reply()
    assert r.text.startswith("220 2.0.0"), r
    assert c.buf == b"", c.buf  # nothing after the 220 in clear
    c.sock = tls_client_context().wrap_socket(c.sock)
    c.sock.settimeout(tf(1.5))
    with pytest.raises(socket.timeout):
        data = c.sock.recv(1000)
        raise AssertionError("a reply to the injected RSET: %r" % data)
    c.sock.settimeout(tf(10))
    c.expect("NOOP", r"^250 2\.0\.0")
    c.expect("QUIT", r"^221")
    c.close()
    # the RSET never reached the command table: EHLO STARTTLS NOOP QUIT
    t.wait_log(r"disconnect session=\S+ client=127\.0\.0\.1 commands=4 ")


def test_auth_only_after_tls(tls_tern, tmp_path):
    users = tmp_path / "users"
    users.write_text("")
    users.chmod(0o600)
    t = tls_tern(config={"auth_users": str(users)})
    c = Client(t.port)
    c.read_greeting()
    assert "AUTH" not in c.ehlo().text
    c.expect("AUTH PLAIN AGFsaWNlAHNlY3JldA==", r"^538 5\.7\.11")
    c.expect("STARTTLS", r"^220")
    c.sock = tls_client_context().wrap_socket(c.sock)
    assert "AUTH PLAIN LOGIN" in c.ehlo().text
    c.close()


def openssl_handshake(port, *flags, starttls=True):
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port] + list(flags)
    if starttls:
        cmd += ["-starttls", "smtp"]
    p = subprocess.run(cmd, input=b"QUIT\r\n", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=tf(20))
    out = p.stdout.decode("utf-8", "replace")
    m = re.search(r"New, (TLSv[\d.]+|\(NONE\)), Cipher is (\S+)", out)
    return (m.group(1), m.group(2)) if m else (None, None), out


def test_openssl_sees_the_configured_protocols(tls_tern):
    t = tls_tern()
    (ver, cipher), out = openssl_handshake(t.port, "-tls1_2")
    assert ver == "TLSv1.2" and ("GCM" in cipher or "CHACHA20" in cipher), out
    (ver, cipher), out = openssl_handshake(t.port, "-tls1_3")
    assert ver == "TLSv1.3", out
    # TLS 1.1 is refused by the server (the client is allowed to try)
    (ver, cipher), out = openssl_handshake(t.port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert ver in (None, "(NONE)") and cipher in (None, "(NONE)"), out
    # a weak TLS 1.2 cipher is refused
    (ver, cipher), out = openssl_handshake(t.port, "-tls1_2", "-cipher", "AES128-SHA:@SECLEVEL=0")
    assert cipher in (None, "(NONE)"), out


def test_tls_protocols_key(tls_tern):
    t = tls_tern(config={"tls_protocols": ">=TLSv1.3"})
    (ver, cipher), out = openssl_handshake(t.port, "-tls1_2")
    assert cipher in (None, "(NONE)"), out
    (ver, cipher), out = openssl_handshake(t.port, "-tls1_3")
    assert ver == "TLSv1.3", out


def test_bad_tls_protocols_refused(make_tern, tmp_path):
    t = make_tern(config={"tls_protocols": ">=TLSv1.1"})
    p = subprocess.run(t.command("check-config"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.returncode == 1
    assert b"tls_protocols" in p.stderr and b"RFC 8996" in p.stderr, p.stderr


def test_smtps_implicit_tls(tls_tern):
    t = tls_tern()
    port = t.port_of("smtps")
    s = smtplib.SMTP_SSL("127.0.0.1", port, local_hostname="client.test",
                         context=tls_client_context(), timeout=tf(10))
    code, resp = s.ehlo()
    assert code == 250 and b"STARTTLS" not in resp
    s.quit()
    # a client speaking clear text to 465 gets no greeting and is dropped
    c = socket.create_connection(("127.0.0.1", port), timeout=tf(5))
    c.sendall(b"EHLO x\r\n")
    data = c.recv(100)
    assert not data.startswith(b"220"), data
    c.close()
    t.wait_log(r"tls failed session=\S+ client=127\.0\.0\.1: TLS handshake failed")


def test_garbage_handshake_closes_only_that_session(tls_tern):
    t = tls_tern()
    c = Client(t.port)
    c.read_greeting()
    c.ehlo()
    c.expect("STARTTLS", r"^220")
    c.send(b"\x16\x03\x01\x00\x05hello, this is not TLS\r\n")
    assert c.at_eof(), "the server kept a broken TLS session open"
    c.close()
    t.wait_log(r"tls failed session=\S+ client=127\.0\.0\.1: TLS handshake failed")
    t.send("alice@localhost")  # the daemon is fine


def test_stalled_handshake_does_not_block_others(tls_tern):
    t = tls_tern()
    stalled = []
    for _ in range(3):
        c = Client(t.port)
        c.read_greeting()
        c.ehlo()
        c.expect("STARTTLS", r"^220")
        c.send(b"\x16\x03\x01")  # the first bytes of a ClientHello, then nothing
        stalled.append(c)
    start = time.monotonic()
    s = t.smtp()
    s.ehlo()
    s.starttls(context=tls_client_context())
    s.ehlo()
    s.sendmail("sender@example.com", ["bob@localhost"], b"Subject: x\r\n\r\nx\r\n")
    s.quit()
    assert time.monotonic() - start < tf(5)
    for c in stalled:
        c.close()


def test_handshake_timeout(tls_tern):
    t = tls_tern(config={"timeout_command": "2s"})
    c = Client(t.port)
    c.read_greeting()
    c.ehlo()
    c.expect("STARTTLS", r"^220")
    assert c.at_eof(timeout=8), "a handshake that never completes must time out"
    c.close()
    t.wait_log(r"tls failed session=\S+ client=127\.0\.0\.1: TLS handshake timed out")


def test_certificate_reloaded_on_sighup(tls_tern, tmp_path):
    t = tls_tern()

    def subject():
        ctx = tls_client_context()
        with socket.create_connection(("127.0.0.1", t.port_of("smtps")), timeout=tf(5)) as raw:
            with ctx.wrap_socket(raw) as s:
                der = s.getpeercert(binary_form=True)
        pem = ssl.DER_cert_to_PEM_cert(der)
        p = subprocess.run(["openssl", "x509", "-noout", "-subject"], input=pem.encode(),
                           stdout=subprocess.PIPE, check=True)
        return p.stdout.decode()

    assert "tern.test" in subject()
    new_cert, new_key = make_cert(tmp_path, name="new", cn="renewed.test", dns=("renewed.test",))
    (tmp_path / "cert.pem").write_bytes(new_cert.read_bytes())
    (tmp_path / "cert.key").write_bytes(new_key.read_bytes())
    t.signal(signal.SIGHUP)
    t.wait_log(r"reload: applied: certificate and key")
    assert "renewed.test" in subject()
    # a broken key on reload: the old context stays
    (tmp_path / "cert.key").write_text("not a key\n")
    t.signal(signal.SIGHUP)
    t.wait_log(r"reload: tls_key .*keeping the previous certificate")
    assert "renewed.test" in subject()


def test_key_readable_by_others_is_refused(make_tern, tmp_path):
    # issue 6: key files are checked for safe modes at start, with a clear error
    cert, key = make_cert(tmp_path)
    key.chmod(0o644)
    t = make_tern(config={"tls_cert": str(cert), "tls_key": str(key)})
    with pytest.raises(AssertionError, match=r"tls_key .*cert\.key is readable by others: "
                       r"chmod 600 \(or 640 with the group tern runs as\) \(owner uid \d+, mode 0644\)"):
        t.start()
    key.chmod(0o600)
    if os.geteuid() == 0:
        # nor may it belong to another user (who could replace it)
        other = pwd.getpwnam("daemon")
        orig_open_for = tern_harness.open_for

        def open_for_then_give_key_away(user, path):
            orig_open_for(user, path)
            os.chown(key, other.pw_uid, other.pw_gid)
        tern_harness.open_for = open_for_then_give_key_away
        try:
            with pytest.raises(AssertionError, match=r"tls_key .*cert\.key belongs to another "
                               r"user: chown it to root or to the user tern runs as"):
                t.start()
        finally:
            tern_harness.open_for = orig_open_for
    t.start()
