/*
 * mailauth.c - MAILAUTH: the inbound half of the stage (contract in
 * mailauth.h; signing is sign.c): SPF, DKIM and DMARC for one message,
 * the Authentication-Results field, the action, one log line.
 *
 * The order (docs/flow.md, docs/authentication.md):
 *   MAIL  SPF of the MAIL FROM identity (RFC 7208 section 2.4: for
 *         MAIL FROM:<>, postmaster@<HELO>), and of the HELO identity when
 *         spf_helo_check is on, start in the background;
 *   DATA  every piece feeds the DKIM body hashes; the header section is
 *         kept (for From) up to HDR_MAX;
 *   EOM   DKIM keys (and the ARC chain's, RFC 8617, with arc_verify) are
 *         looked up; once SPF and DKIM are done, DMARC
 *         (RFC 7489) with the SPF identity that passed and the d= of
 *         every DKIM signature that passed; then the verdict.
 * The DNS budget of one message is bounded by the checks' own limits:
 * SPF's section 4.6.4 (10 DNS-querying terms, 10 MX/PTR names, 2 void
 * lookups, per identity), dkim_max_signatures key lookups, and at most two
 * DMARC queries; each query has dns_timeout, and the end-of-data part as
 * a whole mailauth_timeout, after which what is still missing counts as
 * temperror.
 *
 * The action (first that applies; never for mynetworks or authenticated
 * clients, which mailauth_inbound_wanted() leaves out):
 *   spf fail, spf_fail_action = reject, and DMARC did not pass:
 *       550 5.7.23 (RFC 7372; a DMARC pass through an aligned DKIM
 *       signature overrides it, as RFC 7489 section 10.1 advises);
 *   spf temperror, spf_temperror_action = defer: 451 4.7.24;
 *   dmarc fail with dmarc_enforce: disposition reject (p or sp, after
 *       pct): 550 5.7.1; quarantine: hold when dmarc_quarantine_action =
 *       hold, else only the A-R field says it;
 *   otherwise accept, with the field.
 *
 * The resolver (lib/dns.h, dns_servers and dns_timeout) and the Public
 * Suffix List are shared by all messages and reference-counted: a reload
 * that changes them makes new ones, the old ones go with their last
 * message.
 * Must not: block (the list is loaded by mailauth_config_check(), at
 * start and at reload, not per message); keep pointers into the config or
 * the client.
 */
#include "mailauth/mailauth.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/maillog.h"
#include "lib/dns.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/xalloc.h"
#include "mailauth/arc.h"
#include "mailauth/authres.h"
#include "mailauth/dkim.h"
#include "mailauth/dmarc.h"
#include "mailauth/dmarc_report.h"
#include "mailauth/spf.h"

#define HDR_MAX (256 * 1024) /* the header section kept for From */

/* ---- shared: the resolver and the list ---- */

typedef struct shared_res {
	dns_t *dns;
	char *key; /* dns_servers and timeout it was made with */
	uv_loop_t *loop;
	unsigned refs;
	bool current;
} shared_res_t;

typedef struct shared_psl {
	psl_ctx_t *psl;
	char *path;
	unsigned refs;
	bool current;
} shared_psl_t;

static shared_res_t *cur_res;
static shared_psl_t *cur_psl;

static void
res_put(shared_res_t *r)
{
	if (!r || --r->refs > 0 || r->current)
		return;
	dns_free(r->dns);
	xfree(r->key);
	xfree(r);
}

static void
res_retire(void)
{
	if (!cur_res)
		return;
	shared_res_t *r = cur_res;
	cur_res = NULL;
	r->current = false;
	r->refs++;
	res_put(r);
}

static shared_res_t *
res_get(uv_loop_t *loop, const config_t *c)
{
	char *key = xasprintf("%s/%u", c->dns_servers ? c->dns_servers : "", c->dns_timeout);
	if (cur_res && cur_res->loop == loop && strcmp(cur_res->key, key) == 0) {
		xfree(key);
		cur_res->refs++;
		return cur_res;
	}
	res_retire();
	char *list = c->dns_servers ? xstrdup(c->dns_servers) : NULL, *save = NULL;
	const char *servers[33];
	size_t ns = 0;
	for (char *t = list ? strtok_r(list, " \t,", &save) : NULL; t && ns < 32;
	    t = strtok_r(NULL, " \t,", &save))
		servers[ns++] = t;
	servers[ns] = NULL;
	dns_options_t o;
	memset(&o, 0, sizeof o);
	o.servers = ns ? servers : NULL;
	o.timeout_ms = c->dns_timeout * 1000u;
	o.trust_anchor_file = c->dnssec_trust_anchor;
	buf_t err = BUF_INIT;
	dns_t *d = dns_new(loop, &o, &err);
	xfree(list);
	if (!d) {
		log_err("mailauth: cannot start the resolver: %s; no message is checked",
		    buf_cstr(&err));
		buf_free(&err);
		xfree(key);
		return NULL;
	}
	buf_free(&err);
	cur_res = xcalloc(1, sizeof *cur_res);
	cur_res->dns = d;
	cur_res->key = key;
	cur_res->loop = loop;
	cur_res->refs = 1;
	cur_res->current = true;
	return cur_res;
}

static void
psl_put(shared_psl_t *p)
{
	if (!p || --p->refs > 0 || p->current)
		return;
	psl_free(p->psl);
	xfree(p->path);
	xfree(p);
}

