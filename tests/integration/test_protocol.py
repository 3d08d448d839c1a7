"""
test_protocol.py - the SMTP dialogue itself (RFC 5321, RFC 2034, RFC 2920).

Greeting, EHLO keywords, HELO, NOOP/RSET/VRFY/HELP/QUIT, the 500/501/503
replies with enhanced status codes, pipelining, bare LF/CR in command lines.
Raw sockets throughout: smtplib hides what the server really says.
"""

import re

from tern_harness import check_enhanced, tf

SENDER = "sender@example.com"


def ehlo_keywords(reply):
    kw = {}
    for line in reply.lines[1:]:
        parts = line[4:].split(None, 1)
        kw[parts[0].upper()] = parts[1] if len(parts) > 1 else ""
    return kw


def test_greeting_and_ehlo(tern):
    with tern.client() as c:
        g = c.read_greeting()
        assert g.code == 220
        assert re.match(r"^220 tern\.test ESMTP\b", g.lines[0]), g
        r = c.ehlo()
        assert r.lines[0].startswith("250-tern.test"), r
        kw = ehlo_keywords(r)
        for k in ("PIPELINING", "8BITMIME", "SMTPUTF8", "CHUNKING", "DSN",
                  "ENHANCEDSTATUSCODES", "SIZE"):
            assert k in kw, "EHLO lacks %s: %r" % (k, r.text)
        assert kw["SIZE"] == str(1024 * 1024), r.text
        c.expect("QUIT", r"^221 2\.0\.0")
        assert c.at_eof()
        check_enhanced(c.replies)


def test_helo_and_simple_commands(tern):
    with tern.client() as c:
        c.read_greeting()
        r = c.expect("HELO client.test", r"^250 ")
        c.dialogue([
            ("NOOP", r"^250 2\.0\.0"),
            ("RSET", r"^250 2\.0\.0"),
            ("HELP", r"^214[ -]2\.0\.0"),
            ("MAIL FROM:<%s>" % SENDER, r"^250 2\.1\.0"),
            ("RCPT TO:<alice@localhost>", r"^250 2\.1\.5"),
            ("RSET", r"^250 2\.0\.0"),
            # after RSET the transaction is gone
            ("RCPT TO:<alice@localhost>", r"^503 5\.5\.1"),
            ("NOOP ignored argument", r"^250 2\.0\.0"),
        ])
        c.expect("QUIT", r"^221 2\.0\.0")
        assert c.at_eof()
        assert r.code == 250
        check_enhanced(c.replies)


def test_vrfy_discloses_nothing(tern):
    with tern.client() as c:
        c.read_greeting()
        c.ehlo()
        known = c.expect("VRFY alice", r"^252 2\.\d\.\d")
        unknown = c.expect("VRFY nosuchuser", r"^252 2\.\d\.\d")
        known2 = c.expect("VRFY <alice@localhost>", r"^252 2\.\d\.\d")
        # the same answer whether the user exists or not
        assert known.text.replace("alice", "X") == unknown.text.replace("nosuchuser", "X")
        assert "localhost/alice" not in known2.text
        check_enhanced(c.replies)


def test_unknown_command(tern):
    with tern.client() as c:
        c.read_greeting()
        c.ehlo()
        c.expect("FOOBAR", r"^500 5\.5\.[12]")
        c.expect("XYZZY with args", r"^500 5\.5\.[12]")
        c.expect("NOOP", r"^250 ")  # still alive
        check_enhanced(c.replies)


def test_bad_sequence(tern):
    with tern.client() as c:
        c.read_greeting()
        c.dialogue([
            ("MAIL FROM:<%s>" % SENDER, r"^503 5\.5\.1"),  # before EHLO/HELO
            ("RCPT TO:<alice@localhost>", r"^503 5\.5\.1"),
            ("DATA", r"^503 5\.5\.1"),
        ])
        c.ehlo()
        c.dialogue([
            ("RCPT TO:<alice@localhost>", r"^503 5\.5\.1"),  # RCPT before MAIL
            ("DATA", r"^503 5\.5\.1"),  # DATA before MAIL
        ])
        c.dialogue([
            ("RSET", r"^250 "),
            ("MAIL FROM:<%s>" % SENDER, r"^250 2\.1\.0"),
            ("MAIL FROM:<%s>" % SENDER, r"^503 5\.5\.1"),  # nested MAIL
            ("DATA", r"^503 5\.5\.1"),  # DATA before any RCPT
            ("RCPT TO:<nosuchuser@localhost>", r"^550 5\.1\.1"),
            ("DATA", r"^(503|554) 5\.5\.1"),  # still no valid recipient (RFC 5321 3.3 allows both)
            ("QUIT", r"^221 "),
        ])
        check_enhanced(c.replies)


