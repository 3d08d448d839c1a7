#!/usr/bin/python3
"""loop_instructions.py - instructions executed on tern's event-loop thread
per inbound message, counted by valgrind's callgrind (--separate-threads:
the main thread is the loop; the thread pool's work is not counted), so
the figure does not move with the machine's load (docs/PERFORMANCE.md,
"Mail authentication": the before/after of the verification on the pool).

Two streams from 127.0.0.2 (outside mynetworks) with SPF, DKIM, DMARC and
ARC verification on, against the DNS server of tests/integration/
test_mailauth.py: "dkim" = mail signed by dkimpy (rsa-2048); "dkim+arc3" =
the same with a 3-hop ARC chain sealed by dkimpy (one AMS and three AS to
verify). Each runs the daemon twice (N1 and N2 messages) and prints
(Ir(N2) - Ir(N1)) / (N2 - N1): start-up and shutdown cancel out.

usage (as root or not; needs valgrind, python3-dkim):
    bench/loop_instructions.py TERN_BINARY [N1 N2]      (default 5 25)
"""
import glob, os, re, sys, tempfile
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "tests", "unit"))
import tern_harness  # noqa: E402
from tern_harness import Tern  # noqa: E402
import dkim  # noqa: E402
from test_mailauth import DNS, zone_text, _key, signed, send  # noqa: E402

real = os.path.abspath(sys.argv[1])
n1, n2 = (int(sys.argv[2]), int(sys.argv[3])) if len(sys.argv) > 3 else (5, 25)
out = tempfile.mkdtemp(prefix="tern-loop-ir-", dir=os.environ.get("BENCH_DIR", "/var/tmp"))
wrap = os.path.join(out, "wrap.sh")
with open(wrap, "w") as f:
    f.write('#!/bin/sh\nexec valgrind -q --tool=callgrind --separate-threads=yes '
            '--callgrind-out-file=%s/cg.%%p "%s" "$@"\n' % (out, real))
os.chmod(wrap, 0o755)
os.chmod(out, 0o777)
tern_harness.TERN_BIN = wrap
key = _key(None)
pub = key[1]
# three ARC hops sealed by hop1..hop3.example with the same key
zone = zone_text(pub) + "".join(
    "$ORIGIN example.\nsel._domainkey.hop%d TXT %s\n" % (i, '"' + '" "'.join(
        [("v=DKIM1; k=rsa; p=" + pub)[j:j + 200] for j in range(0, len("v=DKIM1; k=rsa; p=" + pub), 200)]) + '"')
    for i in (1, 2, 3))
dns = DNS(zone)
plain = signed(key)
chain = plain
for i in (1, 2, 3):
    chain = b"Authentication-Results: mx.hop%d.example; %sdkim=pass header.d=good.example\r\n" % (i, b"arc=pass; " if i > 1 else b"") + chain
    chain = b"".join(dkim.arc_sign(chain, b"sel", b"hop%d.example" % i, key[0],
                                  b"mx.hop%d.example" % i)) + chain

def ir_main(n, msg):
    d = tempfile.mkdtemp(prefix="t-", dir=out)
    os.chmod(d, 0o755)
    t = Tern(d, config={"dns_servers": "127.0.0.1@%d" % dns.port, "authserv_id": "mx.tern.example",
                        "spf_check": "yes", "dkim_verify": "yes", "dmarc_check": "yes",
                        "arc_verify": "yes", "dns_timeout": "10s", "sandbox": "no",
                        "mailauth_timeout": "60s"})
    t.start(timeout=120)
    t.wait_log(r"tern .* started", timeout=120)
    for _ in range(n):
        code, text = send(t, "alice@good.example", msg)
        assert code == 250, text
    t.stop(timeout=120)
    logtxt = open(t.log_path).read()
    total = {}
    for fn in glob.glob(os.path.join(out, "cg.*-01")):
        ir = 0
        for line in open(fn):
            if line.startswith("summary:") or line.startswith("totals:"):
                ir = int(line.split()[1])
        total[fn] = ir
    for fn in glob.glob(os.path.join(out, "cg.*")):
        os.rename(fn, fn.replace("/cg.", "/done-%d-" % n))
    assert "dkim=pass" in logtxt, logtxt[-2000:]
    return max(total.values()), logtxt

for name, msg in (("dkim", plain), ("dkim+arc3", chain)):
    a, _ = ir_main(n1, msg)
    b, log = ir_main(n2, msg)
    m = re.findall(r"mailauth .*", log)[-1]
    print("%s: %.0f Ir/msg on the loop thread  [%s]" % (name, (b - a) / (n2 - n1), m[:200]), flush=True)
dns.close()
print("(callgrind output and the daemons' logs: %s)" % out)
