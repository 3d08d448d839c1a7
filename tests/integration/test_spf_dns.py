"""test_spf_dns.py - `tern spf` and the DNS behaviour SPF depends on.

- A name whose queries the only name server never answers costs only its own
  timeout: the evaluation goes on (ptr: a DNS error is no match, RFC 7208
  section 5.5) and the next query, to the same server, is answered.
- After libunbound's own retries for such a name have run out (about 17 s)
  the server is not written off: the next name is still answered at once
  (dns.c sets infra-keep-probing; without it every later query got SERVFAIL
  for 15 minutes, measured).
- The whole evaluation's time budget (--timeout) gives temperror.
- Names built by macros with octets outside letters, digits and '-' are
  queried as they are; reverse lookups of private ranges reach the server.
- The command line: usage errors exit 2, results exit 0, the configuration's
  dns_servers are used.
"""

import os
import subprocess
import time
from pathlib import Path

from spf_zone import ZoneServer

TERN = os.environ.get("TERN_BIN", str(Path(__file__).resolve().parents[2] / "build" / "tern"))

ZONE = {
    "silent.example.com": [{"TXT": "v=spf1 ptr:example.com a:ok.example.com -all"}],
    "ok.example.com": [{"A": "192.0.2.1"}, {"TXT": "v=spf1 ip4:192.0.2.1 -all"}],
    "odd.example.com": [{"TXT": "v=spf1 a:%{l}.odd.example.com include:%{l}.inc.example.com -all"}],
    "a:b%c d.odd.example.com": [{"A": "192.0.2.9"}],
    "a:b%c d.inc.example.com": [{"TXT": "v=spf1 ip4:192.0.2.10 -all"}],
    "lan.example.com": [{"TXT": "v=spf1 ptr -all"}],
    "5.1.168.192.in-addr.arpa": [{"PTR": "host.lan.example.com"}],
    "host.lan.example.com": [{"A": "192.168.1.5"}],
}


def spf(*args, timeout=90):
    t0 = time.monotonic()
    p = subprocess.run([TERN, "spf"] + list(args), capture_output=True, timeout=timeout)
    lines = p.stdout.decode("utf-8", "replace").split("\n")
    return p.returncode, lines, p.stderr.decode("utf-8", "replace"), time.monotonic() - t0


def test_unanswered_query_costs_its_own_timeout():
    srv = ZoneServer(ZONE)
    try:
        # 192.0.2.1's reverse name (1.2.0.192.in-addr.arpa) never answers
        srv.drop_names.add("1.2.0.192.in-addr.arpa")
        rc, out, err, took = spf("192.0.2.1", "x@silent.example.com", "--helo", "h.example",
                                 "--dns-servers", srv.addr, "--dns-timeout", "1000")
        assert rc == 0, err
        assert out[0] == "pass", out
        assert out[1] == "reason: a:ok.example.com"
        assert 0.9 < took < 5, took
    finally:
        srv.close()


def test_silent_name_does_not_write_the_server_off():
    """the resolver's own retries for the silent name run out (about 17 s)
    before the next query; that query must still be answered"""
    srv = ZoneServer(ZONE)
    try:
        srv.drop_names.add("1.2.0.192.in-addr.arpa")
        rc, out, err, took = spf("192.0.2.1", "x@silent.example.com", "--helo", "h.example",
                                 "--dns-servers", srv.addr, "--dns-timeout", "30000",
                                 "--timeout", "60000")
        assert rc == 0, err
        assert out[0] == "pass", (out, took)
        assert took > 10, took  # libunbound did give up on the PTR first
        assert srv.seen.get((b"ok.example.com", 1)) == 1
    finally:
        srv.close()


def test_time_budget_is_temperror():
    srv = ZoneServer(ZONE)
    try:
        srv.drop_names.add("1.2.0.192.in-addr.arpa")
        rc, out, err, took = spf("192.0.2.1", "x@silent.example.com", "--helo", "h.example",
                                 "--dns-servers", srv.addr, "--dns-timeout", "5000",
                                 "--timeout", "300")
        assert rc == 0, err
        assert out[0] == "temperror", out
        assert "budget" in out[1]
        assert took < 3, took
    finally:
        srv.close()


def test_macro_names_and_private_reverse_zones():
    srv = ZoneServer(ZONE)
    try:
        rc, out, err, _ = spf("192.0.2.9", "a:b%c d@odd.example.com", "--helo", "h.example",
                              "--dns-servers", srv.addr)
        assert (rc, out[0]) == (0, "pass"), (out, err)
        assert srv.seen.get((b"a:b%c d.odd.example.com", 1)) == 1
        # and an include: target made so (a <domain> of any octets)
        rc, out, err, _ = spf("192.0.2.10", "a:b%c d@odd.example.com", "--helo", "h.example",
                              "--dns-servers", srv.addr)
        assert (rc, out[0], out[1]) == (0, "pass", "reason: include:%{l}.inc.example.com"), out
        # 192.168/16: libunbound would answer NXDOMAIN itself (RFC 6303)
        rc, out, err, _ = spf("192.168.1.5", "lan.example.com", "--dns-servers", srv.addr)
        assert (rc, out[0]) == (0, "pass"), (out, err)
        rc, out, err, _ = spf("::ffff:192.168.1.5", "lan.example.com", "--dns-servers", srv.addr)
        assert (rc, out[0]) == (0, "pass"), (out, err)
        rc, out, err, _ = spf("192.0.2.7", "ok.example.com", "--dns-servers", srv.addr)
        assert (rc, out[0], out[1]) == (0, "fail", "reason: -all"), (out, err)
        assert out[2] == "explanation: "
        # the null sender is postmaster@HELO; the HELO identity
        rc, out, err, _ = spf("192.0.2.1", "", "--helo", "ok.example.com",
                              "--dns-servers", srv.addr)
        assert (rc, out[0]) == (0, "pass"), (out, err)
        rc, out, err, _ = spf("192.0.2.1", "nothing.example.com", "--dns-servers", srv.addr)
        assert (rc, out[0]) == (0, "none"), (out, err)
    finally:
        srv.close()


def test_cli_usage_and_config(tmp_path):
    for args in ([], ["192.0.2.1"], ["not-an-ip", "example.com"], ["192.0.2.1", ""],
                 ["192.0.2.1", "example.com", "--timeout", "x"], ["192.0.2.1", "a", "b"],
                 ["192.0.2.1", "example.com", "--bogus"]):
        rc, out, err, _ = spf(*args)
        assert rc == 2, (args, out, err)
    rc, out, err, _ = spf("--help")
    assert rc == 0 and "usage: tern" in out[0]
    help_all = subprocess.run([TERN, "help"], capture_output=True).stdout.decode()
    assert "spf IP DOMAIN-OR-SENDER" in help_all
    srv = ZoneServer(ZONE)
    try:
        conf = tmp_path / "tern.conf"
        conf.write_text("dns_servers = %s\n" % srv.addr)
        p = subprocess.run([TERN, "-c", str(conf), "spf", "192.0.2.1", "ok.example.com"],
                           capture_output=True)
        assert p.returncode == 0, p.stderr
        assert p.stdout.decode().split("\n")[0] == "pass", p.stdout
        p = subprocess.run([TERN, "-c", str(tmp_path / "missing.conf"), "spf", "192.0.2.1",
                            "ok.example.com"], capture_output=True)
        assert p.returncode == 1
    finally:
        srv.close()
