/*
 * lru.c - a string-keyed map in least-recently-used order (lru.h).
 *
 * Each entry is one allocation: the links (hash chain, LRU list), the
 * hash, then the value (vsize octets, aligned for any type) and the key
 * after it. A value pointer is turned back into its entry by subtracting
 * the offset of the value.
 * Guarantees: see lru.h.
 * Must not: allocate anywhere but xalloc (out of memory aborts there).
 */
#include "lib/lru.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lib/xalloc.h"

struct lru_ent {
	lru_ent_t *hnext;        /* hash chain */
	lru_ent_t *prev, *next;  /* LRU list: prev is more recent */
	uint32_t hash;
	const char *key;         /* inside this allocation, after the value */
	alignas(max_align_t) unsigned char val[];
};

static uint32_t
hash_str(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

static lru_ent_t *
ent_of(const void *val)
{
	return (lru_ent_t *)(void *)((const char *)val - offsetof(lru_ent_t, val));
}

static void
list_unlink(lru_t *m, lru_ent_t *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		m->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		m->tail = e->prev;
	e->prev = e->next = NULL;
}

static void
list_front(lru_t *m, lru_ent_t *e)
{
	e->prev = NULL;
	e->next = m->head;
	if (m->head)
		m->head->prev = e;
	m->head = e;
	if (m->tail == NULL)
		m->tail = e;
}

static void
grow(lru_t *m)
{
	size_t nb = m->nbuckets ? m->nbuckets * 2 : 64;
	lru_ent_t **tab = xcalloc(nb, sizeof(lru_ent_t *)); // NOLINT(bugprone-sizeof-expression): an array of pointers
	for (size_t i = 0; i < m->nbuckets; i++) {
		lru_ent_t *e = m->tab[i];
		while (e) {
			lru_ent_t *nx = e->hnext;
			e->hnext = tab[e->hash % nb];
			tab[e->hash % nb] = e;
			e = nx;
		}
	}
	xfree(m->tab);
	m->tab = tab;
	m->nbuckets = nb;
}

void *
lru_get(const lru_t *m, const char *key)
{
	if (m->nbuckets == 0)
		return NULL;
	uint32_t h = hash_str(key);
	for (lru_ent_t *e = m->tab[h % m->nbuckets]; e; e = e->hnext)
		if (e->hash == h && strcmp(e->key, key) == 0)
			return e->val;
	return NULL;
}

void *
lru_put(lru_t *m, const char *key)
{
	if (m->count >= m->nbuckets)
		grow(m);
	size_t vsize = (m->vsize + alignof(max_align_t) - 1) / alignof(max_align_t) * alignof(max_align_t);
	size_t klen = strlen(key);
	lru_ent_t *e = xcalloc(1, sizeof *e + vsize + klen + 1);
	char *k = (char *)e->val + vsize;
	memcpy(k, key, klen + 1);
	e->key = k;
	e->hash = hash_str(key);
	e->hnext = m->tab[e->hash % m->nbuckets];
	m->tab[e->hash % m->nbuckets] = e;
	list_front(m, e);
	m->count++;
	return e->val;
}

void
lru_touch(lru_t *m, void *val)
{
	lru_ent_t *e = ent_of(val);
	if (m->head == e)
		return;
	list_unlink(m, e);
	list_front(m, e);
}

void
lru_del(lru_t *m, void *val)
{
	lru_ent_t *e = ent_of(val);
	lru_ent_t **pp = &m->tab[e->hash % m->nbuckets];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	list_unlink(m, e);
	m->count--;
	xfree(e);
}

void *
lru_oldest(const lru_t *m)
{
	return m->tail ? m->tail->val : NULL;
}

void *
lru_newer(const void *val)
{
	lru_ent_t *e = ent_of(val);
	return e->prev ? e->prev->val : NULL;
}

const char *
lru_key(const void *val)
{
	return ent_of(val)->key;
}

size_t
lru_count(const lru_t *m)
{
	return m->count;
}

void
lru_clear(lru_t *m)
{
	lru_ent_t *e = m->head;
	while (e) {
		lru_ent_t *nx = e->next;
		xfree(e);
		e = nx;
	}
	xfree(m->tab);
	m->tab = NULL;
	m->nbuckets = 0;
	m->count = 0;
	m->head = m->tail = NULL;
}
