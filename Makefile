# pg_pipeline: PGXS build
EXTENSION    = pg_pipeline
MODULE_big   = pg_pipeline
OBJS         = $(patsubst %.c,%.o,$(wildcard src/*.c))
DATA         = $(wildcard sql/pg_pipeline--*.sql)
PGFILEDESC   = "pg_pipeline - data pipelines inside PostgreSQL"

REGRESS      = $(basename $(notdir $(filter-out $(DATA),$(wildcard sql/*.sql))))
REGRESS_OPTS = --load-extension=pg_pipeline

PG_CPPFLAGS  = -I$(srcdir)/src -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
# Export only what PostgreSQL looks up (SQL functions, the magic block,
# _PG_init, worker entry points), so that no other library loaded into the
# server can interpose on our internal functions, nor we on theirs.
PG_CPPFLAGS += -D'PGDLLEXPORT=__attribute__((visibility("default")))'
PG_CFLAGS    = -fvisibility=hidden
PG_CONFIG   ?= pg_config
PGXS        := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
