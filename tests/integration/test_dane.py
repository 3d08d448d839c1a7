"""
test_dane.py - DANE for SMTP (RFC 7672) against a real DNSSEC-signed zone.

The test signs a zone (dane.example) with ldns-signzone, serves it and an
unsigned one (plain.example) with nsd on loopback, and gives tern's libunbound
the signed zone's DS record as its trust anchor (dns_servers points at nsd).
The MX hosts are aiosmtpd servers, one per loopback address (127.0.53.x) on
one port (smtp_port), with certificates from a CA the test makes:

  ee.dane.example       TLSA 3 1 1 of the server's key (its certificate
                        names another host): delivered, verified=dane-ee
  ta.dane.example       TLSA 2 0 1 of the CA; the certificate names the
                        next-hop domain: delivered, verified=dane-ta
  wrong.dane.example    TLSA that matches nothing: deferred 4.7.5, the
                        server never gets a MAIL command
  next.dane.example     MX 10 the wrong host, MX 20 the ee host: delivered
                        by the second (a mismatch moves on to the next MX)
  bogus.dane.example    its TLSA RRSIG broken: deferred, never connected to
  strip.dane.example    TLSA published, the server offers no STARTTLS:
                        deferred 4.7.5, nothing sent in clear
  unusable.dane.example only a PKIX-EE (1 1 1) record: TLS required, not
                        authenticated (verified=none)
  plain.example         unsigned zone: opportunistic TLS (verified=none)
  only.plain.example    unsigned, "dane-only" in tls_policy: deferred
  via-ee.example        transport smtp:[mx-ee.dane.example]: the host's own
                        TLSA records apply (delivered, dane-ee);
  via-wrong.example     the same to the wrong host (deferred)
  cname.dane.example    MX host a CNAME to mx-ee: TLSA at the expanded name;
  cname2.dane.example   MX host a CNAME to a name without TLSA: TLSA at the
                        alias (RFC 7672 section 2.2.2); both delivered, dane-ee
  old.dane.example      TLSA 3 1 1 of a server whose certificate expired:
                        delivered, dane-ee (RFC 7672 section 3.1.1)
  taname.dane.example   TLSA 2 0 1 of the CA, the certificate names another
                        host: deferred 4.7.5 (section 3.2.2)
The names are under .example: libunbound answers .test itself (NXDOMAIN,
RFC 6761 local zones). All in one daemon, so the test takes a few seconds.
nsd and ldns-signzone come from scripts/deps.sh (nsd, ldnsutils).
"""

import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from tern_harness import tf

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")

for prog in ("nsd", "ldns-signzone", "ldns-keygen", "ldns-key2ds", "openssl"):
    if not shutil.which(prog) and not os.path.exists("/usr/sbin/" + prog):
        pytest.skip("%s is not installed (scripts/deps.sh)" % prog, allow_module_level=True)

HOSTS = {  # MX host -> its loopback address
    "mx-ee": "127.0.53.1",
    "mx-ta": "127.0.53.2",
    "mx-wrong": "127.0.53.3",
    "mx-bogus": "127.0.53.4",
    "mx-strip": "127.0.53.5",
    "mx-plain": "127.0.53.6",
    "mx-unusable": "127.0.53.7",
    "mx-old": "127.0.53.8",
    "mx-taname": "127.0.53.9",
}


def free_port(ip="127.0.0.1", kinds=(socket.SOCK_STREAM,)):
    while True:
        with socket.socket(socket.AF_INET, kinds[0]) as s:
            s.bind((ip, 0))
            port = s.getsockname()[1]
        try:
            for k in kinds:  # the same port free for every kind asked
                with socket.socket(socket.AF_INET, k) as s:
                    s.bind((ip, port))
            return port
        except OSError:
            continue


def run(*args, cwd=None):
    return subprocess.run(list(args), cwd=cwd, check=True, capture_output=True, text=True).stdout


def openssl(*args, cwd):
    return run("openssl", *args, cwd=cwd)


