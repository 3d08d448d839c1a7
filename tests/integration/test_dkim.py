"""
test_dkim.py - DKIM (issue 13, src/mailauth/dkim*.c) against dkimpy
(python3-dkim), through `tern dkim keygen|sign|verify`:

- tern signs (RSA 2048 and Ed25519 keys from `tern dkim keygen`), dkimpy
  verifies with the TXT record keygen printed (strings of at most 255
  octets, joined);
- dkimpy signs (RSA and Ed25519; simple/simple, relaxed/relaxed,
  relaxed/simple with l=), `tern dkim verify` checks against a DNS server
  this test runs (tests/unit/dns_server.py in a thread, 127.0.0.1, port 0),
  the RSA record split into several character-strings;
- what must not pass: a tampered body or header, x= in the past, t= in the
  future, a revoked key (p=), rsa-sha1, a 512-bit key, no key record.
"""

import base64
import os
import re
import select
import stat
import subprocess
import sys
import threading
import time

import dkim
import nacl.encoding
import nacl.signing
import pytest

from tern_harness import REPO, TERN_BIN, tf

sys.path.insert(0, str(REPO / "tests" / "unit"))
import dns_server  # noqa: E402  (tests/unit/dns_server.py)

MSG = (b"From: Joe SixPack <joe@football.example.com>\r\n"
       b"To: Suzie Q <suzie@shopping.example.net>\r\n"
       b"Subject: Is dinner ready?\r\n"
       b"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
       b"Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
       b"\r\n"
       b"Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n\r\n")
DOMAIN = "football.example.com"


def tern(*args, data=b""):
    return subprocess.run([TERN_BIN, "dkim"] + list(args), input=data, capture_output=True,
                          timeout=tf(60))


def strings_of(txt_line):
    """the quoted character-strings of keygen's output line"""
    return [s.encode() for s in re.findall(r'"([^"]*)"', txt_line)]


class DNS:
    """dns_server.py's Server in a thread, serving zone text"""

    def __init__(self, zone):
        self.srv = dns_server.Server(dns_server.Zone(zone), {})
        self.port = self.srv.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            r, _, _ = select.select([self.srv.sock], [], [], 0.05)
            if r:
                data, addr = self.srv.sock.recvfrom(65535)
                self.srv.handle(data, addr)

    def close(self):
        self.stopping = True
        self.thread.join(5)
        self.srv.sock.close()


def zone_of(records):
    """records: {name under football.example.com: [strings]}"""
    z = ["$ORIGIN example.com.", "$TTL 300",
         "@ SOA ns.example.com. h.example.com. 1 3600 600 86400 60"]
    for name, strs in records.items():
        z.append("%s TXT %s" % (name, " ".join('"%s"' % s.decode() for s in strs)))
    return "\n".join(z) + "\n"


def split(rec, n):
    return [rec[i:i + n] for i in range(0, len(rec), n)]


def verify_with_tern(dns, msg, *extra):
    r = tern("verify", "--dns-servers", "127.0.0.1@%d" % dns.port, *extra, data=msg)
    lines = r.stdout.decode().splitlines()
    return r.returncode, lines


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("dkimkeys")
    out = {}
    for sel, args in (("rsa", ["--bits", "2048"]), ("ed", ["--ed25519"])):
        r = tern("keygen", DOMAIN, sel, "--dir", str(d), *args)
        assert r.returncode == 0, r.stderr
        path = d / ("%s.%s.key" % (sel, DOMAIN))
        st = os.stat(path)
        assert stat.S_IMODE(st.st_mode) == 0o600
        line = r.stdout.decode().strip()
        assert line.startswith("%s._domainkey.%s. IN TXT " % (sel, DOMAIN)), line
        strs = strings_of(line)
        assert all(len(s) <= 255 for s in strs)
        out[sel] = (path, b"".join(strs))
    assert len(strings_of(tern("keygen", DOMAIN, "x", "--dir", str(d)).stdout.decode())) >= 2
    # a key is never overwritten
    r = tern("keygen", DOMAIN, "rsa", "--dir", str(d))
    assert r.returncode == 1 and b"never overwritten" in r.stderr
    return out


