"""
test_tls_rpt_dane.py - TLS-RPT (RFC 8460) counts under DANE: the world of
test_dane.py (a DNSSEC-signed zone served by nsd, aiosmtpd MX hosts) with
tls_reports on. After real deliveries the counts saved in the spool at
shutdown say, per policy domain (section 4.4.2, policy type "tlsa" with the
host's TLSA records and its name):
  ee.dane.example      a success (DANE-EE matches)
  wrong.dane.example   tlsa-invalid (no record matches; section 4.3.2.2.1)
  bogus.dane.example   dnssec-invalid (the TLSA answer is bogus)
  strip.dane.example   starttls-not-supported (TLSA published, no STARTTLS)
and the report built from them is valid against tests/data's schema.
(Sending reports is test_tls_rpt.py's part.)
"""

import json

import pytest

from tern_harness import REPO
from test_dane import HOSTS, dane_world  # noqa: F401 (dane_world: a fixture)

jsonschema = pytest.importorskip("jsonschema")


def test_tls_rpt_dane(make_tern, dane_world):  # noqa: F811
    cfg = dict(dane_world["config"])
    cfg["tls_reports"] = "yes"
    t = make_tern(config=cfg).start()
    for dom in ("ee", "wrong", "bogus", "strip"):
        t.send("user@%s.dane.example" % dom)

    def line(dom, status, reply=""):
        return t.wait_log(r"to=<user@%s\.dane\.example> relay=\S+.* status=%s \(%s"
                          % (dom, status, reply), timeout=20)

    line("ee", "sent")
    line("wrong", "deferred", r"451 4\.7\.5 ")
    line("bogus", "deferred", r"451 4\.7\.5 .*TLSA")
    line("strip", "deferred", r"451 4\.7\.5 .*does not offer STARTTLS")
    t.stop()
    (day,) = json.loads((t.spool / "tlsrpt.json").read_text())["days"].values()

    def only(dom):
        (p,) = day[dom]["policies"].values()
        assert p["policy"]["policy-type"] == "tlsa"
        assert p["policy"]["policy-domain"] == dom
        return p

    ee = only("ee.dane.example")
    assert ee["policy"]["mx-host"] == ["mx-ee.dane.example"]
    (rec,) = ee["policy"]["policy-string"]
    assert rec.startswith("3 1 1 ") and len(rec) == 6 + 64
    assert (ee["ok"], ee["fail"]) == (1, 0)

    def failure(dom, result, mx):
        p = only(dom)
        assert (p["ok"], p["fail"]) == (0, 1)
        (fd,) = p["details"].values()
        assert fd["result-type"] == result
        assert fd["receiving-mx-hostname"] == mx
        assert fd["failed-session-count"] == 1
        return fd

    fd = failure("wrong.dane.example", "tlsa-invalid", "mx-wrong.dane.example")
    assert fd["receiving-ip"] == HOSTS["mx-wrong"] and fd["sending-mta-ip"] == "127.0.0.1"
    assert only("wrong.dane.example")["policy"]["policy-string"] == ["3 1 1 " + "00" * 32]
    failure("bogus.dane.example", "dnssec-invalid", "mx-bogus.dane.example")
    failure("strip.dane.example", "starttls-not-supported", "mx-strip.dane.example")

    # the section 4.4 document the report would carry, against the schema
    schema = json.loads((REPO / "tests" / "data" / "tlsrpt_report.schema.json").read_text())
    for dom, e in day.items():
        doc = {"organization-name": "x", "contact-info": "a@b.example", "report-id": "1@x",
               "date-range": {"start-datetime": "2026-12-07T00:00:00Z",
                              "end-datetime": "2026-12-07T23:59:59Z"},
               "policies": [{"policy": p["policy"],
                             "summary": {"total-successful-session-count": p["ok"],
                                         "total-failure-session-count": p["fail"]},
                             "failure-details": list(p["details"].values())}
                            for p in e["policies"].values()]}
        jsonschema.validate(doc, schema, format_checker=jsonschema.FormatChecker())
