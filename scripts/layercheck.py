#!/usr/bin/python3
"""layercheck.py - fail on any #include in src/ that runs upward in tern's layers.

The layers, lowest first (README.md "Layout"; docs/design.md "Layers"):

    lib < common < filter = mailauth < queue < bounce < deliver < sched < smtpd < control
        < cli = sendmail < daemon < main

A file may include headers of its own layer or of a lower one, never of a
higher one: lib/ knows no mail, common/ no stage, a stage only the stages
beneath it, and only the daemon (src/daemon/) and main.c know every stage.
cli and sendmail share a rank (sendmail's -bp is the mailq tool); so do
filter/ (milters, DNSBL, content rules, rate limits) and mailauth/ (SPF,
DKIM, DMARC, ARC, SRS): both are checks run at accept time, below smtpd,
above common.

Each quoted #include is resolved as the compiler does with -Isrc: beside the
including file first, then under src/. System headers (<...>) and headers
that resolve to nothing are not layered. Files directly in src/ (main.c)
are the "main" layer. tests/ and fuzz/ are exempt (they may reach anything).

Prints each offending edge as "file:line: from-layer -> to-layer (header)"
and exits 1 when there is any; exits 0 and prints one summary line
otherwise. Usage: scripts/layercheck.py [SRC_DIR]   (default: src)
"""
import os
import re
import sys

# rank of each layer: an include must not go to a higher rank
LAYERS = {
    "lib": 0,
    "common": 1,
    "filter": 2,
    "mailauth": 2,
    "queue": 3,
    "bounce": 4,
    "deliver": 5,
    "sched": 6,
    "smtpd": 7,
    "control": 8,
    "cli": 9,
    "sendmail": 9,
    "daemon": 10,
    "main": 11,
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def layer_of(path, src):
    """The layer of a file under src: its first folder, or main for src/*."""
    rel = os.path.relpath(path, src)
    parts = rel.split(os.sep)
    if len(parts) == 1:
        return "main"
    return parts[0]


def resolve(name, including, src):
    """The file a quoted include names, or None (not in the tree)."""
    for base in (os.path.dirname(including), src):
        cand = os.path.normpath(os.path.join(base, name))
        if os.path.isfile(cand):
            return cand
    return None


def check(src):
    problems = []
    unknown = set()
    nfiles = nedges = 0
    for root, _dirs, files in os.walk(src):
        for f in sorted(files):
            if not f.endswith((".c", ".h")):
                continue
            path = os.path.join(root, f)
            nfiles += 1
            frm = layer_of(path, src)
            if frm not in LAYERS:
                unknown.add(frm)
                continue
            with open(path, encoding="utf-8", errors="replace") as fh:
                for lineno, line in enumerate(fh, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    target = resolve(m.group(1), path, src)
                    if target is None:
                        continue
                    to = layer_of(target, src)
                    if to not in LAYERS:
                        unknown.add(to)
                        continue
                    nedges += 1
                    if LAYERS[to] > LAYERS[frm]:
                        problems.append("%s:%d: %s -> %s (%s)" % (
                            path, lineno, frm, to, m.group(1)))
    for u in sorted(unknown):
        problems.append("%s/%s: folder not in the layer table (scripts/layercheck.py)" % (src, u))
    return problems, nfiles, nedges


def order():
    """The layer table as text: lib < common < ... (equal ranks with =)."""
    out = []
    for name in sorted(LAYERS, key=lambda k: (LAYERS[k], k)):
        if out and LAYERS[out[-1][-1]] == LAYERS[name]:
            out[-1].append(name)
        else:
            out.append([name])
    return " < ".join(" = ".join(group) for group in out)


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "src"
    problems, nfiles, nedges = check(src)
    if problems:
        for p in problems:
            print(p)
        sys.stdout.flush()
        print("layercheck: %d problem(s); the order, lowest first: %s" % (
            len(problems), order()), file=sys.stderr)
        return 1
    print("layercheck: %d files, %d includes, none upward" % (nfiles, nedges))
    return 0


if __name__ == "__main__":
    sys.exit(main())
