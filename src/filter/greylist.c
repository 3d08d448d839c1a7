/*
 * greylist.c - FILTER: greylisting (greylist.h): the triplet table (a
 * lib/lru.h map), the rule, and its file in the spool.
 *
 * The file SPOOL/greylist: one line per triplet, "FIRST LAST PASSED KEY",
 * FIRST and LAST wall-clock seconds, PASSED 0 or 1; a line that does not
 * parse is skipped. Written whole: to greylist.tmp, fsync, rename, fsync
 * of the directory, on the thread pool (uv_queue_work), from a snapshot
 * taken on the loop; one write at a time, another one after it when the
 * table changed meanwhile.
 * Guarantees: at most greylist_max_entries triplets; O(1) per check.
 * Must not: block the loop on a write.
 */
#include "filter/greylist.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "filter/fstats.h"
#include "lib/buf.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/lru.h"
#include "lib/xalloc.h"

/* the value of a triplet in the map (lib/lru.h), keyed by grey_key() */
typedef struct gent {
	uint64_t first, last;
	bool passed;
} gent_t;

static struct {
	lru_t map;
	bool loaded;
	char *path;          /* SPOOL/greylist */
	bool dirty;
	bool writing;
	uv_timer_t *timer;
	uv_loop_t *loop;
} g = {.map = LRU_INIT(sizeof(gent_t))};

/* a new triplet, the least recently used ones dropped first at the cap */
static gent_t *
add(const char *key, size_t max)
{
	while (lru_count(&g.map) > 0 && lru_count(&g.map) >= max)
		lru_del(&g.map, lru_oldest(&g.map));
	return lru_put(&g.map, key);
}

/* gone: a first try not retried within expiry, a passed one unused for lifetime */
static bool
expired(const config_t *c, const gent_t *e, uint64_t now)
{
	return e->passed ? now > e->last + c->greylist_lifetime : now > e->first + c->greylist_expiry;
}

unsigned
grey_check_at(const config_t *c, const char *key, uint64_t now)
{
	gent_t *e = lru_get(&g.map, key);
	if (e && expired(c, e, now)) {
		lru_del(&g.map, e);
		e = NULL;
	}
	g.dirty = true;
	if (e == NULL) {
		e = add(key, c->greylist_max_entries ? c->greylist_max_entries : 1);
		e->first = e->last = now;
		return c->greylist_delay ? c->greylist_delay : 0;
	}
	lru_touch(&g.map, e);
	if (!e->passed && now < e->first + c->greylist_delay) {
		uint64_t wait = e->first + c->greylist_delay - now;
		return wait > 0 ? (unsigned)wait : 1;
	}
	e->passed = true;
	e->last = now;
	return 0;
}

