"""
test_auth.py - SMTP AUTH (RFC 4954) and submission (RFC 6409): the password
file and `tern passwd`, PLAIN and LOGIN, 535 5.7.8 after a delay, the failure
limit, AUTH only under TLS, 530 before AUTH on submission, relaying after AUTH
from outside mynetworks, the sender-login rule (553 5.7.1), ESMTPSA, and no
credentials in the log.
"""

import base64
import smtplib
import stat
import subprocess
import time

import pytest

from tern_harness import Client, Mail, check_enhanced, make_cert, tf, tls_client_context

PASSWORDS = {"alice": "alice-secret-1", "bob@localhost": "bob pass 2", "carol@localhost": "carol-c3c3"}


def passwd(t, *args, password=None):
    return subprocess.run(t.command("passwd", *args), input=(password + "\n").encode() if password else b"",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=t.env(), timeout=tf(30))


@pytest.fixture
def auth_tern(make_tern, tmp_path):
    def factory(config=None, users=PASSWORDS, start=True, **kw):
        cert, key = make_cert(tmp_path)
        cfg = {"tls_cert": str(cert), "tls_key": str(key), "auth_users": str(tmp_path / "users"),
               "auth_failure_delay": "0", "listen": "127.0.0.1:0 submission, 127.0.0.1:0 smtps"}
        cfg.update(config or {})
        t = make_tern(config=cfg, **kw)
        for u, p in users.items():
            r = passwd(t, "add", u, password=p)
            assert r.returncode == 0, r.stderr
        return t.start() if start else t
    return factory


def tls_smtp(t, port=None, source=None):
    s = smtplib.SMTP("127.0.0.1", port or t.port, local_hostname="client.test",
                     source_address=(source, 0) if source else None, timeout=tf(15))
    s.ehlo()
    s.starttls(context=tls_client_context())
    s.ehlo()
    return s


def raw_tls(t, port=None, source=None):
    c = Client(port or t.port, source=source)
    c.read_greeting()
    c.ehlo()
    c.expect("STARTTLS", r"^220")
    c.sock = tls_client_context().wrap_socket(c.sock)
    c.ehlo()
    return c


def b64(s):
    return base64.b64encode(s.encode()).decode()


def test_passwd_command(auth_tern, tmp_path):
    t = auth_tern(start=False)
    users = tmp_path / "users"
    text = users.read_text()
    assert all(line.split(":", 1)[1].startswith("$y$") for line in text.splitlines())
    assert "alice-secret-1" not in text
    assert stat.S_IMODE(users.stat().st_mode) & 0o077 in (0, 0o040)  # not readable by others
    r = passwd(t, "list")
    assert r.returncode == 0 and r.stdout.decode().split() == ["alice", "bob@localhost", "carol@localhost"]
    old = users.read_text()
    # add never replaces a password (issue 11.10): change does, in place
    r = passwd(t, "add", "alice", password="changed-pw")
    assert r.returncode == 1 and users.read_text() == old
    assert b"user alice already exists" in r.stderr and b"tern passwd change alice" in r.stderr
    r = passwd(t, "change", "alice", password="changed-pw")
    assert r.returncode == 0 and b"alice changed in" in r.stdout, r.stderr
    new = users.read_text()
    assert new != old and new.count("alice:") == 1
    assert new.splitlines()[0].startswith("alice:")  # its line kept its place
    assert [x for x in new.splitlines()[1:]] == old.splitlines()[1:]
    r = passwd(t, "change", "erin", password="erin-password")
    assert r.returncode == 1 and b"no user erin" in r.stderr and b"tern passwd add" in r.stderr
    # a minimum length, auth_min_password_length (default 8), said in the error
    r = passwd(t, "add", "erin", password="1234567")
    assert r.returncode == 1 and b"at least 8 characters (auth_min_password_length" in r.stderr
    r = passwd(t, "change", "alice", password="x")
    assert r.returncode == 1 and b"at least 8 characters" in r.stderr
    assert users.read_text() == new
    assert passwd(t, "add", "erin", password="12345678").returncode == 0
    # help on stdout, exit 0
    for h in ("-h", "--help", "help"):
        r = passwd(t, h)
        assert r.returncode == 0 and b"passwd change USER" in r.stdout, (h, r.stderr)
    t.config["auth_min_password_length"] = "12"
    t.write_files()
    r = passwd(t, "add", "frank", password="12345678901")
    assert r.returncode == 1 and b"at least 12 characters" in r.stderr
    r = passwd(t, "del", "erin")
    assert r.returncode == 0
    r = passwd(t, "del", "carol@localhost")
    assert r.returncode == 0
    assert passwd(t, "list").stdout.decode().split() == ["alice", "bob@localhost"]
    r = passwd(t, "del", "nobody")
    assert r.returncode == 1 and b"no user nobody" in r.stderr
    r = passwd(t, "add", "bad user", password="x")
    assert r.returncode == 1
    r = passwd(t, "add", "dave")  # no password on stdin
    assert r.returncode == 1 and b"no password" in r.stderr


