"""
test_mx.py - outbound MX routing end to end: tern -> a real DNS server -> real
SMTP peers (issue 3).

Setup, per test:
  - a DNS server (tests/unit/dns_server.py's Zone and Server, run in a thread of
    this process so that a test can change its behaviour while tern runs) on
    UDP 127.0.0.1, port 0; tern gets dns_servers = 127.0.0.1@PORT. Names are
    under .example (libunbound answers .test itself, RFC 6761).
  - SMTP peers (aiosmtpd, or scripted: 421 greeting, accept-and-say-nothing)
    on 127.0.0.2, 127.0.0.3, ... all on one port P, and tern gets
    smtp_port = P. An address without a peer has a bound socket that does not
    listen, so connecting to it is refused.
  - short timeouts (dns_timeout, smtp_connect_timeout, smtp_command_timeout)
    and retry_min = 1s, so every test takes seconds.

What is checked: preference order; the next MX within the same attempt after
a refused connection or a 421 greeting; equal preferences shuffled; every
address of a host before the next host; implicit MX; null MX (556 5.1.10),
NXDOMAIN (550 5.1.2) bounced with a DSN to the (local) sender; SERVFAIL and
DNS timeouts deferred, and delivered once DNS is fixed; the event loop keeps
serving SMTP during a slow lookup; an MX that is ourselves (by name or by
address) is a 554 5.4.6 bounce, never a connection to ourselves; a dead
domain does not delay a live one; the TTL of cached answers; a 4xx to MAIL, RCPT or the end of data moves on
to the next MX in the same attempt, a 5xx does not, up to
smtp_mx_session_limit servers; an unreachable host is remembered
(smtp_dead_host_time) and skipped by another domain that shares it, or its
mail deferred at once with the remembered reason.
"""

import asyncio
import re
import select
import socket
import sys
import threading
import time

import pytest

from tern_harness import REPO, Mail, tf

sys.path.insert(0, str(REPO / "tests" / "unit"))
import dns_server  # noqa: E402  (tests/unit/dns_server.py)

from aiosmtpd.smtp import SMTP as AioSMTP  # noqa: E402
from dnslib import QTYPE, DNSRecord  # noqa: E402

SENDER = "alice@localhost"  # local: a DSN lands in alice's Maildir

ZONE = """
$ORIGIN example.
$TTL 300
@               SOA   ns.example. hostmaster.example. 1 3600 600 86400 60
@               NS    ns.example.
ns              A     127.0.0.1

pref            MX    10 mx1.pref
pref            MX    20 mx2.pref
mx1.pref        A     127.0.0.2
mx2.pref        A     127.0.0.3

; h1 has two addresses, the first one dead: both before h2
twoaddr         MX    10 h1.twoaddr
twoaddr         MX    20 h2.twoaddr
h1.twoaddr      A     127.0.0.4
h1.twoaddr      A     127.0.0.2
h2.twoaddr      A     127.0.0.3
; h1 has two dead addresses: both are tried, then h2
twodead         MX    10 h1.twodead
twodead         MX    20 h2.twodead
h1.twodead      A     127.0.0.4
h1.twodead      A     127.0.0.5
h2.twodead      A     127.0.0.3

implicit        A     127.0.0.2
nullmx          MX    0 .

; answers SERVFAIL while the test says so
sf              MX    10 mx1.pref

selfname        MX    10 tern.test.
selfaddr        MX    10 me.selfaddr
me.selfaddr     A     127.0.0.1
me6.selfaddr     AAAA  ::1
selfwild        MX    10 me6.selfaddr
; we are the backup MX: the primary gets the mail
selfbackup      MX    10 mx1.pref
selfbackup      MX    20 tern.test.

dead            MX    10 mx.dead
mx.dead         A     127.0.0.5
; other domains sharing the MX hosts of pref and dead (smtp_dead_host_time)
pref2           MX    10 mx1.pref
pref2           MX    20 mx2.pref
dead2           MX    10 mx.dead
; three preferences (smtp_mx_session_limit)
three           MX    10 a.three
three           MX    20 b.three
three           MX    30 c.three
a.three         A     127.0.0.2
b.three         A     127.0.0.3
c.three         A     127.0.0.4
blackholed      MX    10 mx.blackholed
mx.blackholed   A     127.0.0.6
live            MX    10 mx1.pref

ttl1            1     MX    10 mx.ttl1
mx.ttl1         1     A     127.0.0.2
"""
for _i in range(1, 21):
    ZONE += "eq%d MX 10 a.eq\neq%d MX 10 b.eq\n" % (_i, _i)
