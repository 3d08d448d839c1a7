"""
test_delivery.py - a message in, a Maildir file out.

Headers prepended at delivery (Return-Path, Delivered-To), the Received
trace header (queue ID, protocol word of RFC 3848 / RFC 6531), body intact
and dot-unstuffed (RFC 5321 §4.5.2), LF line ends (Maildir), the queue and
incoming directories left empty, swaks as an independent client.
"""

import re
import subprocess
import time

from tern_harness import Mail, make_message, tf

SENDER = "sender@example.com"


def received_of(mail):
    r = mail.get_all("Received")
    assert r, "no Received header in %s:\n%r" % (mail.path, mail.raw[:500])
    return r[0]


def test_simple_delivery(tern):
    body = ("Line one.\r\n"
            ".hidden\r\n"       # smtplib sends "..hidden"
            "..x\r\n"           # smtplib sends "...x"
            ".\r\n"             # a lone dot in the content: sent as ".."
            "tail \xe9t\xe9 8bit\r\n"
            "last line\r\n")
    msg = make_message(subject="simple", body=body, msgid="<simple-1@test.example>")
    qid = tern.send("alice@localhost", sender=SENDER, msg=msg)
    files = tern.wait_delivered("alice@localhost", 1)
    assert len(files) == 1
    m = Mail(files[0])
    assert files[0].parent.name == "new"
    assert qid in files[0].name, files[0].name
    assert m.header_names[0] == "Return-Path", m.header_names
    assert m.get("Return-Path") == "<%s>" % SENDER
    assert m.get("Delivered-To") == "alice@localhost"
    rec = received_of(m)
    assert re.search(r"^from client\.test \(\[127\.0\.0\.1\]\)", rec), rec
    assert re.search(r"\bby tern\.test \(tern\) with ESMTP id %s\b" % qid, rec), rec
    assert re.search(r"\bfor <alice@localhost>;", rec), rec
    assert m.get("Subject") == "simple"
    assert m.get("Message-ID") == "<simple-1@test.example>"
    # body intact, unstuffed, LF line ends
    assert b"\r" not in m.raw
    assert m.body == body.replace("\r\n", "\n").encode("utf-8"), m.body
    tern.wait_log(r"%s: to=<alice@localhost> .*status=sent" % qid)
    tern.wait_queue_empty()


def test_dot_unstuffing_on_the_wire(tern):
    """Exact bytes: "..hidden" on the wire is ".hidden" in the mailbox."""
    with tern.client() as c:
        c.read_greeting()
        c.ehlo()
        c.dialogue([("MAIL FROM:<%s>" % SENDER, r"^250 "),
                    ("RCPT TO:<bob@localhost>", r"^250 "), ("DATA", r"^354 ")])
        c.send("Subject: dots\r\n\r\n"
               "..hidden\r\n"
               "...x\r\n"
               "..\r\n"
               ". space\r\n"      # a single leading dot not followed by CRLF: removed too
               "a.b\r\n"
               ".\r\n")
        r = c.reply()
        assert r.code == 250, r
        c.cmd("QUIT")
    m = Mail(tern.wait_delivered("bob@localhost", 1)[0])
    assert m.body == b".hidden\n..x\n.\n space\na.b\n", m.body


def test_empty_body_and_no_final_newline_quirk(tern):
    """A message with headers only still gets our trace headers."""
    with tern.client() as c:
        c.read_greeting()
        c.ehlo()
        c.dialogue([("MAIL FROM:<%s>" % SENDER, r"^250 "),
                    ("RCPT TO:<carol@localhost>", r"^250 "), ("DATA", r"^354 ")])
        c.send("Subject: headers only\r\n.\r\n")
        assert c.reply().code == 250
        c.cmd("QUIT")
    m = Mail(tern.wait_delivered("carol@localhost", 1)[0])
    assert m.get("Delivered-To") == "carol@localhost"
    assert b"Subject: headers only\n" in m.raw


def test_swaks(tern):
    p = subprocess.run(
        ["swaks", "--server", "127.0.0.1:%d" % tern.port, "--to", "alice@localhost",
         "--from", "x@example.com", "--helo", "swaks.test",
         "--header", "Subject: via swaks", "--body", "swaks body\\n.dotline\\nend",
         "--timeout", str(int(tf(10)))],
        capture_output=True, text=True, timeout=tf(30))
    assert p.returncode == 0, p.stdout + p.stderr
    m = re.search(r"<-\s+250 2\.0\.0 .*queued as ([0-9A-Z]{16})", p.stdout)
    assert m, p.stdout
    qid = m.group(1)
    files = tern.wait_delivered("alice@localhost", 1)
    mail = Mail(files[0])
    assert mail.get("Return-Path") == "<x@example.com>"
    assert mail.get("Subject") == "via swaks"
    assert re.search(r"from swaks\.test .* with ESMTP id %s\b" % qid, received_of(mail))
    assert b"swaks body\n.dotline\nend" in mail.body


