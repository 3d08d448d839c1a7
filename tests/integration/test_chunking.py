"""
test_chunking.py - CHUNKING / BDAT (RFC 3030).

BDAT data is counted octets: no dot-stuffing and no end-of-data line; a
"\\r\\n.\\r\\n" inside a chunk is content. Chunks may split a line or a CRLF.
"""

import re

from tern_harness import Mail, check_enhanced

SENDER = "sender@example.com"


def begin(c, rcpt="alice@localhost"):
    c.read_greeting()
    c.ehlo()
    c.dialogue([("MAIL FROM:<%s>" % SENDER, r"^250 "), ("RCPT TO:<%s>" % rcpt, r"^250 ")])


def bdat(c, data, last=False):
    if isinstance(data, str):
        data = data.encode("utf-8")
    c.send(b"BDAT %d%s\r\n" % (len(data), b" LAST" if last else b"") + data)
    r = c.reply()
    r.cmd = "BDAT"
    return r


def test_bdat_two_chunks(tern):
    with tern.client() as c:
        begin(c)
        r = bdat(c, "Subject: chunked\r\n\r\nfirst half of a li")
        assert re.match(r"^250 2\.\d\.\d", r.text), r
        r = bdat(c, "ne\r\nsecond line\r")  # chunk ends inside a CRLF
        assert r.code == 250, r
        r = bdat(c, "\n..not unstuffed\r\n", last=True)
        assert r.code == 250 and re.search(r"queued as [0-9A-Z]{16}", r.text), r
        c.expect("QUIT", r"^221 ")
        check_enhanced(c.replies)
    m = Mail(tern.wait_delivered("alice@localhost", 1)[0])
    assert m.get("Subject") == "chunked"
    assert m.body == b"first half of a line\nsecond line\n..not unstuffed\n", m.body
    assert re.search(r"with ESMTP id", m.get("Received"))


def test_bdat_zero_last(tern):
    with tern.client() as c:
        begin(c)
        assert bdat(c, "Subject: zero last\r\n\r\nbody\r\n").code == 250
        r = bdat(c, b"", last=True)
        assert r.code == 250 and "queued as" in r.text, r
        c.expect("QUIT", r"^221 ")
        check_enhanced(c.replies)
    m = Mail(tern.wait_delivered("alice@localhost", 1)[0])
    assert m.get("Subject") == "zero last"
    assert m.body == b"body\n"


def test_bdat_pipelined(tern):
    """BDAT chunks and the next commands in a single write."""
    with tern.client() as c:
        c.read_greeting()
        c.ehlo()
        c.send(b"MAIL FROM:<%s>\r\nRCPT TO:<bob@localhost>\r\n"
               b"BDAT 22\r\nSubject: pipe\r\n\r\nabc\r\n"
               b"BDAT 5 LAST\r\ndef\r\n"
               b"NOOP\r\n" % SENDER.encode())
        codes = [c.reply().code for _ in range(5)]
        assert codes == [250, 250, 250, 250, 250], codes
        assert "queued as" in c.replies[-2].text, c.replies[-2]
    m = Mail(tern.wait_delivered("bob@localhost", 1)[0])
    assert m.body == b"abc\ndef\n", m.body


def test_bdat_lone_dot_is_data(tern):
    """A "\\r\\n.\\r\\n" inside a chunk ends nothing; commands inside are data."""
    chunk = ("Subject: dot inside\r\n\r\nbefore\r\n.\r\n"
             "MAIL FROM:<evil@x>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n"
             "after\r\n")
    with tern.client() as c:
        begin(c)
        r = bdat(c, chunk, last=True)
        assert r.code == 250, r
        c.expect("NOOP", r"^250 ")
        c.expect("QUIT", r"^221 ")
        check_enhanced(c.replies)
    m = Mail(tern.wait_delivered("alice@localhost", 1)[0])
    assert m.body == b"before\n.\nMAIL FROM:<evil@x>\nRCPT TO:<bob@localhost>\nDATA\nafter\n", m.body
    tern.wait_queue_empty()
    assert tern.messages("bob@localhost") == []
    assert len(re.findall(r": accepted session=", tern.log)) == 1


def test_bdat_bare_cr_lf(tern):
    """Bare CR and LF in a chunk: either refused (5xx, nothing delivered) or kept
    as data in ONE message; either way the chunk length is honoured and the
    session stays in step."""
    chunk = b"Subject: bare\r\n\r\nline\nwith bare LF\rand CR\n.\nRSET\r\nend\r\n"
    with tern.client() as c:
        begin(c)
        r = bdat(c, chunk, last=True)
        assert r.code == 250 or 500 <= r.code < 600, r
        c.expect("NOOP", r"^250 ")  # the octets in the chunk were not commands
        c.expect("QUIT", r"^221 ")
        check_enhanced(c.replies)
    if r.code == 250:
        m = Mail(tern.wait_delivered("alice@localhost", 1)[0])
        assert b"with bare LF" in m.body and b"RSET\nend\n" in m.body, m.body
    tern.wait_queue_empty()
    assert len(tern.messages("alice@localhost")) == (1 if r.code == 250 else 0)
    assert len(re.findall(r": accepted session=", tern.log)) == (1 if r.code == 250 else 0)
