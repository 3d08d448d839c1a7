/*
 * server.c - ACCEPT: listeners and session limits (see server.h).
 *
 * Limits are checked at accept time: a connection over the total limit or
 * over its IP's limit gets "421 4.7.0" and is closed at once, without a
 * session. Sessions per IP are counted in a small open-hashing table keyed
 * by the textual IP (local-socket sessions are not: they are all "local").
 * Clients in client_limit_exceptions (default mynetworks) are exempt from
 * the per-IP limit, not from the total.
 *
 * The server also owns what sessions share and a SIGHUP renews: the TLS
 * server context (tls_cert/tls_key), the password file and the
 * sender-login table, each renewed on its own: a part that fails to load
 * keeps its previous version while the others apply. Secrets are read
 * through common/secret.h (a root parent opens them: daemon/privsep.h). Sessions hold their
 * own reference to the SSL_CTX they started with.
 * Besides the TCP listeners there is the local socket (local_socket) for
 * the sendmail command: a unix-domain socket, mode 0666, whose sessions
 * know the peer's uid (SO_PEERCRED).
 */
#include "smtpd/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/secret.h"
#include "filter/content.h"
#include "filter/dnsbl.h"
#include "filter/filter.h"
#include "mailauth/mailauth.h"
#include "lib/conn.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/tls.h"
#include "lib/xalloc.h"
#include "smtpd/auth.h"
#include "smtpd/auth_dovecot.h"
#include "smtpd/session.h"

#define IPTAB_SIZE 1024

typedef struct ipcount {
	struct ipcount *next;
	unsigned count;
	char ip[64];
} ipcount_t;

typedef struct listener {
	union {
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} h;
	struct server *srv;
	enum listen_mode mode;
} listener_t;

typedef struct slist {
	struct slist *next, *prev;
	session_t *s;
} slist_t;

struct server {
	smtpd_ctx_t *t;
	listener_t *ls;
	size_t nls;
	size_t nclosed;
	unsigned nsessions;
	ipcount_t *iptab[IPTAB_SIZE];
	slist_t head; /* every live session, for shutdown */
	bool stopping;
	void (*stop_done)(void *);
	void *stop_arg;

	SSL_CTX *tls_ctx;         /* NULL: no tls_cert */
	passwd_db_t *auth_db;     /* NULL: no auth_users */
	dvauth_t *dvauth;         /* NULL: auth_backend is not dovecot */
	table_t *sender_login;    /* NULL: no sender_login table */
	content_checks_t *checks; /* header_checks, body_checks; NULL: none */
	char *local_path;         /* the local socket we bound, to unlink at the end */
};

static const char *
mode_name(enum listen_mode m)
{
	switch (m) {
	case LISTEN_SUBMISSION: return "submission";
	case LISTEN_SMTPS: return "smtps";
	case LISTEN_LOCAL: return "local";
	default: return "smtp";
	}
}

static unsigned
ip_hash(const char *ip)
{
	unsigned h = 5381;
	for (; *ip; ip++)
		h = h * 33 + (unsigned char)*ip;
	return h % IPTAB_SIZE;
}

static ipcount_t *
ip_find(server_t *s, const char *ip, bool create)
{
	unsigned h = ip_hash(ip);
	for (ipcount_t *e = s->iptab[h]; e; e = e->next)
		if (strcmp(e->ip, ip) == 0)
			return e;
	if (!create)
		return NULL;
	ipcount_t *e = xcalloc(1, sizeof *e);
	snprintf(e->ip, sizeof e->ip, "%s", ip);
	e->next = s->iptab[h];
	s->iptab[h] = e;
	return e;
}

static void
ip_release(server_t *s, const char *ip)
{
	unsigned h = ip_hash(ip);
	for (ipcount_t **pp = &s->iptab[h]; *pp; pp = &(*pp)->next) {
		ipcount_t *e = *pp;
		if (strcmp(e->ip, ip) != 0)
			continue;
		if (e->count > 0)
			e->count--;
		if (e->count == 0) {
			*pp = e->next;
			xfree(e);
		}
		return;
	}
}