int
grey_key(const char *ip, const char *sender, const char *rcpt, char *out, size_t len)
{
	char net[64];
	unsigned char a[16];
	const char *v4 = strncmp(ip, "::ffff:", 7) == 0 && strchr(ip, '.') ? ip + 7 : ip;
	if (inet_pton(AF_INET, v4, a) == 1) {
		(void)snprintf(net, sizeof net, "%u.%u.%u.0/24", a[0], a[1], a[2]);
	} else if (inet_pton(AF_INET6, ip, a) == 1) {
		memset(a + 8, 0, 8);
		char txt[INET6_ADDRSTRLEN];
		inet_ntop(AF_INET6, a, txt, sizeof txt);
		(void)snprintf(net, sizeof net, "%s/64", txt);
	} else {
		return -1;
	}
	int n = snprintf(out, len, "%s <%s> <%s>", net, sender ? sender : "", rcpt ? rcpt : "");
	if (n < 0 || (size_t)n >= len)
		return -1;
	for (char *p = out; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return 0;
}

/* ------------------------------------------------------------------ */
/* the file                                                            */

static void
load(const config_t *c)
{
	g.loaded = true;
	char *data = NULL;
	size_t n = 0;
	if (read_file(g.path, &data, &n, 256u * 1024 * 1024) < 0) {
		if (errno != ENOENT)
			log_warn("greylist: cannot read %s: %s", g.path, strerror(errno));
		return;
	}
	uint64_t now = (uint64_t)time(NULL);
	size_t loaded = 0;
	for (char *line = data; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		char *p = line, *end;
		unsigned long long first = strtoull(p, &end, 10);
		bool ok = end != p && *end == ' ';
		p = end;
		unsigned long long last = ok ? strtoull(p, &end, 10) : 0;
		ok = ok && end != p && *end == ' ';
		p = end;
		ok = ok && (p[1] == '0' || p[1] == '1') && p[2] == ' ' && p[3] != '\0';
		int passed = ok && p[1] == '1';
		if (ok) {
			const char *key = p + 3;
			gent_t probe = {.first = first, .last = last, .passed = passed != 0};
			if (!expired(c, &probe, now) && lru_get(&g.map, key) == NULL) {
				gent_t *e = add(key, c->greylist_max_entries);
				e->first = first;
				e->last = last;
				e->passed = passed != 0;
				loaded++;
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	xfree(data);
	log_info("greylist: loaded %zu triplets from %s", loaded, g.path);
}

struct gwrite {
	uv_work_t w;
	char *path;
	buf_t text;
	size_t n;
	int err;
};

static void
write_work(uv_work_t *w)
{
	struct gwrite *q = w->data;
	char *tmp = xasprintf("%s.tmp", q->path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	q->err = 0;
	if (fd < 0 || write_all(fd, q->text.data ? q->text.data : "", q->text.len) < 0 ||
	    fsync(fd) < 0)
		q->err = errno ? errno : EIO;
	if (fd >= 0)
		close(fd);
	if (q->err == 0 && rename(tmp, q->path) < 0)
		q->err = errno;
	if (q->err == 0) {
		char *dir = xstrdup(q->path);
		char *slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = '\0';
			(void)fsync_dir(dir);
		}
		xfree(dir);
	} else {
		(void)unlink(tmp);
	}
	xfree(tmp);
}

static void schedule_save(void);

static void
write_done(uv_work_t *w, int status)
{
	struct gwrite *q = w->data;
	g.writing = false;
	if (status == 0 && q->err)
		log_warn("greylist: cannot write %s: %s", q->path, strerror(q->err));
	else if (status == 0)
		log_info("greylist: saved %zu triplets to %s", q->n, q->path);
	xfree(q->path);
	buf_free(&q->text);
	xfree(q);
	if (g.dirty)
		schedule_save();
}

/* the table as the file holds it, oldest first (so a load keeps the LRU order) */
static struct gwrite *
snapshot(void)
{
	struct gwrite *q = xcalloc(1, sizeof *q);
	q->path = xstrdup(g.path);
	for (gent_t *e = lru_oldest(&g.map); e; e = lru_newer(e)) {
		buf_printf(&q->text, "%llu %llu %d %s\n", (unsigned long long)e->first,
		    (unsigned long long)e->last, e->passed ? 1 : 0, lru_key(e));
		q->n++;
	}
	g.dirty = false;
	return q;
}

static void
save_now(uv_timer_t *t)
{
	(void)t;
	if (g.writing || !g.dirty)
		return;
	struct gwrite *q = snapshot();
	g.writing = true;
	q->w.data = q;
	if (uv_queue_work(g.loop, &q->w, write_work, write_done) != 0) {
		g.writing = false;
		g.dirty = true;
		xfree(q->path);
		buf_free(&q->text);
		xfree(q);
	}
}

static void
schedule_save(void)
{
	if (g.timer == NULL) {
		g.timer = xmalloc(sizeof *g.timer);
		uv_timer_init(g.loop, g.timer);
	}
	if (!uv_is_active((uv_handle_t *)g.timer))
		uv_timer_start(g.timer, save_now, 1000, 0);
}

bool
grey_check(uv_loop_t *loop, const config_t *c, const char *sid, const char *ip,
    const char *sender, const char *rcpt, char *reply, size_t rlen)
{
	char key[1100];
	if (grey_key(ip, sender, rcpt, key, sizeof key) < 0)
		return false;
	if (g.path == NULL || !g.loaded) {
		xfree(g.path);
		g.path = xasprintf("%s/greylist", c->spool_dir);
		g.loop = loop;
		load(c);
	}
	bool was_passed;
	{
		const gent_t *e = lru_get(&g.map, key);
		was_passed = e && e->passed && !expired(c, e, (uint64_t)time(NULL));
	}
	unsigned wait = grey_check_at(c, key, (uint64_t)time(NULL));
	schedule_save();
	if (wait == 0) {
		if (!was_passed)
			log_info("%s: greylist passed client=%s from=<%s> to=<%s>", sid, ip,
			    sender ? sender : "", rcpt);
		if (!was_passed)
			fstats_verdict("greylist", "passed");
		return false;
	}
	(void)snprintf(reply, rlen, "451 4.7.1 greylisted, try again in %u seconds", wait);
	log_info("%s: greylisted client=%s from=<%s> to=<%s> wait=%us", sid, ip,
	    sender ? sender : "", rcpt, wait);
	fstats_verdict("greylist", "greylisted");
	return true;
}

size_t
grey_count(void)
{
	return lru_count(&g.map);
}

static void
timer_free(uv_handle_t *h)
{
	xfree(h);
}

void
grey_shutdown(void)
{
	/* the last changes (the timer saves at most once a second), now:
	 * blocking is fine at exit; a write in flight already has them but one */
	if (g.dirty && g.path && !g.writing) {
		struct gwrite *q = snapshot();
		q->w.data = q;
		write_work(&q->w);
		if (q->err)
			log_warn("greylist: cannot write %s: %s", q->path, strerror(q->err));
		xfree(q->path);
		buf_free(&q->text);
		xfree(q);
	}
	if (g.timer) {
		uv_close((uv_handle_t *)g.timer, timer_free);
		g.timer = NULL;
	}
	xfree(g.path);
	g.path = NULL;
	g.loaded = false;
	grey_clear();
}

void
grey_clear(void)
{
	lru_clear(&g.map);
	g.dirty = false;
}
