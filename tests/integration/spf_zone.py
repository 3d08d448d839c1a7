"""spf_zone.py - a DNS server for the RFC 7208 test suite's zone data.

ZoneServer(zonedata) serves one scenario's `zonedata` (the YAML mapping of
tests/data/spf/rfc7208-tests.yml) over UDP on 127.0.0.1, on a port the
kernel picks (.port), from a thread, until .close(). The suite's
conventions, as its reference driver (pyspf's test/testspf.py) applies them:

  - names compare without case; a name is given as octets (the suite has
    names such as "foo:bar/baz.example.com" and "macro%percent  space...");
  - TXT and SPF values are one string or a list of strings (the
    character-strings of one record), UTF-8 encoded as the driver does. An
    empty list (a record with no strings: "illegal, but SPF should not
    crash", null-text) is served as one empty string, the nearest legal
    record: libunbound treats a zero-length TXT rdata as a malformed
    answer (SERVFAIL, hence temperror) before tern could see it, and no
    name server can publish one;
  - a name with SPF (type 99) records and no TXT record also gets them as
    TXT records ("auto-magic duplication", see the file's header); "TXT:
    NONE" stops that and adds nothing;
  - TIMEOUT: queries for a type the name has no records of get no answer
    at all (the client must time out);
  - A, AAAA, MX [pref, name] ("" is the root: a null MX), PTR, CNAME
    (followed inside the zone, loops stop);
  - a name with no records of the type asked: NODATA when the name (or a
    name below it) exists, else NXDOMAIN.
The counts of queries seen per (name, type) are kept in .seen, and
drop_names (a set of lower-case names) lets a test make any name silent.
"""

import socket
import threading

from dnslib import AAAA, CNAME, MX, PTR, QTYPE, RCODE, RR, TXT, A, DNSLabel, DNSRecord

TTL = 300


def label_of(name):
    """DNSLabel from text, octet for octet (no IDNA), without a final dot."""
    if isinstance(name, str):
        name = name.encode("utf-8")
    name = name.rstrip(b".")
    return DNSLabel([p for p in name.split(b".")] if name else [])


def key_of(labels):
    return b".".join(bytes(x).lower() for x in labels)


def strings(v):
    if isinstance(v, str):
        v = [v]
    out = []
    for s in v:
        b = s.encode("utf-8")
        # a character-string holds at most 255 octets (RFC 1035 3.3)
        out += [b[i:i + 255] for i in range(0, len(b), 255)] or [b""]
    return out or [b""]


class Zone:
    def __init__(self, zonedata):
        self.records = {}   # key -> list of (qtype, rdata)
        self.timeout = set()
        self.names = set()
        for name, entries in (zonedata or {}).items():
            key = key_of(label_of(name).label)
            recs = self.records.setdefault(key, [])
            spf = []
            has_txt = False
            for e in entries or []:
                if e == "TIMEOUT":
                    self.timeout.add(key)
                    continue
                for t, v in e.items():
                    if t == "TXT":
                        has_txt = True
                        if v == "NONE":
                            continue
                        recs.append((QTYPE.TXT, TXT(strings(v))))
                    elif t == "SPF":
                        if v == "NONE":
                            continue
                        spf.append(strings(v))
                        recs.append((99, TXT(strings(v))))
                    elif t == "A":
                        recs.append((QTYPE.A, A(v)))
                    elif t == "AAAA":
                        recs.append((QTYPE.AAAA, AAAA(v)))
                    elif t == "MX":
                        recs.append((QTYPE.MX, MX(label_of(v[1]), int(v[0]))))
                    elif t == "PTR":
                        recs.append((QTYPE.PTR, PTR(label_of(v))))
                    elif t == "CNAME":
                        recs.append((QTYPE.CNAME, CNAME(label_of(v))))
                    else:
                        raise ValueError("zone entry type %r" % t)
            if not has_txt:
                recs += [(QTYPE.TXT, TXT(s)) for s in spf]
            self.names.add(key)
        # empty non-terminals exist (RFC 8020)
        for key in list(self.names):
            parts = key.split(b".")
            for i in range(1, len(parts)):
                self.names.add(b".".join(parts[i:]))

    def lookup(self, key, qtype):
        return [r for t, r in self.records.get(key, []) if t == qtype]


class ZoneServer:
    def __init__(self, zonedata):
        self.zone = Zone(zonedata)
        self.drop_names = set()
        self.seen = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.addr = "127.0.0.1@%d" % self.port
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def close(self):
        self._stop = True
        self._thread.join()
        self.sock.close()

    def _answer(self, req):
        """the reply, or None for no reply at all"""
        q = req.q
        key = key_of(q.qname.label)
        self.seen[(key, q.qtype)] = self.seen.get((key, q.qtype), 0) + 1
        if key.decode("latin-1") in self.drop_names:
            return None
        reply = req.reply(ra=1, aa=1)
        name, qname, seen = key, q.qname, set()
        while True:
            rrs = self.zone.lookup(name, q.qtype)
            if rrs:
                for rd in rrs:
                    reply.add_answer(RR(qname, q.qtype, rdata=rd, ttl=TTL))
                return reply
            cn = self.zone.lookup(name, QTYPE.CNAME)
            if cn and q.qtype != QTYPE.CNAME and name not in seen:
                seen.add(name)
                reply.add_answer(RR(qname, QTYPE.CNAME, rdata=cn[0], ttl=TTL))
                qname = cn[0].label
                name = key_of(qname.label)
                continue
            break
        if name in self.zone.timeout and not reply.rr:
            return None
        if name not in self.zone.names:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply

    def _run(self):
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                req = DNSRecord.parse(data)
            except Exception:
                continue
            if not req.questions:
                continue
            out = self._answer(req)
            if out is not None:
                try:
                    self.sock.sendto(out.pack(), peer)
                except OSError:
                    pass
