#!/usr/bin/python3
"""bench.py - tern's benchmark harness: tern against Postfix, and both
against the ceilings of this machine.

What it does: for each MTA under test (tern, and Debian's Postfix run as a
private instance with its own config, queue and data directories under a
temporary directory) it starts Postfix's smtp-sink on loopback as the next
hop, starts the MTA relaying everything there, drives it with smtp-source
and measures:
  accepted msg/s    N / wall time of smtp-source (all N got their 250)
  end-to-end msg/s  N / time until the sink has every message AND the MTA's
                    log shows every recipient status=sent
  CPU s / 1000 msgs utime+stime of every process of the MTA (from /proc,
                    before/after, reaped children included)
  peak RSS / PSS    sum over the MTA's processes, RSS sampled every 50 ms,
                    PSS (shared pages split between processes) every 500 ms
Workloads named milter-*, rspamd-* run both MTAs through the same milter
(bench/milter_accept.c, an accept-all milter that asks for every stage;
rspamd 3.4 in milter mode), started once per workload; checks-* runs tern
without and with its built-in checks (DNSBL from a local DNS server's
cached answers, 100 header/body rules, rate limits in memory).
Plus an idle-sessions test (memory with many open SMTP sessions), a
latency test (final dot to 250, p50/p99, under background load), and the
ceilings: smtp-source straight into smtp-sink (protocol ceiling) and
bench/fsync_ceiling.c (durable-queue ceiling of this disk).

Guarantees: a figure is printed only for a run in which every message
reached the sink and every recipient was logged as sent; otherwise the run
is reported as FAILED with the reason and left out of the medians. Every
process it starts is stopped, every temporary directory removed.
Must not: touch the system Postfix (/etc/postfix is only read, as the
template of master.cf; the system instance is never started or stopped),
send anything outside 127.0.0.1, run unbounded (every wait has a deadline).

Usage: bench/bench.py [--quick] [--workloads a,b] [--runs N] [--mta tern,postfix]
Environment: QUICK=1, BENCH_WORKLOADS, BENCH_RUNS, BENCH_MTA, TERN_BIN,
BENCH_DIR (parent of the temporary directories; must be on disk).
Results: stdout, bench/results/latest.md and bench/results/latest.json.
"""

import argparse
import asyncio
import json
import os
import platform
import pwd
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

SENDER = "bench@client.example"
RCPT = "user@relay.example"          # not local to either MTA: relayed
HELO = "client.example"

# name -> message size, concurrent sessions, recipients per message, messages
WORKLOADS = {
    "4k-c10-r1": dict(size=4096, conc=10, rcpt=1, n=1500),
    "4k-c100-r1": dict(size=4096, conc=100, rcpt=1, n=1500),
    "4k-c10-r10": dict(size=4096, conc=10, rcpt=10, n=800),
    "4k-c100-r10": dict(size=4096, conc=100, rcpt=10, n=800),
    "100k-c10-r1": dict(size=102400, conc=10, rcpt=1, n=800),
    "100k-c100-r1": dict(size=102400, conc=100, rcpt=1, n=800),
    "100k-c10-r10": dict(size=102400, conc=10, rcpt=10, n=400),
    "100k-c100-r10": dict(size=102400, conc=100, rcpt=10, n=400),
    # through one milter, the same one for both MTAs (issue 12): bench's
    # own accept-all milter (milter_accept.c), and rspamd in milter mode
    "milter-4k-c100-r1": dict(size=4096, conc=100, rcpt=1, n=1500, filter="accept"),
    "milter-4k-c10-r1": dict(size=4096, conc=10, rcpt=1, n=1500, filter="accept"),
    "rspamd-4k-c100-r1": dict(size=4096, conc=100, rcpt=1, n=800, filter="rspamd"),
    # tern alone, without and with its built-in checks (DNSBL from cache,
    # 100 header/body rules, rate limits in memory), the same routing
    "checks-4k-c100-r1": dict(size=4096, conc=100, rcpt=1, n=3000, filter="checks"),
    # mail authentication (issue 13): tern without and with SPF, DKIM and
    # DMARC on an inbound stream of DKIM-signed mail from 127.0.0.2 (DNS
    # from a local server), and Postfix with no filter at all, the same mail
    "auth-4k-c100-r1": dict(size=4096, conc=100, rcpt=1, n=1500, filter="auth"),
    "auth-4k-c10-r1": dict(size=4096, conc=10, rcpt=1, n=1500, filter="auth"),
    # tern without and with DKIM signing of trusted mail (rsa-2048; ed25519),
    # and Postfix with no filter at all
    "sign-4k-c100-r1": dict(size=4096, conc=100, rcpt=1, n=1500, filter="sign"),
}
FILTER_WORKLOADS = ["milter-4k-c100-r1", "milter-4k-c10-r1", "rspamd-4k-c100-r1",
                    "checks-4k-c100-r1", "auth-4k-c100-r1", "sign-4k-c100-r1"]
DEFAULT_WORKLOADS = ["4k-c10-r1", "4k-c100-r1", "4k-c100-r10",
                     "100k-c10-r1", "100k-c100-r1", "100k-c100-r10"] + FILTER_WORKLOADS + \
                    ["idle", "latency", "ceilings"]
QUICK_WORKLOADS = ["4k-c100-r1", "100k-c100-r1"] + FILTER_WORKLOADS + \
                  ["idle", "latency", "ceilings"]
IDLE_SESSIONS = 10000
E2E_DEADLINE = 180.0   # seconds for one throughput run to complete


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- /proc

def proc_table():
    """pid -> (ppid, utime+stime ticks, cutime+cstime ticks, rss bytes)."""
    tab = {}
    for e in os.scandir("/proc"):
        if not e.name.isdigit():
            continue
        try:
            with open(f"/proc/{e.name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        rp = data.rfind(b")")
        fl = data[rp + 2:].split()
        # fields after "pid (comm)": state=0 ppid=1 utime=11 stime=12
        # cutime=13 cstime=14 rss=21 (proc(5) numbers minus 3)
        tab[int(e.name)] = (int(fl[1]), int(fl[11]) + int(fl[12]),
                            int(fl[13]) + int(fl[14]), int(fl[21]) * PAGE)
    return tab


def tree(tab, root):
    """root and all its descendants that are in tab."""
    if root not in tab:
        return []
    kids = {}
    for pid, v in tab.items():
        kids.setdefault(v[0], []).append(pid)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, ()))
    return out


def main_threads_cpu(root):
    """CPU seconds of the main threads (tid == pid) of root and its
    descendants: for tern, its event loop thread (the privileged parent's
    is idle); the worker threads (thread pool, DNS) are left out."""
    ticks = 0
    for p in tree(proc_table(), root):
        try:
            with open(f"/proc/{p}/task/{p}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fl = data[data.rfind(b")") + 2:].split()
        ticks += int(fl[11]) + int(fl[12])
    return ticks / CLK_TCK


def tree_cpu(root):
    """CPU seconds of root and its descendants, children reaped by root included."""
    tab = proc_table()
    pids = tree(tab, root)
    if not pids:
        raise BenchError(f"process {root} is gone")
    ticks = tab[root][2] + sum(tab[p][1] for p in pids)
    return ticks / CLK_TCK


def machine_busy():
    """busy CPU seconds of the whole machine (all but idle and iowait)."""
    with open("/proc/stat") as f:
        fl = [int(x) for x in f.readline().split()[1:]]
    return (sum(fl[:8]) - fl[3] - fl[4]) / CLK_TCK


def tree_rss(root):
    tab = proc_table()
    return sum(tab[p][3] for p in tree(tab, root))


def tree_pss(root):
    total = 0
    for p in tree(proc_table(), root):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


class Sampler(threading.Thread):
    """Peak RSS (every 50 ms) and PSS (every 500 ms) of a process tree."""

    def __init__(self, root):
        super().__init__(daemon=True)
        self.root = root
        self.peak_rss = 0
        self.peak_pss = 0
        self.last_rss = 0
        self._halt = threading.Event()

    def run(self):
        k = 0
        while not self._halt.is_set():
            try:
                rss = tree_rss(self.root)
                self.last_rss = rss
                self.peak_rss = max(self.peak_rss, rss)
                if k % 10 == 0:
                    self.peak_pss = max(self.peak_pss, tree_pss(self.root))
            except Exception:  # noqa: BLE001 - a vanished process mid-scan
                pass
            k += 1
            self._halt.wait(0.05)

    def stop(self):
        self._halt.set()
        self.join(2)


# ---------------------------------------------------------------- helpers

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, deadline=10.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.settimeout(2)
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise BenchError(f"nothing answers 220 on 127.0.0.1:{port}")


def bench_parent():
    d = os.environ.get("BENCH_DIR", "/var/tmp")
    fs = subprocess.run(["stat", "-f", "-c", "%T", d], capture_output=True,
                        text=True).stdout.strip()
    if fs in ("tmpfs", "ramfs"):
        raise BenchError(f"{d} is {fs}: the queues must be on disk (set BENCH_DIR)")
    return d, fs


