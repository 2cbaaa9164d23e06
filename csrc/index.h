/* The id index: every transfer an engine owns, found by its id, and how many of them are held. */
#ifndef CODEARTSBUILD_INDEX_H
#define CODEARTSBUILD_INDEX_H

#include "transport.h"

typedef struct {
	cb_transfer **buckets; /* ids are consecutive: id & mask spreads them */
	size_t mask, owned[2]; /* owned[held]: transfers in the index */
} cb_index;

/* Makes the first buckets (ix zeroed by the caller): 0, or -1 when out of memory. */
int cb_index_init(cb_index *ix);
void cb_index_free(cb_index *ix);
/* 0, or -1 when out of memory. */
int cb_index_add(cb_index *ix, cb_transfer *t);
void cb_index_remove(cb_index *ix, cb_transfer *t);
cb_transfer *cb_index_find(const cb_index *ix, long long id);

#endif
