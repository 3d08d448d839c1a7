#!/usr/bin/python3
"""
soak.py - the long crash-consistency soak (make soak), issue 6.

What it does: for each mode (local Maildirs, then relay through relayhost =
[127.0.0.1]:PORT to a recording sink), starts tern in a fresh temporary
directory, sends --messages messages from --threads client threads while
killing tern with SIGKILL --kills times at random moments, restarts it each
time, waits for the queue to drain, and prints the figures (messages acked,
delivered, duplicates, kills, time). The core is
tests/integration/soak_core.py, shared with the short test in make test.

Exit status 1 when anything acknowledged was not delivered (or, for
Maildir, a queue file was delivered twice); 0 otherwise.
--json FILE also writes the figures as JSON.

Usage: soak.py [--messages 10000] [--kills 100] [--threads 16]
               [--mode local|relay|both] [--keep] [--json FILE]
Environment: TERN_BIN (default build/tern).
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

import soak_core  # noqa: E402
from peers import Sink  # noqa: E402
from tern_harness import TERN_BIN, Tern  # noqa: E402


def one(mode, args):
    d = Path(tempfile.mkdtemp(prefix="tern-soak-%s-" % mode))
    sink = Sink(record_commands=False) if mode == "relay" else None
    t = Tern(d, config=soak_core.soak_config(mode, sink))
    ok = False
    try:
        t.start()
        print("== soak %s: %d messages, %d kills, %d threads, in %s (tern %s)"
              % (mode, args.messages, args.kills, args.threads, d, TERN_BIN), flush=True)
        res = soak_core.run(t, mode, args.messages, args.kills, nthreads=args.threads,
                            sink=sink, tag=mode, settle_timeout=600, send_timeout=3600,
                            log=lambda s: print(s, flush=True))
        t.stop()
        ok = not res.missing and not res.acked_qid_lost and not res.unknown
        if mode == "local" and res.redelivered:
            ok = False
        if res.missing:
            print("MISSING (acked, never delivered): %s" % res.missing[:50])
        if res.acked_qid_lost:
            print("ACKED QUEUE IDS LOST: %s" % res.acked_qid_lost[:50])
        return res.figures(), ok
    finally:
        if t.running():
            t.kill9()
        if sink is not None:
            sink.close()
        if ok and not args.keep:
            shutil.rmtree(d, ignore_errors=True)
        else:
            print("kept %s" % d)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--mode", choices=("local", "relay", "both"), default="both")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories")
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args()
    modes = ["local", "relay"] if args.mode == "both" else [args.mode]
    all_ok, figures = True, []
    t0 = time.monotonic()
    for mode in modes:
        f, ok = one(mode, args)
        figures.append(f)
        all_ok = all_ok and ok
    print("== soak done in %.0f s: %s" % (time.monotonic() - t0, "OK" if all_ok else "FAILED"))
    for f in figures:
        print("   " + json.dumps(f))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