def raise_nofile(want=65536):
    """soft (and, as root, hard) RLIMIT_NOFILE up to want; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return
        except (ValueError, OSError):
            want = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def ensure_postfix_tools():
    if all(shutil.which(t) or os.path.exists(f"/usr/sbin/{t}")
           for t in ("postfix", "smtp-source", "smtp-sink")):
        return
    if os.geteuid() != 0:
        raise BenchError("postfix (smtp-source, smtp-sink) is missing; as root run: "
                         "apt-get install postfix")
    log("installing Debian's postfix (for smtp-source, smtp-sink and the comparison)")
    subprocess.run(["debconf-set-selections"], check=True, text=True,
                   input="postfix postfix/main_mailer_type select No configuration\n")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = subprocess.run(["apt-get", "install", "-y", "postfix"], env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "postfix"], env=env, check=True,
                       capture_output=True)


def sbin(name):
    return shutil.which(name) or f"/usr/sbin/{name}"


def stop_process(p, sig=signal.SIGTERM, wait=10):
    if p is None or p.poll() is not None:
        return
    try:
        p.send_signal(sig)
        p.wait(wait)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)


def summary(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "n": len(vals)}


# ---------------------------------------------------------------- the sink

class Sink:
    """smtp-sink on 127.0.0.1; counts messages (each "." received)."""

    def __init__(self, workdir, dump=None):
        self.port = free_port()
        self.out = os.path.join(workdir, f"sink-{self.port}.out")
        self.f = open(self.out, "wb")
        # dump: a directory (writable by postfix) where each message is saved
        opts = ["-d", os.path.join(dump, "m.")] if dump else []
        self.p = subprocess.Popen(
            [sbin("smtp-sink"), "-c", "-u", "postfix", "-m", "1000"] + opts +
            [f"127.0.0.1:{self.port}", "1000"],
            stdout=self.f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_port(self.port)

    def count(self):
        """messages received so far (smtp-sink -c: "... mesg=N\\r" lines)."""
        with open(self.out, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256))
            tail = f.read()
        m = re.findall(rb"mesg=(\d+)", tail)
        return int(m[-1]) if m else 0

    def stop(self):
        stop_process(self.p)
        self.f.close()
        try:
            os.unlink(self.out)
        except OSError:
            pass


# ---------------------------------------------------------------- filters

def milter_ready(port, deadline):
    """True once a milter on 127.0.0.1:port answers an option negotiation."""
    pkt = b"\x00\x00\x00\x0dO" + (6).to_bytes(4, "big") + (0x1ff).to_bytes(4, "big") + \
        (0x1fffff).to_bytes(4, "big")
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(pkt)
                if s.recv(5)[4:5] == b"O":
                    return True
        except (OSError, IndexError):
            pass
        time.sleep(0.1)
    return False


def build_c(name):
    """bench/NAME.c built with gcc into build/bench/NAME (when older than its source)."""
    src = os.path.join(HERE, f"{name}.c")
    out = os.path.join(ROOT, "build", "bench", name)
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        subprocess.run(["gcc", "-std=gnu11", "-O2", "-Wall", "-Wextra", "-pthread",
                        "-o", out, src], check=True)
    return out


class AcceptMilter:
    """bench/milter_accept.c: every stage answered 'continue'."""
    name = "accept-all milter (bench/milter_accept.c)"
    mtas = ("tern", "postfix")

    def start(self, parent):
        self.p = subprocess.Popen([build_c("milter_accept"), "0"], stdout=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, text=True)
        line = self.p.stdout.readline()
        m = re.match(r"port=(\d+)", line)
        if not m:
            raise BenchError(f"milter_accept did not start: {line!r}")
        self.port = int(m.group(1))
        if not milter_ready(self.port, 10):
            raise BenchError("milter_accept does not answer")

    def root(self):
        return self.p.pid

    def stop(self):
        stop_process(self.p)

    def tern_conf(self, d, name):
        return [f"milter = bench inet:{self.port}@127.0.0.1 default_action=tempfail",
                "smtp_milters = bench"]

    def postfix_conf(self):
        return [f"smtpd_milters = inet:127.0.0.1:{self.port}",
                "milter_default_action = tempfail"]

    rcpt = RCPT


class Rspamd(AcceptMilter):
    """rspamd 3.4's proxy worker in milter mode, self-scanning, without Redis
    or DNS (docs/filtering.md's setup, as tests/integration/test_milter_real.py
    runs it): the rules that need neither run on every message."""
    name = "rspamd 3.4 (rspamd_proxy, milter = yes, self_scan)"

    def start(self, parent):
        if not shutil.which("rspamd"):
            raise BenchError("rspamd is not installed (scripts/deps.sh installs it)")
        self.dir = tempfile.mkdtemp(prefix="rspamd-bench-", dir=parent)
        os.chmod(self.dir, 0o755)
        os.makedirs(os.path.join(self.dir, "plugins"))
        shutil.copy("/usr/share/rspamd/plugins/milter_headers.lua",
                    os.path.join(self.dir, "plugins"))
        with open(os.path.join(self.dir, "tld.dat"), "w") as f:
            f.write("com\norg\nnet\ntest\nexample\nlocalhost\n")
        self.port = free_port()
        with open(os.path.join(self.dir, "rspamd.conf"), "w") as f:
            f.write(f"""
