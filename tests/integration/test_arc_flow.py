"""
test_arc_flow.py - ARC (RFC 8617) in the mail flow (issue 13,
src/mailauth/arc_flow.c, the seal in src/mailauth/sign.c), against the real
daemon, with dkimpy's ARC on the other side and the keys and policies served
by tests/unit/dns_server.py (in a thread, on loopback):

- a chain dkimpy sealed (i=1) arriving from 127.0.0.2: arc=pass in the A-R
  field; the same tampered: arc=fail; no ARC: arc=none;
- a DMARC-failing message (SPF -all, p=reject) with dmarc_enforce on: taken
  when the passing chain's sealer is in arc_trusted_sealers and its oldest
  AAR says the message passed (the A-R comment says override), refused
  with 550 5.7.1 when the sealer is not trusted or the chain fails;
- a message an alias forwards to a remote address reaches the sink with our
  ARC set (i=2 cv=pass on the chain, i=1 cv=none without one), which
  dkimpy's arc_verify accepts.
"""

import base64
import email
import gzip
import re
import subprocess
import time

import dkim
import pytest

from peers import Sink
from tern_harness import TERN_BIN, tf
from test_dkim import DNS, split

OUTSIDE = "127.0.0.2"  # not in mynetworks
ALIASES = ["postmaster: alice", "fwd: someone@remote.example"]


def message(frm, subject="forwarded", body=b"body text\r\n", ar=None):
    h = b""
    if ar:
        h += b"Authentication-Results: mx.hop1.example; " + ar + b"\r\n"
    h += (b"From: Joe <joe@" + frm + b">\r\nTo: list@lists.example\r\nSubject: " +
          subject.encode() + b"\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\n"
          b"Message-ID: <arcflow-" + subject.encode() + b"@" + frm + b">\r\n\r\n")
    return h + body


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("arcflow")
    pem = d / "hop.pem"
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", str(pem), "2048"], check=True,
                   capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", str(pem), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    hop = b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)
    r = subprocess.run([TERN_BIN, "dkim", "keygen", "tern.example", "t1", "--dir", str(d)],
                       capture_output=True, text=True, timeout=tf(60))
    assert r.returncode == 0, r.stderr
    ours = "".join(re.findall(r'"([^"]*)"', r.stdout)).encode()
    recs = {
        "a1._domainkey.hop1.example.": hop,      # trusted sealer
        "a1._domainkey.hop9.example.": hop,      # not trusted
        "t1._domainkey.tern.example.": ours,     # tern's own seal
        "far.example.": b"v=spf1 -all",
        "_dmarc.far.example.": b"v=DMARC1; p=reject; rua=mailto:alice@example.com",
        # RFC 7489 section 7.1: example.com takes far.example's reports
        "far.example._report._dmarc.example.com.": b"v=DMARC1",
        "plain.example.": b"v=spf1 -all",        # no DMARC record
    }
    zone = ["$ORIGIN example.", "$TTL 300", "@ SOA ns.example. h.example. 1 3600 600 86400 60"]
    for name, rec in recs.items():
        zone.append("%s TXT %s" % (name, " ".join('"%s"' % s.decode() for s in split(rec, 150))))
    dns = DNS("\n".join(zone) + "\n")
    yield {"pem": pem.read_bytes(), "recs": recs, "dns": dns, "dir": d}
    dns.close()


def dnsfunc_of(env):
    def dnsfunc(name, timeout=5):
        return env["recs"].get(name.decode())
    return dnsfunc


def seal(env, msg, domain=b"hop1.example"):
    """dkimpy seals msg as mx.hop1.example would (its A-R field becomes the AAR)"""
    return b"".join(dkim.arc_sign(msg, b"a1", domain, env["pem"], b"mx.hop1.example")) + msg


