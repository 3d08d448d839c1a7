"""
test_mta_sts.py - MTA-STS (RFC 8461) against a policy server and TLS peers.

The world the test makes:
  - a DNS server (tests/unit/dns_server.py in a thread) serving the zone
    below: each domain's MX, its "_mta-sts" TXT record (TTL 1 s, so an id
    change is seen at once) and mta-sts.DOMAIN -> 127.0.56.1;
  - an HTTPS server (Python http.server under ssl) on 127.0.56.1, on a free
    port tern is given by the test-only key mta_sts_port (RFC 8461 says
    443), with a certificate from a CA the test makes (tern trusts it through
    smtp_tls_ca_file) naming every mta-sts.DOMAIN; it answers
    /.well-known/mta-sts.txt from a dict the test changes, and counts fetches;
  - TLS SMTP peers (aiosmtpd) on 127.0.56.x, one port (smtp_port):
      mx-good.sts.example   certificate for its own name, from the test CA
      mx-wrong.sts.example  certificate for another name
      mx-other.sts.example  certificate for its own name, not in the policy
Domains:
  enforce.example    enforce, mx mx-good: delivered, verified=sts
  wrongname.example  enforce, MX mx-wrong: deferred 4.7.5, no MAIL command
  testing.example    testing, MX mx-wrong: delivered, the failure logged
  nomatch.example    enforce, mx mx-good; MX 10 mx-other, 20 mx-good: the
                     first is not used, the second takes the mail
  malformed.example  a policy that is not one: no policy (logged), delivered
Then: a restart with the policy server answering 500 (the cache in the
spool carries every policy: no fetch, wrongname still deferred, enforce
delivered verified=sts), and an id change (a new fetch, the new policy used).
"""

import http.server
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

from tern_harness import REPO, tf

sys.path.insert(0, str(REPO / "tests" / "unit"))
import dns_server  # noqa: E402  (tests/unit/dns_server.py)

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
from dnslib import DNSRecord  # noqa: E402

HTTPS_IP = "127.0.56.1"
HOSTS = {"mx-good": "127.0.56.2", "mx-wrong": "127.0.56.3", "mx-other": "127.0.56.4"}
DOMAINS = ["enforce", "wrongname", "testing", "nomatch", "malformed"]


def run(*args, cwd=None):
    return subprocess.run(list(args), cwd=cwd, check=True, capture_output=True, text=True).stdout


def make_ca(d):
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-days", "2", "-subj", "/CN=tern MTA-STS test CA", "-keyout", "ca.key",
        "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    os.chmod(d / "ca.pem", 0o644)
    return d / "ca.pem"


def make_leaf(d, name, sans):
    """A certificate for the names sans from the test CA: (chain, key)."""
    san = ",".join("DNS:" + s for s in sans)
    run("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-subj", "/CN=" + sans[0], "-addext", "subjectAltName=" + san,
        "-keyout", name + ".key", "-out", name + ".csr", cwd=d)
    run("openssl", "x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-copy_extensions", "copy", "-out", name + ".pem", cwd=d)
    chain = d / (name + ".chain.pem")
    chain.write_text((d / (name + ".pem")).read_text() + (d / "ca.pem").read_text())
    return chain, d / (name + ".key")


def free_port(ip):
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def zone(ids):
    z = """$ORIGIN example.
$TTL 1
@ SOA ns.example. hostmaster.example. 1 3600 600 86400 1
@ NS ns.example.
ns A 127.0.0.1
mx-good.sts A {mx-good}
mx-wrong.sts A {mx-wrong}
mx-other.sts A {mx-other}
enforce MX 10 mx-good.sts
wrongname MX 10 mx-wrong.sts
testing MX 10 mx-wrong.sts
nomatch MX 10 mx-other.sts
nomatch MX 20 mx-good.sts
malformed MX 10 mx-wrong.sts
""".format(**HOSTS)
    for d in DOMAINS:
        z += 'mta-sts.%s A %s\n_mta-sts.%s TXT "v=STSv1; id=%s;"\n' % (d, HTTPS_IP, d, ids[d])
    return z


def policy(mode, *mx, max_age=86400):
    return "version: STSv1\r\nmode: %s\r\n%smax_age: %d\r\n" % (
        mode, "".join("mx: %s\r\n" % m for m in mx), max_age)