smtpd_ctx_t *
server_ctx(struct server *srv)
{
	return srv->t;
}

/* A refused connection: say why, then close. */
static void
refuse_event(conn_t *c, enum conn_event ev, int err, void *arg)
{
	(void)c;
	(void)ev;
	(void)err;
	(void)arg;
}

static void
stop_check(server_t *s)
{
	if (s->stopping && s->nsessions == 0 && s->nclosed == s->nls && s->stop_done) {
		if (s->dvauth)
			dvauth_close(s->dvauth); /* no session is left to ask it */
		void (*cb)(void *) = s->stop_done;
		s->stop_done = NULL;
		cb(s->stop_arg);
	}
}

void
server_session_gone(struct server *srv, session_t *sess, const char *ip)
{
	for (slist_t *e = srv->head.next; e != &srv->head; e = e->next) {
		if (e->s == sess) {
			e->prev->next = e->next;
			e->next->prev = e->prev;
			xfree(e);
			break;
		}
	}
	ip_release(srv, ip);
	srv->nsessions--;
	stop_check(srv);
}

METRIC_COUNTER(m_refused, "tern_smtp_connections_refused_total",
    "Connections refused before a session started, by reason", "reason");

static void
on_connection(uv_stream_t *server, int status)
{
	listener_t *l = server->data;
	server_t *s = l->srv;
	const config_t *c = s->t->cfg;
	if (status < 0) {
		log_warn("accept error: %s", uv_strerror(status));
		return;
	}
	conn_t *conn = conn_accept(s->t->loop, server, 64 * 1024, refuse_event, NULL);
	if (!conn)
		return;
	const char *ip = conn_peer_ip(conn);
	if (s->stopping) {
		conn_printf(conn, "421 4.3.2 %s Service shutting down\r\n", c->hostname);
		metric_inc(&m_refused, "shutting_down");
		conn_close(conn);
		return;
	}
	if (s->nsessions >= c->max_sessions) {
		log_warn("refused client=%s reason=\"too many sessions (%u)\"", ip, s->nsessions);
		metric_inc(&m_refused, "max_sessions");
		conn_printf(conn, "421 4.7.0 %s Error: too many connections; try again later\r\n", c->hostname);
		conn_close(conn);
		return;
	}
	ipcount_t *e = ip_find(s, ip, true);
	if (e->count >= c->max_sessions_per_ip && l->mode != LISTEN_LOCAL &&
	    !config_limit_exempt(c, conn_peer_addr(conn))) {
		log_warn("refused client=%s reason=\"too many sessions from this address (%u)\"", ip, e->count);
		metric_inc(&m_refused, "max_sessions_per_ip");
		conn_printf(conn, "421 4.7.0 %s Error: too many connections from %s\r\n", c->hostname, ip);
		conn_close(conn);
		return;
	}
	e->count++;
	s->nsessions++;
	slist_t *n = xcalloc(1, sizeof *n);
	n->next = s->head.next;
	n->prev = &s->head;
	s->head.next->prev = n;
	s->head.next = n;
	n->s = session_new(s, conn, l->mode);
}

/*
 * What sessions share, in three parts a SIGHUP renews each on its own: the
 * TLS context (certificate and key), the password file, the sender-login
 * table. The certificate, the key and the password file are read through
 * secret_read(): started as root, tern's privileged parent opens them
 * (they may be root-only), and it, like secret_read() itself, refuses a
 * secret that others could read or change (fs_secret_problem).
 */
#define TLS_MAX_PEM (1u << 20)

typedef struct shared {
	SSL_CTX *tls_ctx;
	passwd_db_t *auth_db;
	table_t *sender_login;
	content_checks_t *checks;
} shared_t;