def test_bad_syntax(tern):
    with tern.client() as c:
        c.read_greeting()
        c.expect("EHLO", r"^501 5\.5\.\d")  # EHLO needs a domain
        c.expect("HELO", r"^501 5\.5\.\d")
        c.ehlo()
        c.dialogue([
            ("MAIL FROM:alice@localhost", r"^501 5\.[15]\.\d"),  # no angle brackets
            ("MAIL FROM:<bad", r"^501 5\.[15]\.\d"),
            ("MAIL TO:<%s>" % SENDER, r"^501 5\.5\.\d"),
            ("MAIL FROM:<a b@example.com>", r"^501 5\.[15]\.\d"),
            ("MAIL FROM:<%s> FOO=BAR" % SENDER, r"^(555|501) 5\.5\.\d"),
            ("MAIL FROM:<%s>" % SENDER, r"^250 "),
            ("RCPT TO:<>", r"^501 5\.[15]\.\d"),
            ("RCPT TO:alice@localhost", r"^501 5\.[15]\.\d"),
            ("RCPT TO:<alice@@localhost>", r"^501 5\.[15]\.\d"),
            ("RCPT FROM:<alice@localhost>", r"^501 5\.5\.\d"),
            ("VRFY", r"^501 5\.5\.\d|^252 "),
            ("RCPT TO:<alice@localhost>", r"^250 "),
            ("QUIT", r"^221 "),
        ])
        check_enhanced(c.replies)


def test_every_reply_has_enhanced_code(tern):
    """A full transaction over a raw socket; every reply but greeting/EHLO coded."""
    with tern.client() as c:
        c.read_greeting()
        c.ehlo()
        c.dialogue([
            ("NOOP", r"^250 "),
            ("MAIL FROM:<%s> SIZE=100" % SENDER, r"^250 "),
            ("RCPT TO:<alice@localhost>", r"^250 "),
            ("RCPT TO:<nobody@localhost>", r"^550 "),
            ("DATA", r"^354 "),
        ])
        c.send("Subject: codes\r\n\r\nbody\r\n.\r\n")
        r = c.reply()
        assert r.code == 250 and re.search(r"queued as [0-9A-Z]{16}", r.text), r
        c.dialogue([("RSET", r"^250 "), ("HELP", r"^214"), ("FOO", r"^500 "),
                    ("QUIT", r"^221 ")])
        check_enhanced(c.replies)
    tern.wait_delivered("alice@localhost", 1)


def test_pipelining(tern):
    """RFC 2920: a batch of commands in one write; replies come in order."""
    with tern.client() as c:
        c.read_greeting()
        c.ehlo()
        c.send("MAIL FROM:<%s>\r\n"
               "RCPT TO:<alice@localhost>\r\n"
               "RCPT TO:<nosuchuser@localhost>\r\n"
               "RCPT TO:<bob@localhost>\r\n"
               "DATA\r\n" % SENDER)
        codes = [c.reply().code for _ in range(5)]
        assert codes == [250, 250, 550, 250, 354], codes
        # message and the next transaction and QUIT in one write too
        c.send("Subject: pipelined\r\n\r\nfirst\r\n.\r\n"
               "MAIL FROM:<%s>\r\n"
               "RCPT TO:<carol@localhost>\r\n"
               "DATA\r\n" % SENDER)
        r1 = c.reply()
        assert r1.code == 250 and "queued as" in r1.text, r1
        codes = [c.reply().code for _ in range(3)]
        assert codes == [250, 250, 354], codes
        c.send("Subject: pipelined 2\r\n\r\nsecond\r\n.\r\nQUIT\r\n")
        r2 = c.reply()
        assert r2.code == 250 and "queued as" in r2.text, r2
        assert c.reply().code == 221
        assert c.at_eof()
        check_enhanced(c.replies)
    a = tern.wait_delivered("alice@localhost", 1)
    b = tern.wait_delivered("bob@localhost", 1)
    cc = tern.wait_delivered("carol@localhost", 1)
    assert b"first" in a[0].read_bytes() and b"first" in b[0].read_bytes()
    assert b"second" in cc[0].read_bytes()


