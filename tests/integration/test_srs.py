"""
test_srs.py - the Sender Rewriting Scheme, end to end (docs/srs.md).

tern forwards through relayhost = a scripted peer (tern_harness.Peer, which
records each message's MAIL FROM and recipients), with srs_domain =
srs.tern.test and a secret file. Checked: a message an alias or a virtual
entry forwards to a remote domain leaves with MAIL FROM:<SRS0=...@
srs.tern.test> (computed here independently, in Python, from libsrs2's
definition), while local recipients of the same message see the original
sender; a bounce to that address, from a client outside mynetworks, is
accepted and goes to the original sender; tampered, expired, malformed and
foreign addresses are refused 550 5.1.1; senders in our domains, <> and
plain relaying are not rewritten; a retry after a restart with a rotated
secret uses the address first chosen (it is in the queue file); SIGHUP
reloads the secrets; check-config names bad keys and files by line; and,
when Debian's postsrsd is installed, addresses made by postsrsd are
accepted by tern and tern's are decoded by postsrsd (interoperation).
"""

import base64
import hashlib
import hmac
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from tern_harness import RUN_AS, Peer, free_port, open_for, run_tool, tf

SRS_DOMAIN = "srs.tern.test"
SECRET = "tern-integration-secret-0123"
NEW_SECRET = "a-rotated-newer-secret-4567"
B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
OUTSIDE = "127.0.0.2"  # not in mynetworks (127.0.0.1/32)

ALIASES = ["postmaster: alice", "team: alice, bob", "fwd: someone@remote.test",
           "both: alice, other@remote.test"]
VIRTUAL = ["info@example.org alice@localhost", "vf@example.org friend@remote.test",
           "@example.org bob@localhost"]
FAST = {"retry_min": "1s", "retry_max": "2s"}