static void
wipe_free(char *p, size_t n)
{
	if (!p)
		return;
	explicit_bzero(p, n);
	xfree(p);
}

/* one certificate and its key through secret_read(); a tls_certificate
 * line's messages begin with "FILE:LINE: " */
static int
read_cert(const config_t *c, size_t i, tls_server_cert_t *out, char **cd, char **kd, buf_t *err)
{
	uid_t uid = config_run_uid(c);
	const config_tls_cert_t *e = i ? &c->tls_certificates[i - 1] : NULL;
	enum secret_kind ck = e ? SECRET_SNI_CERT : SECRET_TLS_CERT;
	enum secret_kind kk = e ? SECRET_SNI_KEY : SECRET_TLS_KEY;
	const char *cp = e ? e->cert : c->tls_cert;
	const char *kp = e ? secret_sni_key_path(e) : secret_config_path(c, SECRET_TLS_KEY);
	buf_t why = BUF_INIT;
	size_t cl = 0, kl = 0;
	int r = -1;
	if (secret_read(ck, cp, uid, TLS_MAX_PEM, cd, &cl, &why) == 0) {
		if (secret_read(kk, kp, uid, TLS_MAX_PEM, kd, &kl, &why) == 0)
			r = 0;
	}
	if (r < 0 && e)
		buf_printf(err, "%s:%u: %s", c->path, e->line, buf_cstr(&why));
	else if (r < 0)
		buf_puts(err, buf_cstr(&why));
	buf_free(&why);
	out->cert = (tls_pem_t){cp, *cd, cl};
	out->key = (tls_pem_t){kp, *kd, kl};
	out->cert_label = e ? xasprintf("%s:%u: tls_certificate", c->path, e->line) : xstrdup("tls_cert");
	out->key_label = e ? xstrdup(out->cert_label) : xstrdup("tls_key");
	return r;
}

/*
 * The server context: tls_cert and tls_key (the default), then every
 * tls_certificate line, chosen by the client's SNI (lib/tls.h). Problems
 * that do not stop the certificates from being used (expired, a name
 * served twice) go to *warn, one a line.
 */
static int
load_tls(const config_t *c, SSL_CTX **out, buf_t *warn, buf_t *err)
{
	*out = NULL;
	if (!c->tls_cert)
		return 0;
	size_t n = 1 + c->ntls_certificates;
	tls_server_cert_t *certs = xcalloc(n, sizeof *certs);
	char **data = xcalloc(2 * n, sizeof *data);
	int r = 0;
	for (size_t i = 0; i < n && r == 0; i++)
		r = read_cert(c, i, &certs[i], &data[2 * i], &data[2 * i + 1], err);
	if (r == 0)
		*out = tls_server_ctx_new(certs, n, c->tls_protocols, c->tls_ciphers, warn, err);
	for (size_t i = 0; i < n; i++) {
		wipe_free(data[2 * i], certs[i].cert.len);
		wipe_free(data[2 * i + 1], certs[i].key.len);
		xfree((char *)(uintptr_t)certs[i].cert_label);
		xfree((char *)(uintptr_t)certs[i].key_label);
	}
	xfree(data);
	xfree(certs);
	return *out ? 0 : -1;
}

/* each line of warnings into the log */
static void
log_warnings(const char *what, const buf_t *w)
{
	for (const char *p = buf_cstr(w); *p;) {
		int n = (int)strcspn(p, "\n");
		if (n)
			log_warn("%s%.*s", what, n, p);
		p += n;
		if (*p)
			p++;
	}
}

static bool
auth_dovecot(const config_t *c)
{
	return c->auth_backend && strcmp(c->auth_backend, "dovecot") == 0 && c->dovecot_auth_socket;
}

static int
load_auth(const config_t *c, passwd_db_t **out, buf_t *err)
{
	*out = NULL;
	if (!c->auth_users)
		return 0;
	char *data;
	size_t len;
	if (secret_read(SECRET_AUTH_USERS, c->auth_users, config_run_uid(c), PASSWD_DB_MAX_FILE, &data, &len,
	    err) < 0)
		return -1;
	*out = passwd_db_parse(c->auth_users, data, len, err); /* frees data */
	return *out ? 0 : -1;
}