options {{
  filters = "";
  pidfile = "{self.dir}/rspamd.pid";
  dns {{ nameserver = "127.0.0.1:1"; }}
  local_addrs = [];
  url_tld = "{self.dir}/tld.dat";
}}
logging {{ type = "file"; filename = "{self.dir}/rspamd.log"; level = "error"; }}
worker "rspamd_proxy" {{
  milter = yes;
  bind_socket = "127.0.0.1:{self.port}";
  upstream "local" {{ default = yes; self_scan = yes; }}
  count = {os.cpu_count() or 1};
}}
modules {{ path = "{self.dir}/plugins"; }}
milter_headers {{
  use = ["x-spamd-result", "x-rspamd-queue-id", "x-spam-status"];
  extended_spam_headers = true;
  skip_local = false;
  skip_authenticated = false;
}}
""")
        argv = ["rspamd", "-f", "-c", os.path.join(self.dir, "rspamd.conf")]
        if os.geteuid() == 0:
            argv += ["-u", "root", "-g", "root", "-i"]
        self.out = open(os.path.join(self.dir, "rspamd.out"), "wb")
        self.p = subprocess.Popen(argv, stdout=self.out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, cwd=self.dir)
        if not milter_ready(self.port, 60):
            raise BenchError("rspamd does not answer as a milter")

    def stop(self):
        stop_process(self.p)
        self.out.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# 50 header and 50 body rules of the kinds sites use; none matches the
# messages smtp-source sends, so every line is tried against all of them
HEADER_RULES = [
    r"/^Subject:.*\b(viagra|cialis|levitra|casino|lottery)\b/i REJECT no pharmacy spam",
    r"/^Content-(Type|Disposition):.*name=\"?.*\.(exe|scr|bat|js|vbs|cmd|pif|com)\"?/i REJECT executables",
    r"/^X-Mailer:.*(MassMailer|Bulk ?Mail|SendBlaster)/i HOLD bulk mailer",
    r"/^Received:.*\[10\.13\./ WARN from the old office",
    r"/^From:.*@(spam|junk|bulk)-?mail\.example/i REJECT known spammer",
    r"/^Subject:.*=\?utf-8\?b\?.{200,}/i WARN long encoded subject",
    r"/^To:.*undisclosed-recipients/i WARN undisclosed",
    r"/^X-Originating-IP:\s*\[?(192\.0\.2|198\.51\.100)\./ REJECT bad network",
    r"/^Message-I[Dd]:\s*<[^@]*@(localhost|localdomain)>/i WARN local message id",
    r"/^Subject:\s*$/ WARN empty subject",
] + [fr"/^X-Bench-Rule-{i}:.*\b(word{i}|other{i})\b/i WARN rule {i}" for i in range(40)]
BODY_RULES = [
    r"/^Click here to claim your (prize|reward)/i REJECT prize spam",
    r"/^(Password|Passwort|Mot de passe):/i HOLD phishing",
    r"/https?:\/\/[^\/]*\.(zip|mov|top|xyz)\//i WARN odd tld",
    r"/\bwire transfer\b.*\burgent\b/i REJECT advance fee",
    r"/^Dear (customer|user|friend),?$/i WARN generic greeting",
    r"/\bbitcoin wallet\b/i WARN crypto",
    r"/(?:\d{4}[- ]?){3}\d{4}/ WARN card number",
    r"/^This is not spam/i REJECT it is",
    r"/\bunsubscribe\b.{0,40}\bhere\b/i WARN bulk",
    r"/<script\b/i REJECT script",
] + [fr"/\b(body{i}|phrase{i}) (alpha|beta|gamma)\b/i WARN body rule {i}" for i in range(40)]

CHECKS_ZONE = """$ORIGIN bench.example.
$TTL 3600
@                SOA   ns.bench.example. hostmaster.bench.example. 1 3600 600 86400 3600
@                NS    ns
ns               A     127.0.0.1
; the bench's client, 127.0.0.1, is on the allow list only
1.0.0.127.wl     A     127.0.9.2
2.0.0.127.bl     A     127.0.0.2
2.0.0.127.bl2    A     127.0.0.2
"""


class BuiltinChecks:
    """tern's own checks: two DNS block lists and an allow list answered by a
    DNS server of the bench (tests/unit/dns_server.py) and then from cache,
    50 header_checks and 50 body_checks rules (PCRE2), four rate limits in
    memory. Both tern runs of the workload route the same way (the client
    is outside mynetworks, so it is checked; the recipient domain is a
    virtual domain whose catch-all points at the relay)."""
    name = "tern's built-in checks"
    mtas = ("tern", "tern+checks")
    rcpt = "user@in.example"

    def start(self, parent):
        self.dir = tempfile.mkdtemp(prefix="checks-bench-", dir=parent)
        os.chmod(self.dir, 0o755)
        zone = os.path.join(self.dir, "zone")
        with open(zone, "w") as f:
            f.write(CHECKS_ZONE)
        self.p = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "unit", "dns_server.py"),
                                   "--zone", zone], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        line = self.p.stdout.readline().strip()
        if not line.isdigit():
            raise BenchError(f"dns_server.py did not start: {line!r}")
        self.dns_port = int(line)
        for name, rules in (("header_checks", HEADER_RULES), ("body_checks", BODY_RULES)):
            with open(os.path.join(self.dir, name), "w") as f:
                f.write("\n".join(rules) + "\n")
            os.chmod(os.path.join(self.dir, name), 0o644)
        with open(os.path.join(self.dir, "virtual"), "w") as f:
            f.write(f"@in.example {RCPT}\n")
        os.chmod(os.path.join(self.dir, "virtual"), 0o644)

    def root(self):
        return self.p.pid

    def stop(self):
        stop_process(self.p)
        shutil.rmtree(self.dir, ignore_errors=True)

    def tern_conf(self, d, name):
        checks = name == "tern+checks"
        lines = ["mynetworks = 192.0.2.0/24",   # not the client: it is checked
                 "virtual_domains = in.example",
                 f"virtual = {self.dir}/virtual",
                 # the mail-authentication checks (on by default) are the
                 # auth-* workloads' subject, not this one's
                 "spf_check = no", "dkim_verify = no", "dmarc_check = no"]
        # BENCH_CHECKS=dnsbl,header,body,ratelimit (the default: all; "rules"
        # is header,body) turns on only some, to see what each costs
        parts = os.environ.get("BENCH_CHECKS", "dnsbl,header,body,ratelimit").split(",")
        if "rules" in parts:
            parts += ["header", "body"]
        if checks and "dnsbl" in parts:
            lines += [
                f"dns_servers = 127.0.0.1@{self.dns_port}",
                "dnsbl_sites = bl.bench.example*2, bl2.bench.example=127.0.0.[2..11]*2, "
                "wl.bench.example=127.0.[0..255].[1..3]*-5",
                "dnsbl_threshold = 2",
            ]
        if checks and "header" in parts:
            lines.append(f"header_checks = {self.dir}/header_checks")
        if checks and "body" in parts:
            lines.append(f"body_checks = {self.dir}/body_checks")
        if checks and "ratelimit" in parts:
            lines += [
                "ratelimit_client_connections = 1000000/1m",
                "ratelimit_client_messages = 1000000/1m",
                "ratelimit_client_recipients = 1000000/1m",
                "ratelimit_sender_domain_messages = 1000000/1m",
                "client_limit_exceptions =",
            ]
        return lines


AUTH_DOMAIN = "client.example"      # SENDER's domain, and the From: field's
AUTH_SOURCE = "127.0.0.2"            # the inbound client: outside tern's mynetworks
AUTH_ZONE = f"""$ORIGIN example.
$TTL 3600
@                       SOA   ns.example. hostmaster.example. 1 3600 600 86400 3600
@                       NS    ns
ns                      A     127.0.0.1
client                  TXT   "v=spf1 ip4:{AUTH_SOURCE} -all"
_dmarc.client           TXT   "v=DMARC1; p=reject; adkim=r; aspf=r"
"""


def build_shim():
    """bench/bind_source.c built into build/bench/bind_source.so."""
    src = os.path.join(HERE, "bind_source.c")
    out = os.path.join(ROOT, "build", "bench", "bind_source.so")
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-shared", "-fPIC", "-o", out, src,
                        "-ldl"], check=True)
    return out


def auth_message(size):
    """A message from AUTH_DOMAIN of about size octets (LF line ends: smtp-source -F
    sends each line with CRLF)."""
    head = (f"From: Bench <{SENDER}>\nTo: <user@in.example>\nSubject: bench mail authentication\n"
            f"Date: Mon, 07 Dec 2026 21:00:00 +0000\nMessage-ID: <bench.1@{AUTH_DOMAIN}>\n"
            "MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n")
    line = "The quick brown fox jumps over the lazy dog, and the bench counts it. 0123\n"
    return head + line * max(1, size // len(line))


class MailAuth:
    """The mail-authentication checks on an inbound stream (issue 13): every
    message DKIM-signed beforehand (rsa-2048, `tern dkim sign`; one signed
    message sent N times: verifying costs the same for each copy), SPF and
    DMARC records for its domain, all served by tests/unit/dns_server.py;
    smtp-source sends the file (-F) from 127.0.0.2 (bind_source.so), which
    tern's mynetworks leaves out and the SPF record authorises. tern runs
    without the checks ("tern": spf_check, dkim_verify, dmarc_check = no)
    and with them ("tern+auth"), routed alike (a virtual catch-all to the
    relay); Postfix with no filter at all, the same mail from the same
    address."""
    name = "SPF + DKIM verify + DMARC (tern's mailauth)"
    tern_bin = os.path.join(ROOT, "build", "tern")
    mtas = ("tern", "tern+auth", "postfix")
    rcpt = "user@in.example"
    keys = (("rsa2048", []),)          # selector, extra keygen arguments
    source = AUTH_SOURCE

    def start(self, parent):
        self.dir = tempfile.mkdtemp(prefix="auth-bench-", dir=parent)
        os.chmod(self.dir, 0o755)
        tern = self.tern_bin
        zone = AUTH_ZONE
        nobody = pwd.getpwnam("nobody") if os.geteuid() == 0 else None
        self.keyfiles = {}
        for sel, extra in self.keys:
            r = subprocess.run([tern, "dkim", "keygen", AUTH_DOMAIN, sel, "--dir", self.dir] + extra,
                               capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise BenchError(f"tern dkim keygen: {r.stderr.strip()[:300]}")
            kf = os.path.join(self.dir, f"{sel}.{AUTH_DOMAIN}.key")
            if nobody is not None:   # tern runs as nobody and reads it
                os.chown(kf, nobody.pw_uid, nobody.pw_gid)
            self.keyfiles[sel] = kf
            zone += r.stdout.strip() + "\n"
        zf = os.path.join(self.dir, "zone")
        with open(zf, "w") as f:
            f.write(zone)
        self.p = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "unit", "dns_server.py"),
                                   "--zone", zf], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        line = self.p.stdout.readline().strip()
        if not line.isdigit():
            raise BenchError(f"dns_server.py did not start: {line!r}")
        self.dns_port = int(line)
        with open(os.path.join(self.dir, "virtual"), "w") as f:
            f.write(f"@in.example {RCPT}\n")
        os.chmod(os.path.join(self.dir, "virtual"), 0o644)
        self.msg_file = self.make_message()
        self.env = dict(os.environ, LD_PRELOAD=build_shim(), BENCH_SOURCE_ADDR=self.source)

    def make_message(self):
        plain = os.path.join(self.dir, "message")
        with open(plain, "w") as f:
            f.write(auth_message(4096))
        signed = os.path.join(self.dir, "message.signed")
        with open(plain, "rb") as fin, open(signed, "wb") as fout:
            r = subprocess.run([self.tern_bin, "dkim", "sign", "--key", self.keyfiles["rsa2048"],
                                "--domain", AUTH_DOMAIN, "--selector", "rsa2048"],
                               stdin=fin, stdout=fout, stderr=subprocess.PIPE, timeout=60)
        if r.returncode != 0:
            raise BenchError(f"tern dkim sign: {r.stderr.decode(errors='replace')[:300]}")
        os.chmod(signed, 0o644)
        return signed

    def root(self):
        return self.p.pid

    def stop(self):
        stop_process(getattr(self, "p", None))
        shutil.rmtree(self.dir, ignore_errors=True)

    def tern_conf(self, d, name):
        on = "yes" if name == "tern+auth" else "no"
        return ["mynetworks = 127.0.0.1/32",    # not 127.0.0.2, the client: it is checked
                "virtual_domains = in.example",
                f"virtual = {self.dir}/virtual",
                f"dns_servers = 127.0.0.1@{self.dns_port}",
                f"spf_check = {on}", f"dkim_verify = {on}", f"dmarc_check = {on}"]

    def postfix_conf(self):
        # Postfix with no filter at all. Its smtpd looks up every client's
        # name (PTR, then A); 127.0.0.2 is not in /etc/hosts, so that would
        # ask the machine's resolver (seconds per session here); tern looks
        # up no client names, so Postfix is spared it as well
        return ["smtpd_peername_lookup = no"]


class Signing(MailAuth):
    """DKIM signing of trusted mail (issue 13): smtp-source from 127.0.0.1
    (in mynetworks) sends an unsigned message From: client.example, which
    tern signs with an rsa-2048 key ("tern+rsa") or an Ed25519 key
    ("tern+ed25519") from its dkim_sign_keys table; "tern" signs nothing;
    Postfix, with no filter at all, relays the same mail."""
    name = "DKIM signing (tern's dkim_sign_keys)"
    mtas = ("tern", "tern+rsa", "tern+ed25519", "postfix")
    rcpt = RCPT
    keys = (("rsa2048", []), ("ed25519", ["--ed25519"]))
    source = "127.0.0.1"

    def make_message(self):
        plain = os.path.join(self.dir, "message")
        with open(plain, "w") as f:
            f.write(auth_message(4096).replace("user@in.example", RCPT))
        os.chmod(plain, 0o644)
        return plain

    def postfix_conf(self):
        return []    # Postfix with no filter at all (the client is 127.0.0.1)

    def tern_conf(self, d, name):
        lines = [f"dns_servers = 127.0.0.1@{self.dns_port}"]
        sel = {"tern+rsa": "rsa2048", "tern+ed25519": "ed25519"}.get(name)
        if sel:
            table = os.path.join(self.dir, f"sign_{sel}")
            with open(table, "w") as f:
                f.write(f"{AUTH_DOMAIN} {sel} {self.keyfiles[sel]}\n")
            os.chmod(table, 0o644)
            lines.append(f"dkim_sign_keys = {table}")
        return lines


FILTERS = {"accept": AcceptMilter, "rspamd": Rspamd, "checks": BuiltinChecks,
           "auth": MailAuth, "sign": Signing}


# ---------------------------------------------------------------- MTAs

class LogCounter:
    """Incremental count of 'status=sent' lines in a growing log file."""

    def __init__(self, path):
        self.path = path
        self.off = 0
        self.rest = b""
        self.sent = 0
        self.problems = 0

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.off)
                data = f.read()
        except FileNotFoundError:
            return self.sent
        self.off += len(data)
        data = self.rest + data
        cut = data.rfind(b"\n") + 1
        self.rest = data[cut:]
        for line in data[:cut].split(b"\n"):
            if b"status=sent" in line:
                self.sent += 1
            elif b"status=deferred" in line or b"status=bounced" in line:
                self.problems += 1
        return self.sent


class Tern:
    name = "tern"

    def __init__(self, parent, binary, name="tern"):
        self.binary = binary
        self.parent = parent
        self.name = name     # "tern+checks": tern with its built-in checks on
        self.p = None
        self.dir = None
        self.relay = True   # False: tern runs, but without relayhost (idle test only)
        self.filt = None    # the filter of the workload (FILTERS), if any

    def config_text(self, sink_port, relay=True):
        lines = [
            "hostname = bench.example",
            "listen = 127.0.0.1:0",
            "spool_dir = spool",
            "maildir_base = mail",
            "local_domains = localhost",
            "mynetworks = 127.0.0.0/8",
            "message_size_limit = 64M",
            "max_sessions = 20000",
            "max_sessions_per_ip = 20000",
        ]
        if relay:
            lines.append(f"relayhost = [127.0.0.1]:{sink_port}")
        if os.geteuid() == 0:
            # tern refuses to deliver as root: it binds, then runs as nobody
            # (Postfix, beside it, runs as its own postfix user)
            lines.append("user = nobody")
        if self.filt is not None:
            extra = self.filt.tern_conf(self.dir, self.name)
            keys = {ln.split("=", 1)[0].strip() for ln in extra}
            lines = [ln for ln in lines if ln.split("=", 1)[0].strip() not in keys] + extra
        return "\n".join(lines) + "\n"

    def check_config(self, relay=True):
        """None when tern accepts the bench config, else the reason it does not."""
        if not os.access(self.binary, os.X_OK):
            return f"{self.binary} is not built"
        d = tempfile.mkdtemp(prefix="tern-bench-check-", dir=self.parent)
        # laid out as start() does: check-config runs run's checks, and as
        # root those include that tern's user can reach the spool
        os.chmod(d, 0o711)
        os.makedirs(os.path.join(d, "spool"))
        os.makedirs(os.path.join(d, "mail"))
        try:
            conf = os.path.join(d, "tern.conf")
            with open(conf, "w") as f:
                f.write(self.config_text(2, relay))
            r = subprocess.run([self.binary, "-c", conf, "check-config"],
                               capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                return "check-config: " + (r.stderr.strip() or r.stdout.strip())[:300]
            return None
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def start(self, sink_port, filt=None):
        self.filt = filt
        self.dir = tempfile.mkdtemp(prefix="tern-bench-", dir=self.parent)
        os.chmod(self.dir, 0o711)  # reachable by the user tern runs as
        os.makedirs(os.path.join(self.dir, "spool"))
        os.makedirs(os.path.join(self.dir, "mail"))
        conf = os.path.join(self.dir, "tern.conf")
        with open(conf, "w") as f:
            f.write(self.config_text(sink_port, self.relay))
        self.logpath = os.path.join(self.dir, "tern.log")
        self.logf = open(self.logpath, "wb")
        self.p = subprocess.Popen([self.binary, "-c", conf, "run"], stdout=self.logf,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  cwd=self.dir)
        end = time.monotonic() + 15
        rx = re.compile(rb"listening on 127\.0\.0\.1:(\d+) mode=smtp")
        while time.monotonic() < end:
            with open(self.logpath, "rb") as f:
                m = rx.search(f.read())
            if m:
                self.port = int(m.group(1))
                break
            if self.p.poll() is not None:
                raise BenchError("tern exited at start: " + self.log_tail())
            time.sleep(0.02)
        else:
            raise BenchError("tern did not log 'listening on': " + self.log_tail())
        self.counter = LogCounter(self.logpath)
        wait_port(self.port)
        return self.port

    def log_tail(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read()[-600:].decode(errors="replace")
        except OSError:
            return ""

    def root(self):
        return self.p.pid

    def stop(self):
        stop_process(self.p, signal.SIGTERM, 20)
        if self.p is not None and self.p.returncode not in (0, None):
            log(f"tern exited with status {self.p.returncode}: {self.log_tail()[-300:]}")
        self.logf.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Postfix:
    name = "postfix"

    def __init__(self, parent):
        self.parent = parent
        self.dir = None

    def start(self, sink_port, filt=None):
        self.dir = tempfile.mkdtemp(prefix="postfix-bench-", dir=self.parent)
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "conf")
        self.queue = os.path.join(self.dir, "queue")
        data = os.path.join(self.dir, "data")
        self.logpath = os.path.join(self.dir, "maillog")
        for d in (self.conf, self.queue, data):
            os.makedirs(d)
        pw = pwd.getpwnam("postfix")
        os.chown(data, pw.pw_uid, pw.pw_gid)
        self.port = free_port()
        main_cf = f"""# private benchmark instance (bench/bench.py); defaults as shipped otherwise