int
mailauth_config_check(const config_t *c, buf_t *err)
{
	if (!c->dmarc_check)
		return 0;
	if (cur_psl && strcmp(cur_psl->path, c->psl_file) == 0)
		return 0;
	psl_ctx_t *psl = dmarc_psl_load(c->psl_file, err);
	if (!psl) {
		buf_puts(err, " (psl_file; Debian's publicsuffix package has it)");
		return -1;
	}
	if (cur_psl) {
		shared_psl_t *old = cur_psl;
		old->current = false;
		old->refs++;
		psl_put(old);
	}
	cur_psl = xcalloc(1, sizeof *cur_psl);
	cur_psl->psl = psl;
	cur_psl->path = xstrdup(c->psl_file);
	cur_psl->current = true;
	return 0;
}

void
mailauth_shutdown(void)
{
	res_retire();
	if (cur_psl) {
		shared_psl_t *p = cur_psl;
		cur_psl = NULL;
		p->current = false;
		p->refs++;
		psl_put(p);
	}
}

/* ---- one message ---- */

enum act { ACT_TAG, ACT_REJECT, ACT_DEFER, ACT_HOLD };

typedef struct spf_part {
	bool on;            /* checked (else: not reported) */
	bool done;
	spf_req_t *req;
	enum spf_result result;
	char *domain;       /* the identity's domain */
	char *identity;     /* smtp.mailfrom / smtp.helo value */
	char *reason, *explanation;
} spf_part_t;

typedef struct sigres {
	enum dkim_result result;
	bool testing; /* the key says t=y */
	char *d, *i, *s, *a, *b, *reason;
} sigres_t;

struct mailauth {
	/* copied from the config */
	bool dkim_on, dmarc_on, enforce, reports;
	enum act spf_fail_act, spf_temp_act, quarantine_act;
	char *authserv_id, *hostname;
	unsigned timeout_ms, dkim_max;
	/* the client */
	struct sockaddr_storage sa;
	char *ip, *helo, *sid, *qid;
	uv_loop_t *loop;
	shared_res_t *res;
	shared_psl_t *psl;
	/* SPF */
	spf_part_t mail, heloid;
	/* ARC (RFC 8617) */
	bool arc_on, arc_done;
	arc_verify_t *arc;
	enum arc_result arc_result;
	unsigned arc_n;
	char *arc_reason, *arc_as_d;
	bool arc_aar_pass;       /* the oldest AAR says it passed (arc_aar_passed) */
	unsigned arc_oldest_pass; /* RFC 8617 section 5.2 step 5 (arc.h) */
	char **arc_trusted;      /* arc_trusted_sealers, copied */
	size_t narc_trusted;
	/* DKIM */
	dkim_verify_t *dkim;
	bool dkim_started, dkim_done;
	sigres_t *sigs;
	size_t nsigs;
	/* the header section, for From */
	buf_t hdr;
	bool hdr_done;
	/* DMARC */
	dmarc_req_t *dmarc;
	bool dmarc_started, dmarc_done;
	enum dmarc_result dmarc_result;
	enum dmarc_policy dmarc_policy, dmarc_disposition;
	bool dmarc_sampled_out;
	char *from_domain, *dmarc_reason;
	struct rpending *rpend;  /* the answer's part for the report, until the verdict */
	/* the end */
	bool at_eom;
	uv_timer_t *timer;
	mailauth_cb cb;
	void *arg;
	buf_t reply, header, hold;
};

static void
timer_closed(uv_handle_t *h)
{
	xfree(h);
}

bool
mailauth_inbound_wanted(const config_t *c, bool smtp_listener, bool trusted)
{
	return smtp_listener && !trusted &&
	    (c->spf_check || c->dkim_verify || c->dmarc_check || c->arc_verify);
}

static enum act
act_of(const char *v)
{
	if (!v)
		return ACT_TAG;
	if (strcmp(v, "reject") == 0)
		return ACT_REJECT;
	if (strcmp(v, "defer") == 0)
		return ACT_DEFER;
	if (strcmp(v, "hold") == 0)
		return ACT_HOLD;
	return ACT_TAG;
}

/* a host name we can look SPF up for (not an address literal) */
static bool
helo_is_domain(const char *h)
{
	if (!h || !h[0] || h[0] == '[' || strlen(h) > 253)
		return false;
	bool alpha = false;
	for (const char *p = h; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (!(isalnum(c) || c == '-' || c == '.' || c == '_'))
			return false;
		if (isalpha(c))
			alpha = true;
	}
	return alpha && strchr(h, '.') != NULL;
}

