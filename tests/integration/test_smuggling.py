"""
test_smuggling.py - SMTP smuggling (CVE-2023-51764 and friends).

Only <CRLF>.<CRLF> ends DATA. A message whose text holds a fake end of data
made of bare LF / bare CR followed by a second transaction must be either
refused with a 5xx (bare CR/LF refused) or delivered as ONE message; bob,
the target of the smuggled transaction, receives nothing and only one queue
ID is ever issued. A NUL in the content (a fake end for a next hop that
strips NULs) gets the message refused.
"""

import re

import pytest

SENDER = "sender@example.com"

SMUGGLED = ("MAIL FROM:<evil@x>\r\n"
            "RCPT TO:<bob@localhost>\r\n"
            "DATA\r\n"
            "Subject: smuggled\r\n\r\nevil\r\n")

VARIANTS = {
    "lf-dot-lf": "\n.\n",
    "lf-dot-crlf": "\n.\r\n",
    "cr-dot-crlf": "\r.\r\n",
    "crlf-dot-cr": "\r\n.\r",
    "cr-dot-cr": "\r.\r",
    "crlf-dot-lf": "\r\n.\n",
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_smuggling(tern, name):
    sep = VARIANTS[name]
    with tern.client() as c:
        c.read_greeting()
        c.ehlo()
        c.dialogue([("MAIL FROM:<%s>" % SENDER, r"^250 "),
                    ("RCPT TO:<alice@localhost>", r"^250 "), ("DATA", r"^354 ")])
        # QUIT pipelined behind the data: the server closes after 221, so
        # reading until EOF collects every reply without waiting on a timeout
        c.send("Subject: carrier\r\n\r\nhello" + sep + SMUGGLED + "\r\n.\r\nQUIT\r\n")
        replies = c.read_all_replies(timeout=5)
    assert replies, "no reply to the end of data"
    first = replies[0]
    assert first.code == 250 or 500 <= first.code < 600, first
    qids = set()
    for r in replies:
        qids.update(re.findall(r"queued as ([0-9A-Z]{16})", r.text))
    assert len(qids) <= 1, "two queue IDs: smuggled transaction accepted: %r" % replies
    # no reply may answer the smuggled commands (250 for MAIL/RCPT, 354 for DATA)
    codes = [r.code for r in replies]
    assert 354 not in codes, codes
    assert codes.count(250) <= 1, codes
    if first.code == 250:
        files = tern.wait_delivered("alice@localhost", 1)
        body = files[0].read_bytes()
        assert b"hello" in body and b"evil" in body, body  # all one message
    # every reply was read up to EOF: anything accepted was committed before
    # its 250, so once the queue is empty all of it has been delivered
    tern.wait_queue_empty()
    assert tern.messages("bob@localhost") == []
    assert len(tern.messages("alice@localhost")) == (1 if first.code == 250 else 0)
    assert len(re.findall(r": accepted session=", tern.log)) == len(qids)


@pytest.mark.parametrize("text", ["line1\nline2\r\n", "line1\rline2\r\n",
                                  "line1\r\n\nline2\r\n", "end with bare lf\n"],
                         ids=["bare-lf", "bare-cr", "crlf-lf", "lf-before-dot"])
def test_bare_cr_lf_in_data_refused(tern, text):
    """The issue: a bare LF or bare CR in DATA is refused with a clear 5xx
    (after the real end of data, so the session stays in step)."""
    with tern.client() as c:
        c.read_greeting()
        c.ehlo()
        c.dialogue([("MAIL FROM:<%s>" % SENDER, r"^250 "),
                    ("RCPT TO:<alice@localhost>", r"^250 "), ("DATA", r"^354 ")])
        c.send("Subject: bare\r\n\r\n" + text + "\r\n.\r\n")
        r = c.reply()
        assert re.match(r"^5\d\d 5\.\d\.\d", r.text), r
        r2 = c.cmd("NOOP")
        assert r2.code == 250, "out of step after the 5xx: %r" % r2
    # a 250 would have come after the commit: nothing can appear later
    assert tern.messages("alice@localhost") == []
    assert tern.queue_files() == []


@pytest.mark.parametrize("text", ["a\r\n\x00.\r\n" + SMUGGLED, "NUL\x00inside a line\r\n",
                                  "\x00\r\n"],
                         ids=["nul-dot", "nul-in-line", "nul-line"])
def test_nul_in_data_refused(tern, text):
    """Issue 11.9: NUL in DATA is refused with 550 5.6.0, after the real end
    of data (the stream is read to its end), and the session goes on with
    no transaction (RSET state): the smuggled MAIL/RCPT/DATA inside it are
    content, never commands."""
    with tern.client() as c:
        c.read_greeting()
        c.ehlo()
        c.dialogue([("MAIL FROM:<%s>" % SENDER, r"^250 "),
                    ("RCPT TO:<alice@localhost>", r"^250 "), ("DATA", r"^354 ")])
        c.send("Subject: nul\r\n\r\n" + text + "\r\n.\r\n")
        r = c.reply()
        assert re.match(r"^550 5\.6\.0 .*NUL", r.text), r
        # in step, and the transaction is gone: RCPT needs a new MAIL
        assert c.cmd("NOOP").code == 250
        assert c.cmd("RCPT TO:<bob@localhost>").code == 503
        # and a clean message goes through on the same session
        c.dialogue([("MAIL FROM:<%s>" % SENDER, r"^250 "),
                    ("RCPT TO:<alice@localhost>", r"^250 "), ("DATA", r"^354 ")])
        c.send("Subject: clean\r\n\r\nok\r\n.\r\n")
        assert c.reply().code == 250
        c.expect("QUIT", r"^221 ")
    tern.wait_queue_empty()
    assert len(tern.messages("alice@localhost")) == 1
    assert tern.messages("bob@localhost") == []


def test_nul_in_bdat_refused(tern):
    """The same for BDAT: the chunk holding the NUL is read whole; LAST gets
    550 5.6.0 and the session goes on."""
    with tern.client() as c:
        c.read_greeting()
        c.ehlo()
        c.dialogue([("MAIL FROM:<%s>" % SENDER, r"^250 "),
                    ("RCPT TO:<alice@localhost>", r"^250 ")])
        data = b"Subject: nul\r\n\r\na\r\n\x00.\r\nrest\r\n"
        c.send(b"BDAT %d LAST\r\n" % len(data) + data)
        r = c.reply()
        assert re.match(r"^550 5\.6\.0 .*NUL", r.text), r
        assert c.cmd("NOOP").code == 250
        assert c.cmd("RCPT TO:<alice@localhost>").code == 503
        c.expect("QUIT", r"^221 ")
    assert tern.messages("alice@localhost") == []
    assert tern.queue_files() == []
