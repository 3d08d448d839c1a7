"""
test_config.py - configuration handling: check-config, errors as FILE:LINE,
SIGHUP reloading the tables.
"""

import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from tern_harness import REPO, RUN_AS, TERN_BIN, Tern, open_for, tf

SENDER = "sender@example.com"


def run(args, cwd=None):
    return subprocess.run([TERN_BIN] + args, capture_output=True, text=True,
                          timeout=tf(30), cwd=cwd, env=Tern.env())


def test_check_config_ok(make_tern):
    t = make_tern()
    if RUN_AS:  # what "run" does too: the files are the user's (as installed)
        open_for(RUN_AS, t.dir)
    p = run(["-c", str(t.conf_path), "check-config"])
    assert p.returncode == 0, p.stdout + p.stderr
    assert "config ok: %s" % t.conf_path in p.stdout + p.stderr


def test_check_config_unknown_key(tmp_path, make_tern):
    t = make_tern()
    lines = t.conf_path.read_text().splitlines()
    lines.insert(2, "no_such_key = 1")  # becomes line 3
    bad = tmp_path / "bad.conf"
    bad.write_text("\n".join(lines) + "\n")
    p = run(["-c", str(bad), "check-config"])
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "%s:3:" % bad in p.stderr, p.stderr
    # "run" refuses it too, with exit 1
    p = run(["-c", str(bad), "run"])
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert "%s:3:" % bad in p.stderr, p.stderr


def test_check_config_several_errors(tmp_path, make_tern):
    t = make_tern()
    text = t.conf_path.read_text()
    bad = tmp_path / "bad2.conf"
    bad.write_text(text + "max_recipients = 10\nmessage_size_limit = lots\n")
    n = len(text.splitlines())
    p = run(["-c", str(bad), "check-config"])
    assert p.returncode == 1
    assert "%s:%d:" % (bad, n + 1) in p.stderr, p.stderr  # below the minimum of 100
    assert "%s:%d:" % (bad, n + 2) in p.stderr, p.stderr


def test_check_config_missing_table(tmp_path, make_tern):
    t = make_tern()
    os.unlink(t.aliases_path)
    p = run(["-c", str(t.conf_path), "check-config"])
    assert p.returncode == 1
    assert str(t.aliases_path) in p.stderr, p.stderr


def test_shipped_dev_config(tmp_path):
    # a copy, laid out as in the checkout: check-config as root checks that
    # the run user (nobody) can re-read the tables, and a checkout may sit
    # in a directory nobody cannot enter (a mktemp -d clone is 0700)
    shutil.copytree(REPO / "etc" / "dev", tmp_path / "etc" / "dev")
    # the HTTP API's token, as scripts/dev-run.sh makes it
    (tmp_path / "var").mkdir()
    tok = tmp_path / "var" / "http-token"
    tok.write_text("0123456789abcdef0123456789abcdef")
    tok.chmod(0o600)
    if RUN_AS:
        open_for(RUN_AS, tmp_path)
    p = run(["-c", "etc/dev/tern.conf", "check-config"], cwd=str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "config ok:" in p.stdout + p.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the refusal is for a daemon started as root")
def test_root_without_user_is_refused(make_tern):
    # issue 6: tern binds as root, then runs as "user"; it never delivers as root
    t = make_tern(config={"user": None})
    p = run(["-c", str(t.conf_path), "run"])
    assert p.returncode == 1
    assert re.search(r'error: refusing to run as root: set "user" in %s'
                     % re.escape(str(t.conf_path)), p.stderr), p.stderr
    assert "listening on" not in p.stderr  # refused before binding anything
    c = run(["-c", str(t.conf_path), "check-config"])  # says so ahead of time
    assert c.returncode == 0 and 'warning: "user" is not set: started as root, tern refuses' in c.stderr
    t.config["user"] = "root"
    t.write_files()
    p = run(["-c", str(t.conf_path), "run"])
    assert p.returncode == 1
    assert 'refusing to run as root: user "root"' in p.stderr, p.stderr
    t.config["user"] = "no-such-user-here"
    t.write_files()
    p = run(["-c", str(t.conf_path), "run"])
    assert p.returncode == 1
    assert 'user "no-such-user-here" (config %s) does not exist' % t.conf_path in p.stderr


def rcpt_code(t, rcpt):
    with t.client() as c:
        c.read_greeting()
        c.ehlo()
        c.expect("MAIL FROM:<%s>" % SENDER, r"^250 ")
        return c.cmd("RCPT TO:<%s>" % rcpt).code


def test_sighup_reloads_tables(tern):
    assert rcpt_code(tern, "zed@localhost") == 550
    tern.mailboxes.append("zed@localhost")
    tern.write_tables()
    tern.signal(signal.SIGHUP)
    deadline = time.monotonic() + tf(5)
    while rcpt_code(tern, "zed@localhost") != 250:
        assert time.monotonic() < deadline, "zed@localhost still refused after SIGHUP:\n" + tern.tail()
        time.sleep(0.1)
    tern.send("zed@localhost", subject="new user")
    tern.wait_delivered("zed@localhost", 1)


def test_sighup_with_broken_table_keeps_old(tern):
    tern.aliases_path.write_text("this line has no colon\n")
    tern.signal(signal.SIGHUP)
    tern.wait_log(re.escape(str(tern.aliases_path)))  # the error is logged
    assert tern.running()
    # the old tables are still in force
    assert rcpt_code(tern, "postmaster@localhost") == 250
    assert rcpt_code(tern, "alice@localhost") == 250