mailauth_t *
mailauth_new(const config_t *c, const mailauth_client_t *cl)
{
	if (!c->spf_check && !c->dkim_verify && !c->dmarc_check && !c->arc_verify)
		return NULL;
	uv_loop_t *loop = cl->loop ? cl->loop : uv_default_loop();
	shared_res_t *res = res_get(loop, c);
	if (!res)
		return NULL; /* logged: the message goes unchecked */
	mailauth_t *m = xcalloc(1, sizeof *m);
	m->res = res;
	m->loop = loop;
	m->mail.on = c->spf_check;
	m->heloid.on = c->spf_check && c->spf_helo_check && helo_is_domain(cl->helo);
	m->dkim_on = c->dkim_verify;
	m->dmarc_on = c->dmarc_check;
	m->enforce = c->dmarc_enforce;
	m->reports = c->dmarc_reports;
	m->spf_fail_act = act_of(c->spf_fail_action);
	m->spf_temp_act = act_of(c->spf_temperror_action);
	m->quarantine_act = act_of(c->dmarc_quarantine_action);
	m->authserv_id = xstrdup(c->authserv_id ? c->authserv_id : c->hostname);
	m->hostname = xstrdup(c->hostname);
	m->timeout_ms = (c->mailauth_timeout ? c->mailauth_timeout : 30) * 1000u;
	m->dkim_max = c->dkim_max_signatures;
	if (cl->sa) {
		size_t sl = cl->sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
							  : sizeof(struct sockaddr_in);
		memcpy(&m->sa, cl->sa, sl);
	}
	m->ip = xstrdup(cl->ip ? cl->ip : "");
	m->helo = cl->helo ? xstrdup(cl->helo) : NULL;
	m->sid = xstrdup(cl->sid ? cl->sid : "-");
	m->qid = xstrdup(cl->qid ? cl->qid : "-");
	if (m->dmarc_on && !cur_psl) {
		/* mailauth_config_check() was not called at start: load it now,
		 * once (a failure is logged; alignment is then exact-match only) */
		static bool warned;
		buf_t err = BUF_INIT;
		if (mailauth_config_check(c, &err) < 0 && !warned) {
			warned = true;
			log_err("mailauth: %s", buf_cstr(&err));
		}
		buf_free(&err);
	}
	if (m->dmarc_on && cur_psl) {
		m->psl = cur_psl;
		cur_psl->refs++;
	}
	if (m->dkim_on || c->arc_verify) {
		dkim_verify_opts_t o;
		memset(&o, 0, sizeof o);
		o.max_sigs = m->dkim_max;
		o.timeout_ms = m->timeout_ms;
		if (m->dkim_on)
			m->dkim = dkim_verify_new(&o);
		if (c->arc_verify) {
			m->arc_on = true;
			m->arc = arc_verify_new(&o);
			m->narc_trusted = c->narc_trusted_sealers;
			m->arc_trusted = m->narc_trusted ? xcalloc(m->narc_trusted, sizeof(char *)) : NULL;
			for (size_t i = 0; i < m->narc_trusted; i++)
				m->arc_trusted[i] = xstrdup(c->arc_trusted_sealers[i]);
		}
	}
	return m;
}

static void maybe_finish(mailauth_t *m);

static void
spf_done(void *arg, const spf_answer_t *a)
{
	spf_part_t *p = arg;
	p->req = NULL;
	p->done = true;
	p->result = a->result;
	xfree(p->reason);
	p->reason = xstrdup(a->reason ? a->reason : "");
	xfree(p->explanation);
	p->explanation = xstrdup(a->explanation ? a->explanation : "");
}

static void
spf_mail_done(void *arg, const spf_answer_t *a)
{
	mailauth_t *m = arg;
	spf_done(&m->mail, a);
	maybe_finish(m);
}

static void
spf_helo_done(void *arg, const spf_answer_t *a)
{
	mailauth_t *m = arg;
	spf_done(&m->heloid, a);
	maybe_finish(m);
}

static void
spf_start(mailauth_t *m, spf_part_t *p, const char *domain, const char *sender, spf_cb cb)
{
	p->domain = xstrdup(domain);
	spf_options_t o = {.receiver = m->hostname, .timeout_ms = m->timeout_ms};
	p->req = spf_check_host(m->res->dns, (const struct sockaddr *)&m->sa, domain, sender,
	    m->helo ? m->helo : "unknown", &o, cb, m);
}

void
mailauth_mail(mailauth_t *m, const char *sender)
{
	if (!m)
		return;
	if (m->mail.on) {
		const char *at = sender ? strrchr(sender, '@') : NULL;
		if (sender && sender[0] && at && at[1]) {
			m->mail.identity = xstrdup(sender);
			spf_start(m, &m->mail, at + 1, sender, spf_mail_done);
		} else if ((!sender || !sender[0]) && helo_is_domain(m->helo)) {
			/* RFC 7208 section 2.4: the null sender is postmaster@HELO */
			m->mail.identity = xasprintf("postmaster@%s", m->helo);
			spf_start(m, &m->mail, m->helo, m->mail.identity, spf_mail_done);
		} else {
			/* nothing to check: an address literal as HELO, say */
			m->mail.identity = xstrdup(sender && sender[0] ? sender : "");
			m->mail.done = true;
			m->mail.result = SPF_NONE;
			m->mail.reason = xstrdup("no domain to check");
			m->mail.explanation = xstrdup("");
		}
	}
	if (m->heloid.on) {
		m->heloid.identity = xstrdup(m->helo);
		char *s = xasprintf("postmaster@%s", m->helo);
		spf_start(m, &m->heloid, m->helo, s, spf_helo_done);
		xfree(s);
	}
}

void
mailauth_data(mailauth_t *m, const char *p, size_t n)
{
	if (!m || n == 0)
		return;
	if (m->dkim)
		dkim_verify_feed(m->dkim, p, n);
	if (m->arc)
		arc_verify_feed(m->arc, p, n);
	if (m->hdr_done)
		return;
	size_t from = m->hdr.len > 3 ? m->hdr.len - 3 : 0;
	size_t take = n;
	if (m->hdr.len + take > HDR_MAX)
		take = HDR_MAX - m->hdr.len;
	buf_append(&m->hdr, p, take);
	for (size_t i = from; i + 1 < m->hdr.len; i++) {
		if (m->hdr.data[i] != '\n')
			continue;
		size_t j = i + 1;
		if (m->hdr.data[j] == '\r' && j + 1 < m->hdr.len && m->hdr.data[j + 1] == '\n')
			j++;
		else if (m->hdr.data[j] != '\n')
			continue;
		/* an empty line: the header section ends here */
		m->hdr.len = j + 1;
		m->hdr.data[m->hdr.len] = '\0';
		m->hdr_done = true;
		return;
	}
	if (m->hdr.len >= HDR_MAX)
		m->hdr_done = true;
}

