"""
test_outbound_tls.py - outbound STARTTLS (RFC 3207) against an aiosmtpd peer:
opportunistic by default, "encrypt" and "verify" policies (from
smtp_tls_policy or the tls_policy table), a certificate that names another
host defers the message, a server without STARTTLS defers it under
"encrypt", and a handshake that fails under "may" is retried in clear.
"""

import os
import re
import signal
import socket
import ssl
import time
import warnings

import pytest

from tern_harness import make_cert, tf

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")


class Sink:
    """Records each message and whether it came under TLS."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        ssl_obj = session.ssl.get("ssl_object") if isinstance(session.ssl, dict) else None
        self.messages.append({
            "from": envelope.mail_from, "to": list(envelope.rcpt_tos),
            "data": envelope.original_content, "tls": session.ssl is not None,
            "version": ssl_obj.version() if ssl_obj else None,
        })
        return "250 2.0.0 Ok: sunk"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def peer(request):
    started = []

    def start(cert=None, require_starttls=False, legacy_only=False):
        sink = Sink()
        kw = {}
        if cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(cert[0]), str(cert[1]))
            if legacy_only:
                # a server our client (TLS 1.2 and up) cannot agree with
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    ctx.minimum_version = ssl.TLSVersion.TLSv1
                    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
            kw = {"tls_context": ctx, "require_starttls": require_starttls}
        port = free_port()
        c = aiosmtpd_controller.Controller(sink, hostname="127.0.0.1", port=port, **kw)
        c.start()
        started.append(c)
        return sink, port

    yield start
    for c in started:
        c.stop()


def relay(make_tern, port, host="127.0.0.1", config=None):
    cfg = {"relayhost": "[%s]:%d" % (host, port), "retry_min": "1h", "retry_max": "2h"}
    cfg.update(config or {})
    return make_tern(config=cfg).start()


def wait_sunk(sink, n=1, timeout=15):
    deadline = time.monotonic() + tf(timeout)
    while len(sink.messages) < n:
        assert time.monotonic() < deadline, "the peer got %d messages" % len(sink.messages)
        time.sleep(0.05)
    return sink.messages


def test_opportunistic_starttls(make_tern, peer, tmp_path):
    sink, port = peer(cert=make_cert(tmp_path, name="mx"), require_starttls=True)
    t = relay(make_tern, port)
    t.send("someone@far.example")
    m = wait_sunk(sink)[0]
    assert m["tls"] and m["version"] in ("TLSv1.2", "TLSv1.3"), m
    assert m["to"] == ["someone@far.example"]
    # a self-signed certificate is fine under "may", and said so
    t.wait_log(r"outbound tls relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d TLSv1\.[23] \S+ verify=failed" % port)
    # an address literal: no SNI (RFC 6066 section 3)
    t.wait_log(r"(?m)outbound tls relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d .* sni=none$" % port)
    t.wait_log(r"to=<someone@far\.example> relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+ .*status=sent")


def test_policy_none(make_tern, peer, tmp_path):
    sink, port = peer(cert=make_cert(tmp_path, name="mx"))
    t = relay(make_tern, port, config={"smtp_tls_policy": "none"})
    t.send("someone@far.example")
    assert not wait_sunk(sink)[0]["tls"]


def test_verify_ok(make_tern, peer, tmp_path):
    cert = make_cert(tmp_path, name="mx", cn="localhost", dns=("localhost",), ips=())
    sink, port = peer(cert=cert)
    t = relay(make_tern, port, host="localhost",
              config={"smtp_tls_policy": "verify", "smtp_tls_ca_file": str(cert[0])})
    t.send("someone@far.example")
    assert wait_sunk(sink)[0]["tls"]
    t.wait_log(r"(?m)outbound tls relay=localhost\[127\.0\.0\.1\]:%d .* verify=ok sni=localhost$" % port)


def test_verify_wrong_name_defers(make_tern, peer, tmp_path):
    cert = make_cert(tmp_path, name="mx", cn="mx.test", dns=("mx.test",), ips=())
    sink, port = peer(cert=cert)
    t = relay(make_tern, port, host="localhost",
              config={"smtp_tls_policy": "verify", "smtp_tls_ca_file": str(cert[0])})
    t.send("someone@far.example")
    t.wait_log(r"to=<someone@far\.example> .*status=deferred \(451 4\.7\.5 TLS certificate "
               r"verification failed for localhost\[127\.0\.0\.1\]:\d+: hostname mismatch\)")
    assert sink.messages == []
    assert t.queue_files("queue")  # still queued, for a later try


def test_policy_table_per_destination(make_tern, peer, tmp_path):
    cert = make_cert(tmp_path, name="mx", cn="mx.test", dns=("mx.test",), ips=())
    sink, port = peer(cert=cert)
    table = tmp_path / "tls_policy"
    table.write_text("# destination policy\nlocalhost verify\n.example.net none\n")
    t = relay(make_tern, port, host="localhost",
              config={"tls_policy": str(table), "smtp_tls_ca_file": str(cert[0])})
    t.send("someone@far.example")
    t.wait_log(r"status=deferred \(451 4\.7\.5 TLS certificate verification failed")
    assert sink.messages == []


def test_bad_policy_table_refused(make_tern, tmp_path):
    table = tmp_path / "tls_policy"
    table.write_text("localhost sometimes\n")
    t = make_tern(config={"tls_policy": str(table)})
    try:
        t.start()  # it may get as far as listening
    except AssertionError as e:
        assert "tls_policy" in str(e)
        return
    rc = t.proc.wait(tf(10))
    t.proc = None
    assert rc == 1
    assert re.search(r"tls_policy: .*tls_policy:1: expected \"destination policy\"", t.log), t.tail()


def test_encrypt_without_starttls_defers(make_tern, peer):
    sink, port = peer()  # no TLS at all
    t = relay(make_tern, port, config={"smtp_tls_policy": "encrypt"})
    t.send("someone@far.example")
    t.wait_log(r"status=deferred \(451 4\.7\.4 TLS is required for 127\.0\.0\.1\[127\.0\.0\.1\]:\d+ "
               r"but it does not offer STARTTLS\)")
    assert sink.messages == []


def test_may_without_starttls_sends_in_clear(make_tern, peer):
    sink, port = peer()
    t = relay(make_tern, port)
    t.send("someone@far.example")
    assert not wait_sunk(sink)[0]["tls"]


def test_may_falls_back_to_clear_after_a_failed_handshake(make_tern, peer, tmp_path):
    try:
        sink, port = peer(cert=make_cert(tmp_path, name="mx"), legacy_only=True)
    except (ssl.SSLError, ValueError) as e:
        pytest.skip("this OpenSSL cannot offer TLS 1.0/1.1: %s" % e)
    t = relay(make_tern, port)
    t.send("someone@far.example")
    m = wait_sunk(sink)[0]
    assert not m["tls"]
    t.wait_log(r"TLS handshake with 127\.0\.0\.1\[127\.0\.0\.1\]:\d+ failed")
    t.wait_log(r"retrying without TLS \(policy may\)")


def test_lmtp_over_a_unix_socket(make_tern, tmp_path):
    """transport "lmtp:unix:/path" (conn_connect_unix); never TLS there."""
    from aiosmtpd.lmtp import LMTP

    class LmtpController(aiosmtpd_controller.UnixSocketController):
        def factory(self):
            return LMTP(self.handler, **self.SMTP_kwargs)

    sink = Sink()
    sock = tmp_path / "lmtp.sock"
    c = LmtpController(sink, unix_socket=str(sock))
    c.start()
    try:
        transport = tmp_path / "transport"
        transport.write_text("far.example lmtp:unix:%s\n" % sock)
        t = make_tern(config={"transport": str(transport), "smtp_tls_policy": "verify"}).start()
        t.send("someone@far.example")
        m = wait_sunk(sink)[0]
        assert m["to"] == ["someone@far.example"] and not m["tls"]
        t.wait_log(r"to=<someone@far\.example> relay=localhost\[unix:%s\] .*status=sent" % re.escape(str(sock)))
    finally:
        c.stop()


def test_reload_outbound_settings(make_tern, peer, tmp_path):
    """SIGHUP applies the outbound settings: a new relayhost, a new TLS
    policy and CA file, a tls_policy table; a broken table at a reload keeps
    the previous settings (the mail still goes)."""
    os.chmod(tmp_path, 0o755)
    cert = make_cert(tmp_path, name="mx", cn="localhost", dns=("localhost",), ips=())
    os.chmod(cert[0], 0o644)
    sink_a, port_a = peer()
    sink_b, port_b = peer(cert=cert)
    t = relay(make_tern, port_a)
    t.send("one@far.example")
    assert wait_sunk(sink_a)[0]["to"] == ["one@far.example"]

    def reload(**changes):
        t.config.update(changes)
        t.write_files()
        mark = len(t.run_log())
        t.signal(signal.SIGHUP)
        deadline = time.monotonic() + tf(10)
        while not re.search(r"reload: (outbound settings applied|outbound delivery: .*keeping)",
                            t.run_log()[mark:]):
            assert time.monotonic() < deadline, t.tail()
            time.sleep(0.05)
        return t.run_log()[mark:]

    # another relayhost, under "verify" without the CA that signed it: deferred
    reload(relayhost="[localhost]:%d" % port_b, smtp_tls_policy="verify")
    t.send("two@far.example")
    t.wait_log(r"to=<two@far\.example> relay=localhost\[127\.0\.0\.1\]:%d .*status=deferred "
               r"\(451 4\.7\.5 TLS certificate verification failed" % port_b)
    assert sink_b.messages == [] and len(sink_a.messages) == 1
    # the CA file now: delivered, verified
    reload(smtp_tls_ca_file=str(cert[0]))
    t.send("three@far.example")
    assert wait_sunk(sink_b)[0]["to"] == ["three@far.example"]
    t.wait_log(r"to=<three@far\.example> relay=localhost\S+ tls=TLSv1\.[23] verified=ca .*status=sent")
    # a tls_policy table naming the relay host: "none" now
    table = tmp_path / "tls_policy"
    table.write_text("localhost none\n")
    reload(tls_policy=str(table))
    t.send("four@far.example")
    m = wait_sunk(sink_b, 2)[1]
    assert m["to"] == ["four@far.example"] and not m["tls"]
    # a broken table: the reload of the outbound part fails, the rest stays
    table.write_text("localhost sometimes\n")
    out = reload()
    assert "keeping the previous outbound settings" in out
    t.send("five@far.example")
    m = wait_sunk(sink_b, 3)[2]
    assert m["to"] == ["five@far.example"] and not m["tls"]
