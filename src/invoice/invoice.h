/* Invoicing's settings; its logic is SQL (invoice.sql, docs/invoices.md). */
#ifndef BILLING_INVOICE_H
#define BILLING_INVOICE_H

#include "utils/guc.h"

extern char *billing_timezone;
extern int	billing_invoice_due_days;
extern char *billing_credit_limit_floor_micros;	/* micros, see money_setting() */
extern char *billing_credit_limit_cap_micros;
extern int	billing_overdue_grace_days;
extern char *billing_seller_details;	/* JSON text of billing details, or empty */
extern char *billing_invoice_number_prefix;
extern char *billing_credit_note_number_prefix;
extern void invoice_init(void);

/* the check hook of billing.seller_details (details.c) */
extern bool invoice_check_seller(char **newval, void **extra, GucSource source);

#endif