static void
arc_done(void *arg, const arc_verdict_t *v)
{
	mailauth_t *m = arg;
	m->arc_done = true;
	m->arc_result = v->result;
	m->arc_n = v->instances;
	m->arc_reason = xstrdup(v->reason ? v->reason : "");
	m->arc_as_d = xstrdup(v->as_d ? v->as_d : "");
	m->arc_aar_pass = v->aar1 && arc_aar_passed(v->aar1, v->aar1_len);
	m->arc_oldest_pass = v->oldest_pass;
	maybe_finish(m);
}

static void
dkim_done(void *arg, const dkim_sig_result_t *sigs, size_t n)
{
	mailauth_t *m = arg;
	m->dkim_done = true;
	m->sigs = n ? xcalloc(n, sizeof *m->sigs) : NULL;
	m->nsigs = n;
	for (size_t i = 0; i < n; i++) {
		sigres_t *s = &m->sigs[i];
		s->result = sigs[i].result;
		s->testing = sigs[i].testing;
		s->d = xstrdup(sigs[i].d ? sigs[i].d : "");
		s->i = xstrdup(sigs[i].i ? sigs[i].i : "");
		s->s = xstrdup(sigs[i].s ? sigs[i].s : "");
		s->a = xstrdup(sigs[i].a ? sigs[i].a : "");
		s->b = xstrdup(sigs[i].b ? sigs[i].b : "");
		s->reason = xstrdup(sigs[i].reason ? sigs[i].reason : "");
	}
	maybe_finish(m);
}

/* ---- aggregate reports ---- */

static dmarc_report_store_t rstore;
static bool rstore_init;

static uint64_t rgen, rgen_saved; /* changes to rstore, and the last saved */

/* What the aggregate report needs of the DMARC answer, copied at
 * dmarc_done (the answer dies with the callback) and counted at the
 * verdict, once the ARC override is known. */
typedef struct rpending {
	dmarc_record_t rec; /* rua copied, ruf not */
	char *record_domain, *from_domain;
	enum dmarc_result result;
	enum dmarc_policy disposition;
	bool sampled_out, spf_aligned, dkim_aligned;
} rpending_t;

static void
rpending_free(rpending_t *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->rec.nrua; i++)
		xfree(r->rec.rua[i]);
	xfree(r->record_domain);
	xfree(r->from_domain);
	xfree(r);
}

static rpending_t *
rpending_new(const dmarc_answer_t *a)
{
	if (!a->rec || (a->result != DMARC_PASS && a->result != DMARC_FAIL))
		return NULL;
	rpending_t *r = xcalloc(1, sizeof *r);
	r->rec = *a->rec;
	for (size_t i = 0; i < a->rec->nrua; i++)
		r->rec.rua[i] = xstrdup(a->rec->rua[i]);
	r->rec.nruf = 0;
	r->record_domain = xstrdup(a->record_domain);
	r->from_domain = xstrdup(a->from_domain);
	r->result = a->result;
	r->disposition = a->disposition;
	r->sampled_out = a->sampled_out;
	r->spf_aligned = a->spf_aligned;
	r->dkim_aligned = a->dkim_aligned;
	return r;
}

/* Count the message for its domain's aggregate report. rescuer: the ARC
 * sealer whose chain overrode a DMARC failure (trusted_forwarder), or
 * NULL. */
static void
report_count(const mailauth_t *m, const rpending_t *a, const char *rescuer)
{
	if (!rstore_init) {
		dmarc_report_init(&rstore, time(NULL));
		rstore_init = true;
	}
	enum dmarc_policy applied = DMARC_P_NONE;
	if (a->result == DMARC_FAIL && m->enforce && !rescuer) {
		if (a->disposition == DMARC_P_REJECT)
			applied = DMARC_P_REJECT;
		else if (a->disposition == DMARC_P_QUARANTINE && m->quarantine_act == ACT_HOLD)
			applied = DMARC_P_QUARANTINE;
	}
	dmarc_report_in_t in;
	memset(&in, 0, sizeof in);
	in.policy_domain = a->record_domain;
	in.rec = &a->rec;
	in.source_ip = m->ip;
	in.header_from = a->from_domain;
	in.envelope_from = m->mail.domain ? m->mail.domain : "";
	in.disposition = applied;
	in.dkim_aligned = a->dkim_aligned;
	in.spf_aligned = a->spf_aligned;
	in.sampled_out = a->sampled_out;
	in.not_enforced = a->result == DMARC_FAIL && applied != a->disposition;
	/* RFC 7489 Appendix C's PolicyOverrideType: trusted_forwarder
	 * ("other evidence linking the message to a locally-maintained list
	 * of known and trusted forwarders"), the evidence being the ARC chain */
	buf_t cm = BUF_INIT;
	if (rescuer) {
		buf_printf(&cm, "arc=pass as.d=%s", rescuer);
		in.override_type = "trusted_forwarder";
		in.override_comment = buf_cstr(&cm);
	}
	for (size_t i = 0; i < m->nsigs && in.ndkim < DMARC_REPORT_MAX_DKIM; i++) {
		if (!m->sigs[i].d[0])
			continue;
		in.dkim_domain[in.ndkim] = m->sigs[i].d;
		in.dkim_selector[in.ndkim] = m->sigs[i].s;
		in.dkim_result[in.ndkim++] = dkim_result_str(m->sigs[i].result);
	}
	if (m->mail.on && m->mail.domain) {
		in.spf_domain = m->mail.domain;
		in.spf_scope = "mfrom";
		in.spf_result = spf_result_str(m->mail.result);
	}
	dmarc_report_add(&rstore, &in);
	rgen++;
	buf_free(&cm);
}

