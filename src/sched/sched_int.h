/*
 * sched_int.h - the scheduler's private state, shared by sched.c (index,
 * dispatch, outcomes, DSN timing) and admin.c (the administrator's
 * operations and the snapshot). Not for any other file.
 *
 * Event-loop thread only.
 */
#ifndef TERN_SCHED_INT_H
#define TERN_SCHED_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "sched/sched.h"

typedef struct waiter {
	sched_op_cb cb;
	void *arg;
	struct waiter *next;
} waiter_t;

typedef struct smsg {
	struct sched *s;
	envelope_t *env;
	int64_t due;      /* unix seconds */
	size_t heap_idx;  /* SIZE_MAX when not in the heap */
	unsigned inflight; /* jobs of this message in flight, of any kind */
	bool *busy;       /* per recipient: in a delivery job */
	unsigned *att;    /* per recipient: attempts before its submission */
	bool recovered;
	bool finishing;
	bool held;        /* wanted hold state; env->flags follows when inflight == 0 */
	bool deleting;    /* the administrator deleted it: remove when inflight == 0 */
	bool bounce_req;  /* the administrator bounced it: fail what waits when inflight == 0 */
	int64_t warn_after; /* a delay warning failed: not again before this */
	int64_t round_after; /* a failure DSN failed: not again before this */
	waiter_t *waiters; /* control requests waiting for a flag or delete job */
	struct smsg *next; /* all messages list */
	struct smsg *prev;
} smsg_t;

struct sched {
	sched_ctx_t ctx;   /* spool_dir is our copy */
	sched_stages_t st;
	local_t *own_local; /* the real local stage, when sched_set_outbound made it */
	uv_timer_t timer;
	smsg_t **heap;
	size_t nheap, capheap;
	smsg_t all;        /* list head of every message */
	size_t nmsgs;
	unsigned jobs;     /* every job in flight, of any kind */
	bool stopping;
	void (*stop_done)(void *);
	void *stop_arg;
};

/* sched.c */
void sched_arm(sched_t *s);
/* the next step of m when no job of it is in flight, then arm and check stop */
void sched_settle(sched_t *s, smsg_t *m);
void sched_stop_check(sched_t *s);
void sched_heap_up(sched_t *s, size_t i);
void sched_heap_remove(sched_t *s, smsg_t *m);
void sched_msg_free(sched_t *s, smsg_t *m);

/* admin.c: write m's flags (a flags-only status record) or remove it */
void sched_admin_job(sched_t *s, smsg_t *m, bool remove);
/* admin.c: sched_bounce's work, once no job is in flight; the count failed */
size_t sched_bounce_now(sched_t *s, smsg_t *m);

#endif
