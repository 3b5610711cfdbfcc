/*
 * step_list.c — the step listing, ckpt.list (step_list.h; docs/format.md
 * "Step listing").
 *
 * Layout (integers little-endian):
 *
 *   0   8  magic "CKPTLIST"
 *   8   4  version (1)
 *   12  4  the index checksum ckpt.db's header records (its bytes 60..63)
 *   16  8  body length
 *   24  4  CRC-32C of the body
 *   28  4  zero
 *   32     body: u64 length + _CHECKPOINT_METADATA; u32 item count; per item
 *          u32 name length + name, u8 has_metadata, u64 _METADATA length,
 *          u64 tree length + compact tree (tree_bin.c), u32 key count + per
 *          key u32 length + the key after "<item>/" (items without _METADATA)
 *
 * Invariants of a parsed listing (checked by step_list_parse):
 *   1. The file is exactly header + body; the body's CRC matches.
 *   2. Every length lies within the body and the body is used up exactly.
 *   3. Item names are non-empty and distinct; an item without _METADATA has
 *      no tree and a zero length; one with it has a tree and no keys.
 *   4. An item's keys are non-empty and strictly increasing (memcmp order).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "bytes.h"
#include "crc32c.h"
#include "error_private.h"
#include "fsutil.h"
#include "step_list.h"
#include "step_private.h"
#include "store_private.h"
#include "tree_private.h"

/* A listing is small (bytes per leaf, not per value); this bounds a damaged one. */
#define STEP_LIST_MAX ((size_t)1 << 31)

void step_list_clear(struct step_list *l)
{
	free(l->buf);
	free(l->items);
	memset(l, 0, sizeof(*l));
}

/* ---- parsing ---- */

struct cursor {
	const unsigned char *p, *end, *body;
	const char *what;
};

#define BAD(c, fmt, ...)                                                                           \
	ckpt_error_set(CKPT_ECORRUPT, "%s: damaged step listing: " fmt " (body byte %zu)",         \
		       (c)->what, __VA_ARGS__, (size_t)((c)->p - (c)->body))

static int take(const unsigned char **out, struct cursor *c, uint64_t n, const char *field)
{
	if (n > (uint64_t)(c->end - c->p))
		return BAD(c, "%s of %llu bytes runs past the end", field, (unsigned long long)n);
	*out = c->p;
	c->p += n;
	return 0;
}

static int take_u64(uint64_t *v, struct cursor *c, unsigned width, const char *field)
{
	const unsigned char *q = NULL;
	int rc = take(&q, c, width, field);
	if (rc == 0)
		*v = width == 8 ? ckpt_get_le64(q) : width == 4 ? ckpt_get_le32(q) : q[0];
	return rc;
}

static int parse_item(struct step_list_item *it, struct cursor *c)
{
	const unsigned char *q = NULL;
	uint64_t n, has;
	int rc;

	if ((rc = take_u64(&n, c, 4, "item name length")) || (rc = take(&q, c, n, "item name")))
		return rc;
	it->name = (const char *)q;
	it->name_len = (size_t)n;
	if (n == 0 || memchr(q, 0, n))
		return BAD(c, "%s", "an item name is empty or holds a NUL byte");
	if ((rc = take_u64(&has, c, 1, "metadata flag")) ||
	    (rc = take_u64(&it->metadata_len, c, 8, "metadata length")) ||
	    (rc = take_u64(&n, c, 8, "tree length")) || (rc = take(&it->tree, c, n, "tree")))
		return rc;
	it->tree_len = (size_t)n;
	it->has_metadata = has == 1;
	if (has > 1 || (!has && (it->metadata_len || n)) || (has && !n))
		return BAD(c,
			   "item '%.*s': metadata flag %llu with length %llu and a tree of %zu "
			   "bytes",
			   (int)it->name_len, it->name, (unsigned long long)has,
			   (unsigned long long)it->metadata_len, it->tree_len);
	if ((rc = take_u64(&n, c, 4, "key count")))
		return rc;
	if (has && n)
		return BAD(c, "item '%.*s' has a tree and %llu keys", (int)it->name_len, it->name,
			   (unsigned long long)n);
	it->keys = c->p;
	it->nkeys = (size_t)n;
	const unsigned char *prev = NULL;
	uint64_t prevlen = 0;
	for (uint64_t k = 0; k < n; k++) {
		uint64_t kl;
		if ((rc = take_u64(&kl, c, 4, "key length")) || (rc = take(&q, c, kl, "key")))
			return rc;
		int d = prev ? memcmp(prev, q, prevlen < kl ? prevlen : kl) : -1;
		if (kl == 0 || d > 0 || (d == 0 && prevlen >= kl))
			return BAD(c, "item '%.*s': key %llu is empty or out of order",
				   (int)it->name_len, it->name, (unsigned long long)k);
		prev = q;
		prevlen = kl;
	}
	it->keys_len = (size_t)(c->p - it->keys);
	return 0;
}

