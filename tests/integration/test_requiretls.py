"""
test_requiretls.py - REQUIRETLS and the TLS-Required header field (RFC 8689),
inbound and outbound, against a real DNSSEC-signed zone (nsd on loopback, as in
test_dane.py) and real TLS peers (aiosmtpd on 127.0.54.x, one port):

  ok.rt.example       MX host with a matching TLSA 3 1 1 record, offers
                      REQUIRETLS: relayed, the peer's MAIL FROM has REQUIRETLS
  ca.rt.example       signed MX, no TLSA record, a certificate from the test CA
                      for the MX name, offers REQUIRETLS: relayed (verified=ca)
  noext.rt.example    DANE matches but the server does not offer REQUIRETLS:
                      bounced 5.7.30, nothing sent
  wrong.rt.example    TLSA record that matches nothing: a REQUIRETLS message is
                      bounced 5.7.10; a message with "TLS-Required: No" is
                      delivered (opportunistic TLS) where DANE would defer
  plain.example       unsigned zone, no MTA-STS: bounced 5.7.10
  via-dane.example    transport to [mx.plain.example] under the dane policy:
                      counts as validated, its certificate checked (verified=ca)
  via-may.example     transport to the same host by address, tls_policy may:
                      bounced 5.7.10 at once
The DSNs go back to alice@localhost: each came in with REQUIRETLS (the log says
so) and carries the original's header section, not its body.
With MTA-STS (test_mta_sts.py's world: a policy server and peers that do not
offer REQUIRETLS): an MX host listed by an enforce policy is validated (the
message gets as far as the missing REQUIRETLS: 5.7.30); a testing policy does
not validate (5.7.10); "TLS-Required: No" is delivered past an enforce policy
whose MX host has a certificate for another name.
"""

import os
import re
import smtplib
import socket
import subprocess
import shutil
import time

import pytest

from tern_harness import Client, Mail, make_cert, tf, tls_client_context

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
aiosmtpd_smtp = pytest.importorskip("aiosmtpd.smtp")

for prog in ("nsd", "ldns-signzone", "ldns-keygen", "ldns-key2ds", "openssl"):
    if not shutil.which(prog) and not os.path.exists("/usr/sbin/" + prog):
        pytest.skip("%s is not installed (scripts/deps.sh)" % prog, allow_module_level=True)

from test_dane import free_port, make_ca, make_leaf, sign_zone, spki_sha256  # noqa: E402
from test_mta_sts import sts_world  # noqa: E402,F401  (a fixture)

HOSTS = {
    "mx-ok": "127.0.54.1",
    "mx-ca": "127.0.54.2",
    "mx-noext": "127.0.54.3",
    "mx-wrong": "127.0.54.4",
    "mx-plain": "127.0.54.5",
}


class RTSMTP(aiosmtpd_smtp.SMTP):
    """aiosmtpd's server, taking the REQUIRETLS MAIL parameter (which it does
    not know) and noting the MAIL lines it got."""

    async def smtp_MAIL(self, arg):
        if arg:
            self.event_handler.mail_lines.append(arg)
            arg = " ".join(w for w in arg.split(" ") if w.upper() != "REQUIRETLS")
        await super().smtp_MAIL(arg)


class RTController(aiosmtpd_controller.Controller):
    def factory(self):
        return RTSMTP(self.handler, **self.SMTP_kwargs)


class Peer:
    def __init__(self, offer):
        self.offer = offer  # REQUIRETLS in the EHLO reply under TLS
        self.mail_lines = []
        self.messages = []

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.offer and session.ssl is not None:
            responses.insert(len(responses) - 1, "250-REQUIRETLS")
        return responses

    async def handle_DATA(self, server, session, envelope):
        self.messages.append({"to": list(envelope.rcpt_tos), "tls": session.ssl is not None,
                              "data": envelope.content})
        return "250 2.0.0 Ok: sunk"


