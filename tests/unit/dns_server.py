#!/usr/bin/python3
"""dns_server.py - a tiny authoritative DNS server for tern's DNS/MX tests.

Serves a zone (zone-file text; the built-in test zone below by default) over
UDP on 127.0.0.1, on a port the kernel chooses, and prints that port on the
first line of stdout. Exits when stdin reaches EOF (the test program that
started it died or closed the pipe) or on SIGTERM.

Special behaviours, by owner name (a name and everything below it):
  --servfail NAME   answer SERVFAIL
  --drop NAME       never answer (the client times out)
  --delay NAME=SEC  answer after SEC seconds (the loop must not block)
  --counter NAME=TTL  A record 192.0.2.N, N = queries seen for NAME so far,
                    with the given TTL (shows whether the client caches)
Negative answers carry the zone's SOA so that resolvers can cache them.

Usage: dns_server.py [--zone FILE] [--servfail NAME]... [--drop NAME]... [--keep]
"""

import argparse
import os
import select
import signal
import socket
import sys
import time

from dnslib import A, CNAME, QTYPE, RCODE, RR, DNSRecord

DEFAULT_ZONE = """
$ORIGIN example.
$TTL 300
@            SOA   ns.example. hostmaster.example. 1 3600 600 86400 60
@            NS    ns.example.
ns           A     127.0.0.1

; two hosts at preference 10 (shuffled), one at 20
multi        MX    10 a.multi
multi        MX    10 b.multi
multi        MX    20 c.multi
a.multi      A     192.0.2.1
a.multi      AAAA  2001:db8::1
b.multi      A     192.0.2.2
c.multi      AAAA  2001:db8::3

alias        CNAME multi

; no MX: implicit MX (RFC 5321 section 5.1)
implicit     A     192.0.2.10
implicit     AAAA  2001:db8::10

; RFC 7505 null MX
nullmx       MX    0 .

; we are mx.tern.example: selfmx's best MX is us; better has one better host
selfmx       MX    10 mx.tern
selfmx       MX    20 c.multi
better       MX    5 a.multi
better       MX    10 mx.tern
better       MX    20 c.multi
mx.tern      A     192.0.2.25

; one MX host fails temporarily, the other resolves
partial      MX    10 host.servfail
partial      MX    20 b.multi
; the only MX host fails temporarily
tempfailhost MX    10 host.servfail
; the only MX host does not exist
nohost       MX    10 missing

; MX host whose addresses come slowly
slowmx       MX    10 slow

; 15 MX hosts with 2 addresses each: the limits cut to 10 hosts, 20 addresses
many         MX    10 h1.many
many         MX    10 h2.many
many         MX    10 h3.many
many         MX    10 h4.many
many         MX    10 h5.many
many         MX    20 h6.many
many         MX    20 h7.many
many         MX    20 h8.many
many         MX    20 h9.many
many         MX    20 h10.many
many         MX    30 h11.many
many         MX    30 h12.many
many         MX    30 h13.many
many         MX    30 h14.many
many         MX    30 h15.many
"""

for _i in range(1, 16):
    DEFAULT_ZONE += "h%d.many A 192.0.2.%d\nh%d.many AAAA 2001:db8::1:%d\n" % (_i, 100 + _i, _i, _i)
DEFAULT_ZONE += "slow A 192.0.2.50\nslow AAAA 2001:db8::50\n"

DEFAULT_SPECIAL = {
    "servfail": ["servfail.example."],
    "drop": ["timeout.example."],
    "delay": ["slow.example.=0.6"],
    "counter": ["counter.example.=300", "counter0.example.=0"],
}


def norm(name):
    name = str(name).lower()
    return name if name.endswith(".") else name + "."


def under(name, base):
    return name == base or name.endswith("." + base)


class Zone:
    def __init__(self, text):
        self.rrs = RR.fromZone(text)
        self.names = set()
        self.soa = None
        for rr in self.rrs:
            self.names.add(norm(rr.rname))
            if rr.rtype == QTYPE.SOA:
                self.soa = rr
        # empty non-terminals exist too (RFC 8020): a.multi makes multi exist
        for name in list(self.names):
            labels = name.split(".")
            for i in range(1, len(labels) - 1):
                self.names.add(".".join(labels[i:]))

    def lookup(self, name, qtype):
        return [rr for rr in self.rrs if norm(rr.rname) == name and rr.rtype == qtype]