static int
load_sender_login(const config_t *c, table_t **out, buf_t *err)
{
	*out = NULL;
	if (!c->sender_login_file)
		return 0;
	*out = table_load(c->sender_login_file, TABLE_MAP, err);
	return *out ? 0 : -1;
}

/* header_checks and body_checks, compiled (errors "FILE:LINE: ...") */
static int
load_checks(const config_t *c, content_checks_t **out, buf_t *err)
{
	if (content_checks_load(c->header_checks, c->body_checks, out, err) == 0)
		return 0;
	while (err->len && err->data[err->len - 1] == '\n')
		err->data[--err->len] = '\0';
	return -1;
}

static void
shared_free(shared_t *sh)
{
	SSL_CTX_free(sh->tls_ctx);
	passwd_db_free(sh->auth_db);
	table_free(sh->sender_login);
	content_checks_unref(sh->checks);
	memset(sh, 0, sizeof *sh);
}

/* Start-up: every part, and the listeners that need them; what is only
 * worth a warning into *warn. */
static int
shared_load(const config_t *c, shared_t *sh, buf_t *warn, buf_t *err)
{
	memset(sh, 0, sizeof *sh);
	if (dnsbl_config_check(c, err) < 0 || mailauth_config_check(c, err) < 0)
		return -1;
	if (load_tls(c, &sh->tls_ctx, warn, err) < 0 || load_auth(c, &sh->auth_db, err) < 0 ||
	    load_sender_login(c, &sh->sender_login, err) < 0 || load_checks(c, &sh->checks, err) < 0)
		goto fail;
	for (size_t i = 0; i < c->nlisten; i++) {
		if (c->listen[i].mode == LISTEN_SMTPS && !sh->tls_ctx) {
			buf_printf(err, "listen %s:%d smtps: needs a certificate (tls_cert)", c->listen[i].addr,
			    c->listen[i].port);
			goto fail;
		}
		/* RFC 6409 §4.3: submission is for authenticated clients; without
		 * both nobody could ever submit there */
		if (c->listen[i].mode == LISTEN_SUBMISSION && !(sh->tls_ctx && (sh->auth_db || auth_dovecot(c)))) {
			buf_printf(err, "listen %s:%d submission: needs tls_cert and auth_users or "
			    "auth_backend = dovecot (AUTH only "
			    "under TLS): without them nobody can authenticate, so nobody can submit",
			    c->listen[i].addr, c->listen[i].port);
			goto fail;
		}
	}
	return 0;
fail:
	shared_free(sh);
	return -1;
}

int
server_check(const config_t *c, buf_t *warn, buf_t *err)
{
	shared_t sh;
	if (shared_load(c, &sh, warn, err) < 0)
		return -1;
	shared_free(&sh);
	return server_socket_dir(c, false, err);
}

/*
 * A reload renews each part on its own: a key that cannot be read keeps
 * the previous certificate and key, while a new password file still
 * applies. Sessions keep the SSL_CTX they started with (reference counted).
 */