def start(make_tern, env, keys=False, **extra):
    cfg = {"spf_check": "yes", "dkim_verify": "yes", "dmarc_check": "yes", "arc_verify": "yes",
           "dns_servers": "127.0.0.1@%d" % env["dns"].port, "dns_timeout": "5s",
           "dmarc_enforce": "yes", "arc_trusted_sealers": "hop1.example"}
    cfg.update(extra)
    t = make_tern(config=cfg, aliases=ALIASES)
    if keys:
        # the key beside the config, where the daemon's user may read it
        key = t.dir / "t1.tern.example.key"
        key.write_bytes((env["dir"] / "t1.tern.example.key").read_bytes())
        key.chmod(0o600)
        (t.dir / "dkim_keys").write_text("tern.example t1 %s\n" % key)
        t.config.update({"dkim_sign_keys": str(t.dir / "dkim_keys"),
                         "arc_seal_domain": "tern.example"})
        t.write_files()
    return t.start()


def deliver(t, msg, rcpt="alice@localhost", sender="joe@far.example"):
    """one message from OUTSIDE; the final reply (code, text)"""
    with t.client(source=OUTSIDE) as c:
        c.read_greeting()
        c.ehlo()
        c.expect("MAIL FROM:<%s>" % sender, r"^250 ")
        c.expect("RCPT TO:<%s>" % rcpt, r"^250 ")
        c.expect("DATA", r"^354 ")
        c.send(msg.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        r = c.reply()
        c.cmd("QUIT")
        return r.code, r.text


def authres(t, n):
    files = t.wait_delivered("alice@localhost", n)
    raw = files[-1].read_bytes()
    head = raw.split(b"\n\n", 1)[0].decode()
    head = re.sub(r"\r?\n[ \t]+", " ", head)
    return [l for l in head.splitlines() if l.startswith("Authentication-Results: tern.test")]


def test_inbound_results_and_dmarc_override(make_tern, env):
    t = start(make_tern, env)
    good = seal(env, message(b"far.example", ar=b"spf=pass smtp.mailfrom=joe@far.example;"
                             b" dmarc=pass header.from=far.example"))
    assert dkim.arc_verify(good, dnsfunc=dnsfunc_of(env))[0] == b"pass"
    # a trusted sealer's passing chain: taken despite dmarc=fail with p=reject
    code, text = deliver(t, good)
    assert code == 250, text
    ar = authres(t, 1)
    assert len(ar) == 1, ar
    assert ("arc=pass (i=1 as.d=hop1.example) header.oldest-pass=0 smtp.remote-ip=127.0.0.2"
            in ar[0]), ar
    assert re.search(r"dmarc=fail \(p=reject dis=none override=trusted_forwarder "
                     r"arc\.sealer=hop1\.example\)", ar[0]), ar
    t.wait_log(r"mailauth .*arc=pass \(i=1\) dmarc=fail .* override=trusted_forwarder "
               r"arc_sealer=hop1\.example action=accept")

    # the same chain, tampered: arc=fail, and DMARC's reject stands
    bad = good.replace(b"body text", b"body text!")
    code, text = deliver(t, bad)
    assert code == 550 and "5.7.1" in text, (code, text)
    t.wait_log(r"mailauth .*arc=fail \(i=1\) dmarc=fail .* action=reject")

    # a passing chain from a sealer that is not trusted: refused
    other = seal(env, message(b"far.example", subject="other",
                              ar=b"dmarc=pass header.from=far.example"), b"hop9.example")
    code, text = deliver(t, other)
    assert code == 550 and "5.7.1" in text, (code, text)

    # a trusted chain whose first hop saw the message fail: refused
    failed = seal(env, message(b"far.example", subject="failed",
                               ar=b"dmarc=fail header.from=far.example"))
    code, text = deliver(t, failed)
    assert code == 550 and "5.7.1" in text, (code, text)

    # without DMARC in the way (no record): arc=fail and arc=none are recorded
    tampered = seal(env, message(b"plain.example", subject="plain", ar=b"spf=fail"))
    assert tampered.startswith(b"ARC-Seal: i=1")
    tampered = tampered.replace(b"body text", b"BODY text")
    code, text = deliver(t, tampered, sender="joe@plain.example")
    assert code == 250, text
    ar = authres(t, 2)
    assert re.search(r"arc=fail \(ARC-Message-Signature i=1: body hash mismatch\) "
                     r"smtp\.remote-ip=127\.0\.0\.2", ar[0]), ar
    code, text = deliver(t, message(b"plain.example", subject="none"), sender="joe@plain.example")
    assert code == 250, text
    ar = authres(t, 3)
    assert re.search(r"; arc=none($|;)", ar[0]), ar


def test_forwarded_mail_is_sealed(make_tern, env):
    sink = Sink()
    try:
        t = start(make_tern, env, keys=True, relayhost=sink.spec, retry_min="1s",
                  retry_max="2s")
        dnsfunc = dnsfunc_of(env)
        # on top of an existing chain: i=2, cv=pass
        chained = seal(env, message(b"far.example", ar=b"dmarc=pass header.from=far.example"))
        code, text = deliver(t, chained, rcpt="fwd@localhost")
        assert code == 250, text
        # no chain yet: i=1, cv=none
        code, text = deliver(t, message(b"plain.example", subject="first"), rcpt="fwd@localhost",
                             sender="joe@plain.example")
        assert code == 250, text
        deadline = time.monotonic() + tf(20)
        while len(sink.messages) < 2:
            assert time.monotonic() < deadline, "the sink got %d" % len(sink.messages)
            time.sleep(0.05)
        got = {}
        for m in sink.messages:
            data = m["data"]
            first = data.split(b"\r\n", 1)[0]
            assert first.startswith(b"ARC-Seal: i="), data[:300]
            cv, results, why = dkim.arc_verify(data, dnsfunc=dnsfunc)
            assert cv == b"pass", (why, results, data[:2000])
            got[first[len(b"ARC-Seal: "):len(b"ARC-Seal: i=2; a=rsa-sha256; cv=pass")]] = data
        assert set(got) == {b"i=2; a=rsa-sha256; cv=pass", b"i=1; a=rsa-sha256; cv=none"}, \
            list(got)
        # the AAR is our A-R field's payload, with the chain's result
        head = got[b"i=2; a=rsa-sha256; cv=pass"].split(b"\r\n\r\n")[0].decode()
        aar = [f for f in re.sub(r"\r\n[ \t]+", " ", head).split("\r\n")
               if f.startswith("ARC-Authentication-Results: i=2;")]
        assert len(aar) == 1 and aar[0].startswith(
            "ARC-Authentication-Results: i=2; tern.test; spf=fail"), aar
        assert ("arc=pass (i=1 as.d=hop1.example) header.oldest-pass=0 "
                "smtp.remote-ip=127.0.0.2") in aar[0], aar
        t.wait_log(r"arc sealed session=\S+ d=tern\.example")
        # mail to a local mailbox is not sealed
        code, text = deliver(t, message(b"plain.example", subject="local"),
                             sender="joe@plain.example")
        assert code == 250, text
        raw = t.wait_delivered("alice@localhost", 1)[-1].read_bytes()
        assert b"ARC-Seal: i=1" not in raw
    finally:
        sink.close()


def test_override_in_aggregate_report(make_tern, env):
    """RFC 7489 Appendix C: the override is the report's reason
    (trusted_forwarder, the ARC sealer in the comment), disposition none;
    the report validates against the schema."""
    from test_mailauth import validate_report
    t = start(make_tern, env, dmarc_reports="yes", dmarc_report_interval="3s")
    good = seal(env, message(b"far.example", subject="report",
                             ar=b"spf=pass smtp.mailfrom=joe@far.example;"
                             b" dmarc=pass header.from=far.example"))
    code, text = deliver(t, good)
    assert code == 250, text
    paths = t.wait_delivered("alice@example.com", 1, timeout=20)
    msg = email.message_from_bytes(paths[0].read_bytes())
    part = [p for p in msg.walk() if p.get_content_type() == "application/gzip"][0]
    root = validate_report(gzip.decompress(part.get_payload(decode=True)))
    recs = root.findall("record")
    assert len(recs) == 1
    ev = recs[0].find("row/policy_evaluated")
    assert ev.findtext("disposition") == "none"
    assert [(r.findtext("type"), r.findtext("comment")) for r in ev.findall("reason")] == \
        [("trusted_forwarder", "arc=pass as.d=hop1.example")]


def test_check_config_seal_domain_needs_a_key(make_tern, env):
    """arc_seal_domain without a dkim_sign_keys line for it: check-config
    (and so the daemon) refuses, naming tern.conf and the key's line."""
    from tern_harness import RUN_AS, open_for, run_tool
    t = make_tern(config={"arc_seal_domain": "other.example"})
    r = run_tool(t, "check-config")
    line = [i for i, l in enumerate(t.conf_path.read_text().splitlines(), 1)
            if l.startswith("arc_seal_domain")][0]
    assert r.returncode != 0 and "tern.conf:%d: arc_seal_domain other.example" % line \
        in r.stderr and "dkim_sign_keys" in r.stderr, r.stderr
    # a table without that domain: the same, naming the table
    key = t.dir / "t1.tern.example.key"
    key.write_bytes((env["dir"] / "t1.tern.example.key").read_bytes())
    key.chmod(0o600)
    (t.dir / "dkim_keys").write_text("tern.example t1 %s\n" % key)
    t.config.update({"dkim_sign_keys": str(t.dir / "dkim_keys")})
    t.write_files()
    r = run_tool(t, "check-config")
    assert r.returncode != 0 and ("tern.conf:%d: arc_seal_domain other.example has no line in "
                                  "dkim_sign_keys" % line) in r.stderr, r.stderr
    # with its key: fine
    t.config.update({"arc_seal_domain": "tern.example"})
    t.write_files()
    if RUN_AS and t.config.get("user") == RUN_AS:
        open_for(RUN_AS, t.dir)  # what start() does: the daemon's user reads the files
    r = run_tool(t, "check-config")
    assert r.returncode == 0, r.stderr


def test_oldest_pass(make_tern, env):
    """RFC 8617 section 5.2 step 5: header.oldest-pass is the oldest
    instance of the run of ARC-Message-Signatures (from the newest down)
    that still verify; 0 when all do. A list that rewrites the Subject
    after hop 1 sealed breaks AMS i=1 but not the chain (the seals cover
    only the ARC sets): arc=pass with header.oldest-pass=2."""
    t = start(make_tern, env, dmarc_enforce="no")
    m1 = seal(env, message(b"plain.example", subject="list",
                           ar=b"spf=pass smtp.mailfrom=joe@plain.example"))
    tagged = m1.replace(b"Subject: list", b"Subject: [list] list")
    m2 = seal(env, b"Authentication-Results: mx.hop1.example; arc=pass\r\n" + tagged)
    assert dkim.arc_verify(m2, dnsfunc=dnsfunc_of(env))[0] == b"pass"
    code, text = deliver(t, m2, sender="joe@plain.example")
    assert code == 250, text
    ar = authres(t, 1)
    assert re.search(r"arc=pass \(i=2 as\.d=hop1\.example\) header\.oldest-pass=2 ", ar[0]), ar
    # untouched, both AMSs verify: 0
    m2ok = seal(env, b"Authentication-Results: mx.hop1.example; arc=pass\r\n" + m1)
    code, text = deliver(t, m2ok, sender="joe@plain.example")
    assert code == 250, text
    ar = authres(t, 2)
    assert re.search(r"arc=pass \(i=2 as\.d=hop1\.example\) header\.oldest-pass=0 ", ar[0]), ar
