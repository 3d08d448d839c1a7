"""
test_params.py - MAIL/RCPT parameters: the null reverse-path, DSN (RFC 3461),
SMTPUTF8 (RFC 6531), 8BITMIME/BODY (RFC 6152).
"""

import re
import struct
import zlib

import pytest

from tern_harness import Mail, check_enhanced

SENDER = "sender@example.com"
JOSE = "j\u00f6s\u00e9@localhost"


def data(c, text):
    c.expect("DATA", r"^354 ")
    c.send(text)
    r = c.reply()
    assert r.code == 250, r
    return re.search(r"queued as ([0-9A-Z]{16})", r.text).group(1)


def test_null_sender(tern):
    with tern.client() as c:
        c.read_greeting()
        c.ehlo()
        c.dialogue([("MAIL FROM:<>", r"^250 2\.1\.0"), ("RCPT TO:<alice@localhost>", r"^250 ")])
        qid = data(c, "Subject: bounce-ish\r\n\r\nnull sender\r\n.\r\n")
        c.expect("QUIT", r"^221 ")
    m = Mail(tern.wait_delivered("alice@localhost", 1)[0])
    assert m.get("Return-Path") == "<>"
    tern.wait_log(r"%s: accepted .*from=<> " % qid)


def test_dsn_parameters_accepted(tern):
    with tern.client() as c:
        c.read_greeting()
        c.ehlo()
        c.dialogue([
            ("MAIL FROM:<%s> RET=HDRS ENVID=abc" % SENDER, r"^250 "),
            ("RCPT TO:<alice@localhost> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice@localhost",
             r"^250 "),
            ("RCPT TO:<bob@localhost> NOTIFY=NEVER", r"^250 "),
            ("RCPT TO:<carol@localhost> NOTIFY=DELAY ORCPT=rfc822;carol+2Bdsn@localhost",
             r"^250 "),
        ])
        data(c, "Subject: dsn\r\n\r\ndsn params\r\n.\r\n")
        c.dialogue([
            ("MAIL FROM:<%s> RET=FULL ENVID=a+2Bb BODY=8BITMIME SIZE=100" % SENDER, r"^250 "),
            ("RSET", r"^250 "),
            ("QUIT", r"^221 "),
        ])
        check_enhanced(c.replies)
    for who in ("alice", "bob", "carol"):
        assert Mail(tern.wait_delivered(who + "@localhost", 1)[0]).get("Subject") == "dsn"


@pytest.mark.parametrize("bad", [
    "RCPT TO:<alice@localhost> NOTIFY=BOGUS",
    "RCPT TO:<alice@localhost> NOTIFY=NEVER,SUCCESS",
    "RCPT TO:<alice@localhost> NOTIFY=",
    "RCPT TO:<alice@localhost> ORCPT=alice@localhost",  # no addr-type
])
def test_dsn_bad_rcpt_parameters(tern, bad):
    with tern.client() as c:
        c.read_greeting()
        c.ehlo()
        c.expect("MAIL FROM:<%s>" % SENDER, r"^250 ")
        r = c.cmd(bad)
        assert re.match(r"^501 5\.\d\.\d", r.text), r
        c.expect("RCPT TO:<alice@localhost>", r"^250 ")


@pytest.mark.parametrize("bad", [
    "MAIL FROM:<%s> RET=SOME" % SENDER,
    "MAIL FROM:<%s> RET=HDRS RET=FULL" % SENDER,
    "MAIL FROM:<%s> ENVID=%s" % (SENDER, "x" * 101),
])
def test_dsn_bad_mail_parameters(tern, bad):
    with tern.client() as c:
        c.read_greeting()
        c.ehlo()
        r = c.cmd(bad)
        assert re.match(r"^5\d\d 5\.\d\.\d", r.text), r
        c.expect("MAIL FROM:<%s>" % SENDER, r"^250 ")


def test_smtputf8_delivery(make_tern):
    t = make_tern(extra_mailboxes=[JOSE]).start()
    with t.client() as c:
        c.read_greeting()
        c.ehlo()
        c.dialogue([("MAIL FROM:<s\u00e9nder@example.com> SMTPUTF8", r"^250 "),
                    ("RCPT TO:<%s>" % JOSE, r"^250 ")])
        qid = data(c, "Subject: =?utf-8?q?h=C3=A9?=\r\nTo: <%s>\r\n\r\nol\u00e9\r\n.\r\n" % JOSE)
        c.expect("QUIT", r"^221 ")
        check_enhanced(c.replies)
    m = Mail(t.wait_delivered(JOSE, 1)[0])
    assert m.get("Delivered-To") == JOSE
    assert m.get("Return-Path") == "<s\u00e9nder@example.com>"
    assert re.search(r"with UTF8SMTP id %s" % qid, m.get("Received")), m.get("Received")
    assert m.body == "ol\u00e9\n".encode("utf-8")