class Server:
    def __init__(self, zone, special):
        self.zone = zone
        self.servfail = [norm(n) for n in special.get("servfail", [])]
        self.drop = [norm(n) for n in special.get("drop", [])]
        self.delay = {}
        for d in special.get("delay", []):
            n, s = d.split("=", 1)
            self.delay[norm(n)] = float(s)
        self.counter = {}
        self.counts = {}
        for d in special.get("counter", []):
            n, s = d.split("=", 1)
            self.counter[norm(n)] = int(s)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.pending = []  # (due time, packet, address)

    def answer(self, req):
        q = req.q
        qname = norm(q.qname)
        reply = req.reply(ra=1, aa=1)
        for base in self.servfail:
            if under(qname, base):
                reply.header.rcode = RCODE.SERVFAIL
                return reply
        if qname in self.counter:
            self.counts[qname] = self.counts.get(qname, 0) + 1
            if q.qtype == QTYPE.A:
                n = self.counts[qname] % 250
                reply.add_answer(RR(q.qname, QTYPE.A, rdata=A("192.0.2.%d" % n),
                                    ttl=self.counter[qname]))
            elif self.zone.soa:
                reply.add_auth(self.zone.soa)
            return reply
        name = qname
        for _ in range(8):  # follow CNAME chains inside the zone
            rrs = self.zone.lookup(name, q.qtype)
            if rrs:
                for rr in rrs:
                    reply.add_answer(rr)
                return reply
            cn = self.zone.lookup(name, QTYPE.CNAME)
            if cn and q.qtype != QTYPE.CNAME:
                reply.add_answer(cn[0])
                name = norm(cn[0].rdata.label)
                continue
            break
        if name not in self.zone.names:
            reply.header.rcode = RCODE.NXDOMAIN
        if self.zone.soa:
            reply.add_auth(self.zone.soa)
        return reply

    def handle(self, data, addr):
        try:
            req = DNSRecord.parse(data)
        except Exception:
            return
        if not req.questions:
            return
        qname = norm(req.q.qname)
        for base in self.drop:
            if under(qname, base):
                return
        out = self.answer(req).pack()
        wait = 0.0
        for base, secs in self.delay.items():
            if under(qname, base):
                wait = secs
        if wait > 0:
            self.pending.append((time.monotonic() + wait, out, addr))
        else:
            self.sock.sendto(out, addr)

    def run(self, watch_stdin=True):
        stdin_open = watch_stdin
        while True:
            now = time.monotonic()
            due = [p for p in self.pending if p[0] <= now]
            self.pending = [p for p in self.pending if p[0] > now]
            for _, out, addr in due:
                self.sock.sendto(out, addr)
            timeout = min([p[0] for p in self.pending], default=now + 1.0) - now
            rl = [self.sock] + ([sys.stdin] if stdin_open else [])
            r, _, _ = select.select(rl, [], [], max(timeout, 0.0))
            if sys.stdin in r:
                if not os.read(sys.stdin.fileno(), 4096):
                    return  # our parent went away
            if self.sock in r:
                data, addr = self.sock.recvfrom(65535)
                self.handle(data, addr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zone", help="zone file (default: the built-in test zone)")
    ap.add_argument("--servfail", action="append", default=[])
    ap.add_argument("--drop", action="append", default=[])
    ap.add_argument("--delay", action="append", default=[])
    ap.add_argument("--counter", action="append", default=[])
    ap.add_argument("--keep", action="store_true",
                    help="do not exit at EOF on stdin (running it by hand)")
    args = ap.parse_args()
    if args.zone:
        with open(args.zone) as f:
            zone = Zone(f.read())
        special = {"servfail": args.servfail, "drop": args.drop,
                   "delay": args.delay, "counter": args.counter}
    else:
        zone = Zone(DEFAULT_ZONE)
        special = {k: list(v) for k, v in DEFAULT_SPECIAL.items()}
        for k in ("servfail", "drop", "delay", "counter"):
            special[k] += getattr(args, k)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    srv = Server(zone, special)
    print(srv.sock.getsockname()[1], flush=True)
    srv.run(watch_stdin=not args.keep)


if __name__ == "__main__":
    main()