class DNS:
    def __init__(self, text):
        self.srv = dns_server.Server(dns_server.Zone(text), {})
        self.port = self.srv.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def set_zone(self, text):
        self.srv.zone = dns_server.Zone(text)

    def _run(self):
        while not self.stopping:
            r, _, _ = select.select([self.srv.sock], [], [], 0.05)
            if r:
                data, addr = self.srv.sock.recvfrom(65535)
                try:
                    DNSRecord.parse(data)
                except Exception:
                    continue
                self.srv.handle(data, addr)

    def close(self):
        self.stopping = True
        self.thread.join(5)
        self.srv.sock.close()


class PolicyServer:
    """https://mta-sts.DOMAIN:PORT/.well-known/mta-sts.txt from self.policies
    (domain -> (status, content type, body)); self.fetches counts per domain."""

    def __init__(self, chain, key, port):
        self.policies = {}
        self.fetches = {}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                host = (self.headers.get("Host") or "").split(":")[0]
                dom = host[len("mta-sts."):] if host.startswith("mta-sts.") else host
                outer.fetches[dom] = outer.fetches.get(dom, 0) + 1
                status, ctype, body = outer.policies.get(dom, (404, "text/plain", "no\r\n"))
                if self.path != "/.well-known/mta-sts.txt":
                    status, ctype, body = 404, "text/plain", "no\r\n"
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(chain), str(key))
        self.httpd = http.server.ThreadingHTTPServer((HTTPS_IP, port), Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Sink:
    def __init__(self):
        self.messages = []
        self.mail_commands = 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.mail_commands += 1
        envelope.mail_from = address
        return "250 2.1.0 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append({"to": list(envelope.rcpt_tos), "tls": session.ssl is not None})
        return "250 2.0.0 Ok: sunk"


@pytest.fixture
def sts_world(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(d, 0o755)
    ca = make_ca(d)
    https_chain, https_key = make_leaf(d, "mta-sts", ["mta-sts.%s.example" % x for x in DOMAINS])
    certs = {
        "mx-good": make_leaf(d, "mx-good", ["mx-good.sts.example"]),
        "mx-wrong": make_leaf(d, "mx-wrong", ["someone-else.example"]),
        "mx-other": make_leaf(d, "mx-other", ["mx-other.sts.example"]),
    }
    smtp_port = free_port(HOSTS["mx-good"])
    https_port = free_port(HTTPS_IP)
    ids = {x: "1" for x in DOMAINS}
    dns = DNS(zone(ids))
    web = PolicyServer(https_chain, https_key, https_port)
    web.policies = {
        "enforce.example": (200, "text/plain", policy("enforce", "mx-good.sts.example")),
        "wrongname.example": (200, "text/plain", policy("enforce", "*.sts.example")),
        "testing.example": (200, "text/plain; charset=utf-8",
                            policy("testing", "mx-wrong.sts.example")),
        "nomatch.example": (200, "text/plain", policy("enforce", "mx-good.sts.example")),
        "malformed.example": (200, "text/plain", "version: STSv1\r\nmode: sometimes\r\n"
                              "mx: mx-wrong.sts.example\r\nmax_age: 86400\r\n"),
    }
    sinks, controllers = {}, []
    try:
        for host, ip in HOSTS.items():
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(certs[host][0]), str(certs[host][1]))
            sinks[host] = Sink()
            c = aiosmtpd_controller.Controller(sinks[host], hostname=ip, port=smtp_port,
                                               tls_context=ctx)
            c.start()
            controllers.append(c)
        yield {"dns": dns, "web": web, "sinks": sinks, "ids": ids, "config": {
            "smtp_mta_sts": "yes", "mta_sts_port": str(https_port), "smtp_tls_ca_file": str(ca),
            "dns_servers": "127.0.0.1@%d" % dns.port, "smtp_port": str(smtp_port),
            "retry_min": "1h", "retry_max": "2h", "dns_timeout": "5s"}}
    finally:
        for c in controllers:
            c.stop()
        web.close()
        dns.close()


def line(t, dom, status, relay=r"\S+", reply=""):
    return t.wait_log(r"to=<user@%s> relay=%s.* status=%s \(%s" % (
        dom.replace(".", r"\."), relay, status, reply), timeout=tf(20))


def test_mta_sts(make_tern, sts_world):
    sinks, web, dns = sts_world["sinks"], sts_world["web"], sts_world["dns"]
    t = make_tern(config=sts_world["config"]).start()
    for dom in DOMAINS:
        t.send("user@%s.example" % dom)
    # enforce, the certificate valid for the MX host: verified=sts
    line(t, "enforce.example", "sent",
         r"mx-good\.sts\.example\[127\.0\.56\.2\]:\d+ tls=TLSv1\.[23] verified=sts")
    t.wait_log(r"mta-sts: enforce\.example: policy fetched id=1 mode=enforce max_age=86400 "
               r"mx=mx-good\.sts\.example")
    # enforce, a certificate for another name: deferred, nothing sent
    line(t, "wrongname.example", "deferred",
         reply=r"451 4\.7\.5 MTA-STS policy of wrongname\.example: certificate verification failed")
    # testing: delivered anyway, the failure logged
    line(t, "testing.example", "sent", r"mx-wrong\.sts\.example\S+ tls=TLSv1\.[23] verified=none")
    t.wait_log(r"mta-sts testing: testing\.example: the certificate of mx-wrong\.sts\.example"
               r"\S+ is not valid for it")
    # an MX host outside the policy is not used; the one in it takes the mail
    line(t, "nomatch.example", "sent", r"mx-good\.sts\.example\S+ tls=TLSv1\.[23] verified=sts")
    t.wait_log(r"outbound: nomatch\.example: MX host mx-other\.sts\.example not used: it does "
               r"not match the MTA-STS policy")
    # a malformed policy: no policy (logged), opportunistic delivery
    t.wait_log(r"mta-sts: malformed\.example: malformed policy \(id=1\): mode is not enforce, "
               r"testing or none.*; no policy")
    line(t, "malformed.example", "sent", r"mx-wrong\.sts\.example\S+ tls=TLSv1\.[23] verified=none")
    assert sinks["mx-other"].mail_commands == 0
    assert len(sinks["mx-good"].messages) == 2 and all(m["tls"] for m in sinks["mx-good"].messages)
    assert len(sinks["mx-wrong"].messages) == 2  # testing and malformed, never wrongname
    cache = t.spool / "mta-sts"
    assert sorted(p.name for p in cache.iterdir()) == [
        "enforce.example", "nomatch.example", "testing.example", "wrongname.example"]
    assert "id 1\n" in (cache / "enforce.example").read_text()

    # restart with the policy server failing: the cached policies apply, none is fetched
    t.stop()
    fetched = dict(web.fetches)
    web.policies = {k: (500, "text/plain", "down\r\n") for k in web.policies}
    t.start()
    t.wait_log(r"mta-sts: 4 cached policies read from \S+/mta-sts")
    t.send("user@enforce.example")
    t.send("user@wrongname.example")
    line(t, "enforce.example", "sent", r"mx-good\S+ tls=TLSv1\.[23] verified=sts")
    line(t, "wrongname.example", "deferred", reply=r"451 4\.7\.5 MTA-STS policy of wrongname")
    assert web.fetches == fetched
    assert sinks["mx-wrong"].mail_commands == 2

    # a new id: fetched again, and the new policy (testing) applies
    web.policies["wrongname.example"] = (200, "text/plain", policy("testing", "*.sts.example"))
    sts_world["ids"]["wrongname"] = "2"
    dns.set_zone(zone(sts_world["ids"]))
    time.sleep(2.5)  # the TXT record's TTL (1 s; libunbound counts whole seconds)
    t.send("user@wrongname.example", subject="after the id change")
    t.wait_log(r"mta-sts: wrongname\.example: the policy id changed \(1 -> 2\): fetching it")
    t.wait_log(r"mta-sts: wrongname\.example: policy fetched id=2 mode=testing")
    line(t, "wrongname.example", "sent", r"mx-wrong\S+ tls=TLSv1\.[23] verified=none")
    assert web.fetches["wrongname.example"] == fetched["wrongname.example"] + 1
    assert "id 2\n" in (cache / "wrongname.example").read_text()

    # a reload that changes the resolver's settings: a new resolver, the
    # cache of policies stays (enforce.example is not fetched again)
    t.config["dns_timeout"] = "6s"
    t.write_files()
    t.signal(signal.SIGHUP)
    t.wait_log(r"reload: outbound settings applied")
    t.send("user@enforce.example", subject="after the reload")
    pat = re.compile(r"to=<user@enforce\.example> relay=mx-good\S+ tls=TLSv1\.[23] verified=sts "
                     r".*status=sent")
    deadline = time.monotonic() + tf(20)
    while len(pat.findall(t.run_log())) < 2:  # one before the reload, one after
        assert time.monotonic() < deadline, t.tail()
        time.sleep(0.05)
    assert web.fetches["enforce.example"] == fetched["enforce.example"]
