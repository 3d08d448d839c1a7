"""
test_sni.py - inbound certificates chosen by the client's SNI (issue 14,
"Inbound"; docs/tls.md): tls_cert/tls_key stay the default, each
"tls_certificate = CERT [KEY]" line adds one, serving the DNS names it holds.

Checked: two names get their own certificates (Python's ssl with
server_hostname, on smtps and with STARTTLS through openssl s_client); a name
with an RSA and an ECDSA certificate gives the one the client's signature
algorithms allow (openssl -sigalgs under TLS 1.3, cipher suites under 1.2);
no SNI, an unknown name and a name two labels under a wildcard get the
default; a wildcard serves one label; SIGHUP swaps a renewed certificate (and
its new name) in, a broken one keeps the previous set; check-config names
the line of a bad tls_certificate (key mismatch, missing file, no tls_cert)
and warns about an expired one; as root, the certificates sit in a
root-only directory the privileged parent opens.
"""

import datetime
import os
import re
import signal
import socket
import ssl
import subprocess

import pytest

from tern_harness import RUN_AS, make_cert, open_for, run_tool, tf


def make_ec_cert(directory, name, cn, dns):
    """Like make_cert, with an ECDSA P-256 key."""
    cert, key = directory / (name + ".pem"), directory / (name + ".key")
    san = ",".join("DNS:" + d for d in dns)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-keyout", str(key),
                    "-out", str(cert), "-subj", "/CN=" + cn, "-addext", "subjectAltName=" + san],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(key, 0o600)
    return cert, key