def make_ca(d):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-days", "2", "-subj", "/CN=tern DANE test CA", "-keyout", "ca.key", "-out", "ca.pem",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    os.chmod(d / "ca.key", 0o600)
    return d / "ca.pem"


def make_leaf(d, name, san, ca=True):
    """A leaf certificate for san (signed by the test CA, or self-signed); returns
    (chain file, key file), the chain holding the leaf then the CA."""
    key, csr, pem = d / (name + ".key"), d / (name + ".csr"), d / (name + ".pem")
    if ca:
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-subj", "/CN=" + san, "-addext", "subjectAltName=DNS:" + san,
                "-keyout", key.name, "-out", csr.name, cwd=d)
        openssl("x509", "-req", "-in", csr.name, "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-copy_extensions", "copy",
                "-out", pem.name, cwd=d)
        chain = d / (name + ".chain.pem")
        chain.write_text(pem.read_text() + (d / "ca.pem").read_text())
    else:
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-days", "2", "-subj", "/CN=" + san, "-addext", "subjectAltName=DNS:" + san,
                "-keyout", key.name, "-out", pem.name, cwd=d)
        chain = pem
    os.chmod(key, 0o600)
    return chain, key, pem


def make_expired(d, name, san):
    """A self-signed certificate whose validity ended five days ago (openssl's
    command line cannot date one in the past; python3-cryptography can)."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, san)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=10))
            .not_valid_after(now - datetime.timedelta(days=5))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
            .sign(key, hashes.SHA256()))
    pem, keyf = d / (name + ".pem"), d / (name + ".key")
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyf.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    os.chmod(keyf, 0o600)
    return pem, keyf, pem


def spki_sha256(pem):
    """TLSA 3 1 1 data: SHA-256 of the certificate's SubjectPublicKeyInfo (DER)."""
    der = subprocess.run("openssl x509 -in '%s' -noout -pubkey | openssl pkey -pubin -outform DER"
                         % pem, shell=True, check=True, capture_output=True).stdout
    return hashlib.sha256(der).hexdigest()


def cert_sha256(pem):
    """TLSA x 0 1 data: SHA-256 of the whole certificate (DER)."""
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem.read_text())).hexdigest()


class Sink:
    """Records the commands a peer saw and each message it got."""

    def __init__(self):
        self.messages = []
        self.mail_commands = 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.mail_commands += 1
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append({"to": list(envelope.rcpt_tos), "tls": session.ssl is not None})
        return "250 2.0.0 Ok: sunk"


def sign_zone(d, zone, text, corrupt_owner=None):
    """Sign zone text with a new KSK and ZSK; returns the DS file (trust anchor).
    corrupt_owner: the RRSIG over that owner's TLSA records is broken (bogus)."""
    src = d / zone
    src.write_text(text)
    ksk = run("ldns-keygen", "-a", "ECDSAP256SHA256", "-k", zone, cwd=d).strip()
    zsk = run("ldns-keygen", "-a", "ECDSAP256SHA256", zone, cwd=d).strip()
    ds = d / (zone + ".ds")
    ds.write_text(run("ldns-key2ds", "-n", "-2", ksk + ".key", cwd=d))
    now = int(time.time())
    run("ldns-signzone", "-i", str(now - 86400), "-e", str(now + 30 * 86400),
        "-f", zone + ".signed", zone, zsk, ksk, cwd=d)
    signed = d / (zone + ".signed")
    if corrupt_owner:
        lines = []
        for line in signed.read_text().splitlines():
            f = line.split()
            if len(f) > 5 and f[0] == corrupt_owner and f[3] == "RRSIG" and f[4] == "TLSA":
                sig = f[-1]
                mid = len(sig) // 2
                f[-1] = sig[:mid] + ("A" if sig[mid] != "A" else "B") + sig[mid + 1:]
                line = "\t".join(f)
            lines.append(line)
        signed.write_text("\n".join(lines) + "\n")
    return ds, signed


