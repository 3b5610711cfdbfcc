/*
 * leaf.c — a leaf of a step seen as its interchange file.
 *
 * Design: an array leaf is the .npy header ckpt_npy_format_header() writes
 * (kept in memory) followed by the stored little-endian C-order bytes; a
 * string leaf is exactly its stored bytes; a scalar leaf (int, float, bool)
 * is its stored text followed by a newline, as text files end (`cat` of it
 * does not run into the prompt; every reader of scalar text, ckpt_scalar_parse,
 * skips surrounding white space, so the file parses back to the same value). A
 * read at [off, off+len) copies the header part from memory, reads the value
 * part through ckpt_value_pread(), so only the chunks overlapping the range
 * are touched, and the newline from memory.
 *
 * Invariants:
 *   1. file_size == hdr_len + value size + nl (nl is 1 for scalars, else 0),
 *      and for arrays the value size equals the metadata's nbytes (checked at
 *      open: CKPT_ECORRUPT otherwise).
 *   2. A ckpt_leaf is immutable after open; preads only read it, so they are
 *      thread-safe as ckpt_value_pread() is.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/npy.h"
#include "ckpt/step.h"
#include "error_private.h"
#include "fsutil.h"

struct ckpt_leaf {
	ckpt_value *v;
	char *key; /* "<item>/<path>" */
	unsigned char *hdr;
	size_t hdr_len;
	unsigned nl; /* 1: a scalar, its text ends with '\n' (not stored) */
	uint64_t file_size;
};

int ckpt_leaf_size_from_tree(uint64_t *out, const ckpt_tree *node)
{
	ckpt_tree_kind kind = ckpt_tree_get_kind(node);
	size_t hl;

	*out = 0;
	if (kind != CKPT_TREE_ARRAY)
		return ckpt_tree_is_container(node) || kind == CKPT_TREE_NONE
			   ? ckpt_error_set(CKPT_EINVAL, "node '%s' is not a leaf with data",
					    ckpt_tree_key(node))
			   : CKPT_ENOTFOUND;
	hl =
	    ckpt_npy_header_len(ckpt_tree_dtype(node), ckpt_tree_ndim(node), ckpt_tree_shape(node));
	if (hl == 0)
		return ckpt_error_set(CKPT_EINVAL, "'%s': no .npy header for this dtype/shape",
				      ckpt_tree_key(node));
	*out = hl + ckpt_tree_nbytes(node); /* invariant 1 */
	return 0;
}

int ckpt_leaf_open(ckpt_leaf **out, ckpt_step *s, const char *item, const ckpt_tree *node)
{
	ckpt_tree_kind kind = ckpt_tree_get_kind(node);
	ckpt_leaf *l = NULL;
	char *path = NULL;
	int rc;

	*out = NULL;
	if (ckpt_tree_is_container(node) || kind == CKPT_TREE_NONE)
		return ckpt_error_set(CKPT_EINVAL, "item %s: node '%s' is not a leaf with data",
				      item, ckpt_tree_key(node));
	if ((rc = ckpt_step_load_index(s))) /* a step opened listed reads its index now */
		return rc;
	l = calloc(1, sizeof(*l));
	if (!l)
		return ckpt_error_nomem();
	rc = ckpt_tree_path(&path, node);
	if (rc)
		goto fail;
	l->key = ckpt_asprintf("%s/%s", item, path);
	if (!l->key) {
		rc = CKPT_ENOMEM;
		goto fail;
	}
	rc = ckpt_value_open(&l->v, ckpt_step_store(s), l->key, strlen(l->key));
	if (rc) {
		ckpt_error_wrap(rc, "%s", l->key);
		goto fail;
	}
	const ckpt_value_info *vi = ckpt_value_get_info(l->v);
	if (kind == CKPT_TREE_ARRAY) {
		ckpt_dtype dt = ckpt_tree_dtype(node);
		unsigned nd = ckpt_tree_ndim(node);
		const uint64_t *shape = ckpt_tree_shape(node);

		if (vi->size != ckpt_tree_nbytes(node)) {
			rc = ckpt_error_set(CKPT_ECORRUPT,
					    "%s: stored value has %llu bytes, metadata says %llu",
					    l->key, (unsigned long long)vi->size,
					    (unsigned long long)ckpt_tree_nbytes(node));
			goto fail;
		}
		l->hdr_len = ckpt_npy_header_len(dt, nd, shape);
		l->hdr = l->hdr_len ? malloc(l->hdr_len) : NULL;
		if (!l->hdr) {
			rc = l->hdr_len ? ckpt_error_nomem()
					: ckpt_error_set(CKPT_EINVAL,
							 "%s: no .npy header for "
							 "this dtype/shape",
							 l->key);
			goto fail;
		}
		size_t n = 0;
		rc = ckpt_npy_format_header(l->hdr, l->hdr_len, &n, dt, nd, shape);
		if (rc) {
			ckpt_error_wrap(rc, "%s", l->key);
			goto fail;
		}
		if (n != l->hdr_len) {
			rc = ckpt_error_set(CKPT_ERROR, "%s: .npy header length mismatch", l->key);
			goto fail;
		}
	}
	l->nl = kind == CKPT_TREE_INT || kind == CKPT_TREE_FLOAT || kind == CKPT_TREE_BOOL;
	l->file_size = l->hdr_len + vi->size + l->nl;
	free(path);
	*out = l;
	return 0;
fail:
	free(path);
	ckpt_leaf_free(l);
	return rc;
}

uint64_t ckpt_leaf_file_size(const ckpt_leaf *l)
{
	return l->file_size;
}

const ckpt_value_info *ckpt_leaf_value_info(const ckpt_leaf *l)
{
	return ckpt_value_get_info(l->v);
}

int ckpt_leaf_describe(char **out, const ckpt_leaf *l)
{
	return ckpt_value_describe(out, l->v);
}

const char *ckpt_leaf_key(const ckpt_leaf *l)
{
	return l->key;
}

int ckpt_leaf_pread(size_t *out_n, ckpt_leaf *l, void *buf, size_t len, uint64_t off)
{
	unsigned char *p = buf;
	size_t done = 0;
	int nl = 0;

	assert(l->file_size - l->nl == l->hdr_len + ckpt_value_get_info(l->v)->size); /* invariant 1 */
	*out_n = 0;
	if (off >= l->file_size || len == 0)
		return 0;
	if (len > l->file_size - off)
		len = (size_t)(l->file_size - off);
	if (l->nl && off + len == l->file_size) { /* the newline after a scalar's text */
		p[--len] = '\n';
		nl = 1;
	}
	if (off < l->hdr_len) {
		size_t n = l->hdr_len - (size_t)off;
		if (n > len)
			n = len;
		memcpy(p, l->hdr + off, n);
		done = n;
	}
	while (done < len) {
		size_t n = 0;
		int rc = ckpt_value_pread(&n, l->v, p + done, len - done, off + done - l->hdr_len);
		if (rc)
			return ckpt_error_wrap(rc, "%s", l->key);
		if (n == 0)
			return ckpt_error_set(CKPT_ECORRUPT, "%s: value shorter than its size",
					      l->key);
		done += n;
	}
	*out_n = done + (size_t)nl;
	return 0;
}

void ckpt_leaf_free(ckpt_leaf *l)
{
	if (!l)
		return;
	ckpt_value_free(l->v);
	free(l->key);
	free(l->hdr);
	free(l);
}