def make_expired_cert(directory, name, cn):
    """An RSA certificate that expired yesterday (openssl's command line cannot date one in
    the past; python3-cryptography can)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subj = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    c = (x509.CertificateBuilder().subject_name(subj).issuer_name(subj).public_key(k.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=10))
         .not_valid_after(now - datetime.timedelta(days=1))
         .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
         .sign(k, hashes.SHA256()))
    cert, key = directory / (name + ".pem"), directory / (name + ".key")
    cert.write_bytes(c.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(k.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption()))
    os.chmod(key, 0o600)
    return cert, key


def repeated(key, values):
    """A config value that writes key = v once per value (the harness writes one line a key)."""
    return ("\n%s = " % key).join(values)


def describe(der):
    """(subject CN, key type 'RSA' or 'EC') of a DER certificate."""
    pem = ssl.DER_cert_to_PEM_cert(der)
    out = subprocess.run(["openssl", "x509", "-noout", "-subject", "-text"], input=pem.encode(),
                         stdout=subprocess.PIPE, check=True).stdout.decode()
    cn = re.search(r"subject=.*CN\s*=\s*([^\s,/]+)", out).group(1)
    return cn, "EC" if "id-ecPublicKey" in out else "RSA"


def client_ctx(ciphers=None, tls12=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def served(port, name, ctx=None):
    """What smtps on port gives a client asking for name (None: no SNI)."""
    with socket.create_connection(("127.0.0.1", port), timeout=tf(10)) as raw:
        with (ctx or client_ctx()).wrap_socket(raw, server_hostname=name) as s:
            return describe(s.getpeercert(binary_form=True))


def s_client(port, *flags, starttls=False):
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port] + list(flags)
    if starttls:
        cmd += ["-starttls", "smtp"]
    p = subprocess.run(cmd, input=b"QUIT\r\n", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=tf(20))
    out = p.stdout.decode("utf-8", "replace")
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", out, re.S)
    assert m, out
    return describe(ssl.PEM_cert_to_DER_cert(m.group(0)))


@pytest.fixture
def certs(tmp_path_factory):
    """The default (tern.test, RSA), a.test in RSA and ECDSA, *.b.test (RSA), in a
    root-only directory when root (as /etc/letsencrypt/live is)."""
    d = tmp_path_factory.mktemp("tls")
    os.chmod(d, 0o700)
    c = {"default": make_cert(d, "default", cn="tern.test", dns=("tern.test",), ips=()),
         "a_rsa": make_cert(d, "a-rsa", cn="a.test", dns=("a.test", "www.a.test"), ips=()),
         "a_ec": make_ec_cert(d, "a-ec", cn="a.test", dns=("a.test",)),
         "b": make_cert(d, "b-wild", cn="b.test", dns=("*.b.test",), ips=())}
    return d, c


def sni_config(c, extra=("a_rsa", "a_ec", "b")):
    return {"tls_cert": str(c["default"][0]), "tls_key": str(c["default"][1]),
            "tls_certificate": repeated("tls_certificate",
                                        ["%s %s" % c[k] for k in extra]),
            "listen": "127.0.0.1:0 smtps"}


def test_sni_chooses_by_name_and_key_type(make_tern, certs):
    d, c = certs
    t = make_tern(config=sni_config(c)).start()
    p, sp = t.port_of("smtps"), t.port_of("smtp")
    # no SNI, or a name no certificate has: the default
    assert served(p, None) == ("tern.test", "RSA")
    assert served(p, "unknown.test") == ("tern.test", "RSA")
    assert served(p, "tern.test")[0] == "tern.test"
    # RSA only for www.a.test; a.test has both key types (TLS 1.3, both offered: either)
    assert served(p, "www.a.test") == ("a.test", "RSA")
    assert served(p, "A.Test.")[0] == "a.test"  # case and a trailing dot do not matter
    # the client's signature algorithms decide between RSA and ECDSA (TLS 1.3) ...
    assert s_client(p, "-servername", "a.test", "-tls1_3", "-sigalgs",
                    "ECDSA+SHA256") == ("a.test", "EC")
    assert s_client(p, "-servername", "a.test", "-tls1_3", "-sigalgs",
                    "rsa_pss_rsae_sha256") == ("a.test", "RSA")
    # ... and the cipher suites under TLS 1.2
    assert served(p, "a.test", client_ctx("ECDHE-ECDSA-AES128-GCM-SHA256", tls12=True)) == \
        ("a.test", "EC")
    assert served(p, "a.test", client_ctx("ECDHE-RSA-AES128-GCM-SHA256", tls12=True)) == \
        ("a.test", "RSA")
    # a wildcard serves exactly one label (RFC 6125 section 6.4.3)
    assert served(p, "mx.b.test") == ("b.test", "RSA")
    assert served(p, "b.test") == ("tern.test", "RSA")
    assert served(p, "deep.mx.b.test") == ("tern.test", "RSA")
    # the same after STARTTLS on the smtp port
    assert s_client(sp, "-servername", "mx.b.test", starttls=True) == ("b.test", "RSA")
    assert s_client(sp, "-servername", "a.test", "-sigalgs", "ECDSA+SHA256",
                    starttls=True) == ("a.test", "EC")
    assert s_client(sp, "-noservername", starttls=True) == ("tern.test", "RSA")


def test_default_with_two_key_types(make_tern, certs, tmp_path):
    """An ECDSA certificate for the default's name joins it for clients without SNI."""
    d, c = certs
    ec = make_ec_cert(d, "default-ec", cn="tern.test", dns=("tern.test",))
    cfg = sni_config(c)
    cfg["tls_certificate"] = repeated("tls_certificate", ["%s %s" % ec, "%s %s" % c["a_rsa"]])
    t = make_tern(config=cfg).start()
    p = t.port_of("smtps")
    assert s_client(p, "-noservername", "-tls1_3", "-sigalgs", "ECDSA+SHA256") == \
        ("tern.test", "EC")
    assert s_client(p, "-noservername", "-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256") == \
        ("tern.test", "RSA")
    assert served(p, "www.a.test") == ("a.test", "RSA")


