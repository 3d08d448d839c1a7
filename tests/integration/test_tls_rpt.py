"""
test_tls_rpt.py - SMTP TLS Reporting (RFC 8460): real deliveries counted,
the counts carried over a restart, the day's reports sent by mail and by
HTTPS POST, each validated against tests/data/tlsrpt_report.schema.json.

The world is test_mta_sts.py's (its DNS server, test CA, MTA-STS policy
server and TLS peers), plus:
  - "_smtp._tls" TXT records: enforce.example asks for reports by mail and
    by HTTPS, wrongname.example by mail only; malformed.example publishes a
    record that is not one (no report);
  - reports.example: MX mx-rpt (127.0.56.5, an aiosmtpd peer under TLS)
    receives the mailed reports;
  - rpt.example (127.0.56.6): an HTTPS server (test CA) that takes POSTs.
Run: enforce.example (MTA-STS enforce, certificate valid: a success) and
wrongname.example (enforce, a certificate for another name: a failure,
certificate-host-mismatch) and malformed.example (its policy answers 404:
sts-policy-fetch-error; then no-policy-found, TLS up: a success) under a long report interval; stop (the counts
are saved in the spool); start again with a 3 s interval: the reports come
with the counts of the first run.
"""

import base64
import email
import email.policy
import gzip
import http.server
import json
import os
import re
import ssl
import threading
import time

import pytest

from tern_harness import REPO, tf

sts = pytest.importorskip("test_mta_sts")
aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
jsonschema = pytest.importorskip("jsonschema")

SCHEMA = json.loads((REPO / "tests" / "data" / "tlsrpt_report.schema.json").read_text())
RPT_MX_IP = "127.0.56.5"
RPT_WEB_IP = "127.0.56.6"


def zone(web_port):
    z = sts.zone({d: "1" for d in sts.DOMAINS})
    z += "mx-rpt A %s\n" % RPT_MX_IP
    z += "reports MX 10 mx-rpt.example.\n"
    z += "rpt A %s\n" % RPT_WEB_IP
    z += ('_smtp._tls.enforce TXT "v=TLSRPTv1; rua=mailto:tlsrpt@reports.example, '
          'https://rpt.example:%d/tlsrpt/v1;"\n' % web_port)
    z += '_smtp._tls.wrongname TXT "v=TLSRPTv1;rua=mailto:tlsrpt@reports.example"\n'
    z += '_smtp._tls.malformed TXT "v=TLSRPTv1; rua=ftp://x.example/"\n'
    return z


