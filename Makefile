# billing: PGXS build. The version is set here once.
EXTENSION   = billing
EXTVERSION  = 0.1.0

MODULE_big  = billing
OBJS = src/billing.o src/cache.o src/money.o src/spi_plan.o src/jsonout.o \
       src/pricing/pricing.o src/pricing/route_cache.o \
       src/ledger/ledger.o src/ledger/slices.o \
       src/requests/requests.o src/requests/trigger.o \
       src/topup/topup.o

# The install script is assembled from one SQL file per concern, in this order.
SQL_PARTS = src/schema.sql src/ledger/ledger.sql src/pricing/pricing.sql \
            src/requests/requests.sql src/topup/topup.sql \
            src/invoice/invoice.sql src/ledger/verify.sql src/security.sql
DATA_built = billing--$(EXTVERSION).sql
DATA = $(wildcard billing--*--*.sql)

REGRESS = setup money pricing accounts charges requests validation topup invoices security \
          threshold verify
REGRESS_OPTS =
ISOLATION = charge_race idempotency_race complete_cancel_race double_complete hold_race \
            threshold_race topup_race topup_cross close_period_race budget_race
ISOLATION_OPTS = --inputdir=test/isolation --outputdir=test/isolation/output_iso --dbname=billing_iso

# PGXS tracks no header dependencies: every object depends on every header.
$(OBJS): $(wildcard src/*.h src/*/*.h)

PG_CPPFLAGS = -Isrc -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers
EXTRA_CLEAN = test/stress test/fuzz bench/driver src/topup/payment_worker test/isolation/output_iso

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

billing--$(EXTVERSION).sql: $(SQL_PARTS)
	cat $^ > $@

# libpq programs: stress test, fuzzer, benchmark driver, example payment worker.
LIBPQ_CFLAGS = -O2 -Wall -Wextra -Werror -I$(shell $(PG_CONFIG) --includedir)
LIBPQ_LIBS = -L$(shell $(PG_CONFIG) --libdir) -lpq
test/stress: test/stress.c
	$(CC) $(LIBPQ_CFLAGS) -o $@ $< $(LIBPQ_LIBS) -lpthread
test/fuzz: test/fuzz.c
	$(CC) $(LIBPQ_CFLAGS) -o $@ $< $(LIBPQ_LIBS)
bench/driver: bench/driver.c
	$(CC) $(LIBPQ_CFLAGS) -o $@ $< $(LIBPQ_LIBS) -lpthread
src/topup/payment_worker: src/topup/payment_worker.c
	$(CC) $(LIBPQ_CFLAGS) -o $@ $< $(LIBPQ_LIBS)

PROGRAMS = $(patsubst %.c,%,$(wildcard test/stress.c test/fuzz.c bench/driver.c src/topup/payment_worker.c))
programs: $(PROGRAMS)
.PHONY: programs bench
all: programs

bench: bench/driver
	bash bench/run.sh
