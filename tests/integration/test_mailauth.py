"""
test_mailauth.py - inbound mail authentication (issue 13, src/mailauth/mailauth.h)
end to end: tern -> a DNS server this test runs (tests/unit/dns_server.py's
Zone and Server in a thread, UDP 127.0.0.1, port 0, dns_servers =
127.0.0.1@PORT) serving SPF, DKIM and DMARC records under .example.

Clients connect from 127.0.0.2 (outside the harness's mynetworks,
127.0.0.1/32), say HELO client.example, and send mail signed by dkimpy
(python3-dkim) with a key made here. The delivered message's
Authentication-Results field is parsed with python3-authres and compared
with pyspf's (python3-spf, its DNS answered from the same zone) and
dkimpy's verdicts. Also: a spoofed From of a p=reject domain refused (550
5.7.1) with dmarc_enforce = yes and only tagged without it; p=quarantine
held; SPF fail refused (550 5.7.23) when configured but not when DMARC
passes; an SPF temperror deferred (451 4.7.24) when configured; a forged
A-R with our authserv-id removed while another server's stays; mynetworks
clients not checked; one mailauth log line per message with its queue ID;
check-config on the new keys; a DMARC aggregate report (RFC 7489 section
7.2) queued to the rua address after section 7.1's check, its gzipped XML
validated with lxml against Appendix C's XML schema as published
(tests/data/rfc7489-dmarc.xsd).
"""

import base64
import email
import gzip
import re
import time
import xml.etree.ElementTree as ET
import select
import subprocess
import sys
import threading

import pytest

from tern_harness import REPO, Mail, make_message, run_tool

sys.path.insert(0, str(REPO / "tests" / "unit"))
import dns_server  # noqa: E402  (tests/unit/dns_server.py)
from dnslib import QTYPE, RCODE, DNSRecord  # noqa: E402

authres = pytest.importorskip("authres")
dkim = pytest.importorskip("dkim")
spf = pytest.importorskip("spf")

AUTHSERV = "mx.tern.example"
CLIENT = "127.0.0.2"
HELO = "client.example"


def _key(tmp):
    """An RSA-2048 key: (private PEM bytes, public key base64 for p=)."""
    pem = subprocess.run(["openssl", "genrsa", "2048"], capture_output=True,
                         check=True).stdout
    der = subprocess.run(["openssl", "rsa", "-pubout", "-outform", "DER"], input=pem,
                         capture_output=True, check=True).stdout
    return pem, base64.b64encode(der).decode()


def _txt(value):
    """A TXT rdata in zone-file form, split into strings of at most 255."""
    parts = [value[i:i + 200] for i in range(0, len(value), 200)] or [""]
    return " ".join('"%s"' % p for p in parts)


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    return _key(tmp_path_factory.mktemp("dkimkey"))


def zone_text(pub):
    return """
$ORIGIN example.
$TTL 300
@              SOA  ns.example. hostmaster.example. 1 3600 600 86400 60
@              NS   ns.example.
ns             A    127.0.0.1
; good.example: SPF for the client, a DKIM key, DMARC p=reject
good           TXT  "v=spf1 ip4:127.0.0.2 -all"
sel._domainkey.good TXT %s
_dmarc.good    TXT  "v=DMARC1; p=reject; sp=quarantine; rua=mailto:alice@example.com"
; other.example: SPF passes for the client, no DMARC
other          TXT  "v=spf1 ip4:127.0.0.0/24 -all"
; fail.example: SPF fails
fail           TXT  "v=spf1 -all"
; quar.example: DMARC p=quarantine, SPF for the client
quar           TXT  "v=spf1 -all"
_dmarc.quar    TXT  "v=DMARC1; p=quarantine"
; bücher.example (RFC 8616: published under its A-labels)
xn--bcher-kva  TXT  "v=spf1 ip4:127.0.0.2 -all"
_dmarc.xn--bcher-kva TXT "v=DMARC1; p=reject"
; none.example: no records at all
none           A    192.0.2.1
client         A    127.0.0.2
client         TXT  "v=spf1 a -all"
; RFC 7489 section 7.1: example.com takes good.example's reports (not
; localhost: libunbound answers that zone itself)
$ORIGIN com.
good.example._report._dmarc.example TXT "v=DMARC1"
""" % _txt("v=DKIM1; k=rsa; p=" + pub)