@pytest.mark.parametrize("sel", ["rsa", "ed"])
def test_tern_signs_dkimpy_verifies(keys, sel):
    path, rec = keys[sel]
    r = tern("sign", "--key", str(path), "--domain", DOMAIN, "--selector", sel, data=MSG)
    assert r.returncode == 0, r.stderr
    signed = r.stdout
    assert signed.endswith(MSG) and signed.startswith(b"DKIM-Signature: v=1; a=%s;" % (
        b"rsa-sha256" if sel == "rsa" else b"ed25519-sha256"))

    def dnsfunc(name, timeout=5):
        assert name == ("%s._domainkey.%s." % (sel, DOMAIN)).encode(), name
        return rec

    assert dkim.verify(signed, dnsfunc=dnsfunc)
    assert not dkim.verify(signed.replace(b"hungry", b"angry!"), dnsfunc=dnsfunc)
    assert not dkim.verify(signed.replace(b"Suzie Q", b"Suzie R"), dnsfunc=dnsfunc)
    # bare LF in, bare LF out, still verifies once put back on the wire
    lf = tern("sign", "--key", str(path), "--domain", DOMAIN, "--selector", sel,
              data=MSG.replace(b"\r\n", b"\n"))
    assert b"\r" not in lf.stdout
    assert dkim.verify(lf.stdout.replace(b"\n", b"\r\n"), dnsfunc=dnsfunc)
    # and tern verifies its own signature through DNS
    dns = DNS(zone_of({"%s._domainkey.football" % sel: split(rec, 200)}))
    try:
        rc, lines = verify_with_tern(dns, signed)
        assert rc == 0 and lines[0].startswith("pass d=%s s=%s" % (DOMAIN, sel)), lines
    finally:
        dns.close()


@pytest.fixture(scope="module")
def dkimpy_keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("dkimpykeys")
    keys = {}
    for bits in (2048, 512):
        p = d / ("rsa%d.pem" % bits)
        subprocess.run(["openssl", "genrsa", "-traditional", "-out", str(p), str(bits)], check=True,
                       capture_output=True)
        der = subprocess.run(["openssl", "rsa", "-in", str(p), "-pubout", "-outform", "DER"],
                             check=True, capture_output=True).stdout
        keys[bits] = (p.read_bytes(), b"v=DKIM1; k=rsa; p=" + base64.b64encode(der))
    sk = nacl.signing.SigningKey.generate()
    keys["ed"] = (sk.encode(encoder=nacl.encoding.Base64Encoder),
                  b"v=DKIM1; k=ed25519; p=" + sk.verify_key.encode(encoder=nacl.encoding.Base64Encoder))
    return keys


@pytest.fixture(scope="module")
def dns(dkimpy_keys):
    rsa = dkimpy_keys[2048][1]
    ed = dkimpy_keys["ed"][1]
    d = DNS(zone_of({
        # several strings, cut anywhere (RFC 6376 section 3.6.2.2)
        "rsa._domainkey.football": split(rsa, 100),
        "ed._domainkey.football": [ed[:20], ed[20:]],
        "short._domainkey.football": [dkimpy_keys[512][1]],
        "revoked._domainkey.football": [b"v=DKIM1; k=rsa; p="],
        "testing._domainkey.football": split(rsa.replace(b"k=rsa;", b"k=rsa; t=y;"), 255),
    }))
    yield d
    d.close()


def dkimpy_sign(keys, sel, canon=(b"relaxed", b"relaxed"), length=False, alg=None, msg=MSG):
    key = keys["ed"][0] if sel == "ed" else keys[2048][0]
    if sel == "short":
        key = keys[512][0]
    alg = alg or (b"ed25519-sha256" if sel == "ed" else b"rsa-sha256")
    return dkim.sign(msg, sel.encode(), DOMAIN.encode(), key, canonicalize=canon,
                     signature_algorithm=alg, length=length) + msg


