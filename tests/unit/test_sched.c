/*
 * test_sched.c - unit tests for src/sched/sched.c: the scheduler driven
 * against FAKE local, remote and bounce stages (sched_stages_t).
 *
 * A real libuv loop, a real configuration and tables (written under a
 * mkdtemp() directory) and a real spool (the scheduler's own status and
 * flag records go there); the stages only record what they are given, and
 * each test decides when and how a submission ends (complete()). Covered:
 * backoff as a pure function, dispatch (routing, grouping per domain, only
 * due recipients), backoff after local and remote outcomes, a SIGHUP
 * changing retry_min for both kinds of recipient, hold/release/delete
 * while a delivery is in flight, expiry (4.4.7), the delay warning, and the
 * failure DSN after the round in which a recipient failed (issue #11.3).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "deliver/outcome.h"
#include "deliver/router.h"
#include "lib/buf.h"
#include "lib/xalloc.h"
#include "queue/queue.h"
#include "sched/sched.h"

static char dir[] = "/tmp/tern-test-sched-XXXXXX";

/* ---- fake stages ---- */

typedef struct sub {
	bool local;
	envelope_t *env;
	size_t idx[8];
	size_t n;
	sched_stage_cb cb;
	void *arg;
	bool done;
} sub_t;

static sub_t subs[64];
static size_t nsubs;

typedef struct bjob {
	bounce_job_t *j;
	bounce_done_cb cb;
	void *arg;
	bool done;
} bjob_t;

static bjob_t bjobs[16];
static size_t nbjobs;

static void
fake_local(void *l, envelope_t *env, const size_t *idx, char *const *maildirs, size_t n,
    const local_job_opts_t *o, sched_stage_cb cb, void *arg)
{
	assert_true(nsubs < 64 && n <= 8);
	sub_t *s = &subs[nsubs++];
	memset(s, 0, sizeof *s);
	s->local = true;
	s->env = env;
	memcpy(s->idx, idx, n * sizeof *idx);
	s->n = n;
	s->cb = cb;
	s->arg = arg;
}

static void
fake_remote(void *r, envelope_t *env, const size_t *idx, size_t n, sched_stage_cb cb, void *arg)
{
	fake_local(r, env, idx, NULL, n, NULL, cb, arg);
	subs[nsubs - 1].local = false;
}

static void
fake_bounce(void *b, bounce_job_t *j, bounce_done_cb cb, void *arg)
{
	assert_true(nbjobs < 16);
	bjobs[nbjobs].j = j;
	bjobs[nbjobs].cb = cb;
	bjobs[nbjobs].arg = arg;
	bjobs[nbjobs].done = false;
	nbjobs++;
}

/* ---- the world ---- */

static uv_loop_t loop;
static config_t *cfg, *cfg2;
static config_t *cur; /* what the scheduler reads: a SIGHUP swaps it */
static tables_t *tabs;
static sched_t *S;
static char spool[300];

