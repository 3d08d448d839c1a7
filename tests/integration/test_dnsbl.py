"""
test_dnsbl.py - DNSBL/DNSWL (issue 12, src/filter/dnsbl.h) end to end: tern ->
a DNS server this test runs (tests/unit/dns_server.py's Zone and Server in a
thread, UDP 127.0.0.1, port 0, dns_servers = 127.0.0.1@PORT) serving list
zones under .example.

Clients connect from 127.0.0.2 (listed in some zones) and 127.0.0.3 (listed
nowhere); mynetworks is 127.0.0.1/32 (the harness's), so both are checked.
What is checked: a listed client refused 554 5.7.1 at MAIL, naming the list,
with its TXT record; weights and the threshold; a reply-code filter that does
not match; an allow list (negative weight) offsetting; the rcpt stage; the
cache (a second connection asks the server nothing within the TTL); a
mynetworks client not looked up; a list that never answers counts 0 (fail
open); check-config names a bad site with file:line.
IPv6 (nibbles) and IPv4-mapped clients are covered by tests/unit/test_dnsbl.c
(the harness's listeners are IPv4).
"""

import select
import sys
import threading
import time

import pytest

from tern_harness import REPO, run_tool

sys.path.insert(0, str(REPO / "tests" / "unit"))
import dns_server  # noqa: E402  (tests/unit/dns_server.py)
from dnslib import QTYPE, DNSRecord  # noqa: E402

ZONE = """
$ORIGIN example.
$TTL 300
@            SOA   ns.example. hostmaster.example. 1 3600 600 86400 60
@            NS    ns.example.
ns           A     127.0.0.1
2.0.0.127.bl A     127.0.0.2
2.0.0.127.bl TXT   "Listed by bl; see http://bl.example/q?127.0.0.2"
2.0.0.127.w2 A     127.0.0.4
2.0.0.127.filt A   127.0.0.20
2.0.0.127.wl A     127.0.10.2
bl           A     127.0.0.1
"""


class DNS:
    """The test DNS server in a thread, counting the questions it gets."""

    def __init__(self, drop=()):
        self.srv = dns_server.Server(dns_server.Zone(ZONE), {"drop": list(drop)})
        self.port = self.srv.sock.getsockname()[1]
        self.queries = []
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        srv = self.srv
        while not self.stopping:
            r, _, _ = select.select([srv.sock], [], [], 0.05)
            if not r:
                continue
            data, addr = srv.sock.recvfrom(65535)
            try:
                q = DNSRecord.parse(data).q
                self.queries.append((dns_server.norm(q.qname), QTYPE[q.qtype]))
            except Exception:
                pass
            srv.handle(data, addr)

    def count(self, name, qtype):
        return sum(1 for q in self.queries if q == (dns_server.norm(name), qtype))

    def close(self):
        self.stopping = True
        self.thread.join(5)
        self.srv.sock.close()


@pytest.fixture
def dns():
    d = DNS(drop=["drop.example"])
    yield d
    d.close()


def start(make_tern, dns, **config):
    c = {"dns_servers": "127.0.0.1@%d" % dns.port, "dnsbl_timeout": "1s"}
    c.update(config)
    return make_tern(config=c).start()


def mail_reply(t, source):
    """Greeting, EHLO, MAIL from source; the MAIL reply."""
    with t.client(source=source) as c:
        assert c.read_greeting().code == 220
        c.ehlo()
        return c.cmd("MAIL FROM:<s@example.net>")


def test_listed_refused_naming_the_list(make_tern, dns):
    t = start(make_tern, dns, dnsbl_sites="bl.example")
    r = mail_reply(t, "127.0.0.2")
    assert r.code == 554, r
    assert r.text.startswith("554 5.7.1 "), r
    assert "blocked using bl.example" in r.text, r
    assert "Listed by bl; see http://bl.example/q?127.0.0.2" in r.text, r
    t.wait_log(r"dnsbl session=\S+ client=127\.0\.0\.2 listed score=1 threshold=1 "
               r"lists=bl\.example\*1")
    t.wait_log(r"reject cmd=MAIL reply=\"554 5\.7\.1 .*bl\.example")
    # a client in no list goes on
    assert mail_reply(t, "127.0.0.3").code == 250