int step_list_keys(const struct step_list_item *it, const char *rel, size_t rellen, int delimiter,
		   ckpt_store_list_cb cb, void *payload)
{
	const unsigned char *p = it->keys, *last = NULL;
	size_t lastlen = 0;

	if (delimiter > 255)
		return ckpt_error_set(CKPT_EINVAL, "list: delimiter %d is not a byte", delimiter);
	for (size_t k = 0; k < it->nkeys; k++) { /* checked by parse_item (invariant 4) */
		size_t kl = ckpt_get_le32(p);
		const unsigned char *key = p + 4;
		p += 4 + kl;
		assert(kl > 0 && (size_t)(p - it->keys) <= it->keys_len);
		if (kl < rellen || memcmp(key, rel, rellen) != 0)
			continue;
		const unsigned char *name = key + rellen, *d = NULL;
		size_t nl = kl - rellen;
		if (delimiter >= 0 && (d = memchr(name, delimiter, nl)))
			nl = (size_t)(d - name);
		if (d && last && lastlen == nl && memcmp(last, name, nl) == 0)
			continue; /* the same common prefix again */
		int rc = cb(name, nl, d != NULL, payload);
		if (rc)
			return rc;
		last = d ? name : NULL;
		lastlen = nl;
	}
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	const struct step_list_item *x = a, *y = b;
	size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
	int d = memcmp(x->name, y->name, n);
	return d ? d : (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

int step_list_parse(struct step_list *l, unsigned char *buf, size_t len, const char *what)
{
	struct cursor c = {.what = what};
	const unsigned char *q = NULL;
	uint64_t n, body_len;
	int rc;

	memset(l, 0, sizeof(*l));
	l->buf = buf;
	if (len < STEP_LIST_HDR || memcmp(buf, STEP_LIST_MAGIC, 8) != 0) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: damaged step listing: %s", what,
				    len < STEP_LIST_HDR ? "shorter than its header"
							: "no CKPTLIST magic");
		goto fail;
	}
	if (ckpt_get_le32(buf + 8) != STEP_LIST_VERSION) {
		rc = ckpt_error_set(CKPT_EVERSION,
				    "%s: step listing version %u (this reader knows 1)", what,
				    ckpt_get_le32(buf + 8));
		goto fail;
	}
	l->index_crc = ckpt_get_le32(buf + 12);
	body_len = ckpt_get_le64(buf + 16);
	if (body_len != len - STEP_LIST_HDR || ckpt_get_le32(buf + 28) != 0) {
		rc = ckpt_error_set(CKPT_ECORRUPT,
				    "%s: damaged step listing: the header says %llu bytes of body, "
				    "the file has %zu",
				    what, (unsigned long long)body_len, len - STEP_LIST_HDR);
		goto fail;
	}
	uint32_t want = ckpt_get_le32(buf + 24), got = ckpt_crc32c_update(0, buf + 32, body_len);
	if (want != got) {
		rc =
		    ckpt_error_set(CKPT_ECORRUPT,
				   "%s: damaged step listing: CRC32C mismatch (header says 0x%08x, "
				   "the body has 0x%08x)",
				   what, want, got);
		goto fail;
	}
	c.p = c.body = buf + STEP_LIST_HDR;
	c.end = buf + len;
	if ((rc = take_u64(&n, &c, 8, "metadata length")) ||
	    (rc = take(&q, &c, n, "_CHECKPOINT_METADATA")))
		goto fail;
	l->meta = (const char *)q;
	l->meta_len = (size_t)n;
	if ((rc = take_u64(&n, &c, 4, "item count")))
		goto fail;
	if (n > (uint64_t)(c.end - c.p) / 25) { /* 25: the smallest item */
		rc = BAD(&c, "%llu items cannot fit", (unsigned long long)n);
		goto fail;
	}
	l->nitems = (size_t)n;
	if (!(l->items = calloc(n ? n : 1, sizeof(*l->items)))) {
		rc = ckpt_error_nomem();
		goto fail;
	}
	for (size_t i = 0; i < l->nitems; i++)
		if ((rc = parse_item(&l->items[i], &c)))
			goto fail;
	if (c.p != c.end) {
		rc = BAD(&c, "%zu bytes after the last item", (size_t)(c.end - c.p));
		goto fail;
	}
	qsort(l->items, l->nitems, sizeof(*l->items), cmp_names);
	for (size_t i = 1; i < l->nitems; i++)
		if (cmp_names(&l->items[i - 1], &l->items[i]) == 0) {
			rc = BAD(&c, "item '%.*s' listed twice", (int)l->items[i].name_len,
				 l->items[i].name);
			goto fail;
		}
	return 0;
fail:
	step_list_clear(l);
	return rc;
}