def test_world_readable_password_file_refused(auth_tern, tmp_path):
    t = auth_tern(start=False)
    (tmp_path / "users").chmod(0o644)
    with pytest.raises(AssertionError, match=r"auth_users .*users is readable by others: chmod 600"):
        t.start()


def test_plain_and_login(auth_tern):
    t = auth_tern()
    s = tls_smtp(t)
    s.login("bob@localhost", "bob pass 2")  # smtplib: PLAIN with an initial response
    s.quit()
    c = raw_tls(t)
    c.expect("AUTH LOGIN", r"^334 VXNlcm5hbWU6$")
    c.expect(b64("alice"), r"^334 UGFzc3dvcmQ6$")
    c.expect(b64("alice-secret-1"), r"^235 2\.7\.0")
    c.expect("AUTH PLAIN", r"^503 5\.5\.1")  # once is enough
    c.close()
    c = raw_tls(t)
    c.expect("AUTH PLAIN", r"^334 ?$")
    c.expect(b64("\0alice\0alice-secret-1"), r"^235 2\.7\.0")
    c.close()
    c = raw_tls(t)
    c.expect("AUTH LOGIN " + b64("alice"), r"^334 UGFzc3dvcmQ6$")  # initial response
    c.expect("*", r"^501 5\.0\.0")  # cancelled
    c.expect("AUTH CRAM-MD5", r"^504 5\.5\.4")
    c.expect("AUTH PLAIN !!!", r"^501 5\.5\.2")
    c.expect("AUTH PLAIN " + b64("bob@localhost\0alice\0alice-secret-1"), r"^535 5\.7\.8")  # authzid
    c.expect("MAIL FROM:<alice@example.com>", r"^250")
    c.expect("AUTH PLAIN " + b64("\0alice\0alice-secret-1"), r"^503 5\.5\.1")  # in a transaction
    check_enhanced([r for r in c.replies if r.code != 334])  # 334 carries base64 (RFC 4954 §4)
    c.close()
    t.wait_log(r"auth ok user=alice method=LOGIN client=127\.0\.0\.1")


def test_bad_password_535_after_a_delay(auth_tern):
    t = auth_tern(config={"auth_failure_delay": "1s", "auth_max_failures": "5"})
    c = raw_tls(t)
    start = time.monotonic()
    c.expect("AUTH PLAIN " + b64("\0alice\0wrong-password-x"), r"^535 5\.7\.8")
    first = time.monotonic() - start
    assert first >= 0.9, first
    start = time.monotonic()
    c.expect("AUTH PLAIN " + b64("\0no-such-user\0whatever-y"), r"^535 5\.7\.8")
    second = time.monotonic() - start
    assert second >= 1.9, second  # the delay doubles
    c.expect("NOOP", r"^250")
    c.close()
    log = t.run_log()
    assert "auth failed method=PLAIN client=127.0.0.1 failures=2" in log
    for secret in ("wrong-password-x", "whatever-y", "no-such-user", b64("\0alice\0wrong-password-x")):
        assert secret not in log, secret


def test_too_many_failures_421(auth_tern):
    t = auth_tern(config={"auth_max_failures": "3"})
    c = raw_tls(t)
    c.expect("AUTH PLAIN " + b64("\0alice\0bad1"), r"^535 5\.7\.8")
    c.expect("AUTH PLAIN " + b64("\0alice\0bad2"), r"^535 5\.7\.8")
    c.expect("AUTH PLAIN " + b64("\0alice\0bad3"), r"^535 5\.7\.8")
    r = c.reply()
    assert r.text.startswith("421 4.7.0"), r
    assert c.at_eof()
    c.close()


def test_submission_requires_auth(auth_tern):
    t = auth_tern()
    port = t.port_of("submission")
    c = Client(port)
    c.read_greeting()
    r = c.ehlo()
    assert "STARTTLS" in r.text and "AUTH" not in r.text
    c.expect("MAIL FROM:<bob@localhost>", r"^530 5\.7\.0")
    c.close()
    s = tls_smtp(t, port)
    code, resp = s.mail("bob@localhost")  # under TLS but not authenticated
    assert code == 530, resp
    s.rset()
    s.login("bob@localhost", "bob pass 2")
    s.sendmail("bob@localhost", ["alice@localhost", "someone@far.example"],
               b"Subject: submitted\r\n\r\nhello\r\n")
    s.quit()
    m = Mail(t.wait_delivered("alice@localhost", 1)[0])
    assert "with ESMTPSA id" in m.get("Received")
    t.wait_log(r"accepted session=\S+ client=127\.0\.0\.1 .*proto=ESMTPSA user=bob@localhost")