@pytest.fixture
def rt_world(tmp_path):
    d = tmp_path / "dns"
    d.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(d, 0o755)
    port = free_port("127.0.54.1")
    for ip in HOSTS.values():
        with socket.socket() as s:
            s.bind((ip, port))
    ca_pem = make_ca(d)
    certs = {
        "mx-ok": make_leaf(d, "mx-ok", "mx-ok.rt.example", ca=False),
        "mx-ca": make_leaf(d, "mx-ca", "mx-ca.rt.example"),
        "mx-noext": make_leaf(d, "mx-noext", "mx-noext.rt.example", ca=False),
        "mx-wrong": make_leaf(d, "mx-wrong", "mx-wrong.rt.example", ca=False),
        "mx-plain": make_leaf(d, "mx-plain", "mx.plain.example"),
    }
    p = "_%d._tcp" % port
    zone = """$ORIGIN rt.example.
$TTL 300
@ IN SOA ns.rt.example. hostmaster.rt.example. 1 3600 600 86400 300
@ IN NS ns
ns IN A 127.0.0.1
ok IN MX 10 mx-ok
mx-ok IN A {mx-ok}
{p}.mx-ok IN TLSA 3 1 1 {ok}
ca IN MX 10 mx-ca
mx-ca IN A {mx-ca}
noext IN MX 10 mx-noext
mx-noext IN A {mx-noext}
{p}.mx-noext IN TLSA 3 1 1 {noext}
wrong IN MX 10 mx-wrong
mx-wrong IN A {mx-wrong}
{p}.mx-wrong IN TLSA 3 1 1 {zeros}
""".format(p=p, ok=spki_sha256(certs["mx-ok"][2]), noext=spki_sha256(certs["mx-noext"][2]),
           zeros="00" * 32, **HOSTS)
    ds, signed = sign_zone(d, "rt.example", zone)
    (d / "plain.example").write_text("""$ORIGIN plain.example.
$TTL 300
@ IN SOA ns.plain.example. hostmaster.plain.example. 1 3600 600 86400 300
@ IN NS ns
ns IN A 127.0.0.1
@ IN MX 10 mx
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
    name: rt.example
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
        while True:
            try:
                socket.create_connection(("127.0.0.1", dns_port), timeout=1).close()
                break
            except OSError:
                assert nsd.poll() is None, "nsd exited: %s" % (d / "nsd.log").read_text()
                assert time.monotonic() < deadline, "nsd does not answer"
                time.sleep(0.05)
        peers = {}
        for host, ip in HOSTS.items():
            peer = Peer(offer=host != "mx-noext")
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(certs[host][0]), str(certs[host][1]))
            c = RTController(peer, hostname=ip, port=port, tls_context=ctx)
            c.start()
            controllers.append(c)
            peers[host] = peer
        cert, key = make_cert(tmp_path)
        # relayhost/transport rules: the next hop's own tls_policy decides
        transport = tmp_path / "transport"
        transport.write_text("via-dane.example smtp:[mx.plain.example]:%d\n"
                             "via-may.example smtp:[%s]:%d\n" % (port, HOSTS["mx-plain"], port))
        policy = tmp_path / "tls_policy"
        policy.write_text("%s may\n" % HOSTS["mx-plain"])
        yield {"peers": peers, "port": port, "config": {
            "transport": str(transport), "tls_policy": str(policy),
            "smtp_tls_policy": "dane", "smtp_tls_ca_file": str(ca_pem),
            "tls_cert": str(cert), "tls_key": str(key),
            "dns_servers": "127.0.0.1@%d" % dns_port, "dnssec_trust_anchor": str(ds),
            "smtp_port": str(port), "retry_min": "1h", "retry_max": "2h", "dns_timeout": "5s"}}
    finally:
        for c in controllers:
            c.stop()
        nsd.terminate()
        nsd.wait(timeout=10)


def message(to, subject, body, headers=()):
    lines = ["From: alice@localhost", "To: " + to, "Subject: " + subject,
             "Message-ID: <%s@test>" % subject.replace(" ", "-")] + list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


def send_tls(t, to, subject, body, requiretls=True, headers=()):
    """One message over STARTTLS, with REQUIRETLS on MAIL FROM; the queue ID."""
    s = t.smtp()
    try:
        s.ehlo()
        s.starttls(context=tls_client_context())
        code, resp = s.ehlo()
        assert code == 250 and b"REQUIRETLS" in resp, resp
        code, resp = s.mail("alice@localhost", ["REQUIRETLS"] if requiretls else [])
        assert code == 250, (code, resp)
        code, resp = s.rcpt(to)
        assert code == 250, (code, resp)
        code, resp = s.data(message(to, subject, body, headers))
        assert code == 250, (code, resp)
        return re.search(r"queued as (\S+)", resp.decode()).group(1)
    finally:
        s.quit()


def test_requiretls_inbound(make_tern, tmp_path):
    """Offered only under TLS; refused without it; bad forms refused."""
    cert, key = make_cert(tmp_path)
    t = make_tern(config={"tls_cert": str(cert), "tls_key": str(key)}).start()
    with Client(t.port) as c:
        c.read_greeting()
        r = c.ehlo()
        assert "REQUIRETLS" not in r.text and "STARTTLS" in r.text
        r = c.cmd("MAIL FROM:<alice@localhost> REQUIRETLS")
        assert r.code == 530 and r.text.startswith("530 5.7.10 "), r
        assert c.cmd("STARTTLS").code == 220
        c.sock = tls_client_context().wrap_socket(c.sock)
        r = c.ehlo()
        assert "250-REQUIRETLS" in r.text, r
        r = c.cmd("MAIL FROM:<alice@localhost> REQUIRETLS=YES")
        assert r.code == 501 and r.text.startswith("501 5.5.4 REQUIRETLS takes no value"), r
        r = c.cmd("MAIL FROM:<alice@localhost> REQUIRETLS requiretls")
        assert r.code == 501 and r.text.startswith("501 5.5.4 Duplicate"), r
        r = c.cmd("MAIL FROM:<alice@localhost> REQUIRETLS")
        assert r.code == 250, r
        assert c.cmd("RCPT TO:<bob@localhost>").code == 250
        assert c.cmd("DATA").code == 354
        r = c.cmd("Subject: rt\r\n\r\nhello\r\n.")
        assert r.code == 250, r
        c.cmd("QUIT")
    t.wait_log(r"accepted session=\S+ client=127\.0\.0\.1 .* proto=ESMTPS requiretls=yes")
    # the local delivery says it too, and is not held back (final delivery)
    t.wait_log(r"to=<bob@localhost> relay=local requiretls=yes .* status=sent")
    # without TLS the flag is never set, whatever the header says
    t.send("bob@localhost", body="x")
    t.wait_delivered("bob@localhost", 2)


def test_requiretls_outbound(make_tern, rt_world):
    peers, port = rt_world["peers"], rt_world["port"]
    t = make_tern(config=rt_world["config"]).start()
    secret = "SECRET-BODY-%d" % os.getpid()
    for dom in ("ok.rt.example", "ca.rt.example", "noext.rt.example", "wrong.rt.example",
                "plain.example", "via-dane.example", "via-may.example"):
        send_tls(t, "user@" + dom, "rt to " + dom, secret)
    # a message without REQUIRETLS but with "TLS-Required: No", to the host
    # whose TLSA record matches nothing (DANE alone would defer it)
    qno = send_tls(t, "other@wrong.rt.example", "tls optional", "optional body",
                   requiretls=False, headers=["TLS-Required: No"])
    t.wait_log(r"%s: accepted .* tls_required=no" % qno)
    # ... and the same without the field: deferred, as DANE says
    t.send("third@wrong.rt.example", sender="alice@localhost", body="plain")

    def line(dom, status, rest=""):
        return t.wait_log(r"to=<user@%s> relay=\S+ %s.*status=%s" % (
            re.escape(dom), rest, status), timeout=20)

    line("ok.rt.example", "sent", r"tls=TLSv1\.[23] verified=dane-ee requiretls=yes ")
    line("ca.rt.example", "sent", r"tls=TLSv1\.[23] verified=ca requiretls=yes ")
    t.wait_log(r"to=<user@noext\.rt\.example> .*requiretls=yes .*status=bounced \(550 5\.7\.30 "
               r"REQUIRETLS support required: mx-noext", timeout=20)
    t.wait_log(r"to=<user@wrong\.rt\.example> .*requiretls=yes .*status=bounced \(550 5\.7\.10 "
               r"REQUIRETLS: DANE authentication failed", timeout=20)
    t.wait_log(r"to=<user@plain\.example> relay=none requiretls=yes .*status=bounced \(550 5\.7\.10 "
               r"REQUIRETLS: no mail exchanger of plain\.example can be validated", timeout=20)
    t.wait_log(r"MX host mx\.plain\.example not used for REQUIRETLS mail: the MX records are not "
               r"DNSSEC-signed and no MTA-STS policy")
    line("via-dane.example", "sent", r"tls=TLSv1\.[23] verified=ca requiretls=yes ")
    t.wait_log(r"to=<user@via-may\.example> relay=none requiretls=yes .*status=bounced \(550 5\.7\.10 "
               r"REQUIRETLS: the next hop 127\.0\.54\.5 cannot be validated: its tls_policy does not "
               r"authenticate it", timeout=20)
    t.wait_log(r"to=<third@wrong\.rt\.example> .*status=deferred \(451 4\.7\.5 DANE", timeout=20)
    # TLS-Required: No: delivered past the DANE mismatch, under TLS all the same
    t.wait_log(r"%s: TLS-Required: No: wrong\.rt\.example gets opportunistic TLS" % qno)
    t.wait_log(r"%s: to=<other@wrong\.rt\.example> relay=mx-wrong\.rt\.example\S+ "
               r"tls=TLSv1\.[23] verified=none delay=.*status=sent" % qno, timeout=20)

    # the peers: REQUIRETLS on MAIL FROM where it went; nothing where it did not
    for host in ("mx-ok", "mx-ca", "mx-plain"):
        assert len(peers[host].messages) == 1 and peers[host].messages[0]["tls"], host
        assert any(re.search(r"(?i)\sREQUIRETLS(\s|$)", m) for m in peers[host].mail_lines), \
            peers[host].mail_lines
    assert peers["mx-noext"].messages == [] and peers["mx-noext"].mail_lines == []
    assert peers["mx-plain"].messages[0]["to"] == ["user@via-dane.example"]
    wrong = peers["mx-wrong"]
    assert len(wrong.messages) == 1 and wrong.messages[0]["to"] == ["other@wrong.rt.example"]
    assert not any("REQUIRETLS" in m.upper() for m in wrong.mail_lines), wrong.mail_lines

    # four DSNs to alice, each queued with REQUIRETLS, the header section only
    t.wait_log(r"accepted session=local .* proto=DSN requiretls=yes")
    paths = t.wait_delivered("alice@localhost", 4, timeout=20)
    codes = set()
    for pth in paths:
        raw = open(pth, "rb").read().decode("utf-8", "replace")
        assert secret not in raw, "the DSN returned the body"
        assert "Subject: rt to " in raw, raw
        codes.update(re.findall(r"Status: (5\.7\.\d+)", raw))
    assert codes == {"5.7.10", "5.7.30"}, codes


def test_requiretls_mta_sts(make_tern, sts_world, tmp_path):
    cert, key = make_cert(tmp_path)
    cfg = dict(sts_world["config"], tls_cert=str(cert), tls_key=str(key))
    t = make_tern(config=cfg).start()
    send_tls(t, "user@enforce.example", "rt enforce", "secret one")
    send_tls(t, "user@testing.example", "rt testing", "secret two")
    qno = send_tls(t, "user@wrongname.example", "tls optional", "optional body",
                   requiretls=False, headers=["TLS-Required: No"])
    t.wait_log(r"to=<user@enforce\.example> relay=mx-good\.sts\.example\S+ requiretls=yes .*"
               r"status=bounced \(550 5\.7\.30 REQUIRETLS support required", timeout=20)
    t.wait_log(r"MX host mx-wrong\.sts\.example not used for REQUIRETLS mail: the MX records are "
               r"not DNSSEC-signed and its MTA-STS policy is not in enforce mode")
    t.wait_log(r"to=<user@testing\.example> relay=none requiretls=yes .*status=bounced "
               r"\(550 5\.7\.10 REQUIRETLS: no mail exchanger of testing\.example", timeout=20)
    t.wait_log(r"%s: to=<user@wrongname\.example> relay=mx-wrong\.sts\.example\S+ "
               r"tls=TLSv1\.[23] verified=none delay=.*status=sent" % qno, timeout=20)
    assert len(sts_world["sinks"]["mx-wrong"].messages) == 1
    assert sts_world["sinks"]["mx-good"].messages == []
    paths = t.wait_delivered("alice@localhost", 2, timeout=20)
    for pth in paths:
        raw = open(pth, "rb").read().decode("utf-8", "replace")
        assert "secret" not in raw and "Subject: rt " in raw, raw