int
server_reload(server_t *s)
{
	const config_t *c = s->t->cfg;
	buf_t err = BUF_INIT, ok = BUF_INIT, kept = BUF_INIT, warn = BUF_INIT;
	SSL_CTX *ctx;
	passwd_db_t *db;
	table_t *sl;

	if (load_tls(c, &ctx, &warn, &err) == 0) {
		SSL_CTX_free(s->tls_ctx);
		s->tls_ctx = ctx;
		log_warnings("reload: ", &warn);
		if (!c->tls_cert)
			buf_puts(&ok, ", no certificate (tls_cert unset)");
		else if (c->ntls_certificates)
			buf_printf(&ok, ", %zu certificates and keys", 1 + c->ntls_certificates);
		else
			buf_puts(&ok, ", certificate and key");
	} else {
		log_err("reload: %s; keeping the previous certificate%s", buf_cstr(&err),
		    c->ntls_certificates ? "s and keys" : " and key");
		buf_puts(&kept, c->ntls_certificates ? ", certificates and keys" : ", certificate and key");
	}
	buf_free(&warn);
	buf_reset(&err);
	if (load_auth(c, &db, &err) == 0) {
		passwd_db_free(s->auth_db);
		s->auth_db = db;
		if (db)
			buf_printf(&ok, ", password file (%zu users)", passwd_db_count(db));
		else
			buf_puts(&ok, ", no password file (auth_users unset)");
	} else {
		log_err("reload: %s; keeping the previous password file", buf_cstr(&err));
		buf_puts(&kept, ", password file");
	}
	if (auth_dovecot(c)) {
		if (s->dvauth)
			dvauth_configure(s->dvauth, c->dovecot_auth_socket, c->dovecot_auth_timeout * 1000u);
		else
			s->dvauth = dvauth_new(s->t->loop, c->dovecot_auth_socket, c->dovecot_auth_timeout * 1000u);
		buf_printf(&ok, ", Dovecot authentication at %s", c->dovecot_auth_socket);
	} else if (s->dvauth) {
		/* sessions in an exchange get 454; the handles close on the loop */
		dvauth_free(s->dvauth);
		s->dvauth = NULL;
	}
	buf_reset(&err);
	if (load_sender_login(c, &sl, &err) == 0) {
		table_free(s->sender_login);
		s->sender_login = sl;
		buf_puts(&ok, sl ? ", sender_login table" : ", no sender_login table");
	} else {
		log_err("reload: %s; keeping the previous sender_login table", buf_cstr(&err));
		buf_puts(&kept, ", sender_login table");
	}
	buf_reset(&err);
	content_checks_t *cc;
	if (load_checks(c, &cc, &err) == 0) {
		if (cc)
			buf_printf(&ok, ", header/body checks (%zu+%zu rules)", content_table_size(cc->hdr),
			    content_table_size(cc->body));
		else if (s->checks)
			buf_puts(&ok, ", no header/body checks"); /* said only when they go away */
		content_checks_unref(s->checks); /* sessions keep theirs by reference */
		s->checks = cc;
	} else {
		log_err("reload: %s; keeping the previous header/body checks", buf_cstr(&err));
		buf_puts(&kept, ", header/body checks");
	}
	if (kept.len)
		log_err("reload: applied:%s; failed, kept the previous:%s", ok.len ? buf_cstr(&ok) + 1 : " none",
		    buf_cstr(&kept) + 1);
	else
		log_info("reload: applied:%s", buf_cstr(&ok) + 1);
	int r = kept.len ? -1 : 0;
	buf_free(&err);
	buf_free(&ok);
	buf_free(&kept);
	return r;
}

SSL_CTX *
server_tls_ctx(struct server *srv)
{
	return srv->tls_ctx;
}

const passwd_db_t *
server_auth_db(struct server *srv)
{
	return srv->auth_db;
}

struct dvauth *
server_auth_dovecot(struct server *srv)
{
	return srv->dvauth;
}

struct content_checks *
server_content_checks(struct server *srv)
{
	return srv->checks;
}

const table_t *
server_sender_login(struct server *srv)
{
	return srv->sender_login;
}