ZONE += "a.eq A 127.0.0.2\nb.eq A 127.0.0.3\n"

PEER_ADDRS = ["127.0.0.%d" % i for i in range(2, 7)]


# ---------------------------------------------------------------- DNS


class DNS:
    """The test DNS server in a thread; servfail/drop lists may change at any time."""

    def __init__(self, zone=ZONE, servfail=(), drop=()):
        self.srv = dns_server.Server(dns_server.Zone(zone),
                                     {"servfail": list(servfail), "drop": list(drop)})
        self.port = self.srv.sock.getsockname()[1]
        self.queries = []  # (name, type) in arrival order
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        srv = self.srv
        while not self.stopping:
            now = time.monotonic()
            for p in [p for p in srv.pending if p[0] <= now]:
                srv.pending.remove(p)
                srv.sock.sendto(p[1], p[2])
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

    def set_servfail(self, names):
        self.srv.servfail = [dns_server.norm(n) for n in names]

    def set_drop(self, names):
        self.srv.drop = [dns_server.norm(n) for n in names]

    def count(self, name, qtype):
        return sum(1 for q in self.queries if q == (dns_server.norm(name), qtype))

    def close(self):
        self.stopping = True
        self.thread.join(5)
        self.srv.sock.close()


# ---------------------------------------------------------------- SMTP peers


class Recorder:
    """aiosmtpd handler: every message received, with the address it came to."""

    def __init__(self, peers, addr):
        self.peers = peers
        self.addr = addr

    async def handle_DATA(self, server, session, envelope):
        self.peers.received.append({
            "addr": self.addr,
            "from": envelope.mail_from,
            "to": list(envelope.rcpt_tos),
            "data": envelope.original_content or envelope.content,
        })
        return "250 2.0.0 Ok: stored"


class RefuseMail(Recorder):
    """aiosmtpd handler: MAIL (or every RCPT, or DATA) gets reply (a 4xx or
    5xx), so nothing arrives."""

    def __init__(self, peers, addr, reply, stage="MAIL"):
        super().__init__(peers, addr)
        self.reply = reply
        self.stage = stage

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.stage != "MAIL":
            envelope.mail_from = address
            return "250 2.1.0 Ok"
        self.peers.mail_refused.append(self.addr)
        return self.reply

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.stage != "RCPT":
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 Ok"
        self.peers.mail_refused.append(self.addr)
        return self.reply

    async def handle_DATA(self, server, session, envelope):
        self.peers.mail_refused.append(self.addr)
        return self.reply


class Say421(asyncio.Protocol):
    def connection_made(self, transport):
        transport.write(b"421 4.3.2 mx busy, try another\r\n")
        transport.close()


class Silent(asyncio.Protocol):
    """Accepts the connection and never says a word (a dead server)."""