class DNS:
    """The test DNS server in a thread."""

    def __init__(self, text, servfail=()):
        self.srv = dns_server.Server(dns_server.Zone(text), {"servfail": list(servfail)})
        self.port = self.srv.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        srv = self.srv
        while not self.stopping:
            r, _, _ = select.select([srv.sock], [], [], 0.05)
            if r:
                data, addr = srv.sock.recvfrom(65535)
                srv.handle(data, addr)

    def query(self, name, qtype):
        """(rcode, [rr]) straight from the server (for pyspf and dkimpy)."""
        q = DNSRecord.question(name, qtype)
        a = DNSRecord.parse(q.send("127.0.0.1", self.port, timeout=5))
        return a.header.rcode, a.rr

    def close(self):
        self.stopping = True
        self.thread.join(5)
        self.srv.sock.close()


@pytest.fixture
def dns(key):
    d = DNS(zone_text(key[1]), servfail=["temp.example"])
    yield d
    d.close()


def start(make_tern, dns, **config):
    c = {"dns_servers": "127.0.0.1@%d" % dns.port, "authserv_id": AUTHSERV,
         "spf_check": "yes", "dkim_verify": "yes", "dmarc_check": "yes", "arc_verify": "yes",
         "dns_timeout": "3s"}
    c.update(config)
    return make_tern(config=c).start()


