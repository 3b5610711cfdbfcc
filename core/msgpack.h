/*
 * msgpack.h — the leaves of Orbax's legacy msgpack "aggregate" file (library only).
 *
 * Before OCDBT, Orbax wrote a pytree item's small leaves (or all of them,
 * SaveArgs(aggregate=True)) into one msgpack file `<item>/checkpoint`: a map
 * mirroring the tree (lists as maps with keys "0", "1", ...) whose leaves
 * are msgpack values, "PLACEHOLDER://<param>" strings (the array is stored
 * elsewhere), or ext type 1 / 3 (ndarray / numpy scalar) holding the msgpack
 * array [shape, dtype name, bytes]. See docs/format.md "Orbax checkpoints".
 *
 * msgpack_leaves() walks such a buffer and reports every leaf with its key
 * path; an array's bytes are reported as an offset and length into the
 * buffer, so the caller can read them from the file later.
 *
 * Invariants:
 *   1. Every length is checked against the bytes that remain before it is
 *      used; nesting is limited to MSGPACK_MAX_DEPTH; nothing is allocated
 *      from a length in the input.
 *   2. A reported array has data_len == prod(shape) * itemsize(dtype).
 */
#ifndef CKPT_MSGPACK_H
#define CKPT_MSGPACK_H

#include <stddef.h>
#include <stdint.h>

#include "ckpt/dtype.h"

#define MSGPACK_MAX_DEPTH 64
#define MSGPACK_MAX_NDIM  32

enum { MP_NIL, MP_BOOL, MP_INT, MP_FLOAT, MP_STR, MP_ARRAY, MP_PLACEHOLDER };

typedef struct msgpack_leaf {
	int kind;
	int64_t i; /* MP_BOOL, MP_INT */
	double f;  /* MP_FLOAT */
	const char
	    *s; /* MP_STR, MP_PLACEHOLDER (the param name): into the buffer, not NUL-terminated */
	size_t slen;
	ckpt_dtype dtype; /* MP_ARRAY */
	unsigned ndim;
	uint64_t shape[MSGPACK_MAX_NDIM];
	uint64_t data_off, data_len; /* MP_ARRAY: bytes [off, off+len) of the buffer */
} msgpack_leaf;

/* keys[i] (keylens[i] bytes, not NUL-terminated) is the path from the root. */
typedef int (*msgpack_leaf_cb)(const char *const *keys, const size_t *keylens, unsigned depth,
			       const msgpack_leaf *leaf, void *payload);

/* Walk the msgpack map in buf; CKPT_EINVAL/CKPT_EUNSUPPORTED name what is wrong
 * (`what` prefixes messages); a non-zero cb return stops the walk and is returned. */
int msgpack_leaves(const uint8_t *buf, size_t len, const char *what, msgpack_leaf_cb cb,
		   void *payload);

#endif
