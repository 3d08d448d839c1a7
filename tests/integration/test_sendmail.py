"""
test_sendmail.py - local injection: the sendmail command (`tern sendmail`, or
tern called as "sendmail") talking SMTP to the daemon's local socket, which
knows the caller's uid (SO_PEERCRED). -t (To/Cc/Bcc, Bcc stripped), -i, -f,
-F, -bs, -bp, missing Date/From/Message-ID added, all-or-nothing recipients,
sysexits codes, a clear failure when the daemon is down, and an ordinary user
who cannot choose the envelope sender.
"""

import os
import pwd
import shutil
import subprocess
import tempfile

import pytest

from tern_harness import TERN_BIN, Mail, tf

EX_USAGE, EX_DATAERR, EX_UNAVAILABLE, EX_TEMPFAIL = 64, 65, 69, 75


def sendmail(t, *args, data=b"", user=None, config=None, binary=None):
    cmd = [binary or TERN_BIN, "-c", str(config or t.conf_path), "sendmail"] + list(args)
    kw = {"user": user} if user else {}
    return subprocess.run(cmd, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=t.env(), timeout=tf(30), **kw)


def test_minus_t_recipients_from_the_header(tern):
    msg = (b"Subject: via -t\n"
           b"To: Alice <alice@localhost>, \"Bob, B.\" <bob@localhost>\n"
           b"Cc: team-lead (ignored comment) <carol@localhost>\n"
           b"Bcc: hidden:  alice@example.com;\n"
           b"\n"
           b"line one\n")
    r = sendmail(tern, "-t", data=msg)
    assert r.returncode == 0, r.stderr
    for box in ("alice@localhost", "bob@localhost", "carol@localhost", "alice@example.com"):
        m = Mail(tern.wait_delivered(box, 1)[0])
        assert m.get("Bcc") is None  # stripped
        assert m.get("Subject") == "via -t"
        # added for local mail (RFC 5322 §3.6)
        assert m.get("Date") and m.get("Message-ID") and m.get("From")
        assert m.body == b"line one\n"
    rcv = m.get("Received")
    assert "(uid 0, user root)" in rcv and "with ESMTP id" in rcv, rcv
    tern.wait_log(r"added header fields Date From Message-ID")


def test_minus_f_and_minus_F(tern):
    r = sendmail(tern, "-f", "owner@example.com", "-F", "The Owner", "bob",
                 data=b"Subject: f\n\nbody\n")
    assert r.returncode == 0, r.stderr
    m = Mail(tern.wait_delivered("bob@localhost", 1)[0])
    assert m.get("Return-Path") == "<owner@example.com>"  # root is trusted
    assert m.get("From") == '"The Owner" <owner@example.com>'
    assert m.get("Delivered-To") == "bob@localhost"  # "bob" is in the first local domain


def test_headers_kept_when_present(tern):
    msg = (b"From: Someone <someone@example.com>\nDate: Sat, 28 Nov 2026 13:31:00 +0000\n"
           b"Message-ID: <fixed@example.com>\nSubject: s\n\nx\n")
    assert sendmail(tern, "alice@localhost", data=msg).returncode == 0
    m = Mail(tern.wait_delivered("alice@localhost", 1)[0])
    assert m.get_all("Message-ID") == ["<fixed@example.com>"]
    assert m.get_all("Date") == ["Sat, 28 Nov 2026 13:31:00 +0000"]
    assert m.get_all("From") == ["Someone <someone@example.com>"]


def test_dot_handling(tern):
    # without -i a lone "." ends the message
    r = sendmail(tern, "alice@localhost", data=b"Subject: d1\n\nbefore\n.\nafter\n")
    assert r.returncode == 0, r.stderr
    m = Mail(tern.wait_delivered("alice@localhost", 1)[0])
    assert m.body == b"before\n"
    # with -i (and -oi) it is content, sent dot-stuffed and unstuffed again
    for opt in ("-i", "-oi"):
        r = sendmail(tern, opt, "bob@localhost", data=b"Subject: d2\n\nbefore\n.\n..two\nafter")
        assert r.returncode == 0, r.stderr
    for p in tern.wait_delivered("bob@localhost", 2):
        assert Mail(p).body == b"before\n.\n..two\nafter\n"


def test_bs_smtp_on_stdin(tern):
    dialogue = (b"EHLO me\r\nMAIL FROM:<>\r\nRCPT TO:<carol@localhost>\r\nDATA\r\n"
                b"Subject: bs\r\n\r\nhello\r\n.\r\nQUIT\r\n")
    r = sendmail(tern, "-bs", data=dialogue)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert out.startswith("220 ") and "250 2.0.0 Ok: queued as" in out and "221 2.0.0" in out, out
    tern.wait_delivered("carol@localhost", 1)