compatibility_level = 3.6
queue_directory = {self.queue}
data_directory = {data}
myhostname = bench-postfix.example
mydomain = example
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{sink_port}
alias_maps =
alias_database =
local_recipient_maps =
biff = no
maillog_file = {self.logpath}
"""
        if filt is not None:
            main_cf += "".join(ln + "\n" for ln in filt.postfix_conf())
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(main_cf)
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(self.master_cf())
        env = dict(os.environ, MAIL_CONFIG=self.conf)
        for cmd in (["check"], ["start"]):
            r = subprocess.run([sbin("postfix"), "-c", self.conf] + cmd, env=env,
                               capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise BenchError(f"postfix {cmd[0]}: {r.stderr.strip()[:500]}")
        pidfile = os.path.join(self.queue, "pid", "master.pid")
        end = time.monotonic() + 15
        while time.monotonic() < end:
            try:
                with open(pidfile) as f:
                    self.master = int(f.read().strip())
                os.kill(self.master, 0)
                break
            except (OSError, ValueError):
                time.sleep(0.05)
        else:
            raise BenchError("postfix master did not start")
        self.counter = LogCounter(self.logpath)
        wait_port(self.port)
        return self.port

    def master_cf(self):
        """Debian's shipped master.cf, smtpd on our port, chroot off (the
        Debian chroot needs files copied into the queue by the init script)."""
        out = []
        with open("/etc/postfix/master.cf") as f:
            for line in f:
                fl = line.split()
                if line[:1].isalnum() and len(fl) >= 8:
                    if fl[0] == "smtp" and fl[1] == "inet":
                        fl[0] = str(self.port)
                    elif fl[1] == "inet":
                        continue
                    fl[4] = "n"  # chroot
                    line = " ".join(fl) + "\n"
                out.append(line)
        return "".join(out)

    def root(self):
        return self.master

    def stop(self):
        if self.dir is None:
            return
        subprocess.run([sbin("postfix"), "-c", self.conf, "stop"],
                       capture_output=True, timeout=60)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            try:
                os.kill(self.master, 0)
                time.sleep(0.1)
            except OSError:
                break
        else:
            os.kill(self.master, signal.SIGKILL)
        time.sleep(0.2)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None


# ---------------------------------------------------------------- throughput

def smtp_source(port, n, conc, size, rcpt, timeout, to=RCPT, filt=None):
    cmd = [sbin("smtp-source"), "-m", str(n), "-s", str(conc),
           "-r", str(rcpt), "-f", SENDER, "-t", to, "-M", HELO]
    msg_file = getattr(filt, "msg_file", None)
    # the message as prepared (signed, or to be signed), else size octets
    cmd += ["-F", msg_file] if msg_file else ["-l", str(size)]
    cmd.append(f"127.0.0.1:{port}")
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env=getattr(filt, "env", None))
    t1 = time.monotonic()
    if r.returncode != 0:
        raise BenchError(f"smtp-source exit {r.returncode}: {r.stderr.strip()[-300:]}")
    return t0, t1


def throughput_run(mta, parent, wl, filt=None):
    """One run of workload wl on a fresh instance of mta (through filt, a
    running filter of FILTERS, when the workload has one)."""
    n, conc, size, rcpt = wl["n"], wl["conc"], wl["size"], wl["rcpt"]
    to = filt.rcpt if filt is not None else RCPT
    res = {"ok": False}
    sink = Sink(parent)
    try:
        port = mta.start(sink.port, filt)
        # warm-up: every process type exists, connection paths are up
        smtp_source(port, 10, 2, size, rcpt, 60, to, filt)
        end = time.monotonic() + 30
        while (sink.count() < 10 or mta.counter.poll() < 10 * rcpt) and time.monotonic() < end:
            time.sleep(0.01)
        time.sleep(0.3)
        base_sink, base_sent = sink.count(), mta.counter.poll()
        if base_sink < 10:
            raise BenchError(f"warm-up: the sink got {base_sink} of 10 messages")
        sampler = Sampler(mta.root())
        sampler.start()
        cpu0, sys0 = tree_cpu(mta.root()), machine_busy()
        loop0 = main_threads_cpu(mta.root())
        fcpu0 = tree_cpu(filt.root()) if filt is not None else 0.0
        t0, t_acc = smtp_source(port, n, conc, size, rcpt, E2E_DEADLINE, to, filt)
        end = t0 + E2E_DEADLINE
        t_e2e = None
        while time.monotonic() < end:
            got = sink.count() - base_sink
            sent = mta.counter.poll() - base_sent
            if got >= n and sent >= n * rcpt:
                t_e2e = time.monotonic()
                break
            time.sleep(0.005)
        cpu1, sys1 = tree_cpu(mta.root()), machine_busy()
        loop1 = main_threads_cpu(mta.root())
        fcpu1 = tree_cpu(filt.root()) if filt is not None else 0.0
        sampler.stop()
        time.sleep(0.5)
        got = sink.count() - base_sink
        sent = mta.counter.poll() - base_sent
        res.update(n=n, sink_messages=got, sent_recipients=sent,
                   expected_recipients=n * rcpt, problems=mta.counter.problems)
        if t_e2e is None:
            raise BenchError(f"after {E2E_DEADLINE:.0f} s the sink has {got} of {n} "
                             f"messages, {sent} of {n * rcpt} recipients logged sent")
        if got != n:
            raise BenchError(f"the sink got {got} transactions for {n} messages")
        res.update(ok=True,
                   accepted_rate=n / (t_acc - t0),
                   e2e_rate=n / (t_e2e - t0),
                   cpu_per_1000=(cpu1 - cpu0) * 1000.0 / n,
                   loop_cpu_per_1000=(loop1 - loop0) * 1000.0 / n,
                   machine_cpu_per_1000=(sys1 - sys0) * 1000.0 / n,
                   filter_cpu_per_1000=(fcpu1 - fcpu0) * 1000.0 / n,
                   peak_rss_mb=sampler.peak_rss / 2**20,
                   peak_pss_mb=sampler.peak_pss / 2**20)
    except (BenchError, subprocess.TimeoutExpired, OSError) as e:
        res["error"] = str(e)
    finally:
        try:
            mta.stop()
        finally:
            sink.stop()
    return res


def header_fields(text, name):
    """the unfolded fields called name in a message's header section."""
    fields = []
    for line in text.replace("\r\n", "\n").split("\n\n", 1)[0].split("\n"):
        if line[:1] in (" ", "\t") and fields:
            fields[-1] += " " + line.strip()
        else:
            fields.append(line)
    pre = name.lower() + ":"
    return [f.split(":", 1)[1].strip() for f in fields if f.lower().startswith(pre)]