bool
mailauth_reports_save(buf_t *out)
{
	if (!rstore_init || rgen == rgen_saved)
		return false;
	dmarc_report_save(&rstore, out);
	rgen_saved = rgen;
	return true;
}

int
mailauth_reports_load(const char *data, size_t len, buf_t *err)
{
	if (!rstore_init) {
		dmarc_report_init(&rstore, time(NULL));
		rstore_init = true;
	}
	if (dmarc_report_load(&rstore, data, len, err) < 0)
		return -1;
	rgen_saved = rgen;
	return 0;
}

time_t
mailauth_reports_begin(void)
{
	if (!rstore_init) {
		dmarc_report_init(&rstore, time(NULL));
		rstore_init = true;
	}
	return rstore.begin;
}

/* One flush: the period's domains, the section 7.1 checks in flight. */
typedef struct rflush {
	dmarc_report_domain_t *domains;
	dmarc_report_meta_t meta;
	char *org, *email, *receiver;
	shared_res_t *res;
	shared_psl_t *psl;
	mailauth_report_cb submit;
	void *arg;
	size_t pending;
} rflush_t;

typedef struct rsend {
	rflush_t *f;
	const dmarc_report_domain_t *d;
	char *rcpt;
	uint64_t limit;
} rsend_t;

static void
rflush_put(rflush_t *f)
{
	if (--f->pending > 0)
		return;
	dmarc_report_domains_free(f->domains);
	xfree(f->org);
	xfree(f->email);
	xfree(f->receiver);
	res_put(f->res);
	psl_put(f->psl);
	xfree(f);
}

static void
rsend_verified(void *arg, bool ok)
{
	rsend_t *s = arg;
	rflush_t *f = s->f;
	if (!ok) {
		log_info("dmarc report: %s for %s not sent: %s does not accept reports for it "
			 "(RFC 7489 section 7.1)", s->rcpt, s->d->domain, strrchr(s->rcpt, '@') + 1);
	} else {
		buf_t msg = BUF_INIT, err = BUF_INIT;
		if (dmarc_report_message(&f->meta, s->d, s->rcpt, &msg, &err) < 0)
			log_err("dmarc report for %s: %s", s->d->domain, buf_cstr(&err));
		else if (s->limit && msg.len > s->limit)
			log_info("dmarc report: %s for %s not sent: %zu octets, over its limit of %llu",
			    s->rcpt, s->d->domain, msg.len, (unsigned long long)s->limit);
		else
			f->submit(f->arg, f->email, s->rcpt, msg.data, msg.len);
		buf_free(&msg);
		buf_free(&err);
	}
	xfree(s->rcpt);
	xfree(s);
	rflush_put(f);
}

void
mailauth_reports_flush(uv_loop_t *loop, const config_t *c, mailauth_report_cb submit, void *arg)
{
	if (!rstore_init) {
		dmarc_report_init(&rstore, time(NULL));
		rstore_init = true;
	}
	time_t now = time(NULL), begin;
	dmarc_report_domain_t *ds = dmarc_report_take(&rstore, now, &begin);
	rgen++; /* a new period (to be saved even when empty) */
	if (!ds)
		return;
	shared_res_t *res = res_get(loop, c);
	if (!res) {
		dmarc_report_domains_free(ds);
		return;
	}
	rflush_t *f = xcalloc(1, sizeof *f);
	f->domains = ds;
	f->org = xstrdup(c->dmarc_report_org ? c->dmarc_report_org : c->hostname);
	f->email = xstrdup(c->dmarc_report_email ? c->dmarc_report_email : "postmaster");
	f->receiver = xstrdup(c->hostname);
	f->meta = (dmarc_report_meta_t){f->org, f->email, f->receiver, begin, now};
	f->res = res;
	f->psl = cur_psl;
	if (cur_psl)
		cur_psl->refs++;
	f->submit = submit;
	f->arg = arg;
	f->pending = 1; /* this function's own reference */
	for (const dmarc_report_domain_t *d = ds; d; d = d->next) {
		for (size_t i = 0; i < d->nrua; i++) {
			buf_t addr = BUF_INIT;
			uint64_t limit;
			if (dmarc_report_mailto(d->rua[i], &addr, &limit) < 0) {
				buf_free(&addr);
				continue;
			}
			rsend_t *s = xcalloc(1, sizeof *s);
			s->f = f;
			s->d = d;
			s->rcpt = buf_steal(&addr);
			s->limit = limit;
			f->pending++;
			dmarc_report_verify(res->dns, f->psl ? f->psl->psl : NULL, d->domain,
			    strrchr(s->rcpt, '@') + 1, rsend_verified, s);
		}
	}
	rflush_put(f);
}

static void
dmarc_done(void *arg, const dmarc_answer_t *a)
{
	mailauth_t *m = arg;
	if (m->reports) {
		rpending_free(m->rpend);
		m->rpend = rpending_new(a);
	}
	m->dmarc = NULL;
	m->dmarc_done = true;
	m->dmarc_result = a->result;
	m->dmarc_policy = a->policy;
	m->dmarc_disposition = a->disposition;
	m->dmarc_sampled_out = a->sampled_out;
	xfree(m->dmarc_reason);
	m->dmarc_reason = xstrdup(a->reason);
	maybe_finish(m);
}