class Peers:
    """SMTP peers on 127.0.0.2, 127.0.0.3, ... all on one port.

    Each address holds a socket bound to (addr, port): listening with a peer
    behind it, or not listening (connections are refused). The port is picked
    by binding port 0 on the first address and reusing the number on the
    others (another port when one of them is taken)."""

    def __init__(self, addrs=PEER_ADDRS):
        self.addrs = list(addrs)
        self.received = []
        self.mail_refused = []
        self.connections = {a: 0 for a in self.addrs}
        self.servers = {}
        self.transports = set()
        for _ in range(50):
            self.socks = {}
            try:
                for a in self.addrs:
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    self.socks[a] = s
                    s.bind((a, 0 if a == self.addrs[0] else self.port))
                    if a == self.addrs[0]:
                        self.port = s.getsockname()[1]
                break
            except OSError:
                for s in self.socks.values():
                    s.close()
        else:
            raise AssertionError("no port free on all of %s" % self.addrs)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def start(self, addr, mode="accept", name=None):
        """mode: accept (aiosmtpd), 421 (greeting 421, close), silent (never answers)."""
        sock = self.socks.pop(addr)
        sock.listen(64)
        sock.setblocking(False)
        peers = self

        def factory():
            peers.connections[addr] += 1
            if mode == "accept":
                p = AioSMTP(Recorder(peers, addr), hostname=name or "peer-" + addr,
                            loop=peers.loop)
            elif mode in ("mail451", "mail550", "rcpt451", "data451"):
                reply = "550 5.7.1 not from you" if mode == "mail550" else "451 4.3.0 not now"
                p = AioSMTP(RefuseMail(peers, addr, reply, mode[:4].upper()),
                            hostname="peer-" + addr, loop=peers.loop)
            elif mode == "421":
                p = Say421()
            else:
                p = Silent()
            made = p.connection_made

            def connection_made(transport):
                peers.transports.add(transport)
                made(transport)
            p.connection_made = connection_made
            return p

        async def go():
            return await self.loop.create_server(factory, sock=sock)
        self.servers[addr] = self._call(go())

    def blackhole(self, addr):
        """SYNs to addr go unanswered: a listening socket whose accept queue
        (backlog 0: one connection) is full and is never accepted from."""
        sock = self.socks.pop(addr)
        sock.listen(0)
        self.servers[addr] = None
        filler = socket.create_connection((addr, self.port), timeout=2)
        self.fillers = getattr(self, "fillers", []) + [filler, sock]
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        probe.settimeout(0.1)
        try:
            with pytest.raises(OSError):
                probe.connect((addr, self.port))
        finally:
            probe.close()

    def stop(self, addr):
        """Close the peer and its connections; the address then refuses connections."""
        server = self.servers.pop(addr)

        async def go():
            server.close()
            for t in list(self.transports):
                if t.get_extra_info("sockname", ("",))[0] == addr:
                    t.abort()
                    self.transports.discard(t)
            await server.wait_closed()
        self._call(go())
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, self.port))
        self.socks[addr] = s

    def wait(self, n, timeout=10):
        """Wait until n messages have arrived in all; return them."""
        deadline = time.monotonic() + tf(timeout)
        while len(self.received) < n:
            assert time.monotonic() < deadline, "peers received %d messages, expected %d: %r" % (
                len(self.received), n, self.received)
            time.sleep(0.02)
        return list(self.received)

    def close(self):
        for a in [a for a, s in self.servers.items() if s is not None]:
            self.stop(a)
        for s in getattr(self, "fillers", []):
            s.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
        for s in self.socks.values():
            s.close()


# ---------------------------------------------------------------- fixtures


class MXEnv:
    def __init__(self, make_tern):
        self.make_tern = make_tern
        self.dns = DNS()
        self.peers = Peers()

    def tern(self, **config):
        c = {
            "dns_servers": "127.0.0.1@%d" % self.dns.port,
            "dns_timeout": "2s",
            "smtp_port": str(self.peers.port),
            "smtp_connect_timeout": "1s",
            "smtp_command_timeout": "2s",
            "retry_min": "1s",
            "retry_max": "2s",
        }
        c.update(config)
        return self.make_tern(config=c).start()

    def close(self):
        self.peers.close()
        self.dns.close()


@pytest.fixture
def mx(make_tern):
    env = MXEnv(make_tern)
    yield env
    env.close()


def rcpt_line(t, qid, rcpt, status, timeout=10):
    """The log line with the outcome of rcpt in message qid."""
    return t.wait_log(r"%s: to=<%s> relay=(\S+) delay=\S+ attempts=(\d+) status=%s \((.*)\)"
                      % (qid, re.escape(rcpt), status), timeout=timeout)


def dsn_for(t, qid, code, timeout=10):
    """The DSN about qid in the sender's (alice's) Maildir, mentioning code."""
    deadline = time.monotonic() + tf(timeout)
    while True:
        for p in t.messages(SENDER):
            m = Mail(p)
            if qid in m.raw.decode("utf-8", "replace"):
                assert code in m.raw.decode("utf-8", "replace"), m.raw
                return m
        assert time.monotonic() < deadline, "no DSN for %s in %s:\n%s" % (qid, SENDER, t.tail())
        time.sleep(0.05)


# ---------------------------------------------------------------- tests


