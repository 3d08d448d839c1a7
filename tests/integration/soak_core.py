"""
soak_core.py - crash consistency under load, shared by
tests/integration/test_crash_soak.py (short, in make test) and
tests/soak/soak.py (long, make soak).

What it does: client threads send messages (each with a unique Message-ID)
to tern over SMTP while the main thread kills tern with SIGKILL at random
moments spread over the run and starts it again at once. A client that
gets no 250 (connection reset, refused, 4xx) sends the same message again
later, as a real MTA would, so every message is acknowledged in the end.
Then it waits until tern's queue is empty and counts what arrived: in the
Maildirs (mode "local") or at a relay sink (mode "relay": relayhost =
[127.0.0.1]:PORT, peers.Sink).

What it guarantees to report (Result): messages acknowledged; delivered
(distinct Message-IDs); missing = acknowledged but never delivered (must be
empty: that is tern's promise); duplicates, split into
  - "resent": another copy from the client's own retry after a lost 250
    (a different queue ID; RFC 5321 §6.1 accepts this),
  - "redelivered": the same queue ID delivered twice (for Maildir a bug,
    docs/queue.md; for a relay allowed after a crash between the peer's 250
    and the status append);
  and "acked_qid_lost": a 250's queue ID whose message never arrived under
  that queue ID (must be empty).
Must not: judge anything itself; the callers assert.
"""

import collections
import random
import re
import smtplib
import threading
import time
import uuid

from tern_harness import make_message, send_on, tf

MAILDIR_NAME_RE = re.compile(r"Q([0-9A-Z]{16})R(\d+)")
MSGID_RE = re.compile(rb"^Message-ID:\s*(<[^>\r\n]*>)", re.I | re.M)

LOCAL_RCPTS = ["alice@localhost", "bob@localhost", "carol@localhost"]


class Result:
    def __init__(self, mode):
        self.mode = mode
        self.total = 0
        self.acked = {}  # msgid -> [qid, ...] (one per 250)
        self.attempts = 0
        self.failures = 0  # sends without a 250
        self.kills = 0
        self.recovered = []  # "recovered N messages" per restart
        self.delivered = collections.Counter()  # msgid -> copies
        self.delivered_qids = collections.defaultdict(list)  # msgid -> [qid of each copy]
        self.unknown = []  # delivered copies that are no message of ours
        self.elapsed = 0.0
        self.send_elapsed = 0.0

    @property
    def missing(self):
        return sorted(m for m in self.acked if m not in self.delivered)

    @property
    def duplicates(self):
        return sum(c - 1 for c in self.delivered.values() if c > 1)

    @property
    def redelivered(self):
        """copies beyond the first with the same queue ID"""
        n = 0
        for qids in self.delivered_qids.values():
            c = collections.Counter(q for q in qids if q)
            n += sum(v - 1 for v in c.values() if v > 1)
        return n

    @property
    def resent(self):
        return self.duplicates - self.redelivered

    @property
    def acked_qid_lost(self):
        out = []
        for mid, qids in self.acked.items():
            got = set(self.delivered_qids.get(mid, ()))
            for q in qids:
                if q not in got:
                    out.append((mid, q))
        return out

    def figures(self):
        return {
            "mode": self.mode, "messages": self.total, "acked": len(self.acked),
            "acks": sum(len(v) for v in self.acked.values()),
            "send_attempts": self.attempts, "sends_without_250": self.failures,
            "kills": self.kills, "delivered": len(self.delivered),
            "copies": sum(self.delivered.values()), "duplicates": self.duplicates,
            "dup_resent_by_client": self.resent, "dup_redelivered_same_qid": self.redelivered,
            "missing": len(self.missing), "acked_qid_lost": len(self.acked_qid_lost),
            "unknown": len(self.unknown), "recovered_total": sum(self.recovered),
            "seconds": round(self.elapsed, 1), "send_seconds": round(self.send_elapsed, 1),
        }

    def summary(self):
        f = self.figures()
        return ("crash soak (%(mode)s): %(messages)d messages, %(acked)d acked "
                "(%(send_attempts)d sends, %(sends_without_250)d without 250), %(kills)d kills "
                "(%(recovered_total)d queue files recovered), %(delivered)d delivered, "
                "%(duplicates)d duplicates (%(dup_resent_by_client)d resent by the client "
                "after a lost 250, %(dup_redelivered_same_qid)d same queue ID), "
                "%(missing)d missing, %(acked_qid_lost)d acked queue IDs lost, "
                "%(seconds).1f s" % f)


def soak_config(mode, sink=None):
    cfg = {"retry_min": "1s", "retry_max": "2s", "local_concurrency": "8",
           "max_sessions_per_ip": "200", "timeout_command": "60s", "timeout_data": "60s"}
    if mode == "relay":
        cfg.update({"relayhost": sink.spec, "smtp_connect_timeout": "5s",
                    "smtp_command_timeout": "10s", "smtp_data_timeout": "10s",
                    "smtp_data_done_timeout": "10s"})
    return cfg


