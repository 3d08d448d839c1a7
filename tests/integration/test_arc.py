"""
test_arc.py - ARC (RFC 8617, src/mailauth/arc.c) against dkimpy's ARC
(dkim.arc_sign, dkim.arc_verify), through `tern dkim arc-verify` and
`tern dkim arc-seal`, with the keys served by a DNS server this test runs
(tests/unit/dns_server.py in a thread; TXT records in several strings):

- a chain dkimpy starts (i=1), tern verifies: pass;
- tern seals on top (i=2, RSA), dkimpy verifies the chain: pass;
- tern seals again with an Ed25519 key (i=3) and verifies: pass;
- dkimpy seals on top of tern's sets: both verify the 3-set chain;
- a changed body or signed header field after sealing: fail in both.
"""

import base64
import re
import subprocess

import dkim
import pytest

from tern_harness import TERN_BIN, tf
from test_dkim import DNS, split

MSG = (b"Authentication-Results: mx.hop1.example; spf=pass smtp.mailfrom=joe@example.com\r\n"
       b"From: Joe <joe@example.com>\r\nTo: list@lists.example\r\nSubject: forwarded\r\n"
       b"Date: Mon, 7 Dec 2026 10:00:00 +0000\r\nMessage-ID: <arc@example.com>\r\n"
       b"\r\nbody text\r\n")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("arckeys")
    pem = d / "hop1.pem"
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", str(pem), "2048"], check=True,
                   capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", str(pem), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    recs = {"a1._domainkey.hop1.example.": b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)}
    keys = {}
    for sel, dom, args in (("a2", "hop2.example", []), ("a3", "hop3.example", ["--ed25519"])):
        r = subprocess.run([TERN_BIN, "dkim", "keygen", dom, sel, "--dir", str(d)] + args,
                           capture_output=True, text=True, timeout=tf(60))
        assert r.returncode == 0, r.stderr
        recs["%s._domainkey.%s." % (sel, dom)] = "".join(
            re.findall(r'"([^"]*)"', r.stdout)).encode()
        keys[dom] = d / ("%s.%s.key" % (sel, dom))
    zone = ["$ORIGIN example.", "$TTL 300", "@ SOA ns.example. h.example. 1 3600 600 86400 60"]
    for name, rec in recs.items():
        zone.append("%s TXT %s" % (name, " ".join('"%s"' % s.decode() for s in split(rec, 150))))
    dns = DNS("\n".join(zone) + "\n")
    yield {"pem": pem.read_bytes(), "recs": recs, "keys": keys, "dns": dns}
    dns.close()


def dnsfunc_of(env):
    def dnsfunc(name, timeout=5):
        return env["recs"].get(name.decode())
    return dnsfunc


def tern(env, *args, data=b""):
    return subprocess.run([TERN_BIN, "dkim"] + list(args) +
                          ["--dns-servers", "127.0.0.1@%d" % env["dns"].port],
                          input=data, capture_output=True, timeout=tf(60))


def tern_seal(env, dom, sel, msg):
    r = tern(env, "arc-seal", "--key", str(env["keys"][dom]), "--domain", dom, "--selector", sel,
             "--authserv-id", "mx." + dom, data=msg)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_arc_chains(env):
    dnsfunc = dnsfunc_of(env)
    m1 = b"".join(dkim.arc_sign(MSG, b"a1", b"hop1.example", env["pem"], b"mx.hop1.example")) + MSG
    assert dkim.arc_verify(m1, dnsfunc=dnsfunc)[0] == b"pass"
    r = tern(env, "arc-verify", data=m1)
    assert r.returncode == 0 and r.stdout == b"pass i=1\n", (r.stdout, r.stderr)
    # no ARC at all
    r = tern(env, "arc-verify", data=MSG)
    assert r.returncode == 1 and r.stdout.startswith(b"none i=0"), r.stdout

    m2 = tern_seal(env, "hop2.example", "a2", m1)
    assert m2.endswith(m1) and m2.startswith(b"ARC-Seal: i=2; a=rsa-sha256; cv=pass;")
    assert b"ARC-Authentication-Results: i=2; mx.hop2.example; arc=pass\r\n" in m2
    cv, results, why = dkim.arc_verify(m2, dnsfunc=dnsfunc)
    assert cv == b"pass", (why, results)
    m3 = tern_seal(env, "hop3.example", "a3", m2)
    assert m3.startswith(b"ARC-Seal: i=3; a=ed25519-sha256; cv=pass;")
    r = tern(env, "arc-verify", data=m3)
    assert r.returncode == 0 and r.stdout == b"pass i=3\n", r.stdout

    # dkimpy seals on top of tern's two sets (its own A-R says arc=pass)
    m3b = b"Authentication-Results: mx.hop1.example; arc=pass\r\n" + m2
    m4 = b"".join(dkim.arc_sign(m3b, b"a1", b"hop1.example", env["pem"], b"mx.hop1.example")) + m3b
    assert dkim.arc_verify(m4, dnsfunc=dnsfunc)[0] == b"pass"
    r = tern(env, "arc-verify", data=m4)
    assert r.returncode == 0 and r.stdout == b"pass i=3\n", r.stdout

    # changed after sealing
    for bad in (m2.replace(b"body text", b"body text!"), m2.replace(b"forwarded", b"Forwarded")):
        assert dkim.arc_verify(bad, dnsfunc=dnsfunc)[0] == b"fail"
        r = tern(env, "arc-verify", data=bad)
        assert r.returncode == 1 and r.stdout.startswith(b"fail i=2 (ARC-Message-Signature i=2"), \
            r.stdout
    # a failed chain is sealed with cv=fail (over its own set only)
    bad = m2.replace(b"body text", b"body text!")
    mf = tern_seal(env, "hop3.example", "a3", bad)
    assert b"cv=fail" in mf.split(b"\r\n")[0]
    r = tern(env, "arc-verify", data=mf)
    assert r.returncode == 1 and b"cv=fail" in r.stdout, r.stdout