class Collector:
    """https://rpt.example:PORT/...: every POST kept as (path, type, body);
    the first `fail` of them are answered 503 (and kept in `refused`)."""

    def __init__(self, chain, key, port):
        self.posts = []
        self.refused = []
        self.fail = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                post = (self.path, self.headers.get("Content-Type"), self.rfile.read(n))
                if outer.fail > 0:
                    outer.fail -= 1
                    outer.refused.append(post)
                    self.send_response(503)
                else:
                    outer.posts.append(post)
                    self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(chain), str(key))
        self.httpd = http.server.ThreadingHTTPServer((RPT_WEB_IP, port), Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Inbox(sts.Sink):
    async def handle_DATA(self, server, session, envelope):
        self.messages.append({"to": list(envelope.rcpt_tos), "from": envelope.mail_from,
                              "data": envelope.original_content or envelope.content})
        return "250 2.0.0 Ok: report taken"


@pytest.fixture
def world(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(d, 0o755)
    ca = sts.make_ca(d)
    https_chain, https_key = sts.make_leaf(d, "mta-sts",
                                           ["mta-sts.%s.example" % x for x in sts.DOMAINS])
    certs = {
        "mx-good": sts.make_leaf(d, "mx-good", ["mx-good.sts.example"]),
        "mx-wrong": sts.make_leaf(d, "mx-wrong", ["someone-else.example"]),
        "mx-rpt": sts.make_leaf(d, "mx-rpt", ["mx-rpt.example"]),
    }
    rpt_chain, rpt_key = sts.make_leaf(d, "rpt", ["rpt.example"])
    smtp_port = sts.free_port(sts.HOSTS["mx-good"])
    https_port = sts.free_port(sts.HTTPS_IP)
    web_port = sts.free_port(RPT_WEB_IP)
    dns = sts.DNS(zone(web_port))
    web = sts.PolicyServer(https_chain, https_key, https_port)
    web.policies = {
        "enforce.example": (200, "text/plain", sts.policy("enforce", "mx-good.sts.example")),
        "wrongname.example": (200, "text/plain", sts.policy("enforce", "*.sts.example")),
    }
    collector = Collector(rpt_chain, rpt_key, web_port)
    sinks, controllers = {}, []
    try:
        for host, ip in (("mx-good", sts.HOSTS["mx-good"]), ("mx-wrong", sts.HOSTS["mx-wrong"]),
                         ("mx-rpt", RPT_MX_IP)):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(certs[host][0]), str(certs[host][1]))
            sinks[host] = Inbox()
            c = aiosmtpd_controller.Controller(sinks[host], hostname=ip, port=smtp_port,
                                               tls_context=ctx)
            c.start()
            controllers.append(c)
        yield {"sinks": sinks, "collector": collector, "dns": dns, "zone": zone(web_port),
               "config": {
            "smtp_mta_sts": "yes", "mta_sts_port": str(https_port), "smtp_tls_ca_file": str(ca),
            "dns_servers": "127.0.0.1@%d" % dns.port, "smtp_port": str(smtp_port),
            "retry_min": "1h", "retry_max": "2h", "dns_timeout": "5s",
            "tls_reports": "yes", "tls_report_interval": "1d",
            "tls_report_org": '"Tern Test"', "tls_report_email": "noreply-tlsrpt@tern.test",
            "tls_report_contact": "tls-admin@tern.test"}}
    finally:
        for c in controllers:
            c.stop()
        collector.close()
        web.close()
        dns.close()


def report_of(msg_bytes):
    """The mailed report: (message, the JSON document)."""
    m = email.message_from_bytes(msg_bytes, policy=email.policy.default)
    assert m.get_content_type() == "multipart/report"
    assert m.get_param("report-type") == "tlsrpt"
    parts = [p for p in m.iter_parts() if p.get_content_type() == "application/tlsrpt+gzip"]
    assert len(parts) == 1, m
    fname = parts[0].get_filename()
    # section 5.1: sender!policy-domain!begin!end.json.gz
    assert re.fullmatch(r"tern\.test!%s!\d+!\d+\.json\.gz"
                        % re.escape(m["TLS-Report-Domain"]), fname), fname
    doc = json.loads(gzip.decompress(parts[0].get_content()))
    return m, doc


def check_doc(doc, domain):
    jsonschema.validate(doc, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert doc["organization-name"] == "Tern Test"
    assert doc["contact-info"] == "tls-admin@tern.test"
    (pol,) = doc["policies"]
    assert pol["policy"]["policy-type"] == "sts"
    assert pol["policy"]["policy-domain"] == domain
    assert "version: STSv1" in pol["policy"]["policy-string"]
    assert "mode: enforce" in pol["policy"]["policy-string"]
    return pol


def test_tls_rpt(make_tern, world):
    sinks, collector = world["sinks"], world["collector"]
    t = make_tern(config=world["config"]).start()
    t.send("user@enforce.example")
    t.send("user@wrongname.example")
    t.send("user@malformed.example")  # its MTA-STS policy is not served (404)
    sts.line(t, "enforce.example", "sent", r"mx-good\S+ tls=TLSv1\.[23] verified=sts")
    sts.line(t, "wrongname.example", "deferred", reply=r"451 4\.7\.5 MTA-STS policy")
    sts.line(t, "malformed.example", "sent", r"mx-wrong\S+ tls=TLSv1\.[23] verified=none")
    t.stop()  # the counts are saved in the spool at shutdown
    saved = json.loads((t.spool / "tlsrpt.json").read_text())
    (day,) = saved["days"].values()
    assert set(day) == {"enforce.example", "wrongname.example", "malformed.example"}
    # malformed.example: the policy fetch failed (HTTP 404: section 4.3.2.2.2),
    # then the session without a policy succeeded
    pols = {p["policy"]["policy-type"]: p for p in day["malformed.example"]["policies"].values()}
    assert set(pols) == {"sts", "no-policy-found"}
    assert (pols["no-policy-found"]["ok"], pols["no-policy-found"]["fail"]) == (1, 0)
    assert (pols["sts"]["ok"], pols["sts"]["fail"]) == (0, 1)
    (fd,) = pols["sts"]["details"].values()
    assert fd["result-type"] == "sts-policy-fetch-error"
    assert "HTTP status 404" in fd["failure-reason-code"]
    assert sinks["mx-rpt"].messages == [] and collector.posts == []

    # a short interval: today's counts so far are reported, with the first run's
    t.config["tls_report_interval"] = "3s"
    t.write_files()
    t.start()
    deadline = time.monotonic() + tf(30)
    while len(sinks["mx-rpt"].messages) < 2 or not collector.posts:
        assert time.monotonic() < deadline, t.tail()
        time.sleep(0.1)
    # a record that is not a TLSRPTv1 one with a usable rua: nothing sent
    t.wait_log(r"tls-rpt: _smtp\._tls\.malformed\.example: malformed record: no mailto: or "
               r"https: URI in rua")
    t.wait_log(r"tls-rpt: malformed\.example: no report sent")

    mails = {}
    for m in sinks["mx-rpt"].messages:
        assert m["to"] == ["tlsrpt@reports.example"]
        assert m["from"] == "noreply-tlsrpt@tern.test"
        msg, doc = report_of(m["data"])
        # section 5.3: the headers and the subject
        dom = msg["TLS-Report-Domain"]
        assert msg["TLS-Report-Submitter"] == "tern.test"
        assert re.fullmatch(r"Report Domain: %s Submitter: tern\.test Report-ID: <%s>"
                            % (re.escape(dom), re.escape(doc["report-id"])), msg["Subject"])
        assert "@" in doc["report-id"]
        mails[dom] = doc
    assert set(mails) == {"enforce.example", "wrongname.example"}

    ok = check_doc(mails["enforce.example"], "enforce.example")
    assert ok["policy"]["mx-host"] == ["mx-good.sts.example"]
    assert ok["summary"] == {"total-successful-session-count": 1,
                             "total-failure-session-count": 0}
    assert "failure-details" not in ok

    bad = check_doc(mails["wrongname.example"], "wrongname.example")
    assert bad["policy"]["mx-host"] == ["*.sts.example"]
    assert bad["summary"] == {"total-successful-session-count": 0,
                              "total-failure-session-count": 1}
    (fd,) = bad["failure-details"]
    assert fd["result-type"] == "certificate-host-mismatch"
    assert fd["receiving-mx-hostname"] == "mx-wrong.sts.example"
    assert fd["receiving-ip"] == sts.HOSTS["mx-wrong"]
    assert fd["sending-mta-ip"].startswith("127.")
    assert fd["failed-session-count"] == 1

    # section 5.4: the HTTPS rua got the same report, gzipped
    (path, ctype, body) = collector.posts[0]
    assert path == "/tlsrpt/v1"
    assert ctype == "application/tlsrpt+gzip"
    posted = json.loads(gzip.decompress(body))
    check_doc(posted, "enforce.example")
    assert posted["report-id"] == mails["enforce.example"]["report-id"]
    assert posted["policies"][0]["summary"]["total-successful-session-count"] == 1
    t.wait_log(r"tls-rpt: report \S+ for enforce\.example posted to https://rpt\.example:\d+"
               r"/tlsrpt/v1 \(HTTP 201\)")
    assert len(sinks["mx-rpt"].messages) == 2


def test_tls_rpt_https_retry(make_tern, world):
    """RFC 8460 section 5.5: a report the HTTPS rua refused (503) is posted
    again after tls_report_retry; one still undelivered at shutdown waits in
    the spool (tlsrpt-retry.json) and is posted after the restart."""
    collector = world["collector"]
    collector.fail = 1
    cfg = dict(world["config"], tls_report_interval="2s", tls_report_retry="1s")
    t = make_tern(config=cfg).start()
    t.send("user@enforce.example")
    sts.line(t, "enforce.example", "sent", r"mx-good\S+ tls=TLSv1\.[23] verified=sts")
    t.wait_log(r"tls-rpt: report \S+ for enforce\.example: https://rpt\.example:\d+/tlsrpt/v1 "
               r"answered HTTP 503")
    t.wait_log(r"tls-rpt: report \S+ for enforce\.example: posting to https://rpt\.example:\d+"
               r"/tlsrpt/v1 again \(attempt 2\)")
    t.wait_log(r"tls-rpt: report \S+ for enforce\.example posted to https://rpt\.example:\d+"
               r"/tlsrpt/v1 \(HTTP 201\)")
    assert len(collector.refused) == 1 and len(collector.posts) == 1
    assert collector.posts[0][2] == collector.refused[0][2]  # the same report, gzipped
    first = json.loads(gzip.decompress(collector.posts[0][2]))
    check_doc(first, "enforce.example")

    # refused until the restart: the report waits in the spool (a new run:
    # a fresh TLS session to count, not a cached connection)
    t.stop()
    collector.fail = 10 ** 6
    t.start()
    t.send("user@enforce.example")
    n = len(collector.refused)
    deadline = time.monotonic() + tf(30)
    while len(collector.refused) == n:
        assert time.monotonic() < deadline, t.tail()
        time.sleep(0.1)
    t.wait_log(r"tls-rpt: report \S+ for enforce\.example to https://rpt\.example:\d+"
               r"/tlsrpt/v1: next attempt in \d+ s")
    t.stop()
    saved = json.loads((t.spool / "tlsrpt-retry.json").read_text())
    (p,) = saved["pending"]
    assert p["domain"] == "enforce.example" and p["tries"] >= 1
    second = json.loads(gzip.decompress(base64.b64decode(p["body"])))
    assert second["report-id"] != first["report-id"]
    collector.fail = 0
    t.start()
    t.wait_log(r"tls-rpt: 1 HTTPS reports wait for a retry")
    deadline = time.monotonic() + tf(30)
    while len(collector.posts) < 2:
        assert time.monotonic() < deadline, t.tail()
        time.sleep(0.1)
    assert json.loads(gzip.decompress(collector.posts[1][2]))["report-id"] == second["report-id"]


def test_tls_rpt_mail_tls_optional(make_tern, world):
    """RFC 8460 section 5.3: a mailed report is delivered despite TLS failures
    at the reporting address: it says "TLS-Required: No" (RFC 8689 section
    4.2.2), so wrongname.example's own enforce policy, whose MX shows a
    certificate for another name, does not stop a report sent to it."""
    old = '_smtp._tls.wrongname TXT "v=TLSRPTv1;rua=mailto:tlsrpt@reports.example"'
    assert old in world["zone"]
    world["dns"].set_zone(world["zone"].replace(old, old.replace("reports", "wrongname")))
    t = make_tern(config=dict(world["config"], tls_report_interval="2s")).start()
    t.send("user@wrongname.example")
    sts.line(t, "wrongname.example", "deferred", reply=r"451 4\.7\.5 MTA-STS policy")
    t.wait_log(r"tls-rpt: report \S+ for wrongname\.example to tlsrpt@wrongname\.example queued")
    t.wait_log(r"to=<tlsrpt@wrongname\.example> relay=mx-wrong\.sts\.example\S+ "
               r"tls=TLSv1\.[23] verified=none .*status=sent", timeout=20)
    (m,) = [m for m in world["sinks"]["mx-wrong"].messages
            if m["to"] == ["tlsrpt@wrongname.example"]]
    msg, doc = report_of(m["data"])
    assert msg["TLS-Required"] == "No"
    assert msg["TLS-Report-Domain"] == "wrongname.example"
    fd = check_doc(doc, "wrongname.example")["failure-details"][0]
    assert fd["result-type"] == "certificate-host-mismatch"