int
server_socket_dir(const config_t *c, bool create, buf_t *err)
{
	if (!c->local_socket)
		return 0;
	char *dir = xstrdup(c->local_socket);
	char *slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	struct stat st;
	int r = 0;
	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			buf_printf(err, "local_socket %s: %s is not a directory", c->local_socket, dir);
			r = -1;
		}
	} else if (errno != ENOENT) {
		buf_printf(err, "local_socket %s: directory %s: %s", c->local_socket, dir, strerror(errno));
		r = -1;
	} else {
		/* libuv would say "permission denied" for a missing directory */
		char *parent = xstrdup(dir);
		char *ps = strrchr(parent, '/');
		if (ps)
			*(ps == parent ? ps + 1 : ps) = '\0';
		struct passwd *pw = c->user ? getpwnam(c->user) : NULL;
		bool can = geteuid() == 0 && stat(parent, &st) == 0 && S_ISDIR(st.st_mode);
		if (!can) {
			buf_printf(err, "local_socket %s: directory %s does not exist (create it, writable by "
			    "the user tern runs as, or start tern as root: it makes it)", c->local_socket, dir);
			r = -1;
		} else if (create) {
			if ((mkdir(dir, 0755) < 0 && errno != EEXIST) || chmod(dir, 0755) < 0 ||
			    (pw && chown(dir, pw->pw_uid, pw->pw_gid) < 0)) {
				buf_printf(err, "local_socket %s: cannot create directory %s: %s", c->local_socket,
				    dir, strerror(errno));
				r = -1;
			} else {
				log_info("created %s (mode 0755, owner %s) for the local socket", dir,
				    pw ? c->user : "root");
			}
		}
		xfree(parent);
	}
	xfree(dir);
	return r;
}

/* The local socket: a stale socket file is replaced; anything else there
 * is an error. Mode 0666: anyone may connect, the session knows who. */
static int
bind_local(server_t *s, listener_t *l, const char *path, buf_t *err)
{
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			buf_printf(err, "local_socket %s: exists and is not a socket", path);
			return -1;
		}
		/* a socket somebody still answers on is not stale: another tern */
		struct sockaddr_un su;
		memset(&su, 0, sizeof su);
		su.sun_family = AF_UNIX;
		snprintf(su.sun_path, sizeof su.sun_path, "%s", path);
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool live = fd >= 0 && connect(fd, (struct sockaddr *)&su, sizeof su) == 0;
		if (fd >= 0)
			close(fd);
		if (live) {
			buf_printf(err, "local_socket %s: another daemon is listening on it", path);
			return -1;
		}
		unlink(path);
	}
	uv_pipe_init(s->t->loop, &l->h.pipe, 0);
	l->h.pipe.data = l;
	l->srv = s;
	l->mode = LISTEN_LOCAL;
	s->nls++;
	int r = uv_pipe_bind(&l->h.pipe, path);
	if (r == 0)
		s->local_path = xstrdup(path);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&l->h.pipe, 511, on_connection);
	if (r == 0 && chmod(path, 0666) < 0)
		r = uv_translate_sys_error(errno);
	if (r < 0) {
		buf_printf(err, "local_socket %s: %s", path, uv_strerror(r));
		return -1;
	}
	log_info("listening on %s mode=local", path);
	return 0;
}

