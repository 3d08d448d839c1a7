/*
 * session_auth.c - ACCEPT: AUTH in one SMTP session (RFC 4954; PLAIN,
 * RFC 4616, and LOGIN).
 *
 * Two backends (auth_backend): the password file, where the SASL exchange
 * is decoded here and the password checked on the thread pool (auth.c);
 * and Dovecot, where the exchange is relayed as it is to Dovecot's auth
 * socket (auth_dovecot.h) and Dovecot's answer decides, its user= being
 * the authenticated name. Either way the session is paused (ST_WAIT)
 * while the answer is awaited and reads the client's lines in ST_AUTH.
 * Guarantees:
 *  - AUTH is refused without TLS (538, RFC 4954 §6), on the local socket,
 *    and once authenticated.
 *  - Each failure is answered after a delay that doubles (at most
 *    AUTH_DELAY_MAX_MS); auth_max_failures ends the session with 421.
 *  - Passwords are wiped after use and never logged, nor is the user name
 *    of a failed attempt (it may be a password typed in the wrong field).
 *  - Dovecot down, slow or unsure (FAIL temp): 454 4.7.0, the session
 *    goes on and the failure does not count; its FAIL: 535 5.7.8 as for
 *    the password file, after the same delay.
 * Must not: block, or keep config/tables pointers across events.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/xalloc.h"
#include "smtpd/auth_dovecot.h"
#include "smtpd/session_int.h"

#define AUTH_DELAY_MAX_MS 30000

/* ---- AUTH (RFC 4954) ---- */

static void sess_auth_check(session_t *s, char *user, char *pass);

METRIC_COUNTER(m_auth, "tern_smtp_auth_total", "AUTH attempts, by mechanism and result (ok, failed)",
    "method", "result");

static const char *
mech_name(session_t *s)
{
	return s->mech == MECH_PLAIN ? "PLAIN" : "LOGIN";
}

void
sess_auth_end(session_t *s)
{
	xfree(s->auth_pending);
	s->auth_pending = NULL;
	s->auth_step = 0;
	if (s->state == ST_AUTH || s->state == ST_WAIT)
		s->state = ST_READY;
}

static void
sess_auth_timer_closed(uv_handle_t *h)
{
	xfree(h);
}

/* the session ends: its failure delay and its Dovecot request with it */
void
sess_auth_timer_stop(session_t *s)
{
	if (s->auth_req) {
		dvauth_abort(s->auth_req); /* no callback after this */
		s->auth_req = NULL;
	}
	if (!s->auth_timer)
		return;
	uv_timer_stop(s->auth_timer);
	uv_close((uv_handle_t *)s->auth_timer, sess_auth_timer_closed);
	s->auth_timer = NULL;
}

/* the failure delay is over: say 535, or 421 after too many */
static void
sess_auth_fail_reply(session_t *s)
{
	s->state = ST_READY;
	sess_reply_error(s, "AUTH", "535 5.7.8 Error: authentication credentials invalid", false);
	if (s->auth_failures >= CFG(s)->auth_max_failures) {
		sess_reply(s, "421 4.7.0 Error: too many failed authentications; closing connection");
		log_info("%s: too many failed authentications client=%s failures=%u", s->id, s->ip,
		    s->auth_failures);
		sess_close(s);
		conn_flush(s->conn);
		return;
	}
	sess_resume(s);
}

static void
on_auth_timer(uv_timer_t *t)
{
	session_t *s = t->data;
	sess_auth_timer_stop(s);
	sess_auth_fail_reply(s);
}

static void
sess_auth_succeeded(session_t *s, const char *user)
{
	s->auth_user = xstrdup(user);
		s->relay_ok = true;
		filter_macro(s->filter, "{auth_type}", mech_name(s));
		filter_macro(s->filter, "{auth_authen}", user);
	log_info("%s: auth ok user=%s method=%s client=%s", s->id, user, mech_name(s), s->ip);
	metric_inc(&m_auth, mech_name(s), "ok");
	sess_auth_end(s);
	sess_reply(s, "235 2.7.0 Authentication successful");
	sess_resume(s);
}