static void
dmarc_start(mailauth_t *m)
{
	m->dmarc_started = true;
	buf_t d = BUF_INIT;
	enum dmarc_from_status st = dmarc_from_domain(m->hdr.data ? m->hdr.data : "", m->hdr.len,
	    &d);
	if (st != DMARC_FROM_OK) {
		/* RFC 7489 section 6.6.1: no single author domain to judge */
		m->dmarc_done = true;
		m->dmarc_result = DMARC_PERMERROR;
		m->dmarc_reason = xstrdup(dmarc_from_status_str(st));
		buf_free(&d);
		return;
	}
	m->from_domain = buf_steal(&d);
	const char **pass = m->nsigs ? xcalloc(m->nsigs, sizeof *pass) : NULL;
	size_t np = 0;
	/* a key in testing mode (t=y): "Verifiers MUST NOT treat messages from
	 * Signers in testing mode differently from unsigned email" (RFC 6376
	 * section 3.6.1), so it does not make DMARC pass */
	for (size_t i = 0; i < m->nsigs; i++)
		if (m->sigs[i].result == DKIM_PASS && !m->sigs[i].testing)
			pass[np++] = m->sigs[i].d;
	dmarc_input_t in = {
	    .from_domain = m->from_domain,
	    .spf_domain = m->mail.domain,
	    .spf_pass = m->mail.on && m->mail.done && m->mail.result == SPF_PASS,
	    .dkim_pass_domains = pass,
	    .ndkim = np,
	    .roll = arc4random_uniform(100),
	};
	m->dmarc = dmarc_check(m->res->dns, m->psl ? m->psl->psl : NULL, &in, dmarc_done, m);
	xfree(pass);
}

static const char *
spf_reply_domain(const spf_part_t *p)
{
	return p->domain ? p->domain : "";
}

METRIC_COUNTER(m_results, "tern_mailauth_results_total",
    "Inbound mail authentication results, by method (spf, spf_helo, dkim per signature, arc, dmarc)",
    "method", "result");