def test_smtps_submission(auth_tern):
    t = auth_tern()
    s = smtplib.SMTP_SSL("127.0.0.1", t.port_of("smtps"), context=tls_client_context(), timeout=tf(15))
    s.ehlo()
    code, resp = s.mail("bob@localhost")
    assert code == 530, resp
    s.login("bob@localhost", "bob pass 2")
    s.sendmail("bob@localhost", ["carol@localhost"], b"Subject: 465\r\n\r\nx\r\n")
    s.quit()
    t.wait_delivered("carol@localhost", 1)


def test_relay_from_outside_only_after_auth(auth_tern):
    t = auth_tern()
    c = Client(t.port, source="127.0.0.2")
    c.read_greeting()
    c.ehlo()
    c.expect("MAIL FROM:<bob@localhost>", r"^250")
    c.expect("RCPT TO:<someone@far.example>", r"^554 5\.7\.1")
    c.expect("RCPT TO:<alice@localhost>", r"^250")  # our own domains are fine
    c.expect("RSET", r"^250")
    c.expect("STARTTLS", r"^220")
    c.sock = tls_client_context().wrap_socket(c.sock)
    c.ehlo()
    c.expect("MAIL FROM:<bob@localhost>", r"^250")
    c.expect("RCPT TO:<someone@far.example>", r"^554 5\.7\.1")  # TLS alone is not enough
    c.expect("RSET", r"^250")
    c.expect("AUTH PLAIN " + b64("\0bob@localhost\0bob pass 2"), r"^235")
    c.expect("MAIL FROM:<bob@localhost>", r"^250")
    c.expect("RCPT TO:<someone@far.example>", r"^250")
    c.expect("QUIT", r"^221")
    check_enhanced(c.replies)
    c.close()


def test_sender_must_belong_to_the_user(auth_tern, tmp_path):
    sl = tmp_path / "sender_login"
    sl.write_text("alice@localhost alice\n"
                  "team@example.com alice, bob@localhost\n"
                  "@example.org carol@localhost\n")
    t = auth_tern(config={"sender_login": str(sl)})
    c = raw_tls(t)
    c.expect("AUTH PLAIN " + b64("\0bob@localhost\0bob pass 2"), r"^235")
    c.expect("MAIL FROM:<alice@localhost>", r"^553 5\.7\.1")  # someone else's address
    c.expect("MAIL FROM:<bob@localhost>", r"^250")  # the login name itself
    c.expect("RSET", r"^250")
    c.expect("MAIL FROM:<team@example.com>", r"^250")  # listed for bob
    c.expect("RSET", r"^250")
    c.expect("MAIL FROM:<x@example.org>", r"^553 5\.7\.1")
    c.expect("MAIL FROM:<>", r"^250")
    c.close()
    c = raw_tls(t)
    c.expect("AUTH PLAIN " + b64("\0alice\0alice-secret-1"), r"^235")
    c.expect("MAIL FROM:<bob@localhost>", r"^553 5\.7\.1")
    c.expect("MAIL FROM:<alice@localhost>", r"^250")
    c.close()
    c = raw_tls(t)
    c.expect("AUTH PLAIN " + b64("\0carol@localhost\0carol-c3c3"), r"^235")
    c.expect("MAIL FROM:<anyone@example.org>", r"^250")  # the domain entry
    c.close()
    t.wait_log(r"reject cmd=MAIL reply=\"553 5\.7\.1 .*user=bob@localhost from=<alice@localhost>")


def test_password_file_reloaded_on_sighup(auth_tern):
    import signal
    t = auth_tern()
    assert passwd(t, "add", "dave@localhost", password="dave-pw-4444").returncode == 0
    c = raw_tls(t)
    c.expect("AUTH PLAIN " + b64("\0dave@localhost\0dave-pw-4444"), r"^535")
    c.close()
    t.signal(signal.SIGHUP)
    t.wait_log(r"reload: applied: certificate and key, password file \(4 users\)")
    c = raw_tls(t)
    c.expect("AUTH PLAIN " + b64("\0dave@localhost\0dave-pw-4444"), r"^235")
    c.close()


def test_client_gone_during_password_check(auth_tern):
    t = auth_tern()
    for _ in range(5):
        c = raw_tls(t)
        c.send("AUTH PLAIN " + b64("\0alice\0alice-secret-1") + "\r\n")
        c.close()  # before the pool has answered
    t.send("alice@localhost")
    t.wait_log(r"auth ok user=alice")