/* Open dir/name for reading as a checkpoint's file (docs/format.md "What a reader must check"). */
static int open_in(int *fd, const char *dir, const char *name, const char *what)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

	*fd = -1;
	if (dfd < 0)
		return ckpt_error_errno(errno == ENOENT ? CKPT_ENOTFOUND : CKPT_EIO, errno,
					"open %s", dir);
	rc = ckpt_open_beneath(fd, dfd, name, CKPT_OPEN_FILE, what);
	close(dfd);
	return rc;
}

int step_list_read(struct step_list *l, const char *dir)
{
	char *path = ckpt_asprintf("%s/%s", dir, STEP_LIST_NAME), *buf = NULL;
	size_t len = 0;
	int fd = -1, rc;

	memset(l, 0, sizeof(*l));
	if (!path)
		return ckpt_error_nomem();
	if ((rc = open_in(&fd, dir, STEP_LIST_NAME, path)) == 0 &&
	    (rc = ckpt_read_fd(&buf, &len, fd, STEP_LIST_MAX, path)) == 0)
		rc = step_list_parse(l, (unsigned char *)buf, len, path);
	if (fd >= 0)
		close(fd);
	free(path);
	return rc;
}

/* ---- writing ---- */

static int put_u(ckpt_buf *g, uint64_t v, unsigned width)
{
	unsigned char b[8];
	ckpt_put_le64(b, v);
	return ckpt_buf_put(g, b, width);
}

struct key_sink {
	ckpt_buf *g;
	uint32_t n;
};

static int put_key(const void *name, size_t len, int is_prefix, void *payload)
{
	struct key_sink *k = payload;
	int rc;

	if (len == 0) /* the key "<item>/" itself: no name to show (the view skips it too) */
		return 0;
	k->n++;
	return (rc = put_u(k->g, len, 4)) ? rc : ckpt_buf_put(k->g, name, len);
}