def signed(key, sender="alice@good.example", domain="good.example", headers=(), body=None):
    msg = make_message(sender=sender, headers=headers, body=body)
    sig = dkim.sign(msg, b"sel", domain.encode(), key[0],
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return sig + msg


def send(t, sender, msg, source=CLIENT):
    """One transaction from source with HELO client.example: (code, text) of DATA."""
    with t.client(source=source) as c:
        assert c.read_greeting().code == 220
        assert c.cmd("EHLO " + HELO).code == 250
        r = c.cmd("MAIL FROM:<%s>" % sender)
        assert r.code == 250, r
        assert c.cmd("RCPT TO:<alice@localhost>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(msg.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n")
        r = c.reply()
        return r.code, r.text


def delivered_ar(t, n=1):
    """The A-R fields of the newest delivered message, parsed by authres."""
    paths = t.wait_delivered("alice@localhost", n)
    m = Mail(sorted(paths, key=lambda p: p.stat().st_mtime)[-1])
    return m, [authres.AuthenticationResultsHeader.parse_value(v)
               for v in m.get_all("Authentication-Results")]


def results(ar):
    """The (method, result) pairs but arc=none (no ARC set: every test's mail)."""
    return {(r.method, r.result) for r in ar.results} - {("arc", "none")}


def prop(ar, method, name):
    for r in ar.results:
        if r.method == method:
            for p in r.properties:
                if "%s.%s" % (p.type, p.name) == name:
                    return p.value
    return None


# ---- the independent verdicts ----

def pyspf_result(dns, ip, sender, helo):
    def lookup(name, qtype, tcpfallback=True, timeout=30):
        rcode, rrs = dns.query(name, qtype)
        if rcode == RCODE.SERVFAIL:
            raise spf.TempError("DNS SERVFAIL")
        out = []
        for rr in rrs:
            t = QTYPE[rr.rtype]
            key = (str(rr.rname).rstrip("."), t)
            if t in ("A", "AAAA"):
                out.append((key, str(rr.rdata)))
            elif t == "MX":
                out.append((key, (rr.rdata.preference, str(rr.rdata.label).rstrip("."))))
            elif t == "TXT":
                out.append((key, [bytes(s) for s in rr.rdata.data]))
            elif t == "PTR":
                out.append((key, str(rr.rdata.label).rstrip(".")))
        return out
    saved = spf.DNSLookup
    spf.DNSLookup = lookup
    try:
        return spf.check2(i=ip, s=sender, h=helo)[0]
    finally:
        spf.DNSLookup = saved


def dkimpy_ok(dns, msg):
    def txt(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        rcode, rrs = dns.query(name.rstrip("."), "TXT")
        return b"".join(b"".join(bytes(s) for s in rr.rdata.data) for rr in rrs) or None
    return dkim.verify(msg, dnsfunc=txt)


# ---- the tests ----

def test_all_pass_agrees_with_pyspf_and_dkimpy(make_tern, dns, key):
    t = start(make_tern, dns)
    msg = signed(key)
    code, text = send(t, "alice@good.example", msg)
    assert code == 250, text
    m, ars = delivered_ar(t)
    assert len(ars) == 1, m.get_all("Authentication-Results")
    ar = ars[0]
    assert ar.authserv_id == AUTHSERV
    assert results(ar) == {("spf", "pass"), ("dkim", "pass"), ("dmarc", "pass")}, ar
    assert prop(ar, "spf", "smtp.mailfrom") == "alice@good.example"
    assert prop(ar, "dkim", "header.d") == "good.example"
    assert prop(ar, "dkim", "header.s") == "sel"
    assert prop(ar, "dmarc", "header.from") == "good.example"
    assert [r.result for r in ar.results if r.method == "arc"] == ["none"]
    # the independent implementations agree
    assert pyspf_result(dns, CLIENT, "alice@good.example", HELO) == "pass"
    assert dkimpy_ok(dns, msg)
    # the field is on top, above tern's Received
    names = m.header_names
    assert names.index("Authentication-Results") < names.index("Received")
    t.wait_log(r"\w+: mailauth session=\S+ client=127\.0\.0\.2 spf=pass "
               r"smtp\.mailfrom=<alice@good\.example> dkim=pass \(d=good\.example s=sel\) arc=none "
               r"dmarc=pass header\.from=good\.example policy=reject disposition=none "
               r"action=accept")


def test_tampered_body_fails_dkim_like_dkimpy(make_tern, dns, key):
    t = start(make_tern, dns)
    msg = signed(key).replace(b"This is a test.", b"This is a fake.")
    assert not dkimpy_ok(dns, msg)
    code, text = send(t, "bounce@other.example", msg)
    assert code == 250, text
    _, ars = delivered_ar(t)
    # SPF passes for other.example, which is not aligned with good.example
    assert results(ars[0]) == {("spf", "pass"), ("dkim", "fail"), ("dmarc", "fail")}, ars[0]


def test_spoofed_from_refused_with_enforcement(make_tern, dns, key):
    msg = make_message(sender="ceo@good.example")
    t = start(make_tern, dns, dmarc_enforce="yes")
    code, text = send(t, "bounce@other.example", msg)
    assert code == 550, text
    assert text.startswith("550 5.7.1 ") and "good.example" in text, text
    t.wait_log(r"mailauth .* dmarc=fail header\.from=good\.example policy=reject "
               r"disposition=reject action=reject reason=\"550 5\.7\.1 ")
    # without enforcement: delivered, the field says it all
    t2 = start(make_tern, dns)
    code, text = send(t2, "bounce@other.example", msg)
    assert code == 250, text
    m, ars = delivered_ar(t2)
    assert ("dmarc", "fail") in results(ars[0])
    raw = m.get("Authentication-Results")
    assert "dmarc=fail (p=reject dis=reject) header.from=good.example" in raw, raw


def test_quarantine_hold_or_tag(make_tern, dns):
    msg = make_message(sender="x@quar.example")
    t = start(make_tern, dns, dmarc_enforce="yes", dmarc_quarantine_action="hold")
    code, text = send(t, "bounce@other.example", msg)
    assert code == 250, text
    qid = re.search(r"queued as (\S+)", text).group(1)
    t.wait_log(r"%s: quarantined \(held\) reason=\"DMARC quarantine policy of quar\.example"
               % qid)
    t2 = start(make_tern, dns, dmarc_enforce="yes")
    code, text = send(t2, "bounce@other.example", msg)
    assert code == 250, text
    _, ars = delivered_ar(t2)
    assert ("dmarc", "fail") in results(ars[0])


def test_spf_fail_refused_when_configured(make_tern, dns, key):
    msg = make_message(sender="x@fail.example")
    t = start(make_tern, dns, spf_fail_action="reject")
    assert pyspf_result(dns, CLIENT, "x@fail.example", HELO) == "fail"
    code, text = send(t, "x@fail.example", msg)
    assert code == 550 and text.startswith("550 5.7.23 "), text
    # an aligned DKIM signature makes DMARC pass: not refused for SPF then
    code, text = send(t, "x@fail.example", signed(key))
    assert code == 250, text
    _, ars = delivered_ar(t)
    assert results(ars[0]) == {("spf", "fail"), ("dkim", "pass"), ("dmarc", "pass")}
    # tag (the default): delivered
    t2 = start(make_tern, dns)
    assert send(t2, "x@fail.example", msg)[0] == 250


def test_spf_temperror_deferred_when_configured(make_tern, dns):
    msg = make_message(sender="x@temp.example")
    t = start(make_tern, dns, spf_temperror_action="defer")
    code, text = send(t, "x@temp.example", msg)
    assert code == 451 and text.startswith("451 4.7.24 "), text
    t2 = start(make_tern, dns)
    assert send(t2, "x@temp.example", msg)[0] == 250
    _, ars = delivered_ar(t2)
    assert ("spf", "temperror") in results(ars[0])


def test_unicode_from_domain_uses_a_labels(make_tern, dns):
    """RFC 8616 (updating RFC 7489): a From domain in U-labels is looked up
    and aligned as A-labels: dmarc=pass against _dmarc.xn--bcher-kva, not
    permerror."""
    t = start(make_tern, dns, dmarc_enforce="yes")
    code, text = send(t, "alice@xn--bcher-kva.example",
                      make_message(sender="alice@bücher.example"))
    assert code == 250, text
    _, ars = delivered_ar(t)
    assert results(ars[0]) == {("spf", "pass"), ("dkim", "none"), ("dmarc", "pass")}, ars[0]
    assert prop(ars[0], "dmarc", "header.from") == "xn--bcher-kva.example"
    # and a spoof of it is refused like any other (p=reject, SPF not aligned)
    code, text = send(t, "bounce@other.example", make_message(sender="ceo@BÜCHER.example"))
    assert code == 550 and "5.7.1" in text and "xn--bcher-kva.example" in text, (code, text)


def test_null_sender_uses_helo(make_tern, dns):
    t = start(make_tern, dns)
    code, text = send(t, "", make_message(sender="mailer-daemon@client.example"))
    assert code == 250, text
    _, ars = delivered_ar(t)
    assert ("spf", "pass") in results(ars[0])
    assert prop(ars[0], "spf", "smtp.mailfrom") == "postmaster@client.example"
    assert pyspf_result(dns, CLIENT, "", HELO) == "pass"


def test_forged_authres_removed(make_tern, dns, key):
    t = start(make_tern, dns)
    forged = ["Authentication-Results: (forged) %s; dkim=pass header.d=bank.example"
              % AUTHSERV.upper(),
              "Authentication-Results: elsewhere.example; spf=pass"]
    msg = signed(key, headers=forged)
    code, text = send(t, "alice@good.example", msg)
    assert code == 250, text
    m, ars = delivered_ar(t)
    ids = [a.authserv_id for a in ars]
    assert ids.count(AUTHSERV) == 1 and "elsewhere.example" in ids, ids
    assert "bank.example" not in m.raw.decode()


def test_no_from_is_permerror(make_tern, dns):
    t = start(make_tern, dns)
    msg = b"To: <alice@localhost>\r\nSubject: no from\r\n\r\nhi\r\n"
    assert send(t, "bounce@other.example", msg)[0] == 250
    _, ars = delivered_ar(t)
    assert ("dmarc", "permerror") in results(ars[0])
    two = b"From: a@good.example\r\nFrom: b@good.example\r\nTo: x\r\n\r\nhi\r\n"
    assert send(t, "bounce@other.example", two)[0] == 250
    _, ars = delivered_ar(t, 2)
    assert ("dmarc", "permerror") in results(ars[0])


def test_mynetworks_not_checked(make_tern, dns):
    t = start(make_tern, dns, mynetworks="127.0.0.0/8", dmarc_enforce="yes")
    code, text = send(t, "bounce@other.example", make_message(sender="ceo@good.example"))
    assert code == 250, text
    m, ars = delivered_ar(t)
    assert ars == []


def test_check_config(make_tern, dns):
    t = make_tern(config={"spf_fail_action": "bounce"})
    r = run_tool(t, "check-config")
    assert r.returncode != 0 and "tern.conf:" in r.stderr and "must be tag or reject" \
        in r.stderr, r.stderr
    t = make_tern(config={"authserv_id": "a;b"})
    r = run_tool(t, "check-config")
    assert r.returncode != 0 and "authserv_id" in r.stderr, r.stderr
    t = make_tern(config={"psl_file": "/nonexistent/psl.dat", "dmarc_check": "yes"})
    r = run_tool(t, "check-config")
    assert r.returncode != 0 and "public suffix list" in r.stderr, r.stderr


# RFC 7489 Appendix C's XML schema, as published (tests/data/rfc7489-dmarc.xsd),
# with the two mechanical repairs it needs to load at all: (1) without the
# targetNamespace attribute (the schema's own unprefixed type="..." references
# resolve to no namespace and do not load with it; reports, tern's and everyone
# else's, carry no namespace), (2) the IPAddress pattern unfolded (the RFC's
# line wrapping put newlines and spaces inside the regular expression, so no
# address could match). Nothing else is changed: every element, occurrence
# bound and enumeration is the RFC's.
XSD = REPO / "tests" / "data" / "rfc7489-dmarc.xsd"


def rfc7489_schema():
    etree = pytest.importorskip("lxml.etree")
    text = XSD.read_text()
    text, n = re.subn(r'\s+targetNamespace="http://dmarc.org/dmarc-xml/0.1"', "", text)
    assert n == 1
    m = re.search(r'<xs:pattern value="([^"]*)"', text)
    text = text[:m.start(1)] + re.sub(r"\s+", "", m.group(1)) + text[m.end(1):]
    return etree.XMLSchema(etree.fromstring(text.encode()))


def validate_report(xml):
    """Validate one report's XML against Appendix C; the parsed tree."""
    etree = pytest.importorskip("lxml.etree")
    doc = etree.fromstring(xml)
    schema = rfc7489_schema()
    assert schema.validate(doc), "\n".join(str(e) for e in schema.error_log)
    return doc


def test_aggregate_report(make_tern, dns, key):
    t = start(make_tern, dns, dmarc_reports="yes", dmarc_report_interval="3s",
              dmarc_report_org="\"Tern Test\"", dmarc_report_email="dmarc-noreply@tern.test")
    assert send(t, "alice@good.example", signed(key))[0] == 250
    assert send(t, "bounce@other.example", make_message(sender="ceo@good.example"))[0] == 250
    assert send(t, "bounce@other.example", make_message(sender="ceo@good.example"))[0] == 250
    paths = t.wait_delivered("alice@example.com", 1, timeout=20)
    msg = email.message_from_bytes(Mail(paths[0]).raw)
    assert msg["Subject"].startswith("Report Domain: good.example Submitter: Tern Test "
                                     "Report-ID: <"), msg["Subject"]
    assert msg["From"] == "<dmarc-noreply@tern.test>"
    parts = [p for p in msg.walk() if p.get_content_type() == "application/gzip"]
    assert len(parts) == 1
    fname = parts[0].get_filename()
    assert re.fullmatch(r"tern\.test!good\.example!\d+!\d+\.xml\.gz", fname), fname
    xml = gzip.decompress(parts[0].get_payload(decode=True))
    validate_report(xml)
    root = ET.fromstring(xml)
    assert root.tag == "feedback"
    assert root.findtext("policy_published/domain") == "good.example"
    assert root.findtext("policy_published/p") == "reject"
    rows = {(r.findtext("row/policy_evaluated/dkim"), r.findtext("row/policy_evaluated/spf")):
            int(r.findtext("row/count")) for r in root.findall("record")}
    assert rows == {("pass", "pass"): 1, ("fail", "fail"): 2}, rows
    for r in root.findall("record"):
        assert r.findtext("row/source_ip") == CLIENT
        assert r.findtext("identifiers/header_from") == "good.example"
    t.wait_log(r"\w+: accepted session=local client=local from=<dmarc-noreply@tern\.test> "
               r"size=\d+ nrcpt=1 proto=DMARC-REPORT")


def report_rows(t, n=1, timeout=30):
    """The rows {(dkim, spf): count} and date_range begin of the n-th report."""
    paths = t.wait_delivered("alice@example.com", n, timeout=timeout)
    msg = email.message_from_bytes(Mail(paths[n - 1]).raw)
    part = [p for p in msg.walk() if p.get_content_type() == "application/gzip"][0]
    root = validate_report(gzip.decompress(part.get_payload(decode=True)))
    rows = {}
    for r in root.findall("record"):
        k = (r.findtext("row/policy_evaluated/dkim"), r.findtext("row/policy_evaluated/spf"))
        rows[k] = rows.get(k, 0) + int(r.findtext("row/count"))
    return rows, int(root.findtext("report_metadata/date_range/begin"))


def test_aggregate_report_counts_survive_restarts(make_tern, dns, key):
    """The counts are kept under the spool (daemon/reports.c's saves, at
    every clean stop and every minute): after restarts mid-period the report
    still counts the earlier messages, covers the period from its first
    start, and comes due at that start + interval."""
    t0 = int(time.time())
    t = start(make_tern, dns, dmarc_reports="yes", dmarc_report_interval="15s",
              dmarc_report_email="dmarc-noreply@tern.test")
    assert send(t, "alice@good.example", signed(key))[0] == 250
    t.restart()  # a clean stop writes the counts
    saved = t.spool / "dmarc-reports"
    assert b"\nrow 1\t" in saved.read_bytes(), saved.read_bytes()
    begin_saved = int(re.search(rb"begin (\d+)", saved.read_bytes()).group(1))
    t.wait_log(r"DMARC-REPORT: the counts since %d restored" % begin_saved, whole=True)
    assert send(t, "bounce@other.example", make_message(sender="ceo@good.example"))[0] == 250
    t.restart()
    assert send(t, "bounce@other.example", make_message(sender="ceo@good.example"))[0] == 250
    rows, begin = report_rows(t, timeout=40)
    assert rows == {("pass", "pass"): 1, ("fail", "fail"): 2}, rows
    assert begin == begin_saved and t0 - 1 <= begin <= t0 + 5, (t0, begin)
    # the next period starts empty, and that too is what a restart finds
    t.restart()
    assert b"\nrow " not in saved.read_bytes(), saved.read_bytes()
