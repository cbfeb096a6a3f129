/* Reading and checking the arguments of billing's SQL-callable C functions. */
#ifndef BILLING_ARGS_H
#define BILLING_ARGS_H

#include "postgres.h"

#include "fmgr.h"

/* Refuses (22023) a NULL in any of the first nargs arguments. */
extern void args_require(FunctionCallInfo fcinfo, int nargs);
/* An optional text argument: NULL when absent. */
extern char *args_text(FunctionCallInfo fcinfo, int argno);
/* An optional text argument; refuses (22023) one of fewer than 1 or more than maxlen bytes. */
extern char *args_text_bounded(FunctionCallInfo fcinfo, int argno, const char *what, int maxlen);
/* Refuses (22023) an idempotency key that is empty or over 256 characters. */
extern void args_check_idempotency_key(const char *key);
/*
 * After a plan that looked an idempotency key up, returning the row it names
 * and whether that row was made with the same parameters: 0 when the key is
 * new, the row's id when it is a replay. Refuses (PB409) a key used with
 * other parameters; the detail reads "<what> <id> was <verb> with this key."
 */
extern int64 args_key_replay(const char *key, const char *what, const char *verb);

#endif