def test_preference_order(mx):
    mx.peers.start("127.0.0.2")
    mx.peers.start("127.0.0.3")
    t = mx.tern()
    qid = t.send("u@pref.example", sender=SENDER)
    got = mx.peers.wait(1)
    assert got[0]["addr"] == "127.0.0.2" and got[0]["to"] == ["u@pref.example"]
    m = rcpt_line(t, qid, "u@pref.example", "sent")
    assert m.group(1) == "mx1.pref.example[127.0.0.2]:%d" % mx.peers.port, m.group(0)
    assert qid.encode() in got[0]["data"]  # our Received header

    # the best MX goes away: the next one, in the same attempt
    mx.peers.stop("127.0.0.2")
    qid2 = t.send("v@pref.example", sender=SENDER)
    got = mx.peers.wait(2)
    assert got[1]["addr"] == "127.0.0.3" and got[1]["to"] == ["v@pref.example"]
    m = rcpt_line(t, qid2, "v@pref.example", "sent")
    assert m.group(1).startswith("mx2.pref.example[127.0.0.3]") and m.group(2) == "1", m.group(0)
    assert re.search(r"outbound: mx1\.pref\.example\[127\.0\.0\.2\]:\d+: 451 4\.4\.1 connect to .*"
                     r"(refused|ECONNREFUSED)", t.log, re.I), t.tail()


def test_next_mx_after_421_greeting(mx):
    mx.peers.start("127.0.0.2", "421")
    mx.peers.start("127.0.0.3")
    t = mx.tern()
    qid = t.send("u@pref.example", sender=SENDER)
    got = mx.peers.wait(1)
    assert got[0]["addr"] == "127.0.0.3"
    m = rcpt_line(t, qid, "u@pref.example", "sent")
    assert m.group(2) == "1", m.group(0)
    assert mx.peers.connections["127.0.0.2"] == 1
    assert re.search(r"outbound: mx1\.pref\.example\[127\.0\.0\.2\]:\d+: 421 4\.3\.2 mx busy", t.log)


def test_all_mx_down_defers_then_delivers(mx):
    """Every MX refuses: deferred (451 4.4.1); a peer comes up: the retry delivers."""
    t = mx.tern()
    qid = t.send("u@pref.example", sender=SENDER)
    m = rcpt_line(t, qid, "u@pref.example", "deferred")
    assert m.group(3).startswith("451 4.4.1"), m.group(0)
    mx.peers.start("127.0.0.3")
    got = mx.peers.wait(1, timeout=8)
    assert got[0]["addr"] == "127.0.0.3"
    rcpt_line(t, qid, "u@pref.example", "sent")
    t.wait_queue_empty()


def test_dead_host_skipped_by_another_destination(mx):
    """smtp_dead_host_time: the best MX never greets (timeout); the next
    message, to another domain with the same MX hosts, skips it at once."""
    mx.peers.start("127.0.0.2", "silent")
    mx.peers.start("127.0.0.3")
    t = mx.tern(smtp_dead_host_time="60s")
    qid = t.send("u@pref.example", sender=SENDER)
    m = rcpt_line(t, qid, "u@pref.example", "sent", timeout=15)
    assert m.group(1).startswith("mx2.pref.example[127.0.0.3]"), m.group(0)
    assert mx.peers.connections["127.0.0.2"] == 1
    start = time.monotonic()
    qid2 = t.send("v@pref2.example", sender=SENDER)
    m = rcpt_line(t, qid2, "v@pref2.example", "sent")
    took = time.monotonic() - start
    assert m.group(1).startswith("mx2.pref.example[127.0.0.3]") and m.group(2) == "1", m.group(0)
    assert mx.peers.connections["127.0.0.2"] == 1  # no new connection to the dead host
    assert took < tf(1.5), took  # the greeting timeout is 2 s
    assert re.search(r"outbound: pref2\.example: mx1\.pref\.example not tried "
                     r"\(smtp_dead_host_time\): 451 4\.4\.1 host 127\.0\.0\.2 port \d+ was "
                     r"unreachable \d+ s ago: timeout with mx1\.pref\.example", t.log), t.tail()