def auth_proof(mtas, parent, filt, n=3):
    """What the checks or the signing did to a few delivered messages: each
    tern of the workload relays n messages to a sink that keeps them; their
    Authentication-Results and DKIM-Signature fields, and for signed ones
    `tern dkim verify` against the bench's DNS server. Without this the
    figures would not show that the checks ran and passed."""
    proof = {}
    for mta in mtas:
        if not mta.name.startswith("tern"):
            continue
        dump = tempfile.mkdtemp(prefix="auth-proof-", dir=parent)
        pw = pwd.getpwnam("postfix")
        os.chown(dump, pw.pw_uid, pw.pw_gid)
        sink = Sink(parent, dump)
        got = {"messages": []}
        try:
            port = mta.start(sink.port, filt)
            smtp_source(port, n, 1, 4096, 1, 60, filt.rcpt, filt)
            end = time.monotonic() + 30
            while (sink.count() < n or mta.counter.poll() < n) and time.monotonic() < end:
                time.sleep(0.02)
            time.sleep(0.3)
            with open(mta.logpath, "rb") as f:
                got["log"] = [ln.decode(errors="replace") for ln in f.read().split(b"\n")
                              if b" mailauth " in ln][:n]
            for fn in sorted(os.listdir(dump))[:n]:
                with open(os.path.join(dump, fn), errors="replace") as f:
                    text = f.read()
                m = {"authentication_results": header_fields(text, "Authentication-Results"),
                     "dkim_signatures": [re.sub(r"\bb=[^;]*", "b=...", re.sub(r"\s+", " ", f))[:200]
                                         for f in header_fields(text, "DKIM-Signature")]}
                r = subprocess.run([filt.tern_bin, "dkim", "verify", "--dns-servers",
                                    f"127.0.0.1@{filt.dns_port}"], input=text.encode(),
                                   capture_output=True, timeout=60)
                m["tern_dkim_verify"] = r.stdout.decode(errors="replace").strip().split("\n")
                got["messages"].append(m)
        except (BenchError, subprocess.TimeoutExpired, OSError) as e:
            got["error"] = str(e)
        finally:
            try:
                mta.stop()
            finally:
                sink.stop()
                shutil.rmtree(dump, ignore_errors=True)
        log(f"proof {mta.name}: {json.dumps(got)[:1500]}")
        proof[mta.name] = got
    return proof


def protocol_ceiling_run(parent, wl):
    n, conc, size, rcpt = wl["n"], wl["conc"], wl["size"], wl["rcpt"]
    sink = Sink(parent)
    try:
        t0, t1 = smtp_source(sink.port, n, conc, size, rcpt, E2E_DEADLINE)
        end = time.monotonic() + 10
        while sink.count() < n and time.monotonic() < end:
            time.sleep(0.005)
        got = sink.count()
        if got != n:
            return {"ok": False, "error": f"sink got {got} of {n}"}
        return {"ok": True, "n": n, "accepted_rate": n / (t1 - t0)}
    except (BenchError, subprocess.TimeoutExpired) as e:
        return {"ok": False, "error": str(e)}
    finally:
        sink.stop()


def fsync_ceiling(parent, threads, seconds):
    src = os.path.join(HERE, "fsync_ceiling.c")
    out = os.path.join(ROOT, "build", "bench", "fsync_ceiling")
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        subprocess.run(["gcc", "-std=gnu11", "-O2", "-Wall", "-Wextra", "-pthread",
                        "-o", out, src], check=True)
    d = tempfile.mkdtemp(prefix="fsync-ceiling-", dir=parent)
    try:
        r = subprocess.run([out, d, str(threads), "4096", str(seconds)],
                           capture_output=True, text=True, timeout=seconds + 120)
        m = re.search(r"rate=([\d.]+)", r.stdout)
        if r.returncode != 0 or not m:
            return {"ok": False, "error": r.stderr.strip()[:300]}
        return {"ok": True, "rate": float(m.group(1)), "line": r.stdout.strip()}
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- idle sessions

async def read_reply(reader):
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed")
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3]), b"".join(lines)


