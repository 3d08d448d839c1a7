"""
test_lmtp.py - LMTP delivery (RFC 2033) from tern into a real Dovecot
(Debian's dovecot-core + dovecot-lmtpd; scripts/deps.sh installs them).

The test runs its own Dovecot (dovecot_server.py: `dovecot -F -c CONFIG`
with everything in a private directory under /tmp, LMTP on 127.0.0.1 at a
free port) and stops it at the end; the system's Dovecot service plays no
part. tern's transport table says "lmtp.example lmtp:[127.0.0.1]:PORT".

Checked: two recipients in one transaction get their own results - one
unknown to Dovecot (550 5.1.1 at RCPT: bounced, DSN to the local sender),
one over quota (552 5.2.2 in the per-recipient reply after the final dot,
RFC 2033 §4.2: bounced) and one delivered into Dovecot's Maildir with the
message intact (dot lines, long content).
"""

import re
import time

import pytest

from dovecot_server import INSTALLED, SKIP_REASON, Dovecot
from tern_harness import Mail, make_message, tf

SENDER = "alice@localhost"

pytestmark = pytest.mark.skipif(not INSTALLED, reason=SKIP_REASON)


@pytest.fixture
def dovecot():
    d = Dovecot({"bob@lmtp.example": "",
                 "full@lmtp.example": "userdb_quota_rule=*:storage=100B"})
    yield d
    d.close()


def start_tern(make_tern, dovecot):
    t = make_tern(config={"transport": None, "retry_min": "1s", "retry_max": "2s",
                          "smtp_connect_timeout": "2s", "smtp_command_timeout": "5s"})
    transport = t.dir / "transport"
    transport.write_text("lmtp.example  lmtp:[127.0.0.1]:%d\n" % dovecot.port)
    t.config["transport"] = str(transport)
    t.write_files()
    return t.start()


def outcome(t, qid, rcpt, timeout=10):
    m = t.wait_log(r"%s: to=<%s> relay=(\S+) delay=\S+ attempts=(\d+) status=(\w+) \((.*)\)"
                   % (qid, re.escape(rcpt)), timeout=timeout)
    return m.group(1), m.group(3), m.group(4)


def test_lmtp_per_recipient_results(make_tern, dovecot):
    t = start_tern(make_tern, dovecot)
    # content with dot lines, a long line, 8-bit text and ~150 KB: it must
    # arrive as sent
    body = ("Hello Bob.\r\n.\r\n..two dots\r\n.leading dot\r\n" + "x" * 990 + "\r\n"
            + "caf\u00e9 na\u00efve\r\n" + "".join("line %d of the body\r\n" % i
                                                   for i in range(7000)))
    msg = make_message(subject="lmtp test", body=body, to="bob@lmtp.example", sender=SENDER,
                       headers=["Content-Type: text/plain; charset=utf-8",
                                "Content-Transfer-Encoding: 8bit"])
    connects = dovecot.log_text().count("Connect from 127.0.0.1")  # our probes
    qid = t.send(["bob@lmtp.example", "nobody@lmtp.example", "full@lmtp.example"],
                 sender=SENDER, msg=msg, mail_options=["BODY=8BITMIME"])

    relay, status, reply = outcome(t, qid, "bob@lmtp.example")
    assert status == "sent", (status, reply)
    assert relay == "127.0.0.1[127.0.0.1]:%d" % dovecot.port
    assert reply.startswith("250 2.0.0 <bob@lmtp.example>"), reply
    # unknown to Dovecot: refused at RCPT
    _, status, reply = outcome(t, qid, "nobody@lmtp.example")
    assert status == "bounced" and reply.startswith("550 5.1.1 <nobody@lmtp.example>"), reply
    # over quota: known at RCPT, refused in its own reply after the final dot
    _, status, reply = outcome(t, qid, "full@lmtp.example")
    assert status == "bounced" and reply.startswith("552 5.2.2 <full@lmtp.example>"), reply

    # one transaction: one LMTP session, and Dovecot saved bob's copy only
    log = dovecot.log_text()
    assert log.count("Connect from 127.0.0.1") == connects + 1, log
    assert re.search(r"lmtp\(full@lmtp\.example\).*Quota exceeded", log), log
    msgs = dovecot.messages("bob@lmtp.example")
    assert len(msgs) == 1 and not dovecot.messages("full@lmtp.example")
    raw = msgs[0].read_bytes()
    # Dovecot stores LF line ends; above them: its Return-Path/Delivered-To,
    # tern's Received
    assert raw.replace(b"\n", b"\r\n").endswith(msg.split(b"\r\n\r\n", 1)[1])
    head = raw.split(b"\n\n", 1)[0]
    assert b"Return-Path: <alice@localhost>" in head
    assert re.search(rb"Received: from client\.test .*\n\tby tern\.test \(tern\) with ESMTP id "
                     + qid.encode(), head), head
    for h in msg.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        assert h in head, h

    # one DSN to the sender for the two failures
    deadline = time.monotonic() + tf(10)
    while not t.messages(SENDER):
        assert time.monotonic() < deadline, t.tail()
        time.sleep(0.05)
    dsn = Mail(t.wait_delivered(SENDER, 1)[0]).raw.decode("utf-8", "replace")
    assert "nobody@lmtp.example" in dsn and "full@lmtp.example" in dsn, dsn
    assert "Status: 5.1.1" in dsn and "Status: 5.2.2" in dsn, dsn
    t.wait_queue_empty()


def test_lmtp_server_down_defers_then_delivers(make_tern, dovecot):
    """Dovecot stopped: deferred (451 4.4.1); started again: the retry delivers."""
    t = start_tern(make_tern, dovecot)
    dovecot.stop()
    qid = t.send("bob@lmtp.example", sender=SENDER)
    _, status, reply = outcome(t, qid, "bob@lmtp.example")
    assert status == "deferred" and reply.startswith("451 4.4.1 connect to"), reply
    assert dovecot.start(), dovecot.log_text()
    deadline = time.monotonic() + tf(10)
    while not dovecot.messages("bob@lmtp.example"):
        assert time.monotonic() < deadline, t.tail()
        time.sleep(0.05)
    t.wait_log(r"%s: to=<bob@lmtp\.example> .*attempts=\d+ status=sent" % qid)
    t.wait_queue_empty()