def test_dead_host_defers_with_the_remembered_reason(mx):
    """Every MX of a second domain is remembered dead: deferred without a
    connection, with the first failure's reason; once the time is over it
    is tried again (and delivered)."""
    t = mx.tern(smtp_dead_host_time="3s")
    qid = t.send("u@dead.example", sender=SENDER)
    m = rcpt_line(t, qid, "u@dead.example", "deferred")
    assert m.group(3).startswith("451 4.4.1 connect to mx.dead.example[127.0.0.5]"), m.group(0)
    qid2 = t.send("v@dead2.example", sender=SENDER)
    m = rcpt_line(t, qid2, "v@dead2.example", "deferred")
    assert re.match(r"451 4\.4\.1 host 127\.0\.0\.5 port \d+ was unreachable \d+ s ago: "
                    r"connect to mx\.dead\.example\[127\.0\.0\.5\]:\d+: connection refused",
                    m.group(3), re.I), m.group(0)
    assert len(re.findall(r"outbound: mx\.dead\.example\[127\.0\.0\.5\]:\d+: 451 4\.4\.1",
                          t.log)) == 1, t.tail()
    mx.peers.start("127.0.0.5")
    mx.peers.wait(2, timeout=15)
    rcpt_line(t, qid, "u@dead.example", "sent", timeout=15)
    rcpt_line(t, qid2, "v@dead2.example", "sent", timeout=15)
    t.wait_queue_empty()


@pytest.mark.parametrize("mode", ["mail451", "rcpt451", "data451"])
def test_4xx_moves_on_to_the_next_mx(mx, mode):
    """RFC 5321 section 5.1: a 451 to MAIL (or RCPT, or the end of data)
    from the best MX: the next MX gets the message in the same attempt."""
    mx.peers.start("127.0.0.2", mode)
    mx.peers.start("127.0.0.3")
    t = mx.tern()
    qid = t.send("u@pref.example", sender=SENDER)
    got = mx.peers.wait(1)
    assert got[0]["addr"] == "127.0.0.3"
    m = rcpt_line(t, qid, "u@pref.example", "sent")
    assert m.group(1).startswith("mx2.pref.example[127.0.0.3]") and m.group(2) == "1", m.group(0)
    assert mx.peers.mail_refused == ["127.0.0.2"]
    assert re.search(r"%s: 451 4\.3\.0 not now from mx1\.pref\.example\[127\.0\.0\.2\]:\d+: "
                     r"trying the next MX host mx2\.pref\.example in the same attempt \(server 2 "
                     r"of at most 2" % qid, t.log), t.tail()
    assert len(re.findall(r"%s: to=" % qid, t.log)) == 1


def test_5xx_to_mail_does_not_move_on(mx):
    mx.peers.start("127.0.0.2", "mail550")
    mx.peers.start("127.0.0.3")
    t = mx.tern()
    qid = t.send("u@pref.example", sender=SENDER)
    m = rcpt_line(t, qid, "u@pref.example", "bounced")
    assert m.group(1).startswith("mx1.pref.example[127.0.0.2]"), m.group(0)
    assert m.group(3).startswith("550 5.7.1 not from you"), m.group(0)
    assert mx.peers.connections["127.0.0.3"] == 0
    assert "trying the next MX host" not in t.log


def test_mx_session_limit(mx):
    """Two MX hosts say 451 to MAIL: with smtp_mx_session_limit 2 the third
    is not tried in that attempt (deferred, one attempt); with 3 it is."""
    mx.peers.start("127.0.0.2", "mail451")
    mx.peers.start("127.0.0.3", "mail451")
    mx.peers.start("127.0.0.4")
    t = mx.tern(retry_min="60s", retry_max="60s")
    qid = t.send("u@three.example", sender=SENDER)
    m = rcpt_line(t, qid, "u@three.example", "deferred")
    assert m.group(1).startswith("b.three.example[127.0.0.3]") and m.group(2) == "1", m.group(0)
    assert m.group(3).startswith("451 4.3.0 not now"), m.group(0)
    assert mx.peers.mail_refused == ["127.0.0.2", "127.0.0.3"]
    assert mx.peers.connections["127.0.0.4"] == 0
    t.stop()
    t = mx.tern(smtp_mx_session_limit="3")
    qid = t.send("v@three.example", sender=SENDER)
    m = rcpt_line(t, qid, "v@three.example", "sent")
    assert m.group(1).startswith("c.three.example[127.0.0.4]") and m.group(2) == "1", m.group(0)


