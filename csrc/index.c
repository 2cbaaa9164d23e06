/* The id index (index.h): a hash of the transfers an engine owns, chained through index_next. */
#include "index.h"

#include <stdlib.h>

#define MIN_BUCKETS 64

static int grow(cb_index *ix)
{
	size_t buckets = ix->buckets ? 2 * (ix->mask + 1) : MIN_BUCKETS, i;
	cb_transfer **grown = calloc(buckets, sizeof *grown);

	if (grown == NULL)
		return -1;
	for (i = 0; ix->buckets && i <= ix->mask; i++) {
		cb_transfer *t = ix->buckets[i], *following;
		for (; t != NULL; t = following) {
			following = t->index_next;
			t->index_next = grown[(size_t)t->id & (buckets - 1)];
			grown[(size_t)t->id & (buckets - 1)] = t;
		}
	}
	free(ix->buckets);
	ix->buckets = grown;
	ix->mask = buckets - 1;
	return 0;
}

int cb_index_init(cb_index *ix)
{
	return grow(ix);
}

void cb_index_free(cb_index *ix)
{
	free(ix->buckets);
	ix->buckets = NULL;
}

int cb_index_add(cb_index *ix, cb_transfer *t)
{
	cb_transfer **bucket;

	/* Grows past two transfers a bucket; when growing fails, the chains just get longer. */
	if (ix->owned[0] + ix->owned[1] > 2 * ix->mask && grow(ix) != 0 && ix->buckets == NULL)
		return -1;
	bucket = &ix->buckets[(size_t)t->id & ix->mask];
	t->index_next = *bucket;
	*bucket = t;
	ix->owned[(t->flags & CB_HELD) != 0]++;
	return 0;
}

void cb_index_remove(cb_index *ix, cb_transfer *t)
{
	cb_transfer **p = &ix->buckets[(size_t)t->id & ix->mask];

	while (*p != t)
		p = &(*p)->index_next;
	*p = t->index_next;
	t->index_next = NULL;
	ix->owned[(t->flags & CB_HELD) != 0]--;
}

cb_transfer *cb_index_find(const cb_index *ix, long long id)
{
	cb_transfer *t;

	if (ix->buckets == NULL || id <= 0)
		return NULL;
	for (t = ix->buckets[(size_t)id & ix->mask]; t != NULL && t->id != id; t = t->index_next)
		;
	return t;
}
