/*
 * table.h - lookup tables read from plain text files.
 *
 * A table maps a key to a list of values. Keys are matched
 * case-insensitively (ASCII). Formats (the file's kind is chosen by the
 * caller):
 *   TABLE_ALIASES  "key: value, value ..."  (sendmail/Postfix aliases(5))
 *   TABLE_MAP      "key  value, value ..."   (Postfix virtual(5), mailboxes)
 * '#' at the start of a line (after white space) is a comment; a line that
 * starts with white space continues the previous entry's values. Keys may be
 * double-quoted. A missing file is an error; an empty file is an empty table.
 * Errors are reported as "path:line: message" and the whole load fails.
 * Immutable after load: safe to read from any thread.
 */
#ifndef TERN_TABLE_H
#define TERN_TABLE_H

#include <stddef.h>

#include "lib/buf.h"

enum table_kind { TABLE_ALIASES, TABLE_MAP };

typedef struct table table_t;

typedef struct table_entry {
	const char *key;     /* as written in the file */
	const char **values; /* may be empty (nvalues == 0) for TABLE_MAP */
	size_t nvalues;
	const char *file;
	unsigned line;
} table_entry_t;

table_t *table_load(const char *path, enum table_kind kind, buf_t *errors);
/* The same for text in memory (tests, fuzzing); name stands for the file. */
table_t *table_parse_buf(const char *name, const char *data, size_t len, enum table_kind kind,
    buf_t *errors);
table_t *table_new_empty(void);
void table_free(table_t *t);
/* NULL when absent */
const table_entry_t *table_get(const table_t *t, const char *key);
size_t table_count(const table_t *t);
/* entries in file order, i < table_count(); NULL beyond */
const table_entry_t *table_entry_at(const table_t *t, size_t i);

#endif
