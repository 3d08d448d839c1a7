"""test_spf_suite.py - the RFC 7208 test suite, every case, through `tern spf`.

tests/data/spf/rfc7208-tests.yml (pyspf's copy of the openspf.org suite;
source and commit in tests/data/spf/README.md) holds scenarios, each with its
zone data and cases (helo, host, mailfrom, the expected result or list of
acceptable results, and for some the explanation). Each scenario's zone is
served by one spf_zone.ZoneServer on loopback; each case runs
`tern spf HOST MAILFROM --helo HELO --dns-servers 127.0.0.1@PORT` and
compares the first line with the result, and the "explanation: " line with
the case's explanation ("DEFAULT", the driver's stand-in for a receiver's
own default text, means tern gives none: an empty explanation). Queries
that the zone leaves unanswered (TIMEOUT) cost one --dns-timeout each.
"""

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from spf_zone import ZoneServer

SUITE = Path(__file__).resolve().parents[1] / "data" / "spf" / "rfc7208-tests.yml"
TERN = os.environ.get("TERN_BIN", str(Path(__file__).resolve().parents[2] / "build" / "tern"))
DNS_TIMEOUT_MS = 1500


def load():
    with open(SUITE, "rb") as f:
        return list(yaml.safe_load_all(f))


SCENARIOS = load()
CASES = [(i, name) for i, s in enumerate(SCENARIOS) for name in s["tests"]]


def run_case(server, case):
    args = [TERN, "spf", case["host"], case["mailfrom"], "--helo", case["helo"],
            "--dns-servers", server.addr, "--dns-timeout", str(DNS_TIMEOUT_MS)]
    p = subprocess.run(args, capture_output=True, timeout=60)
    out = p.stdout.decode("utf-8", "replace")
    lines = out.split("\n")
    if p.returncode != 0:
        return "exit %d" % p.returncode, p.stderr.decode("utf-8", "replace"), ""
    result = lines[0]
    reason = lines[1][len("reason: "):] if len(lines) > 1 else ""
    expl = lines[2][len("explanation: "):] if len(lines) > 2 else ""
    return result, reason, expl


def check(case, got):
    """None when the case passes, else what is wrong"""
    result, reason, expl = got
    want = case["result"]
    wants = want if isinstance(want, list) else [want]
    if result not in wants:
        return "result %s (%s), want %s" % (result, reason, "/".join(wants))
    if "explanation" in case:
        e = "" if case["explanation"] == "DEFAULT" else case["explanation"]
        if expl != e:
            return "explanation %r, want %r" % (expl, e)
    return None


@pytest.fixture(scope="module")
def results():
    """every case run once, scenarios in parallel (most of the time is
    process start-up and the TIMEOUT cases' waits)"""
    out = {}

    def scenario(i):
        srv = ZoneServer(SCENARIOS[i].get("zonedata"))
        try:
            with ThreadPoolExecutor(4) as ex:
                names = list(SCENARIOS[i]["tests"])
                got = ex.map(lambda n: run_case(srv, SCENARIOS[i]["tests"][n]), names)
                for n, g in zip(names, got):
                    out[(i, n)] = g
        finally:
            srv.close()

    with ThreadPoolExecutor(4) as ex:
        list(ex.map(scenario, range(len(SCENARIOS))))
    return out


def test_suite_size():
    assert len(SCENARIOS) == 16
    assert len(CASES) == 203


@pytest.mark.parametrize("scenario,name", CASES,
                         ids=["%s" % n for _, n in CASES])
def test_rfc7208(results, scenario, name):
    case = SCENARIOS[scenario]["tests"][name]
    bad = check(case, results[(scenario, name)])
    assert bad is None, "%s (%s, spec %s): %s" % (
        name, SCENARIOS[scenario]["description"], case.get("spec"), bad)