/* The verdict: the field, the action, the log line; then the callback. */
static void
verdict(mailauth_t *m)
{
	authres_t ar;
	authres_begin(&ar, m->authserv_id);
	buf_t log = BUF_INIT;
	if (m->mail.on) {
		authres_prop_t pr[] = {{"smtp.mailfrom", m->mail.identity}};
		authres_add(&ar, "spf", spf_result_str(m->mail.result), NULL, NULL, pr, 1);
		buf_printf(&log, "spf=%s smtp.mailfrom=<%s>", spf_result_str(m->mail.result),
		    m->mail.identity ? m->mail.identity : "");
		metric_inc(&m_results, "spf", spf_result_str(m->mail.result));
	}
	if (m->heloid.on) {
		authres_prop_t pr[] = {{"smtp.helo", m->heloid.identity}};
		authres_add(&ar, "spf", spf_result_str(m->heloid.result), NULL, NULL, pr, 1);
		buf_printf(&log, "%sspf_helo=%s smtp.helo=%s", log.len ? " " : "",
		    spf_result_str(m->heloid.result), m->heloid.identity);
		metric_inc(&m_results, "spf_helo", spf_result_str(m->heloid.result));
	}
	if (m->dkim_on) {
		if (m->nsigs == 0) {
			authres_add(&ar, "dkim", "none", NULL, NULL, NULL, 0);
			buf_printf(&log, "%sdkim=none", log.len ? " " : "");
			metric_inc(&m_results, "dkim", "none");
		}
		for (size_t i = 0; i < m->nsigs; i++) {
			const sigres_t *s = &m->sigs[i];
			authres_prop_t pr[] = {{"header.d", s->d}, {"header.i", s->i}, {"header.s", s->s},
			    {"header.a", s->a}, {"header.b", s->b}};
			const char *res = dkim_result_str(s->result);
			const char *cm = s->testing ? "key in test mode, t=y"
			    : s->result == DKIM_PASS || !s->reason[0] ? NULL : s->reason;
			authres_add(&ar, "dkim", res, cm, NULL, pr, 5);
			buf_printf(&log, "%s%sdkim=%s (d=%s s=%s%s%s)", log.len && i == 0 ? " " : "",
			    i ? "," : "", res, s->d, s->s, s->result == DKIM_PASS ? "" : ": ",
			    s->result == DKIM_PASS ? "" : s->reason);
			metric_inc(&m_results, "dkim", res);
		}
	}
	if (m->arc_on) {
		/* RFC 8617 section 10.1: arc=none/pass/fail; the comment says how
		 * many sets and who sealed last, or why it failed */
		const char *ar_res = m->arc_result == ARC_PASS ? "pass"
		    : m->arc_result == ARC_FAIL ? "fail" : "none";
		buf_t cm = BUF_INIT;
		if (m->arc_result == ARC_PASS)
			buf_printf(&cm, "i=%u as.d=%s", m->arc_n, m->arc_as_d);
		else if (m->arc_result == ARC_FAIL)
			buf_puts(&cm, m->arc_reason && m->arc_reason[0] ? m->arc_reason : "chain broken");
		/* RFC 8617 section 10.1: header.oldest-pass with a passing chain
		 * (0: every AMS verified) */
		char op[16];
		snprintf(op, sizeof op, "%u", m->arc_oldest_pass);
		authres_prop_t pr[] = {{"header.oldest-pass", op}, {"smtp.remote-ip", m->ip}};
		authres_add(&ar, "arc", ar_res, buf_cstr(&cm), NULL,
		    m->arc_result == ARC_PASS ? pr : pr + 1,
		    m->arc_result == ARC_NONE ? 0 : m->arc_result == ARC_PASS ? 2 : 1);
		buf_printf(&log, "%sarc=%s", log.len ? " " : "", ar_res);
		metric_inc(&m_results, "arc", ar_res);
		if (m->arc_result != ARC_NONE)
			buf_printf(&log, " (i=%u)", m->arc_n);
		buf_free(&cm);
	}
	/* RFC 8617 section 7.2 (local policy), RFC 7489 section 7.2's
	 * trusted_forwarder: a passing chain sealed last by a domain in
	 * arc_trusted_sealers, whose oldest AAR says the message passed,
	 * overrides a DMARC failure (disposition none: not refused, not held) */
	const char *arc_rescuer = m->dmarc_on && m->dmarc_result == DMARC_FAIL && m->arc_on &&
	    m->arc_result == ARC_PASS && m->arc_aar_pass && m->arc_as_d && m->arc_as_d[0] &&
	    arc_domain_listed(m->arc_as_d, m->arc_trusted, m->narc_trusted) ? m->arc_as_d : NULL;
	if (arc_rescuer)
		m->dmarc_disposition = DMARC_P_NONE;
	if (m->rpend) {
		report_count(m, m->rpend, arc_rescuer);
		rpending_free(m->rpend);
		m->rpend = NULL;
	}
	if (m->dmarc_on) {
		buf_t cm = BUF_INIT;
		if (m->dmarc_result == DMARC_FAIL || m->dmarc_result == DMARC_PASS)
			buf_printf(&cm, "p=%s dis=%s%s", dmarc_policy_str(m->dmarc_policy),
			    dmarc_policy_str(m->dmarc_result == DMARC_FAIL ? m->dmarc_disposition
									 : DMARC_P_NONE),
			    m->dmarc_sampled_out ? " pct" : "");
		else if (m->dmarc_reason && m->dmarc_reason[0])
			buf_puts(&cm, m->dmarc_reason);
		if (arc_rescuer)
			buf_printf(&cm, " override=trusted_forwarder arc.sealer=%s", arc_rescuer);
		authres_prop_t pr[] = {{"header.from", m->from_domain}};
		authres_add(&ar, "dmarc", dmarc_result_str(m->dmarc_result), buf_cstr(&cm), NULL, pr, 1);
		buf_printf(&log, "%sdmarc=%s header.from=%s", log.len ? " " : "",
		    dmarc_result_str(m->dmarc_result), m->from_domain ? m->from_domain : "-");
		metric_inc(&m_results, "dmarc", dmarc_result_str(m->dmarc_result));
		if (m->dmarc_result == DMARC_FAIL || m->dmarc_result == DMARC_PASS)
			buf_printf(&log, " policy=%s disposition=%s", dmarc_policy_str(m->dmarc_policy),
			    dmarc_policy_str(m->dmarc_result == DMARC_FAIL ? m->dmarc_disposition
									 : DMARC_P_NONE));
		else if (m->dmarc_reason)
			buf_printf(&log, " (%s)", m->dmarc_reason);
		if (arc_rescuer)
			buf_printf(&log, " override=trusted_forwarder arc_sealer=%s", arc_rescuer);
		buf_free(&cm);
	}
	buf_puts(&m->header, authres_end(&ar));
	authres_free(&ar);

	mailauth_verdict_t v;
	memset(&v, 0, sizeof v);
	v.action = MAILAUTH_CONTINUE;
	v.header = buf_cstr(&m->header);
	const char *action = "accept", *why = NULL;
	bool dmarc_pass = m->dmarc_on && m->dmarc_result == DMARC_PASS;
	if (m->mail.on && m->mail.result == SPF_FAIL && m->spf_fail_act == ACT_REJECT && !dmarc_pass) {
		/* RFC 7372 section 3.2; the explanation (exp=) is the sender's text */
		const char *ex = m->mail.explanation;
		bool ex_ok = ex && ex[0];
		for (const char *q = ex; ex_ok && *q; q++)
			if ((unsigned char)*q < 0x20 || (unsigned char)*q >= 0x7f)
				ex_ok = false;
		buf_printf(&m->reply, "550 5.7.23 SPF validation failed for %s%s%.200s",
		    spf_reply_domain(&m->mail), ex_ok ? ": " : "", ex_ok ? ex : "");
		v.action = MAILAUTH_REJECT;
		action = "reject";
	} else if (m->mail.on && m->mail.result == SPF_TEMPERROR && m->spf_temp_act == ACT_DEFER) {
		buf_printf(&m->reply, "451 4.7.24 SPF validation error (temporary DNS error) for %s",
		    spf_reply_domain(&m->mail));
		v.action = MAILAUTH_TEMPFAIL;
		action = "defer";
	} else if (m->dmarc_on && m->enforce && m->dmarc_result == DMARC_FAIL &&
	    m->dmarc_disposition == DMARC_P_REJECT) {
		buf_printf(&m->reply, "550 5.7.1 Rejected by the DMARC policy of %s (RFC 7489)",
		    m->from_domain);
		v.action = MAILAUTH_REJECT;
		action = "reject";
	} else if (m->dmarc_on && m->enforce && m->dmarc_result == DMARC_FAIL &&
	    m->dmarc_disposition == DMARC_P_QUARANTINE && m->quarantine_act == ACT_HOLD) {
		buf_printf(&m->hold, "DMARC quarantine policy of %s", m->from_domain);
		v.action = MAILAUTH_HOLD;
		v.hold_reason = buf_cstr(&m->hold);
		action = "hold";
		why = v.hold_reason;
	}
	if (v.action == MAILAUTH_REJECT || v.action == MAILAUTH_TEMPFAIL) {
		v.reply = buf_cstr(&m->reply);
		why = v.reply;
	}
	maillog_mailauth(m->qid, m->sid, m->ip, buf_cstr(&log), action, why);
	buf_free(&log);
	mailauth_cb cb = m->cb;
	void *arg = m->arg;
	m->cb = NULL;
	cb(arg, &v); /* may free m */
}