def test_unknown_recipient_sends_nothing(tern):
    r = sendmail(tern, "alice@localhost", "nobody-here@localhost", data=b"Subject: x\n\nx\n")
    assert r.returncode == EX_UNAVAILABLE
    assert b"nobody-here@localhost" in r.stderr and b"550 5.1.1" in r.stderr
    assert b"not sent" in r.stderr
    assert tern.messages("alice@localhost") == []


def test_bad_usage(tern):
    r = sendmail(tern, data=b"Subject: x\n\nx\n")
    assert r.returncode == EX_USAGE and b"no recipients" in r.stderr
    r = sendmail(tern, "-t", data=b"Subject: no rcpt\n\nx\n")
    assert r.returncode == EX_DATAERR and b"no recipients" in r.stderr
    r = sendmail(tern, "-bd")
    assert r.returncode == EX_USAGE


def test_too_large(make_tern):
    t = make_tern(config={"message_size_limit": "2k"}).start()
    r = sendmail(t, "alice@localhost", data=b"Subject: big\n\n" + (b"x" * 80 + b"\n") * 100)
    assert r.returncode == EX_DATAERR and b"larger than" in r.stderr


def test_daemon_down(make_tern):
    t = make_tern()  # never started
    r = sendmail(t, "alice@localhost", data=b"Subject: x\n\nx\n")
    assert r.returncode == EX_TEMPFAIL
    assert b"cannot reach the mail system" in r.stderr and b"is tern running?" in r.stderr
    r = sendmail(t, "-bs", data=b"QUIT\r\n")
    assert r.returncode == EX_TEMPFAIL and r.stdout.startswith(b"421 4.3.2")
    # and after a clean stop: the socket is gone again
    t.start()
    assert sendmail(t, "alice@localhost", data=b"Subject: x\n\nx\n").returncode == 0
    t.stop()
    assert sendmail(t, "alice@localhost", data=b"Subject: x\n\nx\n").returncode == EX_TEMPFAIL


def test_called_as_sendmail(tern, tmp_path):
    link = tmp_path / "sendmail"
    link.symlink_to(TERN_BIN)
    r = subprocess.run([str(link), "-C", str(tern.conf_path), "-oi", "-t"],
                       input=b"To: bob@localhost\nSubject: argv0\n\nx\n",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=tern.env(), timeout=tf(30))
    assert r.returncode == 0, r.stderr
    tern.wait_delivered("bob@localhost", 1)


def test_bp_lists_the_queue(tern):
    r = sendmail(tern, "-bp")
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the command as another user")
def test_ordinary_user_cannot_choose_the_sender(make_tern):
    # an ordinary local user: not root, not the account the daemon runs as
    # (the harness runs it as "nobody"); Debian always has "daemon" (uid 1)
    user = pwd.getpwnam("daemon")
    # the socket and a copy of the config where that user can reach them
    shared = tempfile.mkdtemp(prefix="tern-sendmail-")
    try:
        os.chmod(shared, 0o755)
        sock = os.path.join(shared, "tern.sock")
        t = make_tern(config={"local_socket": sock}).start()
        conf = os.path.join(shared, "tern.conf")
        shutil.copy(t.conf_path, conf)
        os.chmod(conf, 0o644)
        assert oct(os.stat(sock).st_mode & 0o777) == "0o666"
        # and a copy of the binary: the checkout may sit in a directory
        # only root can enter (a mktemp -d clone is 0700)
        binary = os.path.join(shared, "tern")
        shutil.copy(TERN_BIN, binary)
        os.chmod(binary, 0o755)
        r = sendmail(t, "-f", "boss@example.com", "-t", user=user.pw_uid, config=conf,
                     binary=binary, data=b"To: alice@localhost\nSubject: forged?\n\nx\n")
        assert r.returncode == 0, r.stderr
        m = Mail(t.wait_delivered("alice@localhost", 1)[0])
        assert m.get("Return-Path") == "<daemon@localhost>"
        assert "(uid %d, user daemon)" % user.pw_uid in m.get("Received")
        t.wait_log(r"sender forced user=daemon from=<boss@example.com> to=<daemon@localhost>")
        # a trusted user may
        t.stop()
        t.config["trusted_users"] = "daemon"
        t.write_files()
        shutil.copy(t.conf_path, conf)
        t.start()
        r = sendmail(t, "-f", "boss@example.com", "bob@localhost", user=user.pw_uid, config=conf,
                     binary=binary, data=b"Subject: trusted\n\nx\n")
        assert r.returncode == 0, r.stderr
        m = Mail(t.wait_delivered("bob@localhost", 1)[0])
        assert m.get("Return-Path") == "<boss@example.com>"
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_second_daemon_does_not_steal_the_socket(tern):
    p = subprocess.run(tern.command("run"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=tern.env(), timeout=tf(30))
    assert p.returncode == 1
    assert b"another daemon is listening on it" in p.stdout, p.stdout
    assert sendmail(tern, "alice@localhost", data=b"Subject: x\n\nx\n").returncode == 0
