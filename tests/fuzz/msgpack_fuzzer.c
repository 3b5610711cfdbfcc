/*
 * msgpack_fuzzer.c — fuzz target for the reader of Orbax's legacy msgpack
 * aggregate file (core/msgpack.c): any input is walked; every reported
 * array lies inside the input and has the size its shape and dtype give;
 * keys lie inside the input.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/error.h"
#include "msgpack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct ctx {
	const uint8_t *b;
	size_t n;
};

static int check(const char *const *keys, const size_t *lens, unsigned depth, const msgpack_leaf *l,
		 void *payload)
{
	const struct ctx *c = payload;
	assert(depth <= MSGPACK_MAX_DEPTH);
	for (unsigned i = 0; i < depth; i++)
		assert((const uint8_t *)keys[i] >= c->b &&
		       (const uint8_t *)keys[i] + lens[i] <= c->b + c->n);
	if (l->kind == MP_ARRAY) {
		uint64_t n = ckpt_dtype_size(l->dtype);
		for (unsigned d = 0; d < l->ndim; d++)
			n *= l->shape[d];
		assert(n == l->data_len && l->data_off <= c->n &&
		       l->data_len <= c->n - l->data_off);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctx c = {data, size};
	int rc = msgpack_leaves(data, size, "fuzz", check, &c);
	assert(rc <= 0 && (rc == 0 || ckpt_error_last()[0]));
	return 0;
}
