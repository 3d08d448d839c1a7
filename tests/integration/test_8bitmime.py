"""
test_8bitmime.py - 8-bit mail to a next hop that does not offer 8BITMIME
(RFC 6152 §3, issue 11.8): tern converts the 8-bit MIME parts to
quoted-printable (src/deliver/mime8to7.c), as Postfix does, and returns
what cannot be converted (8-bit header fields) with 5.6.3.

The peer is aiosmtpd with 8BITMIME taken out of its EHLO reply; Python's
email package decodes what it receives. A peer that offers 8BITMIME gets
the message unchanged.
"""

import email
import email.policy
import re
import socket
import time

import pytest

from tern_harness import tf

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")

SENDER = "alice@localhost"  # a DSN comes back to a local Maildir

TEXT = "Grüße aus Köln: 3 € = 3 Euro, naïve café.\r\n" * 3
HTML = "<p>" + "Ünïcödé " * 20 + "</p>\r\n"  # a long 8-bit line: soft breaks


class Sink:
    def __init__(self, eightbit):
        self.eightbit = eightbit
        self.messages = []
        self.ehlo = []

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if not self.eightbit:
            responses = [r for r in responses if "8BITMIME" not in r.upper()]
        self.ehlo = responses
        return responses

    async def handle_DATA(self, server, session, envelope):
        self.messages.append({"mail_options": list(envelope.mail_options),
                              "data": envelope.original_content})
        return "250 2.0.0 Ok: sunk"


def nl(s):
    return s.replace("\r\n", "\n")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def peer():
    started = []

    def start(eightbit):
        sink = Sink(eightbit)
        port = free_port()
        c = aiosmtpd_controller.Controller(sink, hostname="127.0.0.1", port=port)
        c.start()
        started.append(c)
        return sink, port

    yield start
    for c in started:
        c.stop()


def relay(make_tern, port):
    return make_tern(config={"relayhost": "[127.0.0.1]:%d" % port, "retry_min": "1h",
                             "retry_max": "2h"}).start()


def wait_sunk(sink, n=1, timeout=15):
    deadline = time.monotonic() + tf(timeout)
    while len(sink.messages) < n:
        assert time.monotonic() < deadline, "the peer got %d messages" % len(sink.messages)
        time.sleep(0.05)
    return sink.messages


def multipart_8bit():
    b = "=_b1"
    return ("From: <%s>\r\nTo: <bob@far.example>\r\nSubject: eight bit\r\n"
            "Message-ID: <8bit@test.example>\r\nDate: Sat, 28 Nov 2026 13:31:00 +0000\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n"
            "--%s\r\n"
            "Content-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n"
            "--inner\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
            "%s"
            "--inner\r\n"
            "Content-Type: text/html; charset=utf-8\r\n\r\n"
            "%s"
            "--inner--\r\n"
            "--%s\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
            "plain ascii part\r\n"
            "--%s--\r\n" % (SENDER, b, b, TEXT, HTML, b, b)).encode("utf-8")


def test_8bit_converted_for_peer_without_8bitmime(make_tern, peer):
    sink, port = peer(eightbit=False)
    t = relay(make_tern, port)
    t.send("bob@far.example", sender=SENDER, msg=multipart_8bit(), mail_options=["BODY=8BITMIME"])
    m = wait_sunk(sink)[0]
    data = m["data"]
    assert not any(o for o in m["mail_options"] if "8BITMIME" in o.upper()), m["mail_options"]
    assert max(data) < 0x80, "8-bit octets reached a peer without 8BITMIME"
    assert all(len(l) <= 998 for l in data.split(b"\r\n"))
    msg = email.message_from_bytes(data, policy=email.policy.default)
    leaves = [p for p in msg.walk() if not p.is_multipart()]
    assert len(leaves) == 3, [p.get_content_type() for p in leaves]
    assert leaves[0]["Content-Transfer-Encoding"] == "quoted-printable"
    assert leaves[1]["Content-Transfer-Encoding"] == "quoted-printable"
    # the CRLF before a boundary belongs to the boundary (RFC 2046 §5.1.1)
    assert nl(leaves[0].get_content()) == nl(TEXT[:-2])
    assert nl(leaves[1].get_content()) == nl(HTML[:-2])
    assert nl(leaves[2].get_content()) == "plain ascii part"
    # and exactly what Python reads in the original, part for part
    orig = email.message_from_bytes(multipart_8bit(), policy=email.policy.default)
    orig_leaves = [p for p in orig.walk() if not p.is_multipart()]
    for a, b in zip(leaves, orig_leaves):
        assert nl(a.get_content()) == nl(b.get_content())
    # the ASCII part is untouched, no encoding header added to it
    assert leaves[2]["Content-Transfer-Encoding"] is None
    assert msg["Subject"] == "eight bit"
    assert not msg.defects and all(not p.defects for p in msg.walk())
    t.wait_log(r"does not offer 8BITMIME: 8-bit content sent as quoted-printable")
    t.wait_log(r"to=<bob@far\.example> .*status=sent")


def test_8bit_single_part_without_mime(make_tern, peer):
    """No MIME at all (plain 8-bit text): made a MIME quoted-printable
    message (MIME-Version added), which decodes back."""
    sink, port = peer(eightbit=False)
    t = relay(make_tern, port)
    body = "naïve café\r\n"
    msg = ("From: <%s>\r\nTo: <bob@far.example>\r\nSubject: raw\r\n\r\n%s" % (SENDER, body))
    t.send("bob@far.example", sender=SENDER, msg=msg.encode("utf-8"))
    data = wait_sunk(sink)[0]["data"]
    assert max(data) < 0x80
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert parsed["MIME-Version"] == "1.0"
    assert parsed.get_payload(decode=True) == body.encode("utf-8")


def test_8bit_unchanged_for_peer_with_8bitmime(make_tern, peer):
    sink, port = peer(eightbit=True)
    t = relay(make_tern, port)
    raw = multipart_8bit()
    t.send("bob@far.example", sender=SENDER, msg=raw, mail_options=["BODY=8BITMIME"])
    m = wait_sunk(sink)[0]
    assert "BODY=8BITMIME" in [o.upper() for o in m["mail_options"]], m["mail_options"]
    assert raw in m["data"]  # after tern's Received header, byte for byte


def test_8bit_header_bounced(make_tern, peer):
    """8-bit in a header field cannot be made 7-bit: 5.6.3 (RFC 6152 §3),
    a DSN to the sender, and the peer gets nothing."""
    sink, port = peer(eightbit=False)
    t = relay(make_tern, port)
    msg = ("From: <%s>\r\nTo: <bob@far.example>\r\nSubject: Grüße\r\n\r\nbody\r\n" % SENDER)
    t.send("bob@far.example", sender=SENDER, msg=msg.encode("utf-8"))
    t.wait_log(r"to=<bob@far\.example> .*status=bounced.*5\.6\.3.*8BITMIME")
    files = t.wait_delivered("alice@localhost", 1)
    assert b"5.6.3" in files[0].read_bytes()
    assert sink.messages == []
    assert re.search(r"cannot be converted to 7 bit", t.log)
