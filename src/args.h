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

#endif