def test_weights_threshold_and_reply_filter(make_tern, dns):
    # 2 + 2 reaches 4; the filter of filt.example does not match 127.0.0.20
    t = start(make_tern, dns, dnsbl_threshold="4",
              dnsbl_sites="w2.example*2, bl.example*2, filt.example=127.0.0.[2..11]*5")
    r = mail_reply(t, "127.0.0.2")
    assert r.code == 554 and "blocked using w2.example, bl.example" in r.text, r
    assert "filt.example" not in r.text
    # filt.example alone: its answer is outside the filter -> accepted
    t2 = start(make_tern, dns, dnsbl_sites="filt.example=127.0.0.[2..11]")
    assert mail_reply(t2, "127.0.0.2").code == 250
    # one weight of 2 under a threshold of 3 -> accepted
    t3 = start(make_tern, dns, dnsbl_threshold="3", dnsbl_sites="w2.example*2")
    assert mail_reply(t3, "127.0.0.2").code == 250
    t3.wait_log(r"dnsbl session=\S+ client=127\.0\.0\.2 pass score=2 threshold=3")


def test_allowlist_offsets(make_tern, dns):
    t = start(make_tern, dns, dnsbl_threshold="3",
              dnsbl_sites="bl.example*3, wl.example=127.0.[0..255].[1..3]*-5")
    assert mail_reply(t, "127.0.0.2").code == 250
    t.wait_log(r"dnsbl session=\S+ client=127\.0\.0\.2 pass score=-2 threshold=3 "
               r"lists=bl\.example\*3,wl\.example\*-5")


def test_rcpt_stage(make_tern, dns):
    t = start(make_tern, dns, dnsbl_sites="bl.example", dnsbl_stage="rcpt")
    with t.client(source="127.0.0.2") as c:
        assert c.read_greeting().code == 220
        c.ehlo()
        assert c.cmd("MAIL FROM:<s@example.net>").code == 250
        r = c.cmd("RCPT TO:<alice@localhost>")
        assert r.code == 554 and "bl.example" in r.text, r
        r = c.cmd("RCPT TO:<alice@localhost>")  # looked up once, refused at each
        assert r.code == 554, r
    assert dns.count("2.0.0.127.bl.example", "A") == 1
    with t.client(source="127.0.0.3") as c:
        c.read_greeting()
        c.ehlo()
        c.cmd("MAIL FROM:<s@example.net>")
        assert c.cmd("RCPT TO:<alice@localhost>").code == 250


def test_cache_within_ttl(make_tern, dns):
    t = start(make_tern, dns, dnsbl_sites="bl.example")
    for _ in range(3):
        assert mail_reply(t, "127.0.0.2").code == 554
        assert mail_reply(t, "127.0.0.3").code == 250
    assert dns.count("2.0.0.127.bl.example", "A") == 1
    assert dns.count("2.0.0.127.bl.example", "TXT") == 1
    assert dns.count("3.0.0.127.bl.example", "A") == 1  # NXDOMAIN, cached by its SOA


def test_mynetworks_not_checked(make_tern, dns):
    t = start(make_tern, dns, dnsbl_sites="bl.example", mynetworks="127.0.0.0/8")
    assert mail_reply(t, "127.0.0.2").code == 250
    assert dns.count("2.0.0.127.bl.example", "A") == 0


def test_timeout_fails_open(make_tern, dns):
    t = start(make_tern, dns, dnsbl_sites="drop.example*5, bl.example",
              dnsbl_threshold="5")
    # a client that leaves while the lists are asked: the lookup is dropped
    c = t.client(source="127.0.0.2")
    c.close()
    t0 = time.monotonic()
    r = mail_reply(t, "127.0.0.2")
    assert r.code == 250, r  # drop.example counts 0; bl.example's 1 < 5
    assert time.monotonic() - t0 < 5
    t.wait_log(r"dnsbl session=\S+ client=127\.0\.0\.2 zone=drop\.example lookup failed "
               r"\(.*\): counts 0")


def test_check_config_bad_site(make_tern, dns):
    t = make_tern(config={"dnsbl_sites": "bl.example=127.0.0.[9..2]"})
    r = run_tool(t, "check-config")
    assert r.returncode != 0
    assert "tern.conf:" in r.stderr and "dnsbl_sites: dnsbl site \"bl.example=127.0.0.[9..2]\"" \
        in r.stderr, r.stderr
    t2 = make_tern(config={"dnsbl_stage": "helo"})
    r = run_tool(t2, "check-config")
    assert r.returncode != 0 and "must be connect or rcpt" in r.stderr, r.stderr
