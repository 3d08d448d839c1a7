"""
test_bad_peers.py - downstream servers and DNS servers that misbehave
(issue 6), reached through the transport table (smtp:[127.0.0.1]:PORT) or
dns_servers = 127.0.0.1@PORT.

Every misbehaving peer (peers.BEHAVIOURS: stalls before and after the final
dot, a reset mid-DATA, garbage greetings and replies, an endless "250-x"
multi-line reply, silence) must make tern defer the recipient
(status=deferred, a 4.x.x reply, never a bounce), within the configured
timeouts (all 2 s here); meanwhile a message to a good peer is delivered at
once, and tern stops cleanly (SIGTERM, exit 0) with the bad connections
still open. DNS that never answers or answers junk: deferred within
dns_timeout (+ slack), the good peer unaffected.
"""

import datetime
import re
import time

from peers import BadDNS, Sink
from tern_harness import tf

SENDER = "sender@example.com"
TIMEOUT = 2  # every smtp_*_timeout and dns_timeout
# after a timeout or a protocol error the client closes gracefully
# (src/lib/conn.c: shutdown, then up to 2 s for the peer's FIN) and the
# recipients' outcome comes with the close: up to LINGER later
LINGER = 2
BAD = ["stall_after_dot", "stall_mid_data", "reset_mid_data", "garbage_greeting",
       "garbage_after_ehlo", "garbage_mid_data", "endless_multiline", "silent"]
TS_RE = r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z"


def domain(b):
    return b.replace("_", "-") + ".example"


def log_time(t, regex, timeout=10):
    """The log timestamp (seconds) of the first line matching regex."""
    m = t.wait_log(r"(?m)" + TS_RE + r" tern\[\d+\]: " + regex, timeout=timeout)
    ts = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
    return ts.replace(tzinfo=datetime.timezone.utc).timestamp(), m


def timeouts(**extra):
    cfg = {"smtp_connect_timeout": "%ds" % TIMEOUT, "smtp_command_timeout": "%ds" % TIMEOUT,
           "smtp_data_timeout": "%ds" % TIMEOUT, "smtp_data_done_timeout": "%ds" % TIMEOUT,
           "dns_timeout": "%ds" % TIMEOUT, "retry_min": "1s", "retry_max": "2s",
           "message_size_limit": "4M"}
    cfg.update(extra)
    return cfg


def test_bad_smtp_peers(make_tern, tmp_path):
    sinks = {b: Sink(behaviour=b, rcvbuf=4096 if b == "stall_mid_data" else None)
             for b in BAD}
    good = Sink()
    try:
        transport = tmp_path / "transport"
        transport.write_text("".join("%s smtp:%s\n" % (domain(b), s.spec)
                                     for b, s in sinks.items())
                             + "good.example smtp:%s\n" % good.spec)
        t = make_tern(config=timeouts(transport=str(transport))).start()
        qids = {}
        big = "Subject: big\r\n\r\n" + ("b" * 98 + "\r\n") * 30000  # 3 MB: fills the buffers
        for b in BAD:
            msg = big if b == "stall_mid_data" else None
            if msg is not None:
                qids[b] = t.send("user@" + domain(b), msg=msg.encode())
            else:
                qids[b] = t.send("user@" + domain(b), subject="to " + b)
        # the stalls are under way; a good message goes through meanwhile
        deadline = time.monotonic() + tf(5)
        while not any("stalled" in e for s in (sinks["stall_after_dot"],) for _, e in s.events):
            assert time.monotonic() < deadline, "the stalling peer never got the content"
            time.sleep(0.02)
        gq = t.send("user@good.example", subject="good", msgid="<good@test.example>")
        good_sent, _ = log_time(t, r"%s: to=<user@good\.example> .*status=sent" % gq)
        assert [m["msgid"] for m in good.messages] == ["<good@test.example>"]
        problems, figures = [], []
        for b in BAD:
            q = qids[b]
            acc, _ = log_time(t, r"%s: accepted " % q, timeout=1)
            try:
                when, m = log_time(t, r"%s: to=<user@%s> (.*)status=(\w+) \((.*)\)"
                                   % (q, re.escape(domain(b))), timeout=TIMEOUT * 3 + 5)
            except AssertionError:
                problems.append("%s: no outcome logged" % b)
                continue
            status, reply = m.group(3), m.group(4)
            took = when - acc
            figures.append("%s %.2fs %s" % (b, took, reply[:60]))
            if status != "deferred" or not re.match(r"4\d\d 4\.\d+\.\d+", reply):
                problems.append("%s: status=%s (%s), expected deferred 4.x.x" % (b, status, reply))
            if took > tf(TIMEOUT + LINGER + 1.5):
                problems.append("%s: deferred after %.1fs, timeouts are %ds" % (b, took, TIMEOUT))
            if b.startswith("stall") and good_sent > when:
                problems.append("%s: the good message waited for it" % b)
        print("bad peers: " + "; ".join(figures))
        assert not problems, "\n".join(problems) + "\n" + t.tail(40)
        # nothing was bounced, tern is alive, and it stops cleanly with the
        # stalled connections still open
        assert not re.search(r"status=bounced", t.log)
        with t.client() as c:
            c.read_greeting()
            c.expect("NOOP", r"^250 ")
        t0 = time.monotonic()
        t.stop()
        print("stop with stalled peers: %.2fs" % (time.monotonic() - t0))
    finally:
        for s in list(sinks.values()) + [good]:
            s.close()


def test_bad_dns(make_tern, tmp_path):
    dns = BadDNS("by_name")
    good = Sink()
    try:
        transport = tmp_path / "transport"
        transport.write_text("good.example smtp:%s\n" % good.spec)
        t = make_tern(config=timeouts(transport=str(transport), dns_servers=dns.spec)).start()
        names = ["timeout.example", "random.example", "junk.example"]
        qids = {n: t.send("user@" + n, subject="to " + n) for n in names}
        gq = t.send("user@good.example", subject="good", msgid="<good-dns@test.example>")
        good_sent, _ = log_time(t, r"%s: to=<user@good\.example> .*status=sent" % gq,
                                timeout=3)
        problems, figures = [], []
        for n in names:
            q = qids[n]
            acc, _ = log_time(t, r"%s: accepted " % q, timeout=1)
            try:
                when, m = log_time(t, r"%s: to=<user@%s> (.*)status=(\w+) \((.*)\)"
                                   % (q, re.escape(n)), timeout=TIMEOUT * 4 + 5)
            except AssertionError:
                problems.append("%s: no outcome logged" % n)
                continue
            status, reply = m.group(3), m.group(4)
            took = when - acc
            figures.append("%s %.2fs %s" % (n, took, reply[:60]))
            if status != "deferred" or not re.match(r"4\d\d 4\.\d+\.\d+", reply):
                problems.append("%s: status=%s (%s), expected deferred 4.x.x" % (n, status, reply))
            if took > tf(2 * TIMEOUT + 2):
                problems.append("%s: deferred after %.1fs, dns_timeout is %ds" % (n, took, TIMEOUT))
        print("bad DNS (%d queries): %s" % (dns.queries, "; ".join(figures)))
        assert good_sent - log_time(t, r"%s: accepted " % gq)[0] < tf(1.5)
        assert not problems, "\n".join(problems) + "\n" + t.tail(40)
        assert dns.queries > 0
        with t.client() as c:
            c.read_greeting()
            c.expect("NOOP", r"^250 ")
    finally:
        dns.close()
        good.close()