/* a refusal: 535 after the delay (why: Dovecot's reason, for the log) */
static void
sess_auth_failed(session_t *s, const char *why)
{
	s->auth_failures++;
	/* no user name here: a password typed into the name field would be logged */
	log_info("%s: auth failed method=%s client=%s failures=%u%s%s%s", s->id, mech_name(s), s->ip,
	    s->auth_failures, why ? " reason=\"" : "", why ? why : "", why ? "\"" : "");
	metric_inc(&m_auth, mech_name(s), "failed");
	sess_auth_end(s);
	s->state = ST_WAIT;
	/* slow down guessing: the delay doubles with each failure */
	uint64_t ms = (uint64_t)CFG(s)->auth_failure_delay * 1000u;
	for (unsigned i = 1; i < s->auth_failures && ms < AUTH_DELAY_MAX_MS; i++)
		ms *= 2;
	if (ms > AUTH_DELAY_MAX_MS)
		ms = AUTH_DELAY_MAX_MS;
	if (ms == 0) {
		sess_auth_fail_reply(s);
		return;
	}
	s->auth_timer = xmalloc(sizeof *s->auth_timer);
	uv_timer_init(T(s)->loop, s->auth_timer);
	s->auth_timer->data = s;
	uv_timer_start(s->auth_timer, on_auth_timer, ms, 0);
}

static void
sess_auth_verified(void *arg, bool ok)
{
	session_t *s = arg;
	if (sess_work_returned(s))
		return;
	if (ok)
		sess_auth_succeeded(s, s->auth_pending);
	else
		sess_auth_failed(s, NULL);
}

/* ---- auth_backend = dovecot ---- */

/* Dovecot's answer to the request or to the client's last response */
static void
sess_dovecot_answer(void *arg, enum dvauth_result r, const char *text)
{
	session_t *s = arg;
	if (r == DVAUTH_CONT) {
		/* a challenge: relayed as it is (base64, checked) */
		s->state = ST_AUTH;
		char line[16 + 12288];
		snprintf(line, sizeof line, "334 %s", text ? text : "");
		sess_reply(s, line);
		sess_resume(s);
		return;
	}
	s->auth_req = NULL; /* gone with this answer */
	if (r == DVAUTH_OK) {
		sess_auth_succeeded(s, text);
		return;
	}
	if (r == DVAUTH_FAIL) {
		sess_auth_failed(s, text);
		return;
	}
	log_warn("%s: auth temporary failure method=%s client=%s reason=\"dovecot: %s\"", s->id,
	    mech_name(s), s->ip, text ? text : "unknown");
	sess_auth_end(s);
	sess_reply_error(s, "AUTH", "454 4.7.0 Temporary authentication failure; try again later", false);
	sess_resume(s);
}

/* the local address as text, for Dovecot's lip= and lport= */
static void
local_addr(session_t *s, char *ip, size_t n, int *port)
{
	const struct sockaddr *sa = conn_local_addr(s->conn);
	ip[0] = '\0';
	*port = 0;
	if (sa && sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		uv_ip4_name(in, ip, n);
		*port = ntohs(in->sin_port);
	} else if (sa && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		uv_ip6_name(in6, ip, n);
		*port = ntohs(in6->sin6_port);
		if (strncmp(ip, "::ffff:", 7) == 0 && strchr(ip + 7, '.'))
			memmove(ip, ip + 7, strlen(ip + 7) + 1);
	}
}

/* AUTH mech [initial-response] relayed to Dovecot */
static void
sess_dovecot_begin(session_t *s, dvauth_t *dv, const char *mech, const char *ir, size_t irn)
{
	char lip[64];
	int lport;
	local_addr(s, lip, sizeof lip, &lport);
	if (ir && irn == 1 && ir[0] == '=')
		irn = 0; /* RFC 4954 §4: an empty initial response */
	dvauth_params_t p = {
		.mech = mech, .session = s->id, .tls = s->tls, .lip = lip[0] ? lip : NULL, .rip = s->ip,
		.lport = lport, .rport = s->port, .resp = ir, .resp_len = ir ? irn : 0,
	};
	s->auth_req = dvauth_begin(dv, &p, sess_dovecot_answer, s);
	if (!s->auth_req) {
		sess_auth_end(s);
		sess_reply_error(s, "AUTH", "501 5.5.2 Error: malformed base64 in AUTH initial response",
		    true);
		return;
	}
	sess_pause(s);
}

/* user and pass are the caller's allocations; pass is wiped here */
static void
sess_auth_check(session_t *s, char *user, char *pass)
{
	const passwd_db_t *db = server_auth_db(s->srv);
	const char *hash = db && passwd_db_user_ok(user) ? passwd_db_hash(db, user) : NULL;
	xfree(s->auth_pending);
	s->auth_pending = user;
	sess_pause(s);
	s->busy++;
	auth_verify(T(s)->loop, hash, pass, sess_auth_verified, s);
	explicit_bzero(pass, strlen(pass));
	xfree(pass);
}

