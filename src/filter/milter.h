/*
 * milter.h - one milter connection for one SMTP session, on the event
 * loop (internal to src/filter/; filter.c drives it).
 *
 * milter_open() connects (connect_timeout) and negotiates options; then
 * milter_run() sends a stage's packets in order, waiting for a reply
 * after each packet that expects one (command_timeout; eom_timeout at end
 * of message; SMFIR_PROGRESS restarts it), and reports the stage's
 * outcome once. At end of message the modifications the milter sends
 * before its final reply are collected (each checked against what it
 * negotiated).
 * A milter that cannot be reached, times out, sends garbage, a packet
 * over the protocol's size, a reply out of sequence or a modification it
 * did not ask for is FAILED: the connection is dropped, the outcome says
 * why, and it is never used again in this session.
 * Never blocks; milter_free() may be called at any time (also from inside
 * the callback): no callback follows it.
 */
#ifndef TERN_MILTER_H
#define TERN_MILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/config.h"
#include "filter/milter_proto.h"
#include "lib/buf.h"

typedef struct milter milter_t;

enum milter_status {
	MS_CONTINUE,  /* go on (also: SKIP of the rest of the body, NR stages) */
	MS_ACCEPT,    /* accept: this milter is done with the message (session at connect) */
	MS_REJECT,    /* 5xx; reply set when the milter sent REPLYCODE */
	MS_TEMPFAIL,  /* 4xx; reply likewise */
	MS_DISCARD,   /* accept and throw away */
	MS_FAILED,    /* down, timed out or misbehaved: why says what */
};

/* one modification received at end of message, owned by the milter */
typedef struct milter_mod {
	char cmd;       /* SMFIR_ADDHEADER, ... */
	uint32_t index;
	char *name;     /* see mp_reply_t */
	char *value;
	buf_t body;     /* REPLBODY */
} milter_mod_t;

typedef struct milter_outcome {
	enum milter_status st;
	const char *reply;  /* REPLYCODE text or NULL */
	const char *why;    /* MS_FAILED */
	const milter_mod_t *mods;
	size_t nmods;
	const char *quarantine; /* reason, or NULL */
} milter_outcome_t;

typedef void (*milter_cb)(void *arg, milter_t *m, const milter_outcome_t *o);

/* one packet of a stage: expects a reply or not; body chunks may be skipped */
typedef struct milter_step {
	buf_t pkt;
	bool reply;
	bool body;
	bool eom;
} milter_step_t;

/* Connect and negotiate; cb gets MS_CONTINUE when ready, MS_FAILED if not. */
milter_t *milter_open(uv_loop_t *loop, const config_milter_t *spec, const char *sid, milter_cb cb,
    void *arg);
/* Run a stage: takes the steps (their buffers are freed); cb once. */
void milter_run(milter_t *m, milter_step_t *steps, size_t n, milter_cb cb, void *arg);
/* Send packets that expect no reply (ABORT, QUIT) now. */
void milter_send(milter_t *m, const buf_t *pkts);
void milter_free(milter_t *m);

const char *milter_name(const milter_t *m);
enum milter_default milter_default_action(const milter_t *m);
bool milter_failed(const milter_t *m);
/* why it failed ("" if it did not) */
const char *milter_why(const milter_t *m);
/* negotiated: SMFIP_* the milter wants, SMFIF_* it may use */
uint32_t milter_protocol(const milter_t *m);
uint32_t milter_actions(const milter_t *m);
/* the macro names wanted at a stage (space-separated) or NULL for the default */
const char *milter_symlist(const milter_t *m, enum mp_stage st);

#endif
