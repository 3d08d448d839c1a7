"""
test_routing.py - who may send to whom, and where accepted mail lands.

Relay control (mynetworks = 127.0.0.1/32; a client bound to 127.0.0.2 is
outside), unknown users refused at RCPT (550 5.1.1), aliases, +detail
sub-addressing, virtual aliases and catch-all, case-insensitive domains.
Tables (tern_harness defaults): mailboxes alice/bob/carol@localhost and
alice@example.com; aliases postmaster: alice, team: alice, bob; virtual
info@example.org -> alice@localhost, @example.org -> bob@localhost.
"""

import re

from tern_harness import Mail, check_enhanced

SENDER = "sender@example.com"


def test_relay_denied_outside_mynetworks(tern):
    with tern.client(source="127.0.0.2") as c:
        c.read_greeting()
        c.ehlo()
        c.dialogue([
            ("MAIL FROM:<%s>" % SENDER, r"^250 "),
            ("RCPT TO:<x@remote.example>", r"^554 5\.7\.1"),
            ("RCPT TO:<someone@Remote.Example>", r"^554 5\.7\.1"),
            # local domains are open to everyone
            ("RCPT TO:<alice@localhost>", r"^250 "),
            ("DATA", r"^354 "),
        ])
        c.send("Subject: from outside\r\n\r\nhi\r\n.\r\n")
        assert c.reply().code == 250
        c.expect("QUIT", r"^221 ")
        check_enhanced(c.replies)
    m = Mail(tern.wait_delivered("alice@localhost", 1)[0])
    assert re.search(r"\(\[127\.0\.0\.2\]\)", m.get("Received")), m.get("Received")
    tern.wait_log(r"reject cmd=RCPT reply=\"554 5\.7\.1")


def test_relay_allowed_from_mynetworks(tern):
    """Accepted and queued (delivery to other hosts is a later issue)."""
    with tern.client() as c:
        c.read_greeting()
        c.ehlo()
        c.dialogue([("MAIL FROM:<%s>" % SENDER, r"^250 "),
                    ("RCPT TO:<x@remote.example>", r"^250 "), ("DATA", r"^354 ")])
        c.send("Subject: relay\r\n\r\nrelay me\r\n.\r\n")
        r = c.reply()
        assert r.code == 250, r
        qid = re.search(r"queued as ([0-9A-Z]{16})", r.text).group(1)
        c.expect("QUIT", r"^221 ")
    tern.wait_log(r"%s: accepted .*from=<%s> .*nrcpt=1" % (qid, SENDER))
    # still queued (not delivered anywhere), or a later issue's remote
    # delivery has already tried and deferred it: never in a local Maildir
    assert qid in tern.queue_files() or re.search(r"%s: to=<x@remote\.example>" % qid, tern.log)


def test_unknown_local_user(tern):
    with tern.client() as c:
        c.read_greeting()
        c.ehlo()
        c.dialogue([
            ("MAIL FROM:<%s>" % SENDER, r"^250 "),
            ("RCPT TO:<nosuchuser@localhost>", r"^550 5\.1\.1"),
            ("RCPT TO:<nosuchuser@example.com>", r"^550 5\.1\.1"),
            ("RCPT TO:<bob@example.com>", r"^550 5\.1\.1"),  # bob only in localhost
            ("RCPT TO:<alice@example.com>", r"^250 "),
            ("QUIT", r"^221 "),
        ])
        check_enhanced(c.replies)
    tern.wait_log(r"reject cmd=RCPT reply=\"550 5\.1\.1")


def test_unknown_user_from_outside(tern):
    with tern.client(source="127.0.0.2") as c:
        c.read_greeting()
        c.ehlo()
        c.dialogue([("MAIL FROM:<%s>" % SENDER, r"^250 "),
                    ("RCPT TO:<nosuchuser@localhost>", r"^550 5\.1\.1"),
                    ("RCPT TO:<nosuchuser@example.org>", r"^250 ")])  # catch-all


def test_alias_postmaster(tern):
    tern.send("postmaster@localhost", subject="to postmaster")
    m = Mail(tern.wait_delivered("alice@localhost", 1)[0])
    assert m.get("Subject") == "to postmaster"
    assert m.get("Delivered-To") == "alice@localhost"
    tern.wait_log(r"to=<alice@localhost> orig_to=<postmaster@localhost> .*status=sent")


def test_postmaster_without_domain(tern):
    """RFC 5321 §4.1.1.3: RCPT TO:<Postmaster> must be accepted."""
    with tern.client() as c:
        c.read_greeting()
        c.ehlo()
        c.dialogue([("MAIL FROM:<%s>" % SENDER, r"^250 "),
                    ("RCPT TO:<Postmaster>", r"^250 "), ("DATA", r"^354 ")])
        c.send("Subject: bare postmaster\r\n\r\nx\r\n.\r\n")
        assert c.reply().code == 250
    tern.wait_delivered("alice@localhost", 1)


def test_alias_two_targets(tern):
    qid = tern.send("team@localhost", subject="to the team")
    a = Mail(tern.wait_delivered("alice@localhost", 1)[0])
    b = Mail(tern.wait_delivered("bob@localhost", 1)[0])
    assert a.get("Subject") == b.get("Subject") == "to the team"
    assert a.get("Delivered-To") == "alice@localhost"
    assert b.get("Delivered-To") == "bob@localhost"
    tern.wait_log(r"%s: accepted .*nrcpt=" % qid)
    tern.wait_queue_empty()


def test_plus_detail(tern):
    tern.send("alice+tag@localhost", subject="detail")
    m = Mail(tern.wait_delivered("alice@localhost", 1)[0])
    assert m.get("Delivered-To") == "alice+tag@localhost"
    assert m.get("Subject") == "detail"
    assert not (tern.mail_base / "localhost" / "alice+tag").exists()


def test_plus_detail_unknown_base(tern):
    with tern.client() as c:
        c.read_greeting()
        c.ehlo()
        c.dialogue([("MAIL FROM:<%s>" % SENDER, r"^250 "),
                    ("RCPT TO:<nosuch+tag@localhost>", r"^550 5\.1\.1")])


def test_virtual_catch_all_and_exact(tern):
    tern.send("anything@example.org", subject="catch-all")
    tern.send("info@example.org", subject="exact")
    b = Mail(tern.wait_delivered("bob@localhost", 1)[0])
    a = Mail(tern.wait_delivered("alice@localhost", 1)[0])
    assert b.get("Subject") == "catch-all"
    assert a.get("Subject") == "exact"
    tern.wait_queue_empty()
    assert len(tern.messages("bob@localhost")) == 1  # info@ did not also hit the catch-all
    assert len(tern.messages("alice@localhost")) == 1


def test_virtual_domain_without_catch_all(make_tern):
    t = make_tern(virtual=["info@example.org alice@localhost"]).start()
    with t.client() as c:
        c.read_greeting()
        c.ehlo()
        c.dialogue([("MAIL FROM:<%s>" % SENDER, r"^250 "),
                    ("RCPT TO:<info@example.org>", r"^250 "),
                    ("RCPT TO:<other@example.org>", r"^550 5\.1\.1")])


def test_case_insensitive_domain(tern):
    tern.send("ALICE@LocalHost", subject="shouting")
    tern.send("bob@EXAMPLE.ORG", subject="catch-all upper")
    a = Mail(tern.wait_delivered("alice@localhost", 1)[0])
    assert a.get("Subject") == "shouting"
    b = Mail(tern.wait_delivered("bob@localhost", 1)[0])
    assert b.get("Subject") == "catch-all upper"
    assert not (tern.mail_base / "LocalHost").exists()
