/*
 * Reading and checking the arguments of billing's SQL-callable functions:
 * the one definition of a NULL refusal, of the 1 to 256 character rule of
 * keys and names, and of the answer to a replayed idempotency key, for C
 * (args_*) and for SQL (billing._not_null, billing._check_length,
 * billing._key_replay, declared in ledger/ledger.sql).
 */
#ifndef BILLING_ARGS_H
#define BILLING_ARGS_H

#include "postgres.h"

#include "fmgr.h"

/* The longest key or name: idempotency keys, external ids, scopes, references. */
#define ARGS_KEY_MAX 256

/* Refuses (22023, "<name> must not be null") a NULL in any of the first nargs arguments. */
extern void args_require(FunctionCallInfo fcinfo, int nargs);
/* The same for argument argno alone. */
extern void args_require_arg(FunctionCallInfo fcinfo, int argno);
/* An optional text argument: NULL when absent. */
extern char *args_text(FunctionCallInfo fcinfo, int argno);
/* An optional text argument; refuses (22023) one of fewer than 1 or more than maxlen characters. */
extern char *args_text_bounded(FunctionCallInfo fcinfo, int argno, const char *what, int maxlen);
/* Is s, of len bytes, 1 to maxlen characters long? */
extern bool args_length_ok(const char *s, int len, int maxlen);
/* Refuses (22023, "<what> must have 1 to <maxlen> characters") such a text s; NULL passes. */
extern void args_check_length(const char *s, const char *what, int maxlen);
/* args_check_length of an idempotency key. */
extern void args_check_idempotency_key(const char *key);
/* Refuses (PB409) key, which made <what> <id> with other parameters ("... was <verb> with this key."). */
extern void args_key_refuse(const char *key, const char *what, int64 id, const char *verb);
/*
 * After a plan that looked an idempotency key up, returning the row it names
 * and whether that row was made with the same parameters: 0 when the key is
 * new, the row's id when it is a replay. Refuses (PB409) a key used with
 * other parameters (args_key_refuse).
 */
extern int64 args_key_replay(const char *key, const char *what, const char *verb);

#endif