async def idle_sessions(port, n, deadline, on_ready):
    """Open n sessions (banner + EHLO), call on_ready(count), then close them."""
    sem = asyncio.Semaphore(200)
    held = []

    async def one():
        async with sem:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
            try:
                code, _ = await asyncio.wait_for(read_reply(r), 10)
                if code != 220:
                    raise ConnectionError(f"banner {code}")
                w.write(f"EHLO {HELO}\r\n".encode())
                code, _ = await asyncio.wait_for(read_reply(r), 10)
                if code != 250:
                    raise ConnectionError(f"EHLO {code}")
                held.append(w)
            except BaseException:
                w.close()
                raise

    tasks = [asyncio.ensure_future(one()) for _ in range(n)]
    # until all are done, the deadline, or 5 s without a new session (an
    # MTA with a process limit leaves the rest in its listen queue)
    start = last_change = time.monotonic()
    last = 0
    pending = tasks
    while pending and time.monotonic() - start < deadline:
        done, pending = await asyncio.wait(pending, timeout=0.5)
        if len(held) != last:
            last, last_change = len(held), time.monotonic()
        elif time.monotonic() - last_change > 5:
            break
    done = [t for t in tasks if t.done()]
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    errors = {}
    for t in done:
        if not t.cancelled() and t.exception() is not None:
            k = type(t.exception()).__name__
            errors[k] = errors.get(k, 0) + 1
    waiting = n - len(held) - sum(errors.values())
    if waiting:
        errors["still waiting for banner/EHLO"] = waiting
    result = await asyncio.get_running_loop().run_in_executor(None, on_ready, len(held))
    for w in held:
        w.close()
    return len(held), errors, result


def idle_run(mta, parent, n, deadline):
    sink = Sink(parent)
    res = {"ok": False, "requested": n}
    try:
        port = mta.start(sink.port)
        time.sleep(0.5)
        base = tree_rss(mta.root())
        base_pss = tree_pss(mta.root())
        sampler = Sampler(mta.root())
        sampler.start()

        def measure(count):
            time.sleep(1.0)
            return tree_rss(mta.root()), tree_pss(mta.root())

        held, errors, (rss, pss) = asyncio.run(idle_sessions(port, n, deadline, measure))
        sampler.stop()
        res.update(ok=True, established=held, errors=errors,
                   rss_before_mb=base / 2**20, rss_mb=rss / 2**20,
                   pss_before_mb=base_pss / 2**20, pss_mb=pss / 2**20,
                   peak_rss_mb=sampler.peak_rss / 2**20,
                   per_session_kb=(rss - base) / 1024 / held if held else None)
    except (BenchError, OSError) as e:
        res["error"] = str(e)
    finally:
        try:
            mta.stop()
        finally:
            sink.stop()
    return res


# ---------------------------------------------------------------- latency

