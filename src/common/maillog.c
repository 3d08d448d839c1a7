/*
 * maillog.c - the mail log's lines, one function per event (see maillog.h).
 */
#include "common/maillog.h"

#include <time.h>

#include "common/recent.h"
#include "lib/log.h"
#include "lib/metrics.h"

/* the metrics of these events (docs/operations.md), counted where the line is written */
METRIC_COUNTER(m_accepted, "tern_messages_accepted_total",
    "Messages accepted into the queue (DSNs tern makes: proto DSN)", "proto");
METRIC_COUNTER(m_rx_bytes, "tern_received_bytes_total", "Octets of accepted messages");
METRIC_COUNTER(m_rcpt, "tern_deliveries_total",
    "Recipient outcomes as logged: sent, deferred (retried later), bounced (failed for good)",
    "result");
METRIC_HISTOGRAM(m_delay, metric_bounds_delay, "tern_delivery_delay_seconds",
    "From a message's arrival to a recipient's final outcome", "result");
METRIC_COUNTER(m_dsn, "tern_dsn_total", "DSNs tern queued, by kind", "kind");
METRIC_COUNTER(m_mailauth, "tern_mailauth_actions_total",
    "What the mail authentication checks did with a message", "action");

const char *
maillog_status(const env_rcpt_t *r)
{
	return r->status == RCPT_SENT ? "sent" : r->status == RCPT_PENDING ? "deferred" : "bounced";
}

void
maillog_accepted(const char *qid, const char *session, const char *client, const char *helo,
    const char *from, uint64_t size, size_t nrcpt, const char *proto, const char *note,
    bool client_gone)
{
	log_info("%s: accepted session=%s client=%s%s%s from=<%s> size=%llu nrcpt=%zu proto=%s%s%s",
	    qid, session, client, helo ? " helo=" : "", helo ? helo : "", from,
	    (unsigned long long)size, nrcpt, proto, note ? note : "",
	    client_gone ? " (client gone before reply)" : "");
	metric_inc(&m_accepted, proto);
	metric_add(&m_rx_bytes, (double)size);
}

void
maillog_rcpt(const envelope_t *env, const env_rcpt_t *r)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	double delay = now - (double)env->arrival_us / 1e6;
	const char *st = maillog_status(r);
	log_info("%s: to=<%s>%s%s%s%s%s%s relay=%s%s%s%s delay=%.2f attempts=%u status=%s (%s)",
	    env->qid, r->addr, r->orig ? " orig_to=<" : "", r->orig ? r->orig : "",
	    r->orig ? ">" : "", r->sender ? " srs_from=<" : "", r->sender ? r->sender : "",
	    r->sender ? ">" : "", r->relay ? r->relay : "none", r->tls[0] ? " tls=" : "", r->tls,
	    (env->flags & ENV_REQUIRETLS) ? " requiretls=yes" : "",
	    delay < 0 ? 0.0 : delay, r->attempts, st,
	    r->reply ? r->reply : "");
	recent_delivery(r->status);
	metric_inc(&m_rcpt, st);
	if (r->status != RCPT_PENDING)
		metric_observe(&m_delay, delay < 0 ? 0.0 : delay, st);
}

void
maillog_dsn(const char *qid, const char *what, const envelope_t *dsn)
{
	log_info("%s: %s: %s", qid, what, dsn->qid);
	metric_inc(&m_dsn, what);
	maillog_accepted(dsn->qid, "local", "local", NULL, "", dsn->body_len, dsn->nrcpt, "DSN",
	    (dsn->flags & ENV_REQUIRETLS) ? " requiretls=yes" : "", false);
}

void
maillog_bounce_discarded(const char *qid, size_t n, bool postmaster_notified)
{
	log_info("%s: undeliverable bounce discarded (%zu recipient%s; the sender is <>)%s", qid, n,
	    n == 1 ? "" : "s",
	    postmaster_notified ? "" : "; set bounce_to_postmaster = yes to notify the postmaster");
}

void
maillog_removed(const char *qid)
{
	log_info("%s: removed", qid);
}

void
maillog_mailauth(const char *qid, const char *session, const char *client, const char *results,
    const char *action, const char *reason)
{
	log_info("%s: mailauth session=%s client=%s %s action=%s%s%s%s", qid, session, client, results,
	    action, reason ? " reason=\"" : "", reason ? reason : "", reason ? "\"" : "");
	metric_inc(&m_mailauth, action);
}