def srs_hash(secret, *fields):
    mac = hmac.new(secret.encode(), "".join(fields).lower().encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()[:4]


def srs0(local, domain, secret=SECRET, day=None):
    """The SRS0 address libsrs2 (and postsrsd) make for local@domain."""
    day = int(time.time() // 86400) if day is None else day
    ts = B32[(day >> 5) & 31] + B32[day & 31]
    return "SRS0=%s=%s=%s=%s@%s" % (srs_hash(secret, ts, domain, local), ts, domain, local,
                                    SRS_DOMAIN)


def srs_tern(make_tern, peer, secrets=(SECRET,), **extra):
    cfg = dict(FAST)
    cfg["relayhost"] = "[127.0.0.1]:%d" % peer.port
    t = make_tern(config=cfg, aliases=ALIASES, virtual=VIRTUAL)
    secret_file = t.dir / "srs.secret"
    write_secrets(secret_file, secrets)
    t.config.update({"srs_domain": SRS_DOMAIN, "srs_secret_file": str(secret_file),
                     "srs_exclude_domains": "partner.test"})
    t.config.update(extra)
    t.write_files()
    return t


def write_secrets(path, secrets, mode=0o600):
    path.write_text("".join(s + "\n" for s in secrets))
    os.chmod(path, mode)


def wait_messages(peer, n, timeout=10):
    deadline = time.monotonic() + tf(timeout)
    while time.monotonic() < deadline:
        with peer.lock:
            if len(peer.messages) >= n:
                return list(peer.messages)
        time.sleep(0.05)
    raise AssertionError("peer got %d messages, not %d" % (len(peer.messages), n))


def rcpt_reply(tern, sender, rcpt, source=OUTSIDE):
    """The reply line to RCPT TO:<rcpt> after MAIL FROM:<sender>."""
    with tern.client(source=source) as c:
        c.read_greeting()
        c.ehlo()
        c.expect("MAIL FROM:<%s>" % sender, r"^250 ")
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        c.expect("QUIT", r"^221 ")
    return r.text


def send_raw(tern, sender, rcpts, source=OUTSIDE, subject="srs"):
    with tern.client(source=source) as c:
        c.read_greeting()
        c.ehlo()
        c.expect("MAIL FROM:<%s>" % sender, r"^250 ")
        for r in rcpts:
            c.expect("RCPT TO:<%s>" % r, r"^250 ")
        c.expect("DATA", r"^354 ")
        c.send("From: x@far.test\r\nSubject: %s\r\n\r\nhello\r\n.\r\n" % subject)
        r = c.reply()
        assert r.code == 250, r
        c.expect("QUIT", r"^221 ")


def test_forward_rewritten_and_bounce_back(make_tern):
    with Peer() as peer:
        t = srs_tern(make_tern, peer).start()
        # one message: an alias to a remote address, a virtual entry to
        # another, an alias that keeps a local copy, and a local mailbox
        send_raw(t, "joe@far.test", ["fwd@localhost", "vf@example.org", "both@localhost"])
        msgs = wait_messages(peer, 1)
        want = srs0("joe", "far.test")
        assert len(msgs) == 1, msgs
        mail_from, rcpts, _ = msgs[0]
        assert mail_from == want, (mail_from, want)
        assert sorted(rcpts) == ["friend@remote.test", "other@remote.test",
                                 "someone@remote.test"], rcpts
        # the local copy keeps the original sender
        t.wait_log(r"to=<someone@remote\.test> orig_to=<fwd@localhost> srs_from=<%s> .*"
                   r"status=sent" % re.escape(want))
        box = t.wait_delivered("alice@localhost", 1)
        t.wait_log(r"to=<alice@localhost> orig_to=<both@localhost> relay=local")
        assert b"Return-Path: <joe@far.test>\n" in open(box[0], "rb").read()

        # the bounce, from a client outside mynetworks, to the SRS address
        send_raw(t, "", [want], subject="bounce")
        msgs = wait_messages(peer, 2)
        assert msgs[1][0] == "" and msgs[1][1] == ["joe@far.test"], msgs[1]
        # a hop may change the case of the address
        assert rcpt_reply(t, "", want.upper()).startswith("250 ")
        t.wait_log(r"to=<joe@far\.test> orig_to=<SRS0=.*status=sent")


def test_invalid_addresses_refused(make_tern):
    with Peer() as peer:
        t = srs_tern(make_tern, peer).start()
        good = srs0("joe", "far.test")
        bad_hash = good[:5] + ("A" if good[5] != "A" else "B") + good[6:]
        expired = srs0("joe", "far.test", day=int(time.time() // 86400) - 22)
        other_secret = srs0("joe", "far.test", secret="somebody-elses-secret-000")
        for addr, text in [(bad_hash, "invalid SRS address"),
                           (other_secret, "invalid SRS address"),
                           (expired, "expired SRS address"),
                           ("SRS0=abcd@%s" % SRS_DOMAIN, "malformed SRS address"),
                           ("SRS1=abcd=x.test@%s" % SRS_DOMAIN, "malformed SRS address"),
                           ("someone@%s" % SRS_DOMAIN, "user unknown")]:
            r = rcpt_reply(t, "", addr)
            assert r.startswith("550 5.1.1 ") and text in r, (addr, r)
        # also for a client that may relay: the SRS domain is ours
        r = rcpt_reply(t, "", bad_hash, source=None)
        assert r.startswith("550 5.1.1 "), r
        assert rcpt_reply(t, "", good).startswith("250 ")
        # the postmaster of the SRS domain is the first local domain's
        # (RFC 5321 section 4.5.1)
        assert rcpt_reply(t, "", "postmaster@%s" % SRS_DOMAIN).startswith("250 ")
        # an SRS1 address we made names the first forwarder
        srs1_local = "=abcd=AA=o.test=x"
        h = srs_hash(SECRET, "a.test", srs1_local)
        r = rcpt_reply(t, "", "SRS1=%s=a.test=%s@%s" % (h, srs1_local, SRS_DOMAIN))
        assert r.startswith("250 "), r
        assert peer.messages == []


def test_not_rewritten(make_tern):
    with Peer() as peer:
        t = srs_tern(make_tern, peer).start()
        n = 0
        # senders in our domains, in srs_exclude_domains, and <>
        for sender in ["alice@localhost", "x@example.org", "x@partner.test", ""]:
            send_raw(t, sender, ["fwd@localhost"])
            n += 1
            msgs = wait_messages(peer, n)
            assert msgs[-1][0] == sender, (sender, msgs[-1])
        # plain relaying from mynetworks (no alias) keeps the sender
        send_raw(t, "joe@far.test", ["x@remote.test"], source=None)
        msgs = wait_messages(peer, n + 1)
        assert msgs[-1][:2] == ("joe@far.test", ["x@remote.test"]), msgs[-1]


def test_off_by_default(make_tern):
    with Peer() as peer:
        cfg = dict(FAST, relayhost="[127.0.0.1]:%d" % peer.port)
        t = make_tern(config=cfg, aliases=ALIASES, virtual=VIRTUAL).start()
        send_raw(t, "joe@far.test", ["fwd@localhost"])
        assert wait_messages(peer, 1)[0][0] == "joe@far.test"
        # no SRS domain: an SRS-looking address is someone else's
        r = rcpt_reply(t, "", srs0("joe", "far.test"))
        assert r.startswith("554 5.7.1 "), r


def test_retry_keeps_address_across_rotation(make_tern):
    with Peer("temp:1") as peer:
        t = srs_tern(make_tern, peer, retry_min="3s", retry_max="3s").start()
        send_raw(t, "joe@far.test", ["fwd@localhost"])
        t.wait_log(r"to=<someone@remote\.test> .*status=deferred")
        t.stop()
        # rotation: a new secret signs, the old one still verifies
        write_secrets(t.dir / "srs.secret", [NEW_SECRET, SECRET])
        t.start()
        msgs = wait_messages(peer, 1, timeout=15)
        # the retry used the address chosen at first, kept in the queue file
        assert msgs[0][0] == srs0("joe", "far.test"), msgs[0]
        # new mail is signed with the new secret; both verify
        send_raw(t, "joe@far.test", ["fwd@localhost"])
        msgs = wait_messages(peer, 2)
        assert msgs[1][0] == srs0("joe", "far.test", secret=NEW_SECRET), msgs[1]
        assert rcpt_reply(t, "", msgs[0][0]).startswith("250 ")
        assert rcpt_reply(t, "", msgs[1][0]).startswith("250 ")
        # SIGHUP without the old secret: its addresses are refused now
        write_secrets(t.dir / "srs.secret", [NEW_SECRET])
        t.signal(signal.SIGHUP)
        t.wait_log(r"reloaded configuration")
        assert rcpt_reply(t, "", msgs[0][0]).startswith("550 5.1.1 ")
        assert rcpt_reply(t, "", msgs[1][0]).startswith("250 ")
        # a reload with a broken secret file keeps the running secrets
        write_secrets(t.dir / "srs.secret", ["short"])
        t.signal(signal.SIGHUP)
        t.wait_log(r"reload failed")
        assert rcpt_reply(t, "", msgs[1][0]).startswith("250 ")


def test_check_config(make_tern):
    with Peer() as peer:
        t = srs_tern(make_tern, peer)
        if RUN_AS:  # as start() does: the files are the run user's
            open_for(RUN_AS, t.dir)
        r = run_tool(t, "check-config")
        assert r.returncode == 0, r.stderr
        lines = t.conf_path.read_text().splitlines()
        line_of = {ln.split(" = ")[0]: i + 1 for i, ln in enumerate(lines) if " = " in ln}
        # a secret file others can read
        write_secrets(t.dir / "srs.secret", [SECRET], mode=0o644)
        r = run_tool(t, "check-config")
        assert r.returncode != 0
        assert re.search(r"tern\.conf:%d: srs_secret_file .*readable by group or others"
                         % line_of["srs_secret_file"], r.stderr), r.stderr
        # and run refuses to start the same way
        p = subprocess.run(t.command("run"), capture_output=True, text=True, env=t.env(),
                           timeout=tf(20))
        assert p.returncode != 0 and "srs_secret_file" in p.stderr, p.stderr
        # srs_domain without a secret file
        del t.config["srs_secret_file"]
        t.write_files()
        lines = t.conf_path.read_text().splitlines()
        n = [i + 1 for i, ln in enumerate(lines) if ln.startswith("srs_domain")][0]
        r = run_tool(t, "check-config")
        assert r.returncode != 0
        assert "tern.conf:%d: srs_domain is set but srs_secret_file is not" % n in r.stderr, \
            r.stderr


def postsrsd_lookup(port, addr):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"get " + addr.encode() + b"\n")
        reply = s.recv(1000).decode().strip()
    assert reply.startswith("200 "), reply
    return reply[4:]


@pytest.mark.skipif(not shutil.which("postsrsd", path="/usr/sbin:/usr/bin"),
                    reason="postsrsd (Debian package) not installed")
def test_postsrsd_interoperates(make_tern):
    with Peer() as peer:
        t = srs_tern(make_tern, peer).start()
        fport, rport = free_port(), free_port()
        cmd = [shutil.which("postsrsd", path="/usr/sbin:/usr/bin"), "-s",
               str(t.dir / "srs.secret"), "-d", SRS_DOMAIN, "-l", "127.0.0.1",
               "-f", str(fport), "-r", str(rport)]
        if os.geteuid() == 0:
            cmd += ["-u", "nobody"]
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + tf(10)
            while True:
                try:
                    socket.create_connection(("127.0.0.1", rport), timeout=1).close()
                    socket.create_connection(("127.0.0.1", fport), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "postsrsd did not start"
                    time.sleep(0.1)
            # postsrsd's address is tern's, and tern accepts it
            made = postsrsd_lookup(fport, "Joe+x=y@far.test")
            assert made == srs0("Joe+x=y", "far.test"), made
            send_raw(t, "", [made], subject="bounce")
            msgs = wait_messages(peer, 1)
            assert msgs[0][1] == ["Joe+x=y@far.test"], msgs[0]
            # tern's rewritten sender decodes in postsrsd
            send_raw(t, "ann@elsewhere.test", ["fwd@localhost"])
            msgs = wait_messages(peer, 2)
            assert postsrsd_lookup(rport, msgs[1][0]) == "ann@elsewhere.test"
            # an SRS1 made by postsrsd (re-forwarding) is accepted by tern
            srs1 = postsrsd_lookup(fport, "SRS0=abcd=AA=o.test=x@a.test")
            assert srs1.startswith("SRS1="), srs1
            assert rcpt_reply(t, "", srs1).startswith("250 ")
        finally:
            p.terminate()
            p.wait(10)