def message_body(size, tag):
    head = (f"From: <{SENDER}>\r\nTo: <{RCPT}>\r\nSubject: latency {tag}\r\n"
            f"Message-ID: <{tag}@{HELO}>\r\n\r\n")
    line = ("x" * 76 + "\r\n").encode()
    body = head.encode() + line * max(1, size // len(line))
    return body


async def latency_client(port, sessions, per_session, size):
    samples = []

    async def one(i):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        code, _ = await asyncio.wait_for(read_reply(r), 30)
        w.write(f"EHLO {HELO}\r\n".encode())
        await asyncio.wait_for(read_reply(r), 30)
        for k in range(per_session):
            for cmd, want in ((f"MAIL FROM:<{SENDER}>", 250),
                              (f"RCPT TO:<lat{i}.{k}@relay.example>", 250),
                              ("DATA", 354)):
                w.write(cmd.encode() + b"\r\n")
                code, text = await asyncio.wait_for(read_reply(r), 30)
                if code != want:
                    raise ConnectionError(f"{cmd}: {text!r}")
            w.write(message_body(size, f"{i}.{k}"))
            await w.drain()
            t0 = time.perf_counter()
            w.write(b".\r\n")
            code, text = await asyncio.wait_for(read_reply(r), 60)
            t1 = time.perf_counter()
            if code != 250:
                raise ConnectionError(f"final dot: {text!r}")
            samples.append(t1 - t0)
        w.write(b"QUIT\r\n")
        try:
            await asyncio.wait_for(read_reply(r), 5)
        except (ConnectionError, asyncio.TimeoutError):
            pass
        w.close()

    await asyncio.gather(*(one(i) for i in range(sessions)))
    return samples


def percentile(vals, p):
    v = sorted(vals)
    if not v:
        return None
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def latency_run(mta, parent, sessions, per_session, bg_conc, bg_n, size=4096):
    sink = Sink(parent)
    res = {"ok": False}
    bg = None
    try:
        port = mta.start(sink.port)
        smtp_source(port, 10, 2, size, 1, 60)
        bg = subprocess.Popen(
            [sbin("smtp-source"), "-m", str(bg_n), "-s", str(bg_conc), "-l", str(size),
             "-f", SENDER, "-t", RCPT, "-M", HELO, f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        # the client runs in its own process so that this one's /proc
        # sampling cannot delay its timing
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--latency-client",
                            str(port), str(sessions), str(per_session), str(size)],
                           capture_output=True, text=True, timeout=300)
        bg_running = bg.poll() is None
        if r.returncode != 0:
            raise BenchError("latency client: " + r.stderr.strip()[-300:])
        samples = json.loads(r.stdout)
        res.update(ok=True, samples=len(samples),
                   p50_ms=percentile(samples, 50) * 1000,
                   p99_ms=percentile(samples, 99) * 1000,
                   max_ms=max(samples) * 1000,
                   background=f"smtp-source -s {bg_conc} -l {size}",
                   background_ran_throughout=bg_running)
    except (BenchError, subprocess.TimeoutExpired, OSError, ValueError) as e:
        res["error"] = str(e)
    finally:
        if bg is not None:
            stop_process(bg)
        try:
            mta.stop()
        finally:
            sink.stop()
    return res


# ---------------------------------------------------------------- report

def fmt(s, prec=0):
    if s is None:
        return "n/a"
    f = f"{{:.{prec}f}}"
    if s["n"] == 1:
        return f.format(s["median"])
    return f"{f.format(s['median'])} ({f.format(s['min'])}-{f.format(s['max'])})"


def ratio(a, b, prec=2):
    if not a or not b:
        return "n/a"
    return f"{a['median'] / b['median']:.{prec}f}x"


def report(R):
    out = []
    m = R["meta"]
    out.append("# tern benchmark results\n")
    out.append(f"{m['date']}, {m['machine']}; queues on {m['bench_dir']} ({m['fs']}); "
               f"{m['runs']} run(s) per figure: median (min-max). {m['mode']}.\n")
    for note in m.get("notes", []):
        out.append(f"- {note}")
    if m.get("notes"):
        out.append("")
    tp = R["throughput"]
    if tp:
        out.append("## Throughput, CPU, memory (relay to smtp-sink)\n")
        out.append("| workload | MTA | accepted msg/s | end-to-end msg/s | CPU s/1000 msg "
                   "| peak RSS MB | peak PSS MB | failed runs |")
        out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for wl, per in tp.items():
            for mta, s in per.items():
                out.append(f"| {wl} | {mta} | {fmt(s['accepted_rate'])} | {fmt(s['e2e_rate'])} "
                           f"| {fmt(s['cpu_per_1000'], 2)} | {fmt(s['peak_rss_mb'], 1)} "
                           f"| {fmt(s['peak_pss_mb'], 1)} | {s['failed']} |")
            c = R["ceilings"].get("protocol", {}).get(wl)
            if c:
                out.append(f"| {wl} | ceiling: smtp-source -> smtp-sink | {fmt(c['accepted_rate'])} "
                           f"| {fmt(c['accepted_rate'])} | | | | {c['failed']} |")
        out.append("")
        fl = [(wl, per) for wl, per in tp.items() if wl in R.get("filters", {})]
        if fl:
            out.append("## Through a filter (the same one for both, in the same run)\n")
            out.append("| workload | filter | compared | end-to-end ratio | CPU s/1000 msg (MTA) "
                       "| CPU s/1000 msg (filter) | whole machine CPU s/1000 msg |")
            out.append("| --- | --- | --- | ---: | --- | --- | --- |")
            for wl, per in fl:
                if wl in R.get("auth_proof", {}):
                    continue   # their own table below
                a_, b_ = ("tern+checks", "tern") if "tern+checks" in per else ("tern", "postfix")
                A, B = per.get(a_), per.get(b_)
                g = lambda d, k: d and d.get(k)  # noqa: E731
                out.append(f"| {wl} | {R['filters'][wl]} | {a_} / {b_} "
                           f"| {ratio(g(A, 'e2e_rate'), g(B, 'e2e_rate'))} "
                           f"| {fmt(g(A, 'cpu_per_1000'), 2)} / {fmt(g(B, 'cpu_per_1000'), 2)} "
                           f"| {fmt(g(A, 'filter_cpu_per_1000'), 2)} / {fmt(g(B, 'filter_cpu_per_1000'), 2)} "
                           f"| {fmt(g(A, 'machine_cpu_per_1000'), 2)} / {fmt(g(B, 'machine_cpu_per_1000'), 2)} |")
            out.append("")
        al = [(wl, per) for wl, per in tp.items() if wl in R.get("auth_proof", {})]
        if al:
            out.append("## Mail authentication (issue 13): each tern beside tern without, and "
                       "beside Postfix with no filter\n")
            out.append("| workload | MTA | end-to-end msg/s | / Postfix (no filter) | / tern without "
                       "| CPU ms/msg | CPU ms/msg more than tern without |")
            out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
            for wl, per in al:
                base, pf = per.get("tern"), per.get("postfix")
                g = lambda d, k: d and d.get(k)  # noqa: E731
                for mta, st in per.items():
                    if mta == "postfix":
                        continue
                    extra = "-"
                    if mta != "tern" and g(st, "cpu_per_1000") and g(base, "cpu_per_1000"):
                        extra = f"{st['cpu_per_1000']['median'] - base['cpu_per_1000']['median']:.3f}"
                    out.append(f"| {wl} | {mta} | {fmt(g(st, 'e2e_rate'))} "
                               f"| {ratio(g(st, 'e2e_rate'), g(pf, 'e2e_rate'))} "
                               f"| {ratio(g(st, 'e2e_rate'), g(base, 'e2e_rate')) if mta != 'tern' else '-'} "
                               f"| {fmt(g(st, 'cpu_per_1000'), 3)} | {extra} |")
                out.append(f"| {wl} | postfix | {fmt(g(pf, 'e2e_rate'))} | | | "
                           f"{fmt(g(pf, 'cpu_per_1000'), 3)} | |")
            out.append("")
            out.append("What the checks and the signing did to a few delivered messages "
                       "(the sink's copies; tern's mailauth log line):\n")
            for wl, _ in al:
                for mta, pr in R["auth_proof"][wl].items():
                    if pr.get("error"):
                        out.append(f"- {wl} {mta}: FAILED: {pr['error'][:200]}")
                        continue
                    for m in pr["messages"][:1]:
                        ar = "; ".join(m["authentication_results"]) or "no Authentication-Results"
                        sigs = " | ".join(re.sub(r" h=[^;]*;", "", x)[:90] for x in m["dkim_signatures"])
                        out.append(f"- {wl} {mta}: A-R `{ar}`; DKIM-Signature: `{sigs or 'none'}`; "
                                   f"`tern dkim verify`: {', '.join(m['tern_dkim_verify'])}")
                    for ln in pr.get("log", [])[:1]:
                        out.append(f"  - log: `{ln.split(': ', 1)[-1][:300]}`")
            out.append("")
        out.append("## Ratios (medians)\n")
        out.append("| workload | tern/Postfix end-to-end | Postfix/tern CPU per msg "
                   "| Postfix/tern peak RSS | Postfix/tern peak PSS | tern end-to-end / protocol ceiling "
                   "| tern end-to-end / fsync ceiling (best) | Postfix end-to-end / fsync ceiling (best) |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        fs = R["ceilings"].get("fsync", {})
        best = None
        for v in fs.values():
            if v and (best is None or v["median"] > best["median"]):
                best = v
        for wl, per in tp.items():
            if wl in R.get("filters", {}) and wl not in R.get("auth_proof", {}):
                continue
            t, p = per.get("tern"), per.get("postfix")
            c = R["ceilings"].get("protocol", {}).get(wl)
            g = lambda d, k: d and d.get(k)  # noqa: E731
            out.append(f"| {wl} | {ratio(g(t, 'e2e_rate'), g(p, 'e2e_rate'))} "
                       f"| {ratio(g(p, 'cpu_per_1000'), g(t, 'cpu_per_1000'))} "
                       f"| {ratio(g(p, 'peak_rss_mb'), g(t, 'peak_rss_mb'))} "
                       f"| {ratio(g(p, 'peak_pss_mb'), g(t, 'peak_pss_mb'))} "
                       f"| {ratio(g(t, 'e2e_rate'), g(c, 'accepted_rate'))} "
                       f"| {ratio(g(t, 'e2e_rate'), best)} | {ratio(g(p, 'e2e_rate'), best)} |")
        out.append("")
    if R["ceilings"].get("fsync"):
        out.append("## Durable-queue ceiling of this disk (bench/fsync_ceiling.c, 4 KB)\n")
        out.append("| threads | messages/s (write, fsync, rename, fsync dir) |")
        out.append("| ---: | ---: |")
        for th, s in R["ceilings"]["fsync"].items():
            out.append(f"| {th} | {fmt(s)} |")
        out.append("")
    if R["idle"]:
        out.append("## Idle sessions (connected, banner and EHLO done, then idle)\n")
        out.append("| MTA | requested | established | RSS before MB | RSS with sessions MB "
                   "| PSS with sessions MB | per session KB (RSS) | note |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for mta, r in R["idle"].items():
            if not r.get("ok"):
                out.append(f"| {mta} | {r.get('requested')} | FAILED | | | | | {r.get('error', '')[:120]} |")
                continue
            note = ", ".join(f"{k}: {v}" for k, v in r["errors"].items())
            pk = f"{r['per_session_kb']:.1f}" if r["per_session_kb"] is not None else "n/a"
            out.append(f"| {mta} | {r['requested']} | {r['established']} | {r['rss_before_mb']:.1f} "
                       f"| {r['rss_mb']:.1f} | {r['pss_mb']:.1f} | {pk} | {note} |")
        out.append("")
    if R["latency"]:
        out.append("## Latency: final dot to 250, under background load\n")
        out.append("| MTA | samples | p50 ms | p99 ms | max ms | background |")
        out.append("| --- | ---: | ---: | ---: | ---: | --- |")
        for mta, r in R["latency"].items():
            if not r.get("ok"):
                out.append(f"| {mta} | FAILED | | | | {r.get('error', '')[:120]} |")
                continue
            out.append(f"| {mta} | {r['samples']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
                       f"| {r['max_ms']:.1f} | {r['background']} |")
        out.append("")
    if R.get("failures"):
        out.append("## Failed runs (no figure taken)\n")
        for f in R["failures"]:
            out.append(f"- {f}")
        out.append("")
    if R.get("targets"):
        out.append("## Targets\n")
        out.append("| target | measured | met |")
        out.append("| --- | --- | --- |")
        for t in R["targets"]:
            out.append(f"| {t[0]} | {t[1]} | {t[2]} |")
        out.append("")
    return "\n".join(out)


def targets(R):
    tp = R["throughput"]
    rows = []

    def med(wl, mta, k):
        s = tp.get(wl, {}).get(mta, {}).get(k)
        return s["median"] if s else None

    def check(label, value, ok):
        if value is None:
            rows.append((label, "not measured", "-"))
        else:
            rows.append((label, value, "yes" if ok else "NO"))

    for wl, want in (("4k-c100-r1", 5), ("100k-c100-r1", 3)):
        t, p = med(wl, "tern", "e2e_rate"), med(wl, "postfix", "e2e_rate")
        r = t / p if t and p else None
        check(f"end-to-end >= {want}x Postfix ({wl})",
              f"{r:.2f}x" if r else None, r is not None and r >= want)
    for wl in ("milter-4k-c100-r1", "milter-4k-c10-r1", "rspamd-4k-c100-r1"):
        if wl not in tp:
            continue
        t, p = med(wl, "tern", "e2e_rate"), med(wl, "postfix", "e2e_rate")
        r = t / p if t and p else None
        check(f"through the same milter, end-to-end >= 3x Postfix ({wl})",
              f"{r:.2f}x" if r else None, r is not None and r >= 3)
    if "checks-4k-c100-r1" in tp:
        t, c = med("checks-4k-c100-r1", "tern", "e2e_rate"), med("checks-4k-c100-r1", "tern+checks", "e2e_rate")
        r = 1 - c / t if t and c else None
        check("built-in checks cost < 10% of tern's end-to-end throughput (checks-4k-c100-r1)",
              f"{r * 100:.1f}% ({c:.0f} vs {t:.0f} msg/s)" if r is not None else None,
              r is not None and r < 0.10)
    for wl, per in tp.items():
        if wl not in R.get("auth_proof", {}):
            continue
        for mta in per:
            if not mta.startswith("tern+"):
                continue
            t, p = med(wl, mta, "e2e_rate"), med(wl, "postfix", "e2e_rate")
            r = t / p if t and p else None
            check(f"{mta} >= 4x Postfix with no filter, end to end ({wl})",
                  f"{r:.2f}x" if r else None, r is not None and r >= 4)
        t, s_ = med(wl, "tern", "cpu_per_1000"), med(wl, "tern+rsa", "cpu_per_1000")
        if t and s_:
            check(f"RSA-2048 signing <= 1.5 ms CPU per message in the daemon ({wl}, tern+rsa - tern)",
                  f"{s_ - t:.3f} ms", s_ - t <= 1.5)
    t, p = med("4k-c100-r1", "tern", "cpu_per_1000"), med("4k-c100-r1", "postfix", "cpu_per_1000")
    r = p / t if t and p else None
    check("CPU per 1000 msgs <= 1/5 of Postfix (4k-c100-r1)",
          f"1/{r:.2f}" if r else None, r is not None and r >= 5)
    t, p = med("4k-c100-r1", "tern", "peak_rss_mb"), med("4k-c100-r1", "postfix", "peak_rss_mb")
    r = p / t if t and p else None
    check("peak memory at 100 sessions <= 1/4 of Postfix (RSS, 4k-c100-r1)",
          f"1/{r:.2f}" if r else None, r is not None and r >= 4)
    i = R["idle"].get("tern")
    if i and i.get("ok") and i["established"] >= IDLE_SESSIONS:
        check(f"{IDLE_SESSIONS} idle sessions < 100 MB", f"{i['rss_mb']:.1f} MB", i["rss_mb"] < 100)
    elif i and i.get("ok") and i["requested"] < IDLE_SESSIONS:
        rows.append((f"{IDLE_SESSIONS} idle sessions < 100 MB",
                     f"{i['rss_mb']:.1f} MB with {i['established']} sessions (fewer requested)", "-"))
    else:
        check(f"{IDLE_SESSIONS} idle sessions < 100 MB",
              f"{i['rss_mb']:.1f} MB with {i['established']} sessions" if i and i.get("ok") else None,
              False)
    lt = R["latency"].get("tern")
    check("250 after final dot p99 < 50 ms",
          f"{lt['p99_ms']:.1f} ms" if lt and lt.get("ok") else None,
          bool(lt and lt.get("ok") and lt["p99_ms"] < 50))
    return rows


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", default=os.environ.get("QUICK") not in (None, "", "0"))
    ap.add_argument("--workloads", default=os.environ.get("BENCH_WORKLOADS", ""),
                    help="comma list of: " + ", ".join(list(WORKLOADS) + ["idle", "latency", "ceilings"]))
    ap.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "0") or 0))
    ap.add_argument("--mta", default=os.environ.get("BENCH_MTA", "tern,postfix"))
    ap.add_argument("--tern-bin", default=os.environ.get("TERN_BIN", os.path.join(ROOT, "build", "tern")))
    ap.add_argument("--idle-sessions", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--latency-client", nargs=4, metavar=("PORT", "SESSIONS", "PER", "SIZE"),
                    help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.latency_client:
        port, sessions, per, size = map(int, a.latency_client)
        print(json.dumps(asyncio.run(latency_client(port, sessions, per, size))))
        return 0

    started = time.monotonic()
    quick = a.quick
    runs = a.runs or (1 if quick else 3)
    wls = [w for w in (a.workloads or "").replace(" ", ",").split(",") if w] or \
        (QUICK_WORKLOADS if quick else DEFAULT_WORKLOADS)
    for w in wls:
        if w not in WORKLOADS and w not in ("idle", "latency", "ceilings"):
            ap.error(f"unknown workload {w}")
    scale = 0.5 if quick else 1.0
    idle_n = a.idle_sessions or (2000 if quick else IDLE_SESSIONS)

    raise_nofile()
    ensure_postfix_tools()
    parent, fs = bench_parent()
    notes = []
    mtas = []
    for name in a.mta.split(","):
        if name == "postfix":
            mtas.append(Postfix(parent))
        elif name == "tern":
            t = Tern(parent, a.tern_bin)
            why = t.check_config(relay=True)
            if why:
                t.relay = False
                if t.check_config(relay=False) is None:
                    msg = (f"tern's relay figures not taken: it does not take relayhost yet "
                           f"({why}); only its idle-sessions figure was measured")
                    mtas.append(t)
                else:
                    msg = f"tern figures not taken: {why}"
                log(msg)
                notes.append(msg)
            else:
                mtas.append(t)
        elif name:
            ap.error(f"unknown MTA {name}")

    R = {"meta": {"date": time.strftime("%Y-%m-%d %H:%M %Z"),
                  "machine": f"{platform.node()}, {os.cpu_count()} CPUs, "
                             f"{os.sysconf('SC_PHYS_PAGES') * PAGE // 2**30} GiB, Linux {platform.release()}",
                  "bench_dir": parent, "fs": fs, "runs": runs,
                  "mode": "quick mode (fewer messages, one run)" if quick else "full mode",
                  "workloads": wls, "notes": notes},
         "throughput": {}, "filters": {}, "ceilings": {"protocol": {}, "fsync": {}}, "idle": {},
         "latency": {},
         "raw": [], "failures": []}

    for w in wls:
        if w not in WORKLOADS:
            continue
        wl = dict(WORKLOADS[w])
        wl["n"] = max(100, int(wl["n"] * scale))
        per = {}
        filt = FILTERS[wl["filter"]]() if wl.get("filter") else None
        wl_mtas = mtas
        if filt is not None:
            names = [m.name for m in mtas]
            wl_mtas = [m for m in mtas if m.name in filt.mtas and getattr(m, "relay", True)]
            if "tern" in names and wl_mtas:
                wl_mtas += [Tern(parent, a.tern_bin, name=n) for n in filt.mtas
                            if n.startswith("tern+")]
            filt.tern_bin = a.tern_bin
            try:
                filt.start(parent)
                if isinstance(filt, MailAuth):
                    R.setdefault("auth_proof", {})[w] = auth_proof(wl_mtas, parent, filt)
            except (BenchError, OSError, subprocess.SubprocessError) as e:
                log(f"{w}: {filt.name} did not start: {e}")
                R["failures"].append(f"{w}: {filt.name} did not start: {e}")
                filt.stop()
                continue
            R["filters"][w] = filt.name
        # the MTAs take turns (tern, postfix, tern, ...): on a shared
        # machine, load that comes and goes then weighs on both alike
        wl_mtas = [m for m in wl_mtas if getattr(m, "relay", True)]
        ok_runs = {m.name: [] for m in wl_mtas}
        try:
            for i in range(runs):
                for mta in wl_mtas:
                    log(f"{w} {mta.name} run {i + 1}/{runs} ({wl['n']} messages)")
                    r = throughput_run(mta, parent, wl, filt)
                    r.update(workload=w, mta=mta.name, run=i + 1)
                    R["raw"].append(r)
                    if r["ok"]:
                        log(f"  accepted {r['accepted_rate']:.0f}/s end-to-end "
                            f"{r['e2e_rate']:.0f}/s cpu {r['cpu_per_1000']:.2f} s/1000 "
                            f"(main threads {r['loop_cpu_per_1000']:.2f}) "
                            f"rss {r['peak_rss_mb']:.1f} MB")
                        ok_runs[mta.name].append(r)
                    else:
                        log(f"  FAILED: {r['error']}")
                        R["failures"].append(f"{w} {mta.name} run {i + 1}: {r['error']}")
        finally:
            if filt is not None:
                filt.stop()
        for mta in wl_mtas:
            rs = ok_runs[mta.name]
            per[mta.name] = {k: summary([r[k] for r in rs]) for k in
                             ("accepted_rate", "e2e_rate", "cpu_per_1000", "loop_cpu_per_1000",
                              "peak_rss_mb",
                              "peak_pss_mb", "filter_cpu_per_1000", "machine_cpu_per_1000")}
            per[mta.name]["failed"] = runs - len(rs)
        R["throughput"][w] = per
        if "ceilings" in wls and filt is None:
            rs = []
            for i in range(runs):
                r = protocol_ceiling_run(parent, wl)
                r.update(workload=w, mta="protocol-ceiling", run=i + 1)
                R["raw"].append(r)
                if r["ok"]:
                    rs.append(r)
                else:
                    R["failures"].append(f"{w} protocol ceiling run {i + 1}: {r['error']}")
            R["ceilings"]["protocol"][w] = {"accepted_rate": summary([r["accepted_rate"] for r in rs]),
                                            "failed": runs - len(rs)}
            log(f"{w} protocol ceiling: {fmt(R['ceilings']['protocol'][w]['accepted_rate'])} msg/s")

    if "ceilings" in wls:
        secs = 2 if quick else 4
        for th in (1, 16, 64):
            rs = []
            for i in range(runs):
                r = fsync_ceiling(parent, th, secs)
                R["raw"].append(dict(r, workload="fsync-ceiling", threads=th, run=i + 1))
                if r["ok"]:
                    rs.append(r["rate"])
                else:
                    R["failures"].append(f"fsync ceiling {th} threads: {r['error']}")
            R["ceilings"]["fsync"][str(th)] = summary(rs)
            log(f"fsync ceiling {th} threads: {fmt(R['ceilings']['fsync'][str(th)])} msg/s")

    if "idle" in wls:
        for mta in mtas:
            log(f"idle sessions: {mta.name}, {idle_n} sessions")
            r = idle_run(mta, parent, idle_n, 30 if quick else 60)
            R["idle"][mta.name] = r
            log(f"  {r}")

    if "latency" in wls:
        for mta in mtas:
            if not getattr(mta, "relay", True):
                continue
            log(f"latency: {mta.name}")
            per = 50 if quick else 100
            r = latency_run(mta, parent, sessions=5, per_session=per, bg_conc=10,
                            bg_n=100000)
            R["latency"][mta.name] = r
            log(f"  {r}")

    R["targets"] = targets(R) if any(m.name == "tern" for m in mtas) else []
    R["meta"]["seconds"] = round(time.monotonic() - started, 1)
    text = report(R) + f"\n(bench took {R['meta']['seconds']:.0f} s)\n"
    print(text)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "latest.md"), "w") as f:
        f.write(text)
    with open(os.path.join(a.out, "latest.json"), "w") as f:
        json.dump(R, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
