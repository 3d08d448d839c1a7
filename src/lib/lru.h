/*
 * lru.h - a map from strings to fixed-size values, with its entries kept in
 * least-recently-used order: the bounded in-memory tables of the filters
 * (rate-limit timestamps, greylisting triplets) are built on it.
 *
 * A value is a block of vsize octets (aligned for any type) that lives as
 * long as its entry; the map hands out pointers to it. The map does not
 * bound itself: the caller evicts (lru_oldest + lru_del) before lru_put,
 * under the rule it needs (a cap, an age). Keys are NUL-terminated
 * strings, copied; compared exactly (fold case before, if needed).
 *
 * Guarantees: lru_get, lru_put, lru_touch, lru_del are O(1) on average
 * (chained hash table, FNV-1a, doubled when the entries outnumber the
 * buckets); a value pointer stays valid until its lru_del or lru_clear;
 * lru_clear frees everything, after which the map is empty and usable.
 * Must not: be used from two threads at once (no locking), be iterated
 * while entries are deleted (except the one the iteration stands on, after
 * taking lru_newer of it).
 */
#ifndef TERN_LRU_H
#define TERN_LRU_H

#include <stddef.h>

typedef struct lru_ent lru_ent_t;

typedef struct lru {
	lru_ent_t **tab;
	size_t nbuckets;
	size_t count;
	lru_ent_t *head, *tail; /* head: most recently used */
	size_t vsize;
} lru_t;

/* a map whose values are vsize octets: static lru_t m = LRU_INIT(sizeof(x)); */
#define LRU_INIT(vsize_) {NULL, 0, 0, NULL, NULL, (vsize_)}

/* the value of key, NULL when absent; the order is not changed */
void *lru_get(const lru_t *m, const char *key);
/* a new entry for key (which must be absent), its value zeroed, as the most
 * recently used; returns its value */
void *lru_put(lru_t *m, const char *key);
/* make val's entry the most recently used */
void lru_touch(lru_t *m, void *val);
/* remove and free val's entry */
void lru_del(lru_t *m, void *val);
/* the least recently used value, NULL when empty */
void *lru_oldest(const lru_t *m);
/* the value used just after val (towards the newest), NULL after the newest */
void *lru_newer(const void *val);
/* the key of val's entry */
const char *lru_key(const void *val);
size_t lru_count(const lru_t *m);
/* remove and free every entry (the buckets too) */
void lru_clear(lru_t *m);

#endif