/* Item i of s into g; *skip set when its tree does not read (no listing then). */
static int put_item(ckpt_buf *g, ckpt_step *s, size_t i, int *skip)
{
	const char *name = ckpt_step_item_name(s, i);
	const ckpt_tree *t = NULL;
	unsigned char *tree = NULL;
	char *prefix = NULL;
	size_t tlen = 0, count_at;
	uint64_t mlen = 0;
	int rc = ckpt_step_item_tree(&t, s, name), has = rc == 0;

	if (rc == 0 && (rc = ckpt_step_item_metadata_size(&mlen, s, name)) == 0)
		rc = ckpt_tree_encode(&tree, &tlen, t);
	if (rc == CKPT_ECORRUPT || rc == CKPT_EINVAL) {
		*skip =
		    1; /* a _METADATA that is not a tree: no listing, the step reads as before */
		ckpt_error_clear();
		rc = 0;
		goto done;
	}
	if (rc == CKPT_ENOTFOUND)
		ckpt_error_clear();
	else if (rc)
		goto done;
	if ((rc = put_u(g, strlen(name), 4)) || (rc = ckpt_buf_put(g, name, strlen(name))) ||
	    (rc = put_u(g, has, 1)) || (rc = put_u(g, mlen, 8)) || (rc = put_u(g, tlen, 8)) ||
	    (rc = ckpt_buf_put(g, tree, tlen)))
		goto done;
	count_at = g->len;
	struct key_sink k = {g, 0};
	if ((rc = put_u(g, 0, 4)) || has)
		goto done;
	if (!(prefix = ckpt_asprintf("%s/", name))) {
		rc = ckpt_error_nomem();
		goto done;
	}
	rc = ckpt_store_list(ckpt_step_store(s), prefix, strlen(prefix), -1, put_key, &k);
	if (rc == 0)
		ckpt_put_le32(g->p + count_at, k.n);
done:
	free(prefix);
	free(tree);
	return rc;
}

int step_list_write(const char *dir)
{
	ckpt_buf g = {0};
	ckpt_step *s = NULL;
	char *path = ckpt_asprintf("%s/%s", dir, STEP_LIST_NAME);
	const char *meta;
	uint32_t icrc = 0;
	int rc, skip = 0, fd = -1;

	if (!path)
		return ckpt_error_nomem();
	if (unlink(path) != 0 && errno != ENOENT) { /* ckpt_step_open would read it */
		rc = ckpt_error_errno(CKPT_EIO, errno, "remove %s", path);
		goto done;
	}
	if ((rc = ckpt_step_open(&s, dir, NULL)))
		goto done;
	icrc = ckpt_store_index_crc(ckpt_step_store(s)); /* what the open checked */
	meta = ckpt_step_metadata_json(s);
	if ((rc = ckpt_buf_put(&g, STEP_LIST_MAGIC, 8)) || (rc = put_u(&g, STEP_LIST_VERSION, 4)) ||
	    (rc = put_u(&g, icrc, 4)) || (rc = put_u(&g, 0, 8)) || (rc = put_u(&g, 0, 8)) ||
	    (rc = put_u(&g, strlen(meta), 8)) || (rc = ckpt_buf_put(&g, meta, strlen(meta))) ||
	    (rc = put_u(&g, ckpt_step_item_count(s), 4)))
		goto done;
	for (size_t i = 0; rc == 0 && !skip && i < ckpt_step_item_count(s); i++)
		rc = put_item(&g, s, i, &skip);
	if (rc || skip || icrc == 0)
		goto done; /* an unsealed index is not bound to anything: no listing */
	ckpt_put_le64(g.p + 16, g.len - STEP_LIST_HDR);
	ckpt_put_le32(g.p + 24, ckpt_crc32c_update(0, g.p + STEP_LIST_HDR, g.len - STEP_LIST_HDR));
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		rc = ckpt_error_errno(CKPT_EIO, errno, "create %s", path);
	else if ((rc = ckpt_write_full(fd, g.p, g.len, path)) == 0 && fsync(fd) != 0)
		rc = ckpt_error_errno(CKPT_EIO, errno, "fsync %s", path);
done:
	if (fd >= 0)
		close(fd);
	ckpt_step_free(s);
	free(g.p);
	free(path);
	return rc;
}