def test_received_protocol_words(make_tern):
    t = make_tern(extra_mailboxes=["j\u00f6s\u00e9@localhost"]).start()
    q1 = t.send("alice@localhost", helo=False, subject="esmtp")
    q2 = t.send("alice@localhost", helo=True, subject="smtp")
    with t.client() as c:
        c.read_greeting()
        c.ehlo()
        c.dialogue([("MAIL FROM:<%s> SMTPUTF8" % SENDER, r"^250 "),
                    ("RCPT TO:<alice@localhost>", r"^250 "), ("DATA", r"^354 ")])
        c.send("Subject: utf8\r\n\r\nbody\r\n.\r\n")
        r = c.reply()
        assert r.code == 250, r
        q3 = re.search(r"queued as ([0-9A-Z]{16})", r.text).group(1)
        c.cmd("QUIT")
    files = t.wait_delivered("alice@localhost", 3)
    words = {}
    for f in files:
        m = Mail(f)
        rec = received_of(m)
        mm = re.search(r"\bwith (\S+) id ([0-9A-Z]{16})", rec)
        assert mm, rec
        words[mm.group(2)] = mm.group(1)
    assert words == {q1: "ESMTP", q2: "SMTP", q3: "UTF8SMTP"}, words
    t.wait_log(r"%s: accepted .*proto=SMTP\b" % q2)
    t.wait_log(r"%s: accepted .*proto=ESMTP\b" % q1)


def test_queue_dir_empty_after_delivery(tern):
    qids = [tern.send("alice@localhost", subject="q%d" % i) for i in range(3)]
    tern.wait_delivered("alice@localhost", 3)
    for q in qids:
        tern.wait_log(r"%s: removed" % q)
    tern.wait_queue_empty()
    assert tern.queue_files("incoming") == []


def test_incoming_emptied_at_restart(tern):
    """A message being received when the daemon dies is never delivered, and
    incoming/ is emptied at the next start."""
    with tern.client() as c:
        c.read_greeting()
        c.ehlo()
        c.dialogue([("MAIL FROM:<%s>" % SENDER, r"^250 "),
                    ("RCPT TO:<alice@localhost>", r"^250 "), ("DATA", r"^354 ")])
        line = "x" * 78 + "\r\n"
        c.send("Subject: interrupted\r\n\r\n" + line * 3000)  # ~240 KB, > 64 KiB: spilled
        # give the daemon a moment to read it (and spill to incoming/)
        deadline = time.monotonic() + tf(3)
        while time.monotonic() < deadline and not tern.queue_files("incoming"):
            time.sleep(0.05)
        tern.kill9()
    # a stray file as a crash would leave it
    (tern.spool / "incoming").mkdir(parents=True, exist_ok=True)
    (tern.spool / "incoming" / "0000000000000000").write_bytes(b"partial")
    tern.start()
    tern.wait_log(r"recovered 0 messages")
    assert tern.queue_files("incoming") == []
    assert tern.queue_files("queue") == []
    # nothing delivered, and the daemon still takes mail
    tern.send("bob@localhost")
    tern.wait_delivered("bob@localhost", 1)
    assert tern.messages("alice@localhost") == []


def test_log_lines(tern):
    """The log lines operators and tests rely on (README.md and docs/flow.md show them)."""
    qid = tern.send(["carol@localhost", "postmaster@localhost"], subject="logged")
    tern.wait_log(r"%s: removed" % qid)
    with tern.client() as c:
        c.read_greeting()
        c.cmd("FOO")
        c.cmd("QUIT")
    tern.wait_log(r"reject cmd=FOO")
    log = tern.run_log()
    m = re.search(r"connect session=(\S+) client=127\.0\.0\.1 port=\d+", log)
    assert m, log
    sid = m.group(1)
    assert re.search(r"disconnect session=%s client=127\.0\.0\.1\b" % re.escape(sid), log), log
    assert re.search(r"%s: accepted session=%s client=127\.0\.0\.1 helo=client\.test "
                     r"from=<sender@example\.com> size=\d+ nrcpt=2 proto=ESMTP" % (qid, re.escape(sid)),
                     log), log
    md = re.escape(str(tern.maildir("carol@localhost")))
    assert re.search(r"%s: to=<carol@localhost> relay=local delay=[\d.]+ attempts=1 status=sent "
                     r"\(delivered to maildir %s/?\)" % (qid, md), log), log
    assert re.search(r"%s: to=<alice@localhost> orig_to=<postmaster@localhost> relay=local "
                     r"delay=[\d.]+ attempts=1 status=sent" % qid, log), log
    assert re.search(r": reject cmd=FOO reply=\"500 5\.5\.\d [^\"]*\"", log), log
    for line in log.splitlines():
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z tern\[\d+\]: \S", line), line