def test_reload_swaps_a_certificate(make_tern, certs):
    d, c = certs
    t = make_tern(config=sni_config(c, extra=("a_rsa", "b"))).start()
    p = t.port_of("smtps")
    assert served(p, "mx.b.test") == ("b.test", "RSA")
    assert served(p, "c.test") == ("tern.test", "RSA")
    # renewed in place, with one more name (as certbot --expand does)
    new_cert, new_key = make_cert(d, "renewed", cn="b-renewed.test", dns=("*.b.test", "c.test"),
                                  ips=())
    c["b"][0].write_bytes(new_cert.read_bytes())
    c["b"][1].write_bytes(new_key.read_bytes())
    t.signal(signal.SIGHUP)
    t.wait_log(r"reload: applied: 3 certificates and keys")
    assert served(p, "mx.b.test") == ("b-renewed.test", "RSA")
    assert served(p, "c.test") == ("b-renewed.test", "RSA")
    assert served(p, "www.a.test") == ("a.test", "RSA")
    # a key that no longer matches: the previous certificates stay, with the line named
    c["b"][1].write_bytes(c["a_rsa"][1].read_bytes())
    t.signal(signal.SIGHUP)
    line = t.conf_path.read_text().splitlines().index(
        "tls_certificate = %s %s" % c["b"]) + 1
    t.wait_log(r"reload: %s:%d: tls_certificate %s: the key does not match the certificate .*; "
               r"keeping the previous certificates and keys" % (re.escape(str(t.conf_path)), line,
                                                                re.escape(str(c["b"][1]))))
    assert served(p, "c.test") == ("b-renewed.test", "RSA")


def check_config(t):
    """tern check-config, with the daemon's directory reachable by its user (as start does)."""
    if RUN_AS:
        open_for(RUN_AS, t.dir)
    return run_tool(t, "check-config")


def conf_line(t, text):
    return t.conf_path.read_text().splitlines().index(text) + 1


def test_check_config_names_the_line(make_tern, certs):
    d, c = certs
    cfg = sni_config(c)
    t = make_tern(config=cfg)
    r = check_config(t)
    assert r.returncode == 0, r.stderr
    # a key that does not match its certificate
    bad = dict(cfg, tls_certificate=repeated("tls_certificate", [
        "%s %s" % c["a_rsa"], "%s %s" % (c["b"][0], c["a_rsa"][1])]))
    t = make_tern(config=bad)
    r = check_config(t)
    n = conf_line(t, "tls_certificate = %s %s" % (c["b"][0], c["a_rsa"][1]))
    assert r.returncode == 1
    assert "%s:%d: tls_certificate %s: the key does not match the certificate %s" % (
        t.conf_path, n, c["a_rsa"][1], c["b"][0]) in r.stderr, r.stderr
    # a missing file
    missing = d / "missing.pem"
    t = make_tern(config=dict(cfg, tls_certificate="%s %s" % (missing, c["b"][1])))
    r = check_config(t)
    n = conf_line(t, "tls_certificate = %s %s" % (missing, c["b"][1]))
    assert r.returncode == 1
    assert re.search(r"%s:%d: tls_certificate %s: No such file" % (
        re.escape(str(t.conf_path)), n, re.escape(str(missing))), r.stderr), r.stderr
    # tls_certificate without the default
    t = make_tern(config={"tls_certificate": "%s %s" % c["a_rsa"]})
    r = check_config(t)
    n = conf_line(t, "tls_certificate = %s %s" % c["a_rsa"])
    assert r.returncode == 1
    assert "%s:%d: tls_certificate needs tls_cert" % (t.conf_path, n) in r.stderr, r.stderr
    # a key others may read
    loose = make_cert(d, "loose", cn="loose.test", dns=("loose.test",), ips=())
    os.chmod(loose[1], 0o644)
    t = make_tern(config=dict(cfg, tls_certificate="%s %s" % loose))
    r = check_config(t)
    n = conf_line(t, "tls_certificate = %s %s" % loose)
    assert r.returncode == 1
    assert re.search(r"%s:%d: tls_certificate %s is readable by others" % (
        re.escape(str(t.conf_path)), n, re.escape(str(loose[1]))), r.stderr), r.stderr


def test_expired_certificate_is_a_warning(make_tern, certs):
    d, c = certs
    old = make_expired_cert(d, "old", "old.test")
    t = make_tern(config=dict(sni_config(c), tls_certificate="%s %s" % old))
    r = check_config(t)
    n = conf_line(t, "tls_certificate = %s %s" % old)
    assert r.returncode == 0, r.stderr
    assert re.search(r"%s:%d: warning: tls_certificate %s: the certificate expired on \d{4}-" % (
        re.escape(str(t.conf_path)), n, re.escape(str(old[0]))), r.stderr), r.stderr
    # the daemon serves it all the same, and says so at start
    t.start()
    t.wait_log(r"tls_certificate %s: the certificate expired on" % re.escape(str(old[0])))
    assert served(t.port_of("smtps"), "old.test") == ("old.test", "RSA")