server_t *
server_new(smtpd_ctx_t *t, buf_t *err)
{
	const config_t *c = t->cfg;
	server_t *s = xcalloc(1, sizeof *s);
	s->t = t;
	s->head.next = s->head.prev = &s->head;
	s->ls = xcalloc(c->nlisten + 1, sizeof *s->ls);
	shared_t sh;
	buf_t warn = BUF_INIT;
	int loaded = shared_load(c, &sh, &warn, err);
	log_warnings("", &warn);
	buf_free(&warn);
	if (loaded < 0)
		goto fail;
	s->tls_ctx = sh.tls_ctx;
	s->auth_db = sh.auth_db;
	s->sender_login = sh.sender_login;
	s->checks = sh.checks;
	/* made when missing and started as root (e.g. /run/tern) */
	if (server_socket_dir(c, geteuid() == 0, err) < 0)
		goto fail;
	for (size_t i = 0; i < c->nlisten; i++) {
		const listen_spec_t *ls = &c->listen[i];
		listener_t *l = &s->ls[i];
		struct sockaddr_storage ss;
		int r;
		if (strchr(ls->addr, ':'))
			r = uv_ip6_addr(ls->addr, ls->port, (struct sockaddr_in6 *)&ss);
		else
			r = uv_ip4_addr(ls->addr, ls->port, (struct sockaddr_in *)&ss);
		if (r < 0) {
			buf_printf(err, "listen %s:%d: bad address", ls->addr, ls->port);
			goto fail;
		}
		uv_tcp_init(t->loop, &l->h.tcp);
		l->h.tcp.data = l;
		l->srv = s;
		l->mode = ls->mode;
		s->nls++;
		r = uv_tcp_bind(&l->h.tcp, (struct sockaddr *)&ss, strchr(ls->addr, ':') ? UV_TCP_IPV6ONLY : 0);
		if (r == 0)
			r = uv_listen((uv_stream_t *)&l->h.tcp, 511, on_connection);
		if (r < 0) {
			buf_printf(err, "listen %s:%d: %s", ls->addr, ls->port, uv_strerror(r));
			goto fail;
		}
		struct sockaddr_storage bound;
		int len = sizeof bound;
		uv_tcp_getsockname(&l->h.tcp, (struct sockaddr *)&bound, &len);
		int port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
		                                       : ntohs(((struct sockaddr_in *)&bound)->sin_port);
		if (strchr(ls->addr, ':'))
			log_info("listening on [%s]:%d mode=%s", ls->addr, port, mode_name(ls->mode));
		else
			log_info("listening on %s:%d mode=%s", ls->addr, port, mode_name(ls->mode));
	}
	if (c->local_socket && bind_local(s, &s->ls[s->nls], c->local_socket, err) < 0)
		goto fail;
	/* last: nothing after it can fail */
	if (auth_dovecot(c))
		s->dvauth = dvauth_new(t->loop, c->dovecot_auth_socket, c->dovecot_auth_timeout * 1000u);
	return s;
fail:
	/* handles are closed by server_free via the loop */
	server_free(s);
	return NULL;
}

int
server_start(server_t *s)
{
	(void)s;
	return 0;
}

static void
listener_closed(uv_handle_t *h)
{
	listener_t *l = h->data;
	server_t *s = l->srv;
	s->nclosed++;
	stop_check(s);
}

void
server_stop(server_t *s, void (*done)(void *arg), void *arg)
{
	s->stopping = true;
	s->stop_done = done;
	s->stop_arg = arg;
	for (size_t i = 0; i < s->nls; i++)
		uv_close((uv_handle_t *)&s->ls[i].h, listener_closed);
	if (s->local_path)
		unlink(s->local_path); /* new sendmail commands fail at once, clearly */
	/* session_shutdown may free a session (and its list node) later, never now */
	for (slist_t *e = s->head.next; e != &s->head; e = e->next)
		session_shutdown(e->s);
	stop_check(s);
}

void
server_free(server_t *s)
{
	if (!s)
		return;
	filter_shutdown(); /* DNSBL cache, rate-limit and greylisting state */
	mailauth_shutdown(); /* its resolver and the Public Suffix List */
	for (size_t i = 0; i < IPTAB_SIZE; i++) {
		ipcount_t *e = s->iptab[i];
		while (e) {
			ipcount_t *n = e->next;
			xfree(e);
			e = n;
		}
	}
	/* listeners must already be closed (server_stop) or never opened */
	if (!s->stopping) {
		for (size_t i = 0; i < s->nls; i++)
			uv_close((uv_handle_t *)&s->ls[i].h, NULL);
		uv_run(s->t->loop, UV_RUN_NOWAIT);
		if (s->local_path)
			unlink(s->local_path);
	}
	SSL_CTX_free(s->tls_ctx);
	passwd_db_free(s->auth_db);
	dvauth_free(s->dvauth);
	table_free(s->sender_login);
	content_checks_unref(s->checks);
	xfree(s->local_path);
	xfree(s->ls);
	xfree(s);
}
