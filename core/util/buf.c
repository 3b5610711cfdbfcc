/*
 * buf.c — a growable byte buffer (buf.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error_private.h"

int ckpt_buf_reserve(ckpt_buf *b, size_t n)
{
	size_t cap = b->cap ? b->cap : 256;
	unsigned char *p;

	if (n <= b->cap - b->len)
		return 0;
	while (cap - b->len < n) {
		if (cap > SIZE_MAX / 2)
			return ckpt_error_nomem();
		cap *= 2;
	}
	if (!(p = realloc(b->p, cap)))
		return ckpt_error_nomem();
	b->p = p;
	b->cap = cap;
	return 0;
}

int ckpt_buf_put(ckpt_buf *b, const void *src, size_t n)
{
	int rc;

	if (n == 0)
		return 0;
	if ((rc = ckpt_buf_reserve(b, n)))
		return rc;
	memcpy(b->p + b->len, src, n);
	b->len += n;
	return 0;
}