static void
timer_fire(uv_timer_t *t)
{
	mailauth_t *m = t->data;
	uv_close((uv_handle_t *)t, timer_closed);
	m->timer = NULL;
	/* the time is up: what is missing is a temperror */
	if (!m->mail.done && m->mail.on) {
		spf_cancel(m->mail.req);
		m->mail.req = NULL;
		m->mail.done = true;
		m->mail.result = SPF_TEMPERROR;
	}
	if (!m->heloid.done && m->heloid.on) {
		spf_cancel(m->heloid.req);
		m->heloid.req = NULL;
		m->heloid.done = true;
		m->heloid.result = SPF_TEMPERROR;
	}
	if (m->dkim_on && !m->dkim_done) {
		dkim_verify_free(m->dkim);
		m->dkim = NULL;
		m->dkim_done = true;
		/* the signatures are unknown: one temperror stands for them */
		m->sigs = xcalloc(1, sizeof *m->sigs);
		m->nsigs = 1;
		m->sigs[0] = (sigres_t){DKIM_TEMPERROR, false, xstrdup(""), xstrdup(""), xstrdup(""), xstrdup(""),
		    xstrdup(""), xstrdup("timeout")};
	}
	if (m->arc_on && !m->arc_done) {
		/* a key that cannot be had makes the chain fail (arc.h) */
		arc_verify_free(m->arc);
		m->arc = NULL;
		m->arc_done = true;
		m->arc_result = ARC_FAIL;
		m->arc_reason = xstrdup("timeout");
		m->arc_as_d = xstrdup("");
	}
	if (m->dmarc_on && !m->dmarc_done) {
		dmarc_cancel(m->dmarc);
		m->dmarc = NULL;
		m->dmarc_done = true;
		m->dmarc_started = true;
		m->dmarc_result = DMARC_TEMPERROR;
		xfree(m->dmarc_reason);
		m->dmarc_reason = xstrdup("timeout");
	}
	verdict(m);
}

/* Once every check is done (after EOM): the verdict, from a timer so that
 * it never runs inside mailauth_eom(). */
static void
maybe_finish(mailauth_t *m)
{
	if (!m->at_eom || !m->cb)
		return;
	if ((m->mail.on && !m->mail.done) || (m->heloid.on && !m->heloid.done) ||
	    (m->dkim_on && !m->dkim_done) || (m->arc_on && !m->arc_done))
		return;
	if (m->dmarc_on && !m->dmarc_started)
		dmarc_start(m);
	if (m->dmarc_on && !m->dmarc_done)
		return;
	if (m->timer) {
		/* re-armed at 0: the verdict comes on the next loop turn */
		uv_timer_stop(m->timer);
		uv_timer_start(m->timer, timer_fire, 0, 0);
	}
}

void
mailauth_eom(mailauth_t *m, mailauth_cb cb, void *arg)
{
	m->cb = cb;
	m->arg = arg;
	m->at_eom = true;
	m->timer = xmalloc(sizeof *m->timer);
	uv_timer_init(m->loop, m->timer);
	m->timer->data = m;
	uv_timer_start(m->timer, timer_fire, m->timeout_ms, 0);
	if (m->dkim_on) {
		m->dkim_started = true;
		dkim_verify_finish(m->dkim, m->res->dns, dkim_done, m);
	}
	if (m->arc_on)
		arc_verify_finish(m->arc, m->res->dns, arc_done, m);
	maybe_finish(m);
}

static void
spf_part_free(spf_part_t *p)
{
	spf_cancel(p->req);
	xfree(p->domain);
	xfree(p->identity);
	xfree(p->reason);
	xfree(p->explanation);
}

void
mailauth_free(mailauth_t *m)
{
	if (!m)
		return;
	spf_part_free(&m->mail);
	spf_part_free(&m->heloid);
	dkim_verify_free(m->dkim);
	arc_verify_free(m->arc);
	xfree(m->arc_reason);
	xfree(m->arc_as_d);
	for (size_t i = 0; i < m->narc_trusted; i++)
		xfree(m->arc_trusted[i]);
	xfree(m->arc_trusted);
	dmarc_cancel(m->dmarc);
	if (m->timer) {
		uv_timer_stop(m->timer);
		uv_close((uv_handle_t *)m->timer, timer_closed);
	}
	for (size_t i = 0; i < m->nsigs; i++) {
		sigres_t *s = &m->sigs[i];
		xfree(s->d);
		xfree(s->i);
		xfree(s->s);
		xfree(s->a);
		xfree(s->b);
		xfree(s->reason);
	}
	xfree(m->sigs);
	buf_free(&m->hdr);
	buf_free(&m->reply);
	buf_free(&m->header);
	buf_free(&m->hold);
	xfree(m->from_domain);
	xfree(m->dmarc_reason);
	rpending_free(m->rpend);
	xfree(m->authserv_id);
	xfree(m->hostname);
	xfree(m->ip);
	xfree(m->helo);
	xfree(m->sid);
	xfree(m->qid);
	res_put(m->res);
	psl_put(m->psl);
	xfree(m);
}

size_t
mailauth_strip_ours(const config_t *c, buf_t *content)
{
	return authres_strip(content, c->authserv_id ? c->authserv_id : c->hostname);
}