@pytest.fixture
def dane_world(tmp_path):
    d = tmp_path / "dns"
    d.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(d, 0o755)
    port = free_port("127.0.53.1")  # the MX port of every peer
    for ip in HOSTS.values():
        with socket.socket() as s:
            s.bind((ip, port))  # fails (and the test errors) if taken
    ca_pem = make_ca(d)
    certs = {
        # DANE-EE: the certificate names some other host, and that must not matter
        "mx-ee": make_leaf(d, "mx-ee", "not-the-mx.example", ca=False),
        # DANE-TA: the certificate names the next-hop domain (RFC 7672 section 3.2.2)
        "mx-ta": make_leaf(d, "mx-ta", "ta.dane.example"),
        "mx-wrong": make_leaf(d, "mx-wrong", "mx-wrong.dane.example"),
        "mx-bogus": make_leaf(d, "mx-bogus", "mx-bogus.dane.example", ca=False),
        "mx-plain": make_leaf(d, "mx-plain", "mx.plain.example", ca=False),
        "mx-unusable": make_leaf(d, "mx-unusable", "mx-unusable.dane.example", ca=False),
        # DANE-EE ignores the dates too (RFC 7672 section 3.1.1)
        "mx-old": make_expired(d, "mx-old", "expired.example"),
        # DANE-TA with a certificate for another name: refused (section 3.2.2)
        "mx-taname": make_leaf(d, "mx-taname", "elsewhere.example"),
    }
    p = "_%d._tcp" % port
    zone = """$ORIGIN dane.example.
$TTL 300
@ IN SOA ns.dane.example. hostmaster.dane.example. 1 3600 600 86400 300
@ IN NS ns
ns IN A 127.0.0.1
ee IN MX 10 mx-ee
mx-ee IN A {mx-ee}
{p}.mx-ee IN TLSA 3 1 1 {ee}
ta IN MX 10 mx-ta
mx-ta IN A {mx-ta}
{p}.mx-ta IN TLSA 2 0 1 {ta}
wrong IN MX 10 mx-wrong
mx-wrong IN A {mx-wrong}
{p}.mx-wrong IN TLSA 3 1 1 {zeros}
next IN MX 10 mx-wrong
next IN MX 20 mx-ee
bogus IN MX 10 mx-bogus
mx-bogus IN A {mx-bogus}
{p}.mx-bogus IN TLSA 3 1 1 {bogus}
strip IN MX 10 mx-strip
mx-strip IN A {mx-strip}
{p}.mx-strip IN TLSA 3 1 1 {ee}
unusable IN MX 10 mx-unusable
mx-unusable IN A {mx-unusable}
{p}.mx-unusable IN TLSA 1 1 1 {unusable}
old IN MX 10 mx-old
taname IN MX 10 mx-taname
mx-taname IN A {mx-taname}
{p}.mx-taname IN TLSA 2 0 1 {ta}
mx-old IN A {mx-old}
{p}.mx-old IN TLSA 3 1 1 {old}
cname IN MX 10 alias-ee
alias-ee IN CNAME mx-ee
cname2 IN MX 10 alias-own
alias-own IN CNAME mx-nota
mx-nota IN A {mx-ee}
{p}.alias-own IN TLSA 3 1 1 {ee}
""".format(p=p, ee=spki_sha256(certs["mx-ee"][2]), ta=cert_sha256(ca_pem), zeros="00" * 32,
           bogus=spki_sha256(certs["mx-bogus"][2]), unusable=spki_sha256(certs["mx-unusable"][2]),
           old=spki_sha256(certs["mx-old"][2]),
           **HOSTS)
    ds, signed = sign_zone(d, "dane.example", zone, corrupt_owner="%s.mx-bogus.dane.example." % p)
    (d / "plain.example").write_text("""$ORIGIN plain.example.
$TTL 300
@ IN SOA ns.plain.example. hostmaster.plain.example. 1 3600 600 86400 300
@ IN NS ns
ns IN A 127.0.0.1
@ IN MX 10 mx
only IN MX 10 mx
mx IN A {ip}
""".format(ip=HOSTS["mx-plain"]))
    dns_port = free_port("127.0.0.1", (socket.SOCK_DGRAM, socket.SOCK_STREAM))
    (d / "nsd.conf").write_text("""server:
    ip-address: 127.0.0.1@{port}
    do-ip6: no
    username: ""
    chroot: ""
    database: ""
    zonelistfile: "{d}/zone.list"
    pidfile: "{d}/nsd.pid"
    xfrdfile: "{d}/xfrd.state"
    xfrdir: "{d}"
    zonesdir: "{d}"
    logfile: "{d}/nsd.log"
    server-count: 1
    verbosity: 1
remote-control:
    control-enable: no
zone:
    name: dane.example
    zonefile: "{signed}"
zone:
    name: plain.example
    zonefile: "{d}/plain.example"
""".format(port=dns_port, d=d, signed=signed))
    nsd = subprocess.Popen([shutil.which("nsd") or "/usr/sbin/nsd", "-d", "-c", str(d / "nsd.conf")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    controllers = []
    try:
        deadline = time.monotonic() + tf(10)
        while True:  # ready once it answers over TCP
            try:
                socket.create_connection(("127.0.0.1", dns_port), timeout=1).close()
                break
            except OSError:
                assert nsd.poll() is None, "nsd exited: %s" % (d / "nsd.log").read_text()
                assert time.monotonic() < deadline, "nsd does not answer"
                time.sleep(0.05)
        sinks = {}
        for host, ip in HOSTS.items():
            sink = Sink()
            kw = {}
            if host in certs:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(str(certs[host][0]), str(certs[host][1]))
                kw = {"tls_context": ctx}
            c = aiosmtpd_controller.Controller(sink, hostname=ip, port=port, **kw)
            c.start()
            controllers.append(c)
            sinks[host] = sink
        policy = tmp_path / "tls_policy"
        policy.write_text("only.plain.example dane-only\n")
        transport = tmp_path / "transport"
        transport.write_text("via-ee.example smtp:[mx-ee.dane.example]:%d\n"
                             "via-wrong.example smtp:[mx-wrong.dane.example]:%d\n" % (port, port))
        yield {"sinks": sinks, "port": port, "config": {
            "smtp_tls_policy": "dane", "tls_policy": str(policy),
            "dns_servers": "127.0.0.1@%d" % dns_port, "dnssec_trust_anchor": str(ds),
            "smtp_port": str(port), "transport": str(transport), "retry_min": "1h", "retry_max": "2h", "dns_timeout": "5s"}}
    finally:
        for c in controllers:
            c.stop()
        nsd.terminate()
        nsd.wait(timeout=10)


def test_dane(make_tern, dane_world):
    sinks, port = dane_world["sinks"], dane_world["port"]
    t = make_tern(config=dane_world["config"]).start()
    t.wait_log(r"dane: DNSSEC validation with the trust anchor \S+dane\.example\.ds")
    domains = ["ee.dane.example", "ta.dane.example", "wrong.dane.example", "next.dane.example",
               "bogus.dane.example", "strip.dane.example", "unusable.dane.example", "plain.example",
               "only.plain.example", "via-ee.example", "via-wrong.example", "cname.dane.example",
               "cname2.dane.example", "old.dane.example", "taname.dane.example"]
    for dom in domains:
        t.send("user@" + dom)

    def line(dom, status, relay=r"\S+", reply=""):
        return t.wait_log(r"to=<user@%s> relay=%s.* status=%s \(%s" % (
            dom.replace(".", r"\."), relay, status, reply), timeout=20)

    tls = r"\S+ tls=TLSv1\.[23] verified="
    # DANE-EE: the key matches; the certificate's name does not matter
    line("ee.dane.example", "sent", tls + "dane-ee")
    # DANE-TA: the CA's digest, the certificate names the next-hop domain
    line("ta.dane.example", "sent", tls + "dane-ta")
    # a TLSA record that matches nothing: deferred, no mail in clear
    line("wrong.dane.example", "deferred", reply=r"451 4\.7\.5 ")
    t.wait_log(r"outbound tls relay=mx-wrong\.dane\.example\[127\.0\.53\.3\]:%d \S+ \S+ "
               r"verify=failed reason=dane" % port)
    # the first MX does not match: the second one (DANE-EE) takes it
    line("next.dane.example", "sent",
         r"mx-ee\.dane\.example\[127\.0\.53\.1\]:\d+ tls=TLSv1\.[23] verified=dane-ee")
    # a bogus TLSA answer: deferred, the host is not used at all
    line("bogus.dane.example", "deferred", reply=r"451 4\.7\.5 .*TLSA")
    # TLSA published but no STARTTLS offered: deferred, never in clear
    line("strip.dane.example", "deferred", reply=r"451 4\.7\.5 .*does not offer STARTTLS")
    # only a PKIX-EE record: unusable for SMTP, TLS is still required
    line("unusable.dane.example", "sent", tls + "none")
    t.wait_log(r"TLSA records unusable: 1 1 1: PKIX usage")
    # an unsigned zone: opportunistic TLS
    line("plain.example", "sent", tls + "none")
    # ... but not under dane-only
    line("only.plain.example", "deferred", reply=r"451 4\.7\.5 .*the MX records are not DNSSEC-signed")

    # a transport host given by name: its own TLSA records, no MX lookup
    line("via-ee.example", "sent",
         r"mx-ee\.dane\.example\[127\.0\.53\.1\]:\d+ tls=TLSv1\.[23] verified=dane-ee")
    line("via-wrong.example", "deferred", reply=r"451 4\.7\.5 DANE authentication failed")

    # an MX host that is a CNAME: TLSA at the expanded name (mx-ee) ...
    line("cname.dane.example", "sent",
         r"alias-ee\.dane\.example\[127\.0\.53\.1\]:\d+ tls=TLSv1\.[23] verified=dane-ee")
    # ... or, when there is none there, at the alias itself (RFC 7672 section 2.2.2)
    line("cname2.dane.example", "sent",
         r"alias-own\.dane\.example\[127\.0\.53\.1\]:\d+ tls=TLSv1\.[23] verified=dane-ee")

    # DANE-EE: an expired certificate (for another name) is fine, the key matches
    line("old.dane.example", "sent", tls + "dane-ee")
    # DANE-TA: the CA matches but the certificate names neither the MX host
    # nor the next-hop domain
    line("taname.dane.example", "deferred", reply=r"451 4\.7\.5 DANE authentication failed")

    assert len(sinks["mx-ee"].messages) == 5 and all(m["tls"] for m in sinks["mx-ee"].messages)
    assert len(sinks["mx-ta"].messages) == 1 and sinks["mx-ta"].messages[0]["tls"]
    for host in ("mx-wrong", "mx-bogus", "mx-strip", "mx-taname"):
        assert sinks[host].mail_commands == 0, host
        assert sinks[host].messages == [], host
    assert len(sinks["mx-plain"].messages) == 1 and sinks["mx-plain"].messages[0]["tls"]
    assert len(sinks["mx-unusable"].messages) == 1 and sinks["mx-unusable"].messages[0]["tls"]


def test_dane_without_validation(make_tern, dane_world):
    """dnssec_trust_anchor = none: DANE cannot apply (said at start); dane
    destinations get opportunistic TLS, dane-only ones wait."""
    cfg = dict(dane_world["config"], dnssec_trust_anchor="none")
    t = make_tern(config=cfg).start()
    t.wait_log(r"dane: DNSSEC validation is off \(dnssec_trust_anchor = none\), so DANE cannot apply")
    t.send("user@ee.dane.example")
    t.send("user@only.plain.example")
    t.wait_log(r"to=<user@ee\.dane\.example> relay=mx-ee\.dane\.example\[127\.0\.53\.1\]:\d+ "
               r"tls=TLSv1\.[23] verified=none .* status=sent", timeout=20)
    t.wait_log(r"to=<user@only\.plain\.example> relay=none .* status=deferred \(451 4\.7\.5 the TLS "
               r"policy is dane-only but DNSSEC validation is off", timeout=20)