static void
write_file(const char *name, const char *text)
{
	char path[400];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* run the loop for about ms milliseconds (pool jobs finish meanwhile) */
static void
spin(int ms)
{
	for (int i = 0; i < ms; i++) {
		uv_run(&loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
}

static int
setup(void **state)
{
	if (mkdtemp(dir) == NULL)
		return -1;
	char text[1024];
	snprintf(text, sizeof text,
	    "hostname = mx.local.test\n"
	    "local_domains = local.test\n"
	    "spool_dir = %s/spool\n"
	    "maildir_base = %s/mail\n"
	    "mailboxes = mailboxes\n"
	    "retry_min = 10s\n"
	    "retry_max = 1000s\n",
	    dir, dir);
	write_file("tern.conf", text);
	write_file("mailboxes", "bob@local.test\ncarol@local.test\n");
	char path[400];
	snprintf(path, sizeof path, "%s/tern.conf", dir);
	buf_t e = BUF_INIT;
	cfg = config_load(path, &e);
	cfg2 = config_load(path, &e);
	if (!cfg || !cfg2)
		return -1;
	tabs = tables_load(cfg, &e);
	if (!tabs)
		return -1;
	buf_free(&e);
	snprintf(spool, sizeof spool, "%s/spool", dir);
	return 0;
}

static int
teardown(void **state)
{
	tables_free(tabs);
	config_free(cfg);
	config_free(cfg2);
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
sched_closed(void)
{
	spin(5);
}

/* a fresh scheduler with fake stages, on a fresh spool */
static int
each_setup(void **state)
{
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf %s", spool);
	if (system(cmd) != 0)
		return -1;
	uv_loop_init(&loop);
	buf_t e = BUF_INIT;
	queue_t *q = queue_open(&loop, spool, &e);
	if (!q)
		return -1;
	queue_close(q);
	buf_free(&e);
	cfg->retry_min = 10;
	cfg->retry_max = 1000;
	cfg->queue_lifetime = 100000;
	cfg->delay_warning = 0;
	cur = cfg;
	nsubs = 0;
	nbjobs = 0;
	sched_ctx_t ctx = {&loop, spool, &cur, &tabs};
	S = sched_new(&ctx);
	sched_stages_t st = {0};
	st.local_submit = fake_local;
	st.remote_submit = fake_remote;
	st.bounce_run = fake_bounce;
	sched_set_stages(S, &st);
	return 0;
}

static int
each_teardown(void **state)
{
	/* finish every bounce job still open, then free */
	for (size_t k = 0; k < nbjobs; k++)
		if (!bjobs[k].done)
			bounce_job_free(bjobs[k].j);
	sched_free(S);
	sched_closed();
	uv_run(&loop, UV_RUN_NOWAIT);
	uv_loop_close(&loop);
	return 0;
}

/* a stored message from alice@remote.test to addrs; arrival `age` seconds ago */
static envelope_t *
message(const char *const *addrs, size_t n, int age)
{
	envelope_t *e = envelope_new();
	qid_new(e->qid);
	e->arrival_us = ((int64_t)time(NULL) - age) * 1000000;
	e->sender = xstrdup("alice@remote.test");
	e->client_addr = xstrdup("192.0.2.1");
	for (size_t i = 0; i < n; i++)
		envelope_add_rcpt(e, addrs[i], NULL, NULL, 0);
	static const char content[] = "Subject: t\r\n\r\nhello\r\n";
	envelope_t *stored = queue_store(spool, e, content, strlen(content));
	assert_non_null(stored);
	envelope_free(e);
	return stored;
}

/* End submission k: every recipient gets (kind, text), one attempt. */
static void
complete(size_t k, enum outcome_kind kind, const char *text)
{
	sub_t *s = &subs[k];
	assert_false(s->done);
	s->done = true;
	outcome_t oc = {.kind = kind};
	snprintf(oc.text, sizeof oc.text, "%s", text);
	for (size_t i = 0; i < s->n; i++) {
		env_rcpt_t *r = &s->env->rcpt[s->idx[i]];
		r->attempts++;
		r->last_try = time(NULL);
		outcome_apply(&oc, r, s->local ? "local" : "mx.remote.test[192.0.2.9]:25");
	}
	s->cb(s->arg, s->env, s->idx, s->n);
}

/* End bounce job k as the real stage would (no DSN queued, no file). */
static void
bounce_complete(size_t k)
{
	bjob_t *b = &bjobs[k];
	assert_false(b->done);
	b->done = true;
	envelope_t *env = b->j->env;
	if (b->j->what != BOUNCE_WARN)
		for (size_t i = 0; i < env->nrcpt; i++)
			if (env->rcpt[i].status == RCPT_FAILED)
				env->rcpt[i].status = RCPT_REPORTED;
	b->cb(b->arg, b->j);
}

/* the scheduler's copy of recipient i of its only message */
static env_rcpt_t
snap_rcpt(size_t i, unsigned *flags, bool *active)
{
	size_t n = 0;
	sched_entry_t *e = sched_snapshot(S, NULL, &n);
	assert_int_equal(n, 1);
	assert_true(i < e[0].env->nrcpt);
	env_rcpt_t r = e[0].env->rcpt[i];
	if (flags)
		*flags = e[0].env->flags;
	if (active)
		*active = e[0].active[i];
	r.addr = r.orig = r.orcpt = r.reply = r.relay = NULL; /* freed below */
	sched_entries_free(e, n);
	return r;
}

static size_t
queued_count(void)
{
	size_t n = 0;
	sched_entry_t *e = sched_snapshot(S, NULL, &n);
	sched_entries_free(e, n);
	return n;
}

/* ---- tests ---- */

static void
test_backoff(void **state)
{
	static const struct {
		unsigned attempts, min, max, want;
	} cases[] = {
		{1, 300, 3600, 300}, {2, 300, 3600, 600}, {3, 300, 3600, 1200}, {4, 300, 3600, 2400},
		{5, 300, 3600, 3600}, {40, 300, 3600, 3600}, {0, 300, 3600, 300}, {3, 1, 2, 2},
		{1, 0, 10, 1}, {100000, 1, 4000000000u, 4000000000u},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		assert_int_equal(sched_backoff(cases[i].attempts, cases[i].min, cases[i].max),
		    cases[i].want);
}

/* local recipients in one submission, remote ones one per domain; a
 * recipient that is not due is left alone */
static void
test_dispatch(void **state)
{
	static const char *const to[] = {"bob@local.test", "x@remote.test", "y@other.test",
		"z@remote.test", "carol@local.test"};
	envelope_t *env = message(to, 5, 0);
	sched_submit(S, env, false);
	spin(20);
	assert_int_equal(nsubs, 3);
	assert_true(subs[0].local);
	assert_int_equal(subs[0].n, 2);
	assert_int_equal(subs[0].idx[0], 0);
	assert_int_equal(subs[0].idx[1], 4);
	assert_false(subs[1].local);
	assert_int_equal(subs[1].n, 2); /* remote.test: x and z */
	assert_int_equal(subs[1].idx[0], 1);
	assert_int_equal(subs[1].idx[1], 3);
	assert_int_equal(subs[2].n, 1); /* other.test */
	bool active = false;
	(void)snap_rcpt(0, NULL, &active);
	assert_true(active);
	for (size_t k = 0; k < 3; k++)
		complete(k, OUTCOME_OK, "250 2.0.0 ok");
	spin(20);
	/* no recipient pending: finishing is the bounce stage's job */
	assert_int_equal(nbjobs, 1);
	assert_int_equal(bjobs[0].j->what, BOUNCE_FINISH);
	bounce_complete(0);
	spin(5);
	assert_int_equal(queued_count(), 0);

	/* a message whose recipient is due later is not dispatched now */
	static const char *const one[] = {"w@remote.test"};
	env = message(one, 1, 0);
	env->rcpt[0].next_try = time(NULL) + 100;
	env->rcpt[0].attempts = 1;
	sched_submit(S, env, false);
	spin(20);
	assert_int_equal(nsubs, 3);
	/* ... until flushed */
	assert_int_equal(sched_flush(S, "remote.test"), 1);
	spin(20);
	assert_int_equal(nsubs, 4);
	complete(3, OUTCOME_OK, "250 ok");
	spin(20);
	bounce_complete(1);
	spin(5);
}

/* a deferred recipient waits the backoff of the configuration in force,
 * local and remote alike, also after a SIGHUP changed retry_min */
static void
test_backoff_and_reload(void **state)
{
	static const char *const to[] = {"bob@local.test", "x@remote.test"};
	sched_submit(S, message(to, 2, 0), false);
	spin(20);
	assert_int_equal(nsubs, 2);
	int64_t t0 = time(NULL);
	complete(0, OUTCOME_TEMPFAIL, "4.2.2 maildir full");
	complete(1, OUTCOME_TEMPFAIL, "451 4.3.0 later");
	spin(30);
	for (size_t i = 0; i < 2; i++) {
		env_rcpt_t r = snap_rcpt(i, NULL, NULL);
		assert_int_equal(r.status, RCPT_PENDING);
		assert_int_equal(r.attempts, 1);
		/* now + 1 (rounded up) + retry_min */
		assert_true(r.next_try >= t0 + 11 && r.next_try <= t0 + 12);
	}
	/* SIGHUP: the new configuration has retry_min 50 */
	cfg2->retry_min = 50;
	cfg2->retry_max = 1000;
	cfg2->queue_lifetime = 100000;
	cur = cfg2;
	assert_int_equal(sched_flush(S, NULL), 2);
	spin(20);
	assert_int_equal(nsubs, 4);
	t0 = time(NULL);
	complete(2, OUTCOME_TEMPFAIL, "4.2.2 maildir full");
	complete(3, OUTCOME_TEMPFAIL, "451 4.3.0 later");
	spin(30);
	for (size_t i = 0; i < 2; i++) {
		env_rcpt_t r = snap_rcpt(i, NULL, NULL);
		assert_int_equal(r.attempts, 2);
		/* backoff(2, 50, 1000) = 100 for both kinds */
		assert_true(r.next_try >= t0 + 101 && r.next_try <= t0 + 102);
	}
	cur = cfg;
}

static int op_calls, op_err;

static void
op_cb(void *arg, int err, const char *text)
{
	op_calls++;
	op_err = err;
}

/* hold while a delivery is in flight: the delivery finishes, the message
 * is then held (on disk too) and not dispatched until released */
static void
test_hold_during_delivery(void **state)
{
	static const char *const to[] = {"x@remote.test"};
	sched_submit(S, message(to, 1, 0), false);
	spin(20);
	assert_int_equal(nsubs, 1);
	buf_t text = BUF_INIT;
	op_calls = 0;
	assert_int_equal(sched_hold(S, subs[0].env->qid, true, op_cb, NULL, &text), 0);
	assert_non_null(strstr(buf_cstr(&text), "deliveries in progress finish first"));
	complete(0, OUTCOME_TEMPFAIL, "451 4.3.0 later");
	spin(30);
	unsigned flags = 0;
	(void)snap_rcpt(0, &flags, NULL);
	assert_true(flags & ENV_HELD);
	/* held: a flush does not dispatch it */
	assert_int_equal(sched_flush(S, NULL), 0);
	spin(20);
	assert_int_equal(nsubs, 1);
	/* the hold is on disk */
	envelope_t *loaded = NULL;
	buf_t err = BUF_INIT;
	char path[400];
	snprintf(path, sizeof path, "%s/queue/%s", spool, subs[0].env->qid);
	assert_int_equal(queue_load(path, &loaded, &err), 0);
	assert_true(loaded->flags & ENV_HELD);
	envelope_free(loaded);
	/* release: written first (callback), then back on its schedule */
	buf_reset(&text);
	assert_int_equal(sched_hold(S, subs[0].env->qid, false, op_cb, NULL, &text), 1);
	spin(30);
	assert_int_equal(op_calls, 1);
	assert_int_equal(op_err, 0);
	assert_int_equal(sched_flush(S, NULL), 1);
	spin(20);
	assert_int_equal(nsubs, 2);
	complete(1, OUTCOME_OK, "250 ok");
	spin(20);
	bounce_complete(0);
	spin(5);
	buf_free(&text);
	buf_free(&err);
}

/* delete while a delivery is in flight: removed (no DSN) once it is back */
static void
test_delete_during_delivery(void **state)
{
	static const char *const to[] = {"x@remote.test", "bob@local.test"};
	sched_submit(S, message(to, 2, 0), false);
	spin(20);
	assert_int_equal(nsubs, 2);
	char qid[QID_SIZE];
	memcpy(qid, subs[0].env->qid, QID_SIZE);
	buf_t text = BUF_INIT;
	assert_int_equal(sched_delete(S, qid, op_cb, NULL, &text), 0);
	/* gone from the listing at once */
	assert_int_equal(queued_count(), 0);
	complete(0, OUTCOME_TEMPFAIL, "451 4.3.0 later");
	spin(20);
	char path[400];
	snprintf(path, sizeof path, "%s/queue/%s", spool, qid);
	assert_int_equal(access(path, F_OK), 0); /* the local job is still out */
	complete(1, OUTCOME_OK, "delivered to maildir /x");
	spin(30);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(nbjobs, 0); /* no DSN */
	buf_free(&text);
}

/* a recipient tried before and due after the message's lifetime fails
 * with 4.4.7; the message is then finished */
static void
test_expiry(void **state)
{
	cfg->queue_lifetime = 5;
	static const char *const to[] = {"x@remote.test", "y@remote.test"};
	envelope_t *env = message(to, 2, 10);
	env->rcpt[0].attempts = 2;
	env->rcpt[0].reply = xstrdup("451 4.4.1 connection refused");
	sched_submit(S, env, false);
	spin(20);
	/* y was never tried: it gets one attempt */
	assert_int_equal(nsubs, 1);
	assert_int_equal(subs[0].n, 1);
	assert_int_equal(subs[0].idx[0], 1);
	/* x failed at once (4.4.7, with its last reason); its DSN goes after
	 * this round, while y is still pending */
	complete(0, OUTCOME_TEMPFAIL, "451 4.3.0 later");
	spin(20);
	assert_int_equal(nbjobs, 1);
	bounce_job_t *j = bjobs[0].j;
	assert_int_equal(j->what, BOUNCE_ROUND);
	assert_int_equal(j->env->rcpt[0].status, RCPT_FAILED);
	assert_non_null(strstr(j->env->rcpt[0].reply,
	    "4.4.7 message expired after 5 seconds in the queue: 451 4.4.1 connection refused"));
	assert_int_equal(j->env->rcpt[1].status, RCPT_PENDING);
	bounce_complete(0);
	/* y's retry is capped at the expiry, which is past: it is due within
	 * two seconds (whole seconds, rounded up) and fails then */
	for (int i = 0; i < 300 && nbjobs < 2; i++)
		spin(10);
	assert_int_equal(nsubs, 1);
	assert_int_equal(nbjobs, 2);
	j = bjobs[1].j;
	assert_int_equal(j->what, BOUNCE_FINISH);
	assert_int_equal(j->env->rcpt[0].status, RCPT_REPORTED);
	assert_int_equal(j->env->rcpt[1].status, RCPT_FAILED);
	assert_non_null(strstr(j->env->rcpt[1].reply, "4.4.7 message expired"));
	bounce_complete(1);
	spin(5);
	assert_int_equal(queued_count(), 0);
}

/* expiry when every recipient was tried: all fail, one finishing job */
static void
test_expiry_all(void **state)
{
	cfg->queue_lifetime = 5;
	static const char *const to[] = {"x@remote.test"};
	envelope_t *env = message(to, 1, 10);
	env->rcpt[0].attempts = 1;
	env->rcpt[0].reply = xstrdup("451 4.4.1 connection refused");
	sched_submit(S, env, false);
	spin(20);
	assert_int_equal(nsubs, 0);
	assert_int_equal(nbjobs, 1);
	bounce_job_t *j = bjobs[0].j;
	assert_int_equal(j->what, BOUNCE_FINISH);
	assert_int_equal(j->env->rcpt[0].status, RCPT_FAILED);
	assert_non_null(strstr(j->env->rcpt[0].reply,
	    "4.4.7 message expired after 5 seconds in the queue: 451 4.4.1 connection refused"));
	bounce_complete(0);
	spin(5);
	assert_int_equal(queued_count(), 0);
}

/* one delay warning, after delay_warning, while a recipient is pending */
static void
test_delay_warning(void **state)
{
	cfg->delay_warning = 5;
	static const char *const to[] = {"x@remote.test"};
	envelope_t *env = message(to, 1, 10);
	env->rcpt[0].attempts = 1;
	env->rcpt[0].next_try = time(NULL) + 500;
	sched_submit(S, env, false);
	spin(20);
	assert_int_equal(nbjobs, 1);
	assert_int_equal(bjobs[0].j->what, BOUNCE_WARN);
	bounce_complete(0);
	spin(20);
	unsigned flags = 0;
	(void)snap_rcpt(0, &flags, NULL);
	assert_true(flags & ENV_DELAY_WARNED);
	assert_int_equal(sched_flush(S, NULL), 1);
	spin(20);
	complete(0, OUTCOME_TEMPFAIL, "451 4.3.0 later");
	spin(30);
	assert_int_equal(nbjobs, 1); /* not again */
}

/* issue #11.3: a recipient that failed permanently is reported after the
 * round, while the others are still deferred; once only */
static void
test_failure_dsn_per_round(void **state)
{
	static const char *const to[] = {"a@remote.test", "b@remote.test", "c@remote.test"};
	sched_submit(S, message(to, 3, 0), false);
	spin(20);
	assert_int_equal(nsubs, 1);
	sub_t *s = &subs[0];
	/* a fails, b and c are deferred */
	s->done = true;
	for (size_t i = 0; i < 3; i++) {
		outcome_t oc;
		oc.kind = i == 0 ? OUTCOME_PERMFAIL : OUTCOME_TEMPFAIL;
		snprintf(oc.text, sizeof oc.text, "%s", i == 0 ? "550 5.1.1 no such user" : "451 4.3.0 later");
		s->env->rcpt[i].attempts++;
		outcome_apply(&oc, &s->env->rcpt[i], "mx[192.0.2.9]:25");
	}
	s->cb(s->arg, s->env, s->idx, s->n);
	spin(30);
	assert_int_equal(nbjobs, 1);
	bounce_job_t *j = bjobs[0].j;
	assert_int_equal(j->what, BOUNCE_ROUND);
	assert_int_equal(j->env->rcpt[0].status, RCPT_FAILED);
	assert_int_equal(j->env->rcpt[1].status, RCPT_PENDING);
	bounce_complete(0);
	spin(20);
	assert_int_equal(snap_rcpt(0, NULL, NULL).status, RCPT_REPORTED);
	assert_int_equal(snap_rcpt(1, NULL, NULL).status, RCPT_PENDING);
	assert_int_equal(nbjobs, 1); /* reported once */
	/* the others are delivered later: the finish lists no failure again */
	assert_int_equal(sched_flush(S, NULL), 2);
	spin(20);
	complete(1, OUTCOME_OK, "250 ok");
	spin(20);
	assert_int_equal(nbjobs, 2);
	assert_int_equal(bjobs[1].j->what, BOUNCE_FINISH);
	assert_int_equal(bjobs[1].j->env->rcpt[0].status, RCPT_REPORTED);
	bounce_complete(1);
	spin(5);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff),
		cmocka_unit_test_setup_teardown(test_dispatch, each_setup, each_teardown),
		cmocka_unit_test_setup_teardown(test_backoff_and_reload, each_setup, each_teardown),
		cmocka_unit_test_setup_teardown(test_hold_during_delivery, each_setup, each_teardown),
		cmocka_unit_test_setup_teardown(test_delete_during_delivery, each_setup, each_teardown),
		cmocka_unit_test_setup_teardown(test_expiry, each_setup, each_teardown),
		cmocka_unit_test_setup_teardown(test_expiry_all, each_setup, each_teardown),
		cmocka_unit_test_setup_teardown(test_delay_warning, each_setup, each_teardown),
		cmocka_unit_test_setup_teardown(test_failure_dsn_per_round, each_setup, each_teardown),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