def make_messages(n, mode, tag):
    out = []
    run = uuid.uuid4().hex[:8]
    for i in range(n):
        mid = "<soak-%s-%s-%06d@test.example>" % (tag, run, i)
        rcpt = (LOCAL_RCPTS[i % len(LOCAL_RCPTS)] if mode == "local"
                else "user%d@remote.example" % (i % 7))
        body = "message %d\r\n" % i + "filler line for some size\r\n" * (5 + i % 40)
        out.append((mid, rcpt, make_message(subject="soak %d" % i, msgid=mid, to=rcpt,
                                            body=body)))
    return out


class _Clients:
    def __init__(self, tern, msgs, nthreads, res):
        self.tern = tern
        self.pending = collections.deque(msgs)
        self.lock = threading.Lock()
        self.res = res
        self.in_hand = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(nthreads)]

    def start(self):
        for th in self.threads:
            th.start()

    def acked_count(self):
        with self.lock:
            return len(self.res.acked)

    def done(self):
        with self.lock:
            return not self.pending and self.in_hand == 0

    def _take(self):
        with self.lock:
            if not self.pending:
                return None
            self.in_hand += 1
            return self.pending.popleft()

    def _give_back(self, m, acked_qid=None):
        with self.lock:
            self.in_hand -= 1
            self.res.attempts += 1
            if acked_qid is None:
                self.res.failures += 1
                self.pending.append(m)
            else:
                self.res.acked.setdefault(m[0], []).append(acked_qid)

    def _connect(self):
        while not self.stop.is_set():
            port = self.tern.port
            if port:
                try:
                    s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.test",
                                     timeout=tf(20))
                    code, _ = s.ehlo()
                    if code == 250:
                        return s
                    s.close()
                except (smtplib.SMTPException, OSError):
                    pass
            time.sleep(0.02)
        return None

    def _run(self):
        s = None
        while not self.stop.is_set():
            m = self._take()
            if m is None:
                if self.done():
                    break
                time.sleep(0.02)
                continue
            mid, rcpt, data = m
            qid = None
            try:
                if s is None:
                    s = self._connect()
                if s is not None:
                    qid = send_on(s, [rcpt], "sender@example.com", data)
            except (smtplib.SMTPException, OSError, AssertionError, EOFError):
                qid = None
            except Exception:  # anything odd: count it as not acknowledged
                qid = None
            self._give_back(m, qid)
            if qid is None and s is not None:
                try:
                    s.close()
                except OSError:
                    pass
                s = None
                time.sleep(random.uniform(0, 0.05))
        if s is not None:
            try:
                s.quit()
            except (smtplib.SMTPException, OSError):
                pass


def collect_maildir(tern, res, known):
    for rcpt in LOCAL_RCPTS:
        for p in tern.messages(rcpt):
            with open(p, "rb") as f:
                head = f.read(4096)
            m = MSGID_RE.search(head)
            q = MAILDIR_NAME_RE.search(p.name)
            mid = m.group(1).decode() if m else None
            if mid not in known:
                res.unknown.append(str(p))
                continue
            res.delivered[mid] += 1
            res.delivered_qids[mid].append(q.group(1) if q else None)


def collect_sink(sink, res, known):
    with sink.lock:
        msgs = list(sink.messages)
    for m in msgs:
        mid = m["msgid"]
        if mid not in known:
            res.unknown.append(mid)
            continue
        res.delivered[mid] += 1
        res.delivered_qids[mid].append(m["qid"])


def run(tern, mode, nmsgs, nkills, nthreads=8, sink=None, tag="t", log=print,
        settle_timeout=120, send_timeout=600, seed=None):
    """tern: a Tern already started with soak_config(mode, sink)."""
    rnd = random.Random(seed)
    res = Result(mode)
    msgs = make_messages(nmsgs, mode, tag)
    known = {m[0] for m in msgs}
    res.total = nmsgs
    t0 = time.monotonic()
    clients = _Clients(tern, msgs, nthreads, res)
    clients.start()
    deadline = t0 + tf(send_timeout)
    # kill k happens once about k/(nkills+1) of the messages are acked, plus a
    # random delay, so every kill falls inside the load: receptions, commits,
    # deliveries and status appends all in flight
    for k in range(nkills):
        target = (k + 1) * nmsgs // (nkills + 1)
        while clients.acked_count() < target and not clients.done():
            assert time.monotonic() < deadline, "clients stuck: %d/%d acked\n%s" % (
                clients.acked_count(), nmsgs, tern.tail())
            time.sleep(0.005)
        time.sleep(rnd.uniform(0, 0.08))
        tern.kill9()
        res.kills += 1
        if rnd.random() < 0.3:
            time.sleep(rnd.uniform(0, 0.2))  # clients meet a closed port meanwhile
        tern.start(timeout=60)
        m = tern.wait_log(r"recovered (\d+) messages", timeout=60)
        res.recovered.append(int(m.group(1)))
    while not clients.done():
        assert time.monotonic() < deadline, "clients stuck: %d/%d acked\n%s" % (
            clients.acked_count(), nmsgs, tern.tail())
        time.sleep(0.02)
    clients.stop.set()
    for th in clients.threads:
        th.join(tf(30))
    res.send_elapsed = time.monotonic() - t0
    tern.wait_queue_empty(timeout=settle_timeout)
    if mode == "local":
        collect_maildir(tern, res, known)
    else:
        # the queue is empty once the sink's 250s are recorded: nothing in flight
        collect_sink(sink, res, known)
    res.elapsed = time.monotonic() - t0
    log(res.summary())
    return res