/* one SASL response line (or the initial response) */
void
sess_auth_response(session_t *s, const char *r, size_t n)
{
	const char *why;
	if (n == 1 && r[0] == '*') {
		/* RFC 4954 §4: the client cancels */
		sess_auth_timer_stop(s); /* Dovecot's request, if any, is forgotten */
		sess_auth_end(s);
		sess_reply_error(s, "AUTH", "501 5.0.0 Error: authentication cancelled", true);
		return;
	}
	if (s->auth_req) {
		/* Dovecot: the client's response goes on as it is */
		if (dvauth_continue(s->auth_req, r, n) < 0) {
			sess_auth_timer_stop(s);
			sess_auth_end(s);
			sess_reply_error(s, "AUTH", "501 5.5.2 Error: malformed base64 in AUTH response", true);
			return;
		}
		sess_pause(s);
		return;
	}
	if (n == 1 && r[0] == '=')
		n = 0; /* an empty initial response */
	if (s->mech == MECH_PLAIN) {
		char *user, *pass;
		if (auth_plain_decode(r, n, &user, &pass, &why) < 0) {
			sess_auth_end(s);
			sess_reply_error(s, "AUTH", why, true);
			return;
		}
		sess_auth_check(s, user, pass);
		return;
	}
	char *v;
	if (auth_login_decode(r, n, &v, &why) < 0) {
		sess_auth_end(s);
		sess_reply_error(s, "AUTH", why, true);
		return;
	}
	if (s->auth_step == 0) {
		xfree(s->auth_pending);
		s->auth_pending = v;
		s->auth_step = 1;
		s->state = ST_AUTH;
		sess_reply(s, "334 UGFzc3dvcmQ6"); /* "Password:" */
		return;
	}
	char *user = s->auth_pending;
	s->auth_pending = NULL;
	sess_auth_check(s, user, v);
}

/* the AUTH line of EHLO: only under TLS (RFC 4954 §4), until authenticated */
void
sess_auth_ehlo(session_t *s)
{
	if (!s->tls || s->auth_user || s->local)
		return;
	dvauth_t *dv = server_auth_dovecot(s->srv);
	if (dv) {
		buf_t b = BUF_INIT;
		if (dvauth_mechs(dv, s->tls, &b) > 0)
			conn_printf(s->conn, "250-AUTH%s\r\n", buf_cstr(&b));
		buf_free(&b);
	} else if (server_auth_db(s->srv)) {
		conn_printf(s->conn, "250-AUTH PLAIN LOGIN\r\n");
	}
}

void
sess_cmd_auth(session_t *s, const char *a, size_t n)
{
	dvauth_t *dv = server_auth_dovecot(s->srv);
	if ((!server_auth_db(s->srv) && !dv) || s->local) {
		sess_reply_error(s, "AUTH", "502 5.5.1 Error: authentication not enabled", true);
		return;
	}
	if (!s->tls) {
		/* RFC 4954 §6 */
		sess_reply_error(s, "AUTH", "538 5.7.11 Error: encryption required for authentication", true);
		return;
	}
	if (s->auth_user) {
		sess_reply_error(s, "AUTH", "503 5.5.1 Error: already authenticated", true);
		return;
	}
	size_t ml = 0;
	while (ml < n && a[ml] != ' ')
		ml++;
	const char *ir = ml < n ? a + ml + 1 : NULL;
	size_t irn = ir ? n - ml - 1 : 0;
	if (dv) {
		const char *canon;
		if (!dvauth_mech_ok(dv, a, ml, s->tls, &canon)) {
			sess_reply_error(s, "AUTH", "504 5.5.4 Error: unrecognized authentication mechanism",
			    true);
			return;
		}
		s->mech = strcmp(canon, "PLAIN") == 0 ? MECH_PLAIN : MECH_LOGIN;
		if (ir && irn == 1 && ir[0] == '*') {
			sess_reply_error(s, "AUTH", "501 5.0.0 Error: authentication cancelled", true);
			return;
		}
		sess_dovecot_begin(s, dv, canon, ir, irn);
		return;
	}
	if (ml == 5 && strncasecmp(a, "PLAIN", 5) == 0) {
		s->mech = MECH_PLAIN;
	} else if (ml == 5 && strncasecmp(a, "LOGIN", 5) == 0) {
		s->mech = MECH_LOGIN;
	} else {
		sess_reply_error(s, "AUTH", "504 5.5.4 Error: unrecognized authentication mechanism", true);
		return;
	}
	s->auth_step = 0;
	if (ir) {
		sess_auth_response(s, ir, irn);
		return;
	}
	s->state = ST_AUTH;
	/* RFC 4616: PLAIN's challenge is empty; LOGIN asks "Username:" */
	sess_reply(s, s->mech == MECH_PLAIN ? "334 " : "334 VXNlcm5hbWU6");
}
