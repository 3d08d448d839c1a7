"""
test_limits.py - configurable limits: message size (RFC 1870), text line
length (RFC 5321 §4.5.3.1.6), recipients per message (§4.5.3.1.8), sessions
in total and per client IP, the command timeout (§4.5.3.2.7).
"""

import re
import socket
import time

from tern_harness import check_enhanced, tf

SENDER = "sender@example.com"
LIMIT = 100 * 1024


def start_txn(c, rcpt="alice@localhost"):
    c.dialogue([("MAIL FROM:<%s>" % SENDER, r"^250 "), ("RCPT TO:<%s>" % rcpt, r"^250 "),
                ("DATA", r"^354 ")])


def test_size_limit(make_tern):
    t = make_tern(config={"message_size_limit": "100k"}).start()
    with t.client() as c:
        c.read_greeting()
        r = c.ehlo()
        assert re.search(r"^250[ -]SIZE %d$" % LIMIT, r.text, re.M), r.text
        # declared size over the limit
        c.expect("MAIL FROM:<%s> SIZE=%d" % (SENDER, LIMIT + 1000), r"^552 5\.3\.4")
        # declared size within: fine
        c.expect("MAIL FROM:<%s> SIZE=%d" % (SENDER, 1000), r"^250 ")
        c.expect("RSET", r"^250 ")
        # actual body over the limit: 552 5.3.4 after the final dot
        start_txn(c)
        line = "y" * 98 + "\r\n"
        c.send("Subject: too big\r\n\r\n" + line * (LIMIT // 100 + 200) + ".\r\n")
        r = c.reply()
        assert re.match(r"^552 5\.3\.4", r.text), r
        # the session continues
        c.expect("NOOP", r"^250 ")
        start_txn(c)
        c.send("Subject: small\r\n\r\nsmall\r\n.\r\n")
        r = c.reply()
        assert r.code == 250, r
        c.expect("QUIT", r"^221 ")
        check_enhanced(c.replies)
    files = t.wait_delivered("alice@localhost", 1)
    t.wait_queue_empty()
    files = t.messages("alice@localhost")
    assert len(files) == 1 and b"Subject: small" in files[0].read_bytes()


def test_size_limit_bdat(make_tern):
    t = make_tern(config={"message_size_limit": "100k"}).start()
    with t.client() as c:
        c.read_greeting()
        c.ehlo()
        c.dialogue([("MAIL FROM:<%s>" % SENDER, r"^250 "),
                    ("RCPT TO:<alice@localhost>", r"^250 ")])
        data = b"Subject: big\r\n\r\n" + b"z" * 98 + b"\r\n"
        data = data * (LIMIT // 100 + 200)
        c.send(b"BDAT %d LAST\r\n" % len(data) + data)
        r = c.reply()
        assert re.match(r"^552 5\.3\.4", r.text), r
        c.expect("NOOP", r"^250 ")
    # nothing was committed (a 250 would have come after the commit)
    assert t.messages("alice@localhost") == []
    assert t.queue_files() == []


def test_data_line_too_long(tern):
    with tern.client() as c:
        c.read_greeting()
        c.ehlo()
        start_txn(c)
        c.send("Subject: long line\r\n\r\nshort\r\n" + "L" * 1200 + "\r\nmore\r\n.\r\n")
        r = c.reply()
        assert 500 <= r.code < 600, r
        # 998 + CRLF = 1000 octets is allowed
        c.expect("NOOP", r"^250 ")
        start_txn(c, "bob@localhost")
        c.send("Subject: max line\r\n\r\n" + "M" * 998 + "\r\n.\r\n")
        r = c.reply()
        assert r.code == 250, r
        c.expect("QUIT", r"^221 ")
        check_enhanced(c.replies)
    tern.wait_delivered("bob@localhost", 1)
    tern.wait_queue_empty()
    assert tern.messages("alice@localhost") == []


def test_recipient_limit(tern):
    """max_recipients = 100: the 101st RCPT gets 452 4.5.3 (RFC 5321 §4.5.3.1.10)."""
    with tern.client() as c:
        c.read_greeting()
        c.ehlo()
        batch = "MAIL FROM:<%s>\r\n" % SENDER
        batch += "".join("RCPT TO:<alice+r%d@localhost>\r\n" % i for i in range(101))
        c.send(batch)
        replies = [c.reply() for _ in range(102)]
        assert replies[0].code == 250
        codes = [r.code for r in replies[1:]]
        assert codes[:100] == [250] * 100, codes
        assert re.match(r"^452 4\.5\.3", replies[101].text), replies[101]
        # the first 100 are still there: DATA works
        c.expect("DATA", r"^354 ")
        c.send("Subject: many\r\n\r\nmany\r\n.\r\n")
        r = c.reply()
        assert r.code == 250, r
        c.expect("QUIT", r"^221 ")
        check_enhanced(c.replies)
    # 100 recipients that all map to alice's Maildir (+detail): 100 files
    files = tern.wait_delivered("alice@localhost", 100, timeout=20)
    assert len(files) == 100


def connect(port, source="127.0.0.1"):
    s = socket.socket()
    s.settimeout(tf(5))
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def read_line(s):
    buf = b""
    while not buf.endswith(b"\r\n"):
        ch = s.recv(1)
        if not ch:
            break
        buf += ch
    return buf.decode("utf-8", "replace")


def closed(s, timeout=5):
    s.settimeout(tf(timeout))
    try:
        while True:
            d = s.recv(4096)
            if not d:
                return True
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


def test_session_limits(make_tern):
    # nobody exempt from the per-IP limit (127.0.0.1 is in the test mynetworks)
    t = make_tern(config={"max_sessions_per_ip": "3", "max_sessions": "5",
                          "client_limit_exceptions": ""}).start()
    socks = []
    try:
        for _ in range(3):
            s = connect(t.port)
            socks.append(s)
            assert read_line(s).startswith("220 "), "first three from 127.0.0.1 welcome"
        s = connect(t.port)
        line = read_line(s)
        assert re.match(r"^421 4\.7\.0", line), line
        assert closed(s)
        s.close()
        # another client IP still gets in, up to the total of 5
        for _ in range(2):
            s = connect(t.port, "127.0.0.2")
            socks.append(s)
            assert read_line(s).startswith("220 ")
        s = connect(t.port, "127.0.0.3")
        line = read_line(s)
        assert re.match(r"^421 4\.\d\.\d", line), "total limit: %r" % line
        assert closed(s)
        s.close()
        # when one leaves, a new one gets in
        socks[0].sendall(b"QUIT\r\n")
        assert read_line(socks[0]).startswith("221 ")
        socks[0].close()
        deadline = time.monotonic() + tf(5)
        while True:
            s = connect(t.port)
            line = read_line(s)
            if line.startswith("220 "):
                socks[0] = s
                break
            s.close()
            assert time.monotonic() < deadline, "no slot freed after QUIT: %r" % line
            time.sleep(0.1)
    finally:
        for s in socks:
            s.close()


def open_greeted(port, n, source):
    """n sessions from source; returns (sockets, first lines)."""
    socks = [connect(port, source) for _ in range(n)]
    return socks, [read_line(s) for s in socks]


def test_mynetworks_exempt_from_per_ip_limit(make_tern):
    """Issue 11.11: clients in mynetworks (127.0.0.1 in the test config) are
    not held to max_sessions_per_ip, as Postfix's default
    smtpd_client_event_limit_exceptions = $mynetworks; 127.0.0.2 (outside
    it) still is; max_sessions applies to everyone."""
    t = make_tern(config={"max_sessions_per_ip": "3", "max_sessions": "12"}).start()
    socks = []
    try:
        s1, lines = open_greeted(t.port, 8, "127.0.0.1")
        socks += s1
        assert all(l.startswith("220 ") for l in lines), lines
        s2, lines = open_greeted(t.port, 4, "127.0.0.2")
        socks += s2
        assert [l[:3] for l in lines] == ["220"] * 3 + ["421"], lines
        assert re.match(r"^421 4\.7\.0 .*too many connections from", lines[3]), lines
        # 11 held: one more from 127.0.0.1 fits, the next hits max_sessions
        s3, lines = open_greeted(t.port, 2, "127.0.0.1")
        socks += s3
        assert lines[0].startswith("220 "), lines
        assert re.match(r"^421 4\.7\.0 .*too many connections; try again", lines[1]), lines
    finally:
        for s in socks:
            s.close()


def test_client_limit_exceptions_key(make_tern):
    """client_limit_exceptions replaces the default: here 127.0.0.2 is
    exempt and 127.0.0.1 (in mynetworks) is not."""
    t = make_tern(config={"max_sessions_per_ip": "2",
                          "client_limit_exceptions": "127.0.0.2/32"}).start()
    socks = []
    try:
        s1, lines = open_greeted(t.port, 3, "127.0.0.1")
        socks += s1
        assert [l[:3] for l in lines] == ["220", "220", "421"], lines
        s2, lines = open_greeted(t.port, 5, "127.0.0.2")
        socks += s2
        assert all(l.startswith("220 ") for l in lines), lines
    finally:
        for s in socks:
            s.close()


def test_idle_timeout(make_tern):
    t = make_tern(config={"timeout_command": "2s"}).start()
    with t.client() as c:
        c.read_greeting()
        c.ehlo()
        t0 = time.monotonic()
        c.sock.settimeout(tf(8))
        r = c.reply()
        waited = time.monotonic() - t0
        assert re.match(r"^421 4\.4\.2", r.text), r
        assert 1.5 <= waited <= tf(6), waited
        assert c.at_eof(tf(3))


def test_data_timeout(make_tern):
    """timeout_data: a client that stalls inside DATA gets 421 4.4.2 and is
    dropped; the half-received message is never delivered."""
    t = make_tern(config={"timeout_data": "2s", "timeout_command": "30s"}).start()
    with t.client() as c:
        c.read_greeting()
        c.ehlo()
        start_txn(c)
        c.send("Subject: stalled\r\n\r\npart of a body\r\n")
        t0 = time.monotonic()
        c.sock.settimeout(tf(8))
        r = c.reply()
        waited = time.monotonic() - t0
        assert re.match(r"^421 4\.4\.2", r.text), r
        assert 1.5 <= waited <= tf(6), waited
        assert c.at_eof(tf(3))
    t.wait_log(r"disconnect session=")
    assert t.messages("alice@localhost") == []
    assert t.queue_files() == []


def test_hop_limit(make_tern):
    """RFC 5321 §6.3: too many Received: fields is a mail loop: 554 5.4.6.
    Only fields of the header section count (not "Received:" in the body)."""
    t = make_tern(config={"max_hops": "5"}).start()
    hop = "Received: from a.example by b.example; Sat, 28 Nov 2026 13:00:00 +0000\r\n"
    with t.client() as c:
        c.read_greeting()
        c.ehlo()
        start_txn(c)
        c.send(hop * 5 + "received:\tfolded\r\n from c.example\r\nSubject: loop\r\n\r\nx\r\n.\r\n")
        r = c.reply()
        assert re.match(r"^554 5\.4\.6", r.text), r
        start_txn(c)
        c.send(hop * 5 + "Subject: fine\r\n\r\n" + hop * 20 + ".\r\n")
        r = c.reply()
        assert r.code == 250, r
        c.expect("QUIT", r"^221 ")
    t.wait_delivered("alice@localhost", 1)
    t.wait_log(r"reject cmd=DATA reply=\"554 5\.4\.6")
