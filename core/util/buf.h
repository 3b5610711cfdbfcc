/*
 * buf.h — a growable byte buffer for writers of binary formats (library only).
 *
 * Ownership: p is malloc'd and belongs to the buffer's owner, who frees it
 * (free(b.p)); a zeroed ckpt_buf is empty. Capacity doubles, so n appends
 * cost O(total) copying.
 */
#ifndef CKPT_BUF_H
#define CKPT_BUF_H

#include <stddef.h>

typedef struct ckpt_buf {
	unsigned char *p;
	size_t len, cap;
} ckpt_buf;

/* Room for n more bytes after len. Returns 0, CKPT_ENOMEM (b unchanged). */
int ckpt_buf_reserve(ckpt_buf *b, size_t n);

/* Append src[0, n) (src may be NULL when n is 0). Returns 0, CKPT_ENOMEM (b unchanged). */
int ckpt_buf_put(ckpt_buf *b, const void *src, size_t n);

#endif