def test_equal_preferences_shuffled(mx):
    mx.peers.start("127.0.0.2")
    mx.peers.start("127.0.0.3")
    t = mx.tern()
    s = t.smtp()
    try:
        s.ehlo()
        for i in range(1, 21):
            code, _ = s.mail(SENDER)
            assert code == 250
            code, _ = s.rcpt("u@eq%d.example" % i)
            assert code == 250
            code, _ = s.data(b"Subject: eq %d\r\n\r\nhi\r\n" % i)
            assert code == 250
    finally:
        s.quit()
    got = mx.peers.wait(20)
    on2 = sum(1 for g in got if g["addr"] == "127.0.0.2")
    on3 = sum(1 for g in got if g["addr"] == "127.0.0.3")
    # each domain is its own destination, ordered afresh: a fair coin per
    # message; fewer than 2 on one side has a probability of 4e-5
    assert on2 >= 2 and on3 >= 2, (on2, on3)
    assert on2 + on3 == 20


def test_sessions_of_one_destination_spread_over_equal_hosts(mx):
    """One domain, two MX hosts of equal preference, mail arriving in
    parallel: the destination's sessions start at the hosts in turn, so both
    get mail (not only the first host of the one shuffled answer)."""
    import threading
    mx.peers.start("127.0.0.2")
    mx.peers.start("127.0.0.3")
    t = mx.tern(destination_concurrency="4")
    errors = []

    def sender(n):
        try:
            for i in range(4):
                t.send("u%d@eq1.example" % (n * 10 + i), sender=SENDER)
        except Exception as e:  # reported below
            errors.append(e)
    threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    got = mx.peers.wait(16)
    on2 = sum(1 for g in got if g["addr"] == "127.0.0.2")
    on3 = sum(1 for g in got if g["addr"] == "127.0.0.3")
    assert on2 + on3 == 16
    assert mx.peers.connections["127.0.0.2"] >= 1 and mx.peers.connections["127.0.0.3"] >= 1, (
        on2, on3, dict(mx.peers.connections))


def test_all_addresses_of_a_host_before_the_next_host(mx):
    """h1 has a dead and a live address: the live one gets the mail, never h2
    (the resolver may hand out an RRset's addresses in any order)."""
    mx.peers.start("127.0.0.2")
    mx.peers.start("127.0.0.3")
    t = mx.tern()
    qid = t.send("u@twoaddr.example", sender=SENDER)
    got = mx.peers.wait(1)
    assert got[0]["addr"] == "127.0.0.2", got
    m = rcpt_line(t, qid, "u@twoaddr.example", "sent")
    assert m.group(1).startswith("h1.twoaddr.example[127.0.0.2]") and m.group(2) == "1"
    assert mx.peers.connections["127.0.0.3"] == 0


def test_both_dead_addresses_before_the_next_host(mx):
    """h1's two addresses refuse: both are tried, in the same attempt, before h2."""
    mx.peers.start("127.0.0.3")
    t = mx.tern()
    qid = t.send("u@twodead.example", sender=SENDER)
    assert mx.peers.wait(1)[0]["addr"] == "127.0.0.3"
    m = rcpt_line(t, qid, "u@twodead.example", "sent")
    assert m.group(1).startswith("h2.twodead.example[127.0.0.3]") and m.group(2) == "1"
    tried = re.findall(r"outbound: (h\d\.twodead\.example\[127\.0\.0\.\d\]):\d+: 451 4\.4\.1", t.log)
    assert sorted(tried) == ["h1.twodead.example[127.0.0.4]", "h1.twodead.example[127.0.0.5]"], \
        t.tail()


def test_implicit_mx(mx):
    """No MX records: the domain's own address (RFC 5321 §5.1)."""
    mx.peers.start("127.0.0.2")
    t = mx.tern()
    qid = t.send("u@implicit.example", sender=SENDER)
    got = mx.peers.wait(1)
    assert got[0]["addr"] == "127.0.0.2" and got[0]["to"] == ["u@implicit.example"]
    m = rcpt_line(t, qid, "u@implicit.example", "sent")
    assert m.group(1).startswith("implicit.example[127.0.0.2]"), m.group(0)