@pytest.mark.parametrize("sel", ["rsa", "ed"])
@pytest.mark.parametrize("canon,length", [
    ((b"simple", b"simple"), False),
    ((b"relaxed", b"relaxed"), False),
    ((b"relaxed", b"simple"), True),
    ((b"simple", b"relaxed"), True),
])
def test_dkimpy_signs_tern_verifies(dkimpy_keys, dns, sel, canon, length):
    signed = dkimpy_sign(dkimpy_keys, sel, canon, length)
    rc, lines = verify_with_tern(dns, signed)
    assert rc == 0 and lines == ["pass d=%s s=%s a=%s i=@%s" % (
        DOMAIN, sel, "ed25519-sha256" if sel == "ed" else "rsa-sha256", DOMAIN)], lines
    if length:
        # l=: what a mailing list appends is not covered
        rc, lines = verify_with_tern(dns, signed + b"--\r\nlist footer\r\n")
        assert rc == 0 and lines[0].startswith("pass"), lines
    rc, lines = verify_with_tern(dns, signed.replace(b"hungry", b"Hungry"))
    assert rc == 1 and lines[0].startswith("fail") and "body hash mismatch" in lines[0], lines
    rc, lines = verify_with_tern(dns, signed.replace(b"dinner", b"lunch!"))
    assert rc == 1 and lines[0].startswith("fail") and "signature did not verify" in lines[0], lines


def test_both_signatures(dkimpy_keys, dns):
    signed = dkimpy_sign(dkimpy_keys, "rsa")
    signed = dkimpy_sign(dkimpy_keys, "ed", msg=signed)
    rc, lines = verify_with_tern(dns, signed)
    assert rc == 0 and [line.split()[0] for line in lines] == ["pass", "pass"], lines


def sign_fields(keys, extra, alg=b"rsa-sha256", sel=b"rsa", msg=MSG):
    """dkimpy's signer with tags it does not offer (x=, a fixed t=)"""
    d = dkim.DKIM(msg)
    key = keys["ed"][0] if alg == b"ed25519-sha256" else keys[2048][0]
    d.signature_algorithm = alg
    pk = (nacl.signing.SigningKey(key, encoder=nacl.encoding.Base64Encoder)
          if alg == b"ed25519-sha256" else dkim.parse_pem_private_key(key))
    policy = dkim.CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
    include = (b"from", b"to", b"subject")
    d.include_headers = include
    d.hasher = dkim.HASH_ALGORITHMS[alg]
    h = d.hasher()
    h.update(policy.canonicalize_body(d.body))
    fields = [(b"v", b"1"), (b"a", alg), (b"c", b"relaxed/relaxed"), (b"d", DOMAIN.encode()),
              (b"s", sel)] + extra + [
        (b"h", b":".join(include)), (b"bh", base64.b64encode(h.digest())), (b"b", b"0" * 60)]
    return b"DKIM-Signature: " + d.gen_header(fields, include, policy, b"DKIM-Signature", pk) + msg