def test_utf8_address_without_smtputf8(make_tern):
    t = make_tern(extra_mailboxes=[JOSE]).start()
    with t.client() as c:
        c.read_greeting()
        c.ehlo()
        r = c.cmd("MAIL FROM:<s\u00e9nder@example.com>")
        assert re.match(r"^5\d\d 5\.\d\.\d", r.text), r
        # RFC 6531 §3.5 suggests 553 5.6.7; any 5xx with a code satisfies the issue
        c.expect("MAIL FROM:<%s>" % SENDER, r"^250 ")
        r = c.cmd("RCPT TO:<%s>" % JOSE)
        assert re.match(r"^5\d\d 5\.\d\.\d", r.text), r
        check_enhanced(c.replies)


def test_smtputf8_needs_ehlo(tern):
    """After HELO no extension is offered: SMTPUTF8 on MAIL is refused."""
    with tern.client() as c:
        c.read_greeting()
        c.expect("HELO client.test", r"^250 ")
        r = c.cmd("MAIL FROM:<%s> SMTPUTF8" % SENDER)
        assert re.match(r"^5\d\d 5\.5\.\d", r.text), r


def read_queue_header(path):
    """Decode the envelope records of a queue file (docs/queue.md, version 1):
    {"ret": int, "envid": str|None, "sender": str, "rcpt": [(notify, addr, orig, orcpt)]}"""
    data = path.read_bytes()
    magic = b"tern-queue 1\n"
    assert data.startswith(magic), data[:20]
    pos = len(magic)
    out = {"envid": None, "rcpt": []}

    def ostr(b, i):
        n = struct.unpack(">I", b[i:i + 4])[0]
        if n == 0xFFFFFFFF:
            return None, i + 4
        return b[i + 4:i + 4 + n].decode("utf-8"), i + 4 + n

    while True:
        typ = data[pos:pos + 1].decode()
        n = struct.unpack(">I", data[pos + 1:pos + 5])[0]
        rec = data[pos + 5:pos + 5 + n]
        crc = struct.unpack(">I", data[pos + 5 + n:pos + 9 + n])[0]
        assert crc == zlib.crc32(data[pos:pos + 5 + n]), "bad CRC in record %s" % typ
        pos += 9 + n
        if typ == "I":
            out["ret"] = rec[8]
        elif typ == "F":
            out["sender"] = rec.decode("utf-8")
        elif typ == "E":
            out["envid"] = rec.decode("utf-8")
        elif typ == "R":
            notify = struct.unpack(">I", rec[:4])[0]
            addr, i = ostr(rec, 4)
            orig, i = ostr(rec, i)
            orcpt, i = ostr(rec, i)
            out["rcpt"].append((notify, addr, orig, orcpt))
        elif typ == "B":
            return out


def test_dsn_parameters_stored(make_tern, tmp_path):
    """DSN parameters end up in the queued envelope (RFC 3461 §4: ENVID
    xtext-decoded, RET, NOTIFY, ORCPT). The Maildir is made unusable so the
    message stays queued and its file can be read."""
    blocked = tmp_path / "blocked"
    blocked.write_text("not a directory\n")
    t = make_tern(extra_mailboxes=["dave@localhost %s" % (blocked / "dave")],
                  config={"retry_min": "1h", "retry_max": "2h"}).start()
    with t.client() as c:
        c.read_greeting()
        c.ehlo()
        c.dialogue([
            ("MAIL FROM:<%s> RET=HDRS ENVID=a+2Bb+3Dc" % SENDER, r"^250 "),
            ("RCPT TO:<dave@localhost> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Dave+2Bx@localhost",
             r"^250 "),
            ("RCPT TO:<postmaster@localhost> NOTIFY=NEVER", r"^250 "),
        ])
        qid = data(c, "Subject: stored\r\n\r\nx\r\n.\r\n")
        c.expect("QUIT", r"^221 ")
    t.wait_log(r"%s: to=<dave@localhost> .*status=deferred" % qid)
    env = read_queue_header(t.spool / "queue" / qid)
    assert env["sender"] == SENDER
    assert env["envid"] == "a+b=c"
    assert env["ret"] == 2  # RET_HDRS
    rc = {r[1]: r for r in env["rcpt"]}
    assert rc["dave@localhost"][0] == 0x02 | 0x04, rc  # NOTIFY_SUCCESS | NOTIFY_FAILURE
    assert rc["dave@localhost"][3] == "rfc822;Dave+x@localhost", rc
    # postmaster is an alias of alice: the original address is kept
    assert rc["alice@localhost"][0] == 0x01, rc  # NOTIFY_NEVER
    assert rc["alice@localhost"][2] == "postmaster@localhost", rc