def test_null_mx_bounces(mx):
    """RFC 7505: "MX 0 ." - bounced at once with 556 5.1.10, nothing connected."""
    mx.peers.start("127.0.0.2")
    t = mx.tern()
    qid = t.send("u@nullmx.example", sender=SENDER)
    m = rcpt_line(t, qid, "u@nullmx.example", "bounced")
    assert m.group(3).startswith("556 5.1.10"), m.group(0)
    assert "nullmx.example has a null MX" in m.group(3), m.group(0)
    assert m.group(2) == "1"
    dsn = dsn_for(t, qid, "5.1.10")
    assert re.search(rb"Status: 5\.1\.10", dsn.raw), dsn.raw
    assert sum(mx.peers.connections.values()) == 0


def test_nxdomain_bounces(mx):
    t = mx.tern()
    qid = t.send("u@nosuch.example", sender=SENDER)
    m = rcpt_line(t, qid, "u@nosuch.example", "bounced")
    assert m.group(3).startswith("550 5.1.2"), m.group(0)
    assert "(nosuch.example/MX: NXDOMAIN)" in m.group(3), m.group(0)
    dsn_for(t, qid, "5.1.2")
    t.wait_queue_empty()


def test_servfail_defers_then_delivers(mx):
    mx.dns.set_servfail(["sf.example"])
    mx.peers.start("127.0.0.2")
    t = mx.tern()
    qid = t.send("u@sf.example", sender=SENDER)
    m = rcpt_line(t, qid, "u@sf.example", "deferred")
    assert m.group(3).startswith("451 4.4.3") and "sf.example/MX: SERVFAIL" in m.group(3), \
        m.group(0)
    assert re.search(r"outbound: sf\.example: 451 4\.4\.3 .*sf\.example/MX: SERVFAIL", t.log), \
        t.tail()
    assert not t.messages(SENDER)  # no bounce
    mx.dns.set_servfail([])
    got = mx.peers.wait(1, timeout=15)
    assert got[0]["to"] == ["u@sf.example"]
    m = rcpt_line(t, qid, "u@sf.example", "sent")
    assert int(m.group(2)) >= 2
    t.wait_queue_empty()


def test_dns_timeout_defers_and_the_loop_keeps_serving(mx):
    mx.dns.set_drop(["live.example"])
    mx.peers.start("127.0.0.2")
    t = mx.tern(dns_timeout="2s")
    t0 = time.monotonic()
    qid = t.send("u@live.example", sender=SENDER)
    # while the MX lookup hangs (2 s), tern takes and delivers a local message
    qid2 = t.send("bob@localhost", sender=SENDER)
    t.wait_delivered("bob@localhost", 1, timeout=1)
    rcpt_line(t, qid2, "bob@localhost", "sent", timeout=1)
    assert time.monotonic() - t0 < 1.8

    m = rcpt_line(t, qid, "u@live.example", "deferred", timeout=6)
    assert time.monotonic() - t0 >= 1.9
    assert m.group(3).startswith("451 4.4.3"), m.group(0)
    assert re.search(r"outbound: live\.example: 451 4\.4\.3 .*live\.example/MX: timeout", t.log), \
        t.tail()
    # DNS answers again: the retry delivers
    mx.dns.set_drop([])
    mx.peers.wait(1, timeout=15)
    rcpt_line(t, qid, "u@live.example", "sent")


@pytest.mark.parametrize("domain", ["selfname.example", "selfaddr.example"])
def test_mx_is_ourselves(mx, domain):
    """The best MX is tern (its hostname, or an address it listens on): no
    connection to ourselves, a bounce 554 5.4.6 (RFC 5321 §5.1)."""
    t = mx.tern()
    qid = t.send("u@" + domain, sender=SENDER)
    m = rcpt_line(t, qid, "u@" + domain, "bounced")
    assert m.group(3).startswith("554 5.4.6"), m.group(0)
    # the reason, in the log and in the recipient's reply (the DSN)
    assert re.search(r"554 5\.4\.6 .*\(the best MX for %s (is this host|has one of our own "
                     r"addresses)\)" % re.escape(domain), m.group(3)), m.group(0)
    dsn_for(t, qid, "5.4.6")
    # the only SMTP session tern saw is ours
    assert len(re.findall(r": connect session=", t.log)) == 1, t.log


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")
def test_mx_is_ourselves_on_a_wildcard_listener(mx):
    """Listening on [::] means every address of this host is ours: an MX
    whose address is ::1 is a loop, not a connection to ourselves."""
    t = mx.tern(listen="[::]:0")
    qid = t.send("u@selfwild.example", sender=SENDER)
    m = rcpt_line(t, qid, "u@selfwild.example", "bounced")
    assert m.group(3).startswith("554 5.4.6"), m.group(0)
    dsn_for(t, qid, "5.4.6")