def test_not_pass(dkimpy_keys, dns):
    now = int(time.time())
    # the hand-made signer itself is right
    ok = sign_fields(dkimpy_keys, [(b"t", str(now).encode()), (b"x", str(now + 3600).encode())])
    rc, lines = verify_with_tern(dns, ok)
    assert rc == 0 and lines[0].startswith("pass"), lines
    cases = [
        (sign_fields(dkimpy_keys, [(b"t", str(now - 7200).encode()),
                                   (b"x", str(now - 3600).encode())]),
         "neutral", "signature expired"),
        (sign_fields(dkimpy_keys, [(b"t", str(now + 7200).encode())]),
         "neutral", "in the future"),
        (dkimpy_sign(dkimpy_keys, "revoked"), "permerror", "key revoked"),
        (dkimpy_sign(dkimpy_keys, "rsa", alg=b"rsa-sha1"), "permerror", "rsa-sha1"),
        (dkimpy_sign(dkimpy_keys, "short"), "permerror", "under 1024 bits"),
        (dkimpy_sign(dkimpy_keys, "nokey"), "permerror", "no key record"),
    ]
    for msg, result, why in cases:
        rc, lines = verify_with_tern(dns, msg)
        assert rc == 1 and lines[0].startswith(result + " ") and why in lines[0], (why, lines)
    # t=y: the result is given, and said
    rc, lines = verify_with_tern(dns, dkimpy_sign(dkimpy_keys, "testing"))
    assert rc == 0 and lines[0].startswith("pass") and " testing" in lines[0], lines
    # --time moves the clock: the good one, a day later than its x=
    rc, lines = verify_with_tern(dns, ok, "--time", str(now + 90000))
    assert rc == 1 and lines[0].startswith("neutral"), lines
    # no signature
    rc, lines = verify_with_tern(dns, MSG)
    assert rc == 1 and lines == ["none (no DKIM-Signature)"]


def test_usage():
    assert tern().returncode == 2
    r = tern("--help")
    assert r.returncode == 0 and r.stdout.startswith(b"usage:")
    r = tern("sign", "--key", "/nonexistent", "--domain", "a.example", "--selector", "s", data=MSG)
    assert r.returncode == 1 and b"/nonexistent" in r.stderr
    r = tern("keygen", "bad domain", "s")
    assert r.returncode == 2


# ---- dkim_sign_keys: the signing table in the configuration ----

def test_sign_keys_check_config_and_reload(make_tern, tmp_path):
    import signal
    from tern_harness import RUN_AS, Tern, open_for
    t = make_tern()
    keydir = t.dir / "dkim"
    keydir.mkdir()
    for sel, args in (("rsa", []), ("ed", ["--ed25519"])):
        r = subprocess.run([TERN_BIN, "-c", str(t.conf_path), "dkim", "keygen", "example.com", sel,
                            "--dir", str(keydir)] + args, capture_output=True, timeout=tf(60))
        assert r.returncode == 0, r.stderr
    table = t.dir / "dkim_keys"
    good = ("# domain selector key (relative: beside this file)\n"
            "example.com rsa dkim/rsa.example.com.key\n"
            "example.com ed dkim/ed.example.com.key\n")
    table.write_text(good)
    t.config["dkim_sign_keys"] = str(table)
    t.write_files()
    if RUN_AS:
        open_for(RUN_AS, t.dir)

    def check():
        return subprocess.run(t.command("check-config"), capture_output=True, text=True,
                              env=Tern.env(), timeout=tf(30))
    p = check()
    assert p.returncode == 0, p.stderr
    table.write_text(good + "example.org sel\nexample.net sel dkim/missing.key\n")
    p = check()
    assert p.returncode == 1
    assert "%s:4: expected" % table in p.stderr, p.stderr
    assert "%s:5: %s/missing.key" % (table, keydir) in p.stderr, p.stderr
    if RUN_AS and t.config.get("user") == RUN_AS:
        # a key tern's user cannot read: it would fail at the next reload
        table.write_text(good)
        os.chown(keydir / "ed.example.com.key", 0, 0)
        p = check()
        assert p.returncode == 1 and "ed.example.com.key" in p.stderr, p.stderr
        open_for(RUN_AS, t.dir)
    # the daemon starts with the keys; a broken table at SIGHUP keeps them
    table.write_text(good)
    t.start()
    table.write_text("example.com rsa dkim/nothere.key\n")
    t.signal(signal.SIGHUP)
    t.wait_log(re.escape("%s:1:" % table))
    assert t.running()
    table.write_text(good)
    t.signal(signal.SIGHUP)
    t.wait_log("reloaded configuration")
    assert t.running()
