/* The SQLSTATEs of billing's public API (README.md, SQLSTATEs). */
#ifndef BILLING_ERRORS_H
#define BILLING_ERRORS_H

#include "utils/elog.h"

/* insufficient balance / credit limit exceeded: the application's HTTP 402 */
#define ERRCODE_BILLING_PAYMENT_REQUIRED	MAKE_SQLSTATE('P','B','4','0','2')
/* unknown or disabled account, model, request or top-up */
#define ERRCODE_BILLING_NOT_FOUND			MAKE_SQLSTATE('P','B','4','0','4')
/* idempotency key reused with other parameters; illegal transition */
#define ERRCODE_BILLING_CONFLICT			MAKE_SQLSTATE('P','B','4','0','9')

#endif