def test_we_are_the_backup_mx(mx):
    """We are MX 20, someone else MX 10: deliver to the primary."""
    mx.peers.start("127.0.0.2")
    t = mx.tern()
    qid = t.send("u@selfbackup.example", sender=SENDER)
    assert mx.peers.wait(1)[0]["addr"] == "127.0.0.2"
    rcpt_line(t, qid, "u@selfbackup.example", "sent")


def test_dead_domain_does_not_delay_a_live_one(mx):
    """A silent MX (accepts TCP, never greets), a blackholed address and a
    domain whose DNS never answers, all tried first: the live domain's mail
    sent afterwards arrives at once."""
    mx.peers.start("127.0.0.5", "silent")
    mx.peers.blackhole("127.0.0.6")
    mx.peers.start("127.0.0.2")
    mx.dns.set_drop(["nodns.example"])
    t = mx.tern(smtp_command_timeout="3s", smtp_connect_timeout="3s", dns_timeout="3s")
    dead = [t.send("u@dead.example", sender=SENDER),
            t.send("u@blackholed.example", sender=SENDER),
            t.send("u@nodns.example", sender=SENDER)]
    t.wait_log(r"connect session=S3 ")
    s0 = time.monotonic()
    qid = t.send("u@live.example", sender=SENDER)
    got = mx.peers.wait(1, timeout=2)
    assert got[0]["to"] == ["u@live.example"]
    rcpt_line(t, qid, "u@live.example", "sent", timeout=1)
    assert time.monotonic() - s0 < tf(1.5)
    assert mx.peers.connections["127.0.0.5"] == 1
    # the dead ones are still pending, then deferred (not bounced)
    for q, r in zip(dead, ["u@dead.example", "u@blackholed.example", "u@nodns.example"]):
        assert not re.search(r"%s: to=<%s> .*status=(sent|bounced)" % (q, re.escape(r)), t.log)
    m = rcpt_line(t, dead[0], "u@dead.example", "deferred", timeout=6)
    assert re.match(r"451 4\.4\.2 timeout with mx\.dead\.example\[127\.0\.0\.5\]:\d+ during greeting",
                    m.group(3)), m.group(0)
    m = rcpt_line(t, dead[1], "u@blackholed.example", "deferred", timeout=6)
    assert m.group(3).startswith("451 4.4.1 connect to mx.blackholed.example[127.0.0.6]"), \
        m.group(0)
    rcpt_line(t, dead[2], "u@nodns.example", "deferred", timeout=6)


def test_dns_answers_are_cached_for_their_ttl(mx):
    """pref.example (TTL 300) is asked once for two deliveries; ttl1.example
    (TTL 1) again after its TTL ran out."""
    mx.peers.start("127.0.0.2")
    # one message per connection: each delivery resolves its destination anew
    t = mx.tern(max_messages_per_connection="1")
    t.send("a@pref.example", sender=SENDER)
    mx.peers.wait(1)
    t.send("b@ttl1.example", sender=SENDER)
    mx.peers.wait(2)
    time.sleep(0.3)
    t.send("c@pref.example", sender=SENDER)
    t.send("d@ttl1.example", sender=SENDER)
    mx.peers.wait(4)
    assert mx.dns.count("pref.example", "MX") == 1
    assert mx.dns.count("ttl1.example", "MX") == 1  # within its TTL
    # libunbound keeps whole seconds: a TTL-1 answer fetched at second N
    # expires once its clock reads N+2, up to 2 s later (rrset expiry is
    # "now > fetched + ttl"); 1.5 s was not always enough
    time.sleep(2.5)
    t.send("e@ttl1.example", sender=SENDER)
    mx.peers.wait(5)
    assert mx.dns.count("ttl1.example", "MX") == 2
    assert mx.dns.count("mx.ttl1.example", "A") == 2