def test_bare_lf_and_cr_in_command(tern):
    """A bare LF or CR inside a command line is never a line end: 5xx."""
    with tern.client() as c:
        c.read_greeting()
        c.ehlo()
        c.send("MAIL FROM:<%s>\nRCPT TO:<bob@localhost>\r\n" % SENDER)
        r = c.reply()
        assert 500 <= r.code < 600, r
        # nothing else was taken as a command: the next reply answers NOOP
        r = c.cmd("NOOP")
        assert r.code == 250, "extra reply after a bare-LF line: %r" % r
        c.send("NOOP\rNOOP\r\n")
        r = c.reply()
        assert 500 <= r.code < 600, r
        r = c.cmd("RSET")
        assert r.code == 250, r
        # the session still works
        c.dialogue([("MAIL FROM:<%s>" % SENDER, r"^250 "),
                    ("RCPT TO:<alice@localhost>", r"^250 "), ("QUIT", r"^221 ")])
        check_enhanced(c.replies)


def test_command_line_too_long(tern):
    """RFC 5321 §4.5.3.1.4: 512 octets with CRLF; beyond: 500 5.5.x, session goes on."""
    with tern.client() as c:
        c.read_greeting()
        c.ehlo()
        c.expect("NOOP " + "x" * 505, r"^250 ")  # 5 + 505 + 2 = 512: fits
        c.expect("NOOP " + "x" * 600, r"^500 5\.5\.\d")
        c.expect("RCPT TO:<alice@localhost>" + " " * 4000 + "X", r"^500 5\.5\.\d")
        c.dialogue([("MAIL FROM:<%s>" % SENDER, r"^250 "),
                    ("RCPT TO:<alice@localhost>", r"^250 "),
                    ("QUIT", r"^221 ")])
        check_enhanced(c.replies)


def test_max_errors_disconnects(make_tern):
    t = make_tern(config={"max_errors": "5"}).start()
    with t.client() as c:
        c.read_greeting()
        c.ehlo()
        got421 = None
        for i in range(7):
            try:
                r = c.cmd("BOGUS%d" % i)
            except (EOFError, ConnectionResetError, BrokenPipeError):
                break
            if r.code == 421:
                got421 = i + 1
                break
            assert r.code == 500, r
        assert got421 in (5, 6), "421 after %s bad commands (max_errors = 5)" % got421
        assert re.match(r"^421 4\.\d\.\d", c.replies[-1].text), c.replies[-1]
        assert c.at_eof(tf(5)), "connection not closed after 421"


def test_commands_case_insensitive(tern):
    """RFC 5321 §2.4: verbs and argument keywords in any case."""
    with tern.client() as c:
        c.read_greeting()
        c.expect("ehlo client.test", r"^250")
        c.dialogue([("mail from:<%s> size=10" % SENDER, r"^250 "),
                    ("Rcpt To:<alice@localhost>", r"^250 "),
                    ("data", r"^354 ")])
        c.send("Subject: lower\r\n\r\nx\r\n.\r\n")
        assert c.reply().code == 250
        c.expect("quit", r"^221 ")
    tern.wait_delivered("alice@localhost", 1)


def test_ehlo_resets_transaction(tern):
    """RFC 5321 §4.1.4: a second EHLO acts as RSET."""
    with tern.client() as c:
        c.read_greeting()
        c.ehlo()
        c.dialogue([("MAIL FROM:<%s>" % SENDER, r"^250 "),
                    ("RCPT TO:<alice@localhost>", r"^250 ")])
        c.ehlo("again.test")
        c.expect("DATA", r"^503 5\.5\.1")
        c.expect("RCPT TO:<alice@localhost>", r"^503 5\.5\.1")
        c.expect("MAIL FROM:<%s>" % SENDER, r"^250 ")
        check_enhanced(c.replies)
