/*
 * tree_bin.c — the compact binary form of a metadata tree (docs/format.md,
 * "Compact tree"; declared in tree_private.h).
 *
 * _METADATA is JSON keyed by Python tuple reprs: a step of 50,000 leaves
 * reads 14 MB of it to rebuild the tree. The compact form is the tree itself
 * in pre-order: a tag byte per node (kind, custom metadata flag), keys and
 * strings as varint lengths and bytes, dims as varints. Decoding is one pass
 * that builds each container's children, then gives them to it at once
 * (ckpt_tree_adopt): one index build per dict, duplicate keys found on the way.
 *
 * Invariants:
 *  1. The decoder never reads past len: every read checks the bytes left
 *     first, and a count is checked against the bytes left (every child takes
 *     one byte at least) before anything is allocated for it.
 *  2. It accepts exactly the trees the _METADATA reader accepts (depth,
 *     unique keys, dtype, ndim, dims <= 2^53, sizes, custom metadata that is
 *     JSON and not nested too deep, no NUL in keys and type names), and only
 *     canonical bytes (shortest varints, bool 0 or 1, zero tag bits):
 *     encode(decode(b)) == b. The encoder refuses the trees it would refuse.
 *  3. decode(encode(t)) has t's kinds, keys, names, namedtuple types, custom
 *     metadata texts, dtypes, shapes and scalar and string values (floats bit
 *     for bit); not array data or shards.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "ckpt/tree.h"
#include "error_private.h"
#include "jdom.h"
#include "tree_private.h"

#define BIN_VERSION 1
#define TAG_KIND    0x0F
#define TAG_CUSTOM  0x10

/*
 * How deep t's custom metadata may nest: _METADATA holds it 1 level deep (the
 * root container's, top-level), 3 (another container's, under "containers")
 * or 4 (a leaf's or an empty container's, in its tree_metadata entry) in a
 * document that may nest JDOM_MAX_NESTING levels (jdom.h, cJSON): deeper, it
 * would not read back.
 */
static unsigned custom_max_nesting(const ckpt_tree *t, unsigned depth)
{
	if (ckpt_tree_count(t) == 0)
		return JDOM_MAX_NESTING - 4;
	return JDOM_MAX_NESTING - (depth == 0 ? 1 : 3);
}

/* How deep the JSON text s[0, n) nests (arrays and objects; s is valid JSON). */
static unsigned json_nesting(const char *s, size_t n)
{
	unsigned depth = 0, max = 0;
	int in_str = 0;

	for (size_t i = 0; i < n; i++) {
		if (in_str) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == '"')
				in_str = 0;
		} else if (s[i] == '"') {
			in_str = 1;
		} else if (s[i] == '[' || s[i] == '{') {
			if (++depth > max)
				max = depth;
		} else if (s[i] == ']' || s[i] == '}') {
			depth--;
		}
	}
	return max;
}

/* ---- encoding ------------------------------------------------------------ */

/* Unsigned LEB128 (room for 10 bytes reserved by the caller). */
static void put_varint(ckpt_buf *e, uint64_t v)
{
	while (v >= 0x80) {
		e->p[e->len++] = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	e->p[e->len++] = (unsigned char)v;
}

/* A varint length and the bytes. */
static int put_bytes(ckpt_buf *e, const void *p, size_t n)
{
	int rc = ckpt_buf_reserve(e, 10 + n);

	if (rc < 0)
		return rc;
	put_varint(e, n);
	if (n)
		memcpy(e->p + e->len, p, n);
	e->len += n;
	return 0;
}

static int put_leaf(ckpt_buf *e, const ckpt_tree *t)
{
	int rc = ckpt_buf_reserve(e, 2 + CKPT_TREE_MAX_NDIM * 10);
	uint64_t u;
	double f;
	const char *s;
	size_t n;

	if (rc < 0)
		return rc;
	switch (ckpt_tree_get_kind(t)) {
	case CKPT_TREE_ARRAY:
		e->p[e->len++] = (unsigned char)ckpt_tree_dtype(t);
		e->p[e->len++] = (unsigned char)ckpt_tree_ndim(t);
		for (unsigned d = 0; d < ckpt_tree_ndim(t); d++) {
			if (ckpt_tree_shape(t)[d] > CKPT_TREE_MAX_DIM)
				return ckpt_error_set(CKPT_EINVAL,
						      "compact tree: '%s': dimension %u is over "
						      "2^53",
						      ckpt_tree_key(t), d);
			put_varint(e, ckpt_tree_shape(t)[d]);
		}
		return 0;
	case CKPT_TREE_INT:
		u = (uint64_t)ckpt_tree_int(t);
		put_varint(e, (u << 1) ^ (0 - (u >> 63))); /* zigzag */
		return 0;
	case CKPT_TREE_FLOAT:
		f = ckpt_tree_float(t);
		memcpy(&u, &f, 8);
		for (int i = 0; i < 8; i++)
			e->p[e->len++] = (unsigned char)(u >> (8 * i));
		return 0;
	case CKPT_TREE_BOOL: e->p[e->len++] = (unsigned char)ckpt_tree_bool(t); return 0;
	case CKPT_TREE_STRING: s = ckpt_tree_string(t, &n); return put_bytes(e, s, n);
	default: return 0; /* None */
	}
}

static int put_node(ckpt_buf *e, const ckpt_tree *t, unsigned depth)
{
	ckpt_tree_kind k = ckpt_tree_get_kind(t);
	const char *cm = ckpt_tree_custom_metadata(t), *tn = ckpt_tree_namedtuple_type(t);
	int keyed = k == CKPT_TREE_DICT || k == CKPT_TREE_NAMEDTUPLE;
	int rc;

	if (depth > CKPT_TREE_MAX_DEPTH)
		return ckpt_error_set(CKPT_EINVAL, "compact tree: tree deeper than %d", CKPT_TREE_MAX_DEPTH);
	if (cm && json_nesting(cm, strlen(cm)) > custom_max_nesting(t, depth))
		return ckpt_error_set(CKPT_EINVAL,
				      "compact tree: '%s': custom metadata nested deeper than "
				      "_METADATA carries (%u levels)",
				      ckpt_tree_key(t), custom_max_nesting(t, depth));
	if ((rc = ckpt_buf_reserve(e, 1)) < 0)
		return rc;
	e->p[e->len++] = (unsigned char)(k | (cm ? TAG_CUSTOM : 0));
	if (cm && (rc = put_bytes(e, cm, strlen(cm))) < 0)
		return rc;
	if (!ckpt_tree_is_container(t))
		return put_leaf(e, t);
	if (tn && (rc = put_bytes(e, tn, strlen(tn))) < 0)
		return rc;
	if ((rc = ckpt_buf_reserve(e, 10)) < 0)
		return rc;
	put_varint(e, ckpt_tree_count(t));
	for (size_t i = 0; i < ckpt_tree_count(t); i++) {
		const ckpt_tree *c = ckpt_tree_child(t, i);

		if (keyed && (rc = put_bytes(e, ckpt_tree_key(c), strlen(ckpt_tree_key(c)))) < 0)
			return rc;
		if ((rc = put_node(e, c, depth + 1)) < 0)
			return rc;
	}
	return 0;
}

int ckpt_tree_encode(unsigned char **out, size_t *len, const ckpt_tree *t)
{
	ckpt_buf e = {0};
	int rc;

	*out = NULL;
	*len = 0;
	if (!t)
		return ckpt_error_set(CKPT_EINVAL, "compact tree: NULL tree");
	if ((rc = ckpt_buf_reserve(&e, 1)) < 0)
		return rc;
	e.p[e.len++] = BIN_VERSION;
	if ((rc = put_node(&e, t, 0)) < 0) {
		free(e.p);
		return rc;
	}
	*out = e.p;
	*len = e.len;
	return 0;
}

/* ---- decoding ------------------------------------------------------------ */

struct dec {
	const unsigned char *start, *p, *end;
};

/* Error helper: "compact tree: byte <offset>: <what>", CKPT_ECORRUPT. */
#define BAD(d, at, ...)                                                                            \
	ckpt_error_wrap(ckpt_error_set(CKPT_ECORRUPT, __VA_ARGS__), "compact tree: byte %zu",      \
			(size_t)((at) - (d)->start))

static size_t left(const struct dec *d)
{
	return (size_t)(d->end - d->p);
}

/* One byte; what names it in the message if there is none. */
static int get_byte(struct dec *d, unsigned *v, const char *what)
{
	*v = 0;
	if (d->p == d->end)
		return BAD(d, d->p, "truncated: %s missing", what);
	*v = *d->p++;
	return 0;
}

/* A shortest unsigned LEB128 of at most 64 bits. */
static int get_varint(struct dec *d, uint64_t *v, const char *what)
{
	const unsigned char *at = d->p;
	uint64_t x = 0;

	*v = 0;
	if (d->p < d->end && *d->p < 0x80) { /* the common case: one byte */
		*v = *d->p++;
		return 0;
	}
	for (unsigned shift = 0;; shift += 7) {
		unsigned b;

		if (d->p == d->end)
			return BAD(d, at, "truncated: %s cut short", what);
		b = *d->p++;
		if (shift == 63 && b > 1)
			return BAD(d, at, "%s overflows 64 bits", what);
		x |= (uint64_t)(b & 0x7F) << shift;
		if (b < 0x80) {
			if (b == 0 && shift)
				return BAD(d, at, "%s is not in its shortest form", what);
			*v = x;
			return 0;
		}
	}
}

/* 1 if s[0, n) has a NUL byte (keys are short: a loop beats a call). */
static int has_nul(const unsigned char *s, size_t n)
{
	if (n >= 32)
		return memchr(s, '\0', n) != NULL;
	for (size_t i = 0; i < n; i++)
		if (!s[i])
			return 1;
	return 0;
}

/* A varint length and that many bytes, borrowed from the input; with nul_ok 0 no NUL among them. */
static int get_bytes(struct dec *d, const char **s, size_t *n, int nul_ok, const char *what)
{
	const unsigned char *at = d->p;
	uint64_t len;
	int rc = get_varint(d, &len, what);

	*s = NULL;
	*n = 0;
	if (rc < 0)
		return rc;
	if (len > left(d))
		return BAD(d, at, "truncated: %s of %llu bytes, %zu left", what,
			   (unsigned long long)len, left(d));
	if (!nul_ok && has_nul(d->p, (size_t)len))
		return BAD(d, at, "%s contains a NUL byte", what);
	*s = (const char *)d->p;
	*n = (size_t)len;
	d->p += len;
	return 0;
}

static int get_node(struct dec *d, ckpt_tree **out, unsigned depth);

/* The array of an ARRAY node after its tag. */
static int get_array(struct dec *d, ckpt_tree **out)
{
	const unsigned char *at = d->p;
	uint64_t dims[CKPT_TREE_MAX_NDIM];
	unsigned dt, nd;
	int rc;

	if ((rc = get_byte(d, &dt, "dtype")) < 0)
		return rc;
	if (ckpt_dtype_size((ckpt_dtype)dt) == 0)
		return BAD(d, at, "bad dtype %u", dt);
	if ((rc = get_byte(d, &nd, "ndim")) < 0)
		return rc;
	if (nd > CKPT_TREE_MAX_NDIM)
		return BAD(d, at + 1, "ndim %u over %d", nd, CKPT_TREE_MAX_NDIM);
	for (unsigned i = 0; i < nd; i++) {
		const unsigned char *dim_at = d->p;

		if ((rc = get_varint(d, &dims[i], "dimension")) < 0)
			return rc;
		if (dims[i] > CKPT_TREE_MAX_DIM)
			return BAD(d, dim_at, "dimension %u is over 2^53", i);
	}
	rc = ckpt_tree_new_array(out, (ckpt_dtype)dt, nd, dims, NULL, CKPT_TREE_BORROW);
	if (rc == CKPT_EINVAL)
		return BAD(d, at, "array too large");
	return rc;
}

/* The value of a leaf after its tag. */
static int get_leaf(struct dec *d, ckpt_tree **out, ckpt_tree_kind k)
{
	const unsigned char *at = d->p;
	const char *s;
	uint64_t u;
	double f;
	unsigned b;
	size_t n;
	int rc;

	switch (k) {
	case CKPT_TREE_NONE: return ckpt_tree_new(out, CKPT_TREE_NONE);
	case CKPT_TREE_ARRAY: return get_array(d, out);
	case CKPT_TREE_INT:
		if ((rc = get_varint(d, &u, "int")) < 0)
			return rc;
		return ckpt_tree_new_int(out, (int64_t)((u >> 1) ^ (0 - (u & 1))));
	case CKPT_TREE_FLOAT:
		if (left(d) < 8)
			return BAD(d, at, "truncated: float of 8 bytes, %zu left", left(d));
		u = 0;
		for (int i = 0; i < 8; i++)
			u |= (uint64_t)d->p[i] << (8 * i);
		d->p += 8;
		memcpy(&f, &u, 8);
		return ckpt_tree_new_float(out, f);
	case CKPT_TREE_BOOL:
		if ((rc = get_byte(d, &b, "bool")) < 0)
			return rc;
		if (b > 1)
			return BAD(d, at, "bool %u is not 0 or 1", b);
		return ckpt_tree_new_bool(out, (int)b);
	case CKPT_TREE_STRING:
		if ((rc = get_bytes(d, &s, &n, 1, "string")) < 0)
			return rc;
		return ckpt_tree_new_string(out, s, n);
	default: return BAD(d, at - 1, "unknown node kind %d", (int)k);
	}
}

/* The children of container t (made from the tag): count, then each [key] node. */
static int get_children(struct dec *d, ckpt_tree *t, unsigned depth)
{
	const unsigned char *at = d->p;
	ckpt_tree_kind k = ckpt_tree_get_kind(t);
	int keyed = k == CKPT_TREE_DICT || k == CKPT_TREE_NAMEDTUPLE;
	ckpt_tree **kids = NULL;
	size_t *key_at = NULL, i = 0, dup;
	uint64_t n;
	int rc;

	if ((rc = get_varint(d, &n, "child count")) < 0)
		return rc;
	if (n > left(d)) /* every child takes a byte at least: bounds the allocation */
		return BAD(d, at, "truncated: %llu children in %zu bytes", (unsigned long long)n,
			   left(d));
	if (n && depth == CKPT_TREE_MAX_DEPTH)
		return BAD(d, at, "tree deeper than %d", CKPT_TREE_MAX_DEPTH);
	if (n == 0)
		return 0;
	kids = malloc((size_t)n * sizeof(*kids));
	if (!kids || (keyed && !(key_at = malloc((size_t)n * sizeof(*key_at))))) {
		rc = ckpt_error_nomem();
		goto fail;
	}
	for (i = 0; i < n; i++) {
		const char *key = NULL;
		size_t klen = 0;

		if (keyed) {
			key_at[i] = (size_t)(d->p - d->start);
			if ((rc = get_bytes(d, &key, &klen, 0, "key")) < 0)
				goto fail;
		}
		if ((rc = get_node(d, &kids[i], depth + 1)) < 0)
			goto fail;
		if (keyed && (rc = ckpt_tree_set_key(kids[i], key, klen)) < 0) {
			i++;
			goto fail;
		}
	}
	rc = ckpt_tree_adopt(t, kids, (size_t)n, &dup);
	if (rc == CKPT_EEXISTS)
		rc = BAD(d, d->start + key_at[dup], "duplicate key '%s'", ckpt_tree_key(kids[dup]));
	if (rc < 0)
		goto fail;
	free(key_at);
	return 0;
fail:
	while (i > 0)
		ckpt_tree_free(kids[--i]);
	free(kids);
	free(key_at);
	return rc;
}

/* Custom metadata of t at depth: len bytes at s (no NUL), one JSON value, not too deep. */
static int set_custom(struct dec *d, ckpt_tree *t, unsigned depth, const char *s, size_t len)
{
	const unsigned char *at = (const unsigned char *)s;
	char *text = malloc(len + 1);
	int rc;

	if (!text)
		return ckpt_error_nomem();
	memcpy(text, s, len);
	text[len] = '\0';
	rc = ckpt_tree_set_custom_metadata(t, text);
	free(text);
	if (rc == CKPT_EINVAL)
		return BAD(d, at, "custom metadata is not JSON");
	if (rc == 0 && json_nesting(s, len) > custom_max_nesting(t, depth))
		return BAD(d, at,
			   "custom metadata nested deeper than _METADATA carries (%u levels)",
			   custom_max_nesting(t, depth));
	return rc;
}

static int get_node(struct dec *d, ckpt_tree **out, unsigned depth)
{
	const unsigned char *at = d->p;
	const char *cm = NULL, *tn;
	size_t cm_len = 0, tn_len;
	ckpt_tree *t = NULL;
	ckpt_tree_kind k;
	unsigned tag;
	int rc;

	*out = NULL;
	if ((rc = get_byte(d, &tag, "node")) < 0)
		return rc;
	k = (ckpt_tree_kind)(tag & TAG_KIND);
	if ((tag & ~(unsigned)(TAG_KIND | TAG_CUSTOM)) || k < CKPT_TREE_DICT ||
	    k > CKPT_TREE_STRING)
		return BAD(d, at, "bad node tag 0x%02x", tag);
	if ((tag & TAG_CUSTOM) && (rc = get_bytes(d, &cm, &cm_len, 0, "custom metadata")) < 0)
		return rc;
	switch (k) {
	case CKPT_TREE_NAMEDTUPLE:
		if ((rc = get_bytes(d, &tn, &tn_len, 0, "namedtuple type")) < 0)
			return rc;
		/* The type is a C string in the input: copied with its length. */
		{
			char *name = malloc(tn_len + 1);

			if (!name)
				return ckpt_error_nomem();
			memcpy(name, tn, tn_len);
			name[tn_len] = '\0';
			rc = ckpt_tree_new_namedtuple(&t, name);
			free(name);
		}
		break;
	case CKPT_TREE_DICT:
	case CKPT_TREE_LIST:
	case CKPT_TREE_TUPLE: rc = ckpt_tree_new(&t, k); break;
	default: rc = get_leaf(d, &t, k);
	}
	if (rc == 0 && ckpt_tree_is_container(t))
		rc = get_children(d, t, depth);
	if (rc == 0 && cm)
		rc = set_custom(d, t, depth, cm, cm_len);
	if (rc < 0) {
		ckpt_tree_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

int ckpt_tree_decode(ckpt_tree **out, const void *buf, size_t len)
{
	struct dec d = {buf, buf, (const unsigned char *)buf + len};
	ckpt_tree *t = NULL;
	unsigned v;
	int rc;

	*out = NULL;
	if (!buf && len)
		return ckpt_error_set(CKPT_EINVAL, "compact tree: NULL buffer");
	if (!buf)
		d.start = d.p = d.end = (const unsigned char *)"";
	if ((rc = get_byte(&d, &v, "version")) < 0)
		return rc;
	if (v > BIN_VERSION)
		return ckpt_error_set(CKPT_EVERSION, "compact tree: version %u is newer than %d", v,
				      BIN_VERSION);
	if (v != BIN_VERSION)
		return BAD(&d, d.start, "bad version %u", v);
	if ((rc = get_node(&d, &t, 0)) < 0)
		return rc;
	if (d.p != d.end) {
		ckpt_tree_free(t);
		return BAD(&d, d.p, "trailing data after the tree (%zu bytes)", left(&d));
	}
	*out = t;
	return 0;
}

/* ---- scanning without building (the mount's lazy listing) ---------------- */

static int is_container_tag(unsigned tag)
{
	unsigned k = tag & TAG_KIND;

	return k == CKPT_TREE_DICT || k == CKPT_TREE_LIST || k == CKPT_TREE_TUPLE ||
	       k == CKPT_TREE_NAMEDTUPLE;
}

/*
 * Read the head of the container at d->p up to its first child: its kind
 * and child count. CKPT_EINVAL if the node there is not a container.
 */
static int container_head(struct dec *d, ckpt_tree_kind *k, uint64_t *n)
{
	const unsigned char *at = d->p;
	const char *s;
	unsigned tag;
	size_t len;
	int rc;

	if ((rc = get_byte(d, &tag, "node")) < 0)
		return rc;
	*k = (ckpt_tree_kind)(tag & TAG_KIND);
	if (tag & ~(unsigned)(TAG_KIND | TAG_CUSTOM))
		return BAD(d, at, "bad node tag 0x%02x", tag);
	if (!is_container_tag(tag))
		return ckpt_error_set(CKPT_EINVAL, "compact tree: byte %zu: not a container",
				      (size_t)(at - d->start));
	if ((tag & TAG_CUSTOM) && (rc = get_bytes(d, &s, &len, 0, "custom metadata")) < 0)
		return rc;
	if (*k == CKPT_TREE_NAMEDTUPLE && (rc = get_bytes(d, &s, &len, 0, "namedtuple type")) < 0)
		return rc;
	at = d->p;
	if ((rc = get_varint(d, n, "child count")) < 0)
		return rc;
	if (*n > left(d))
		return BAD(d, at, "truncated: %llu children in %zu bytes", (unsigned long long)*n,
			   left(d));
	return 0;
}

/*
 * Skip the node at d->p, depth levels below the one being listed. Reads what
 * the decoder reads with the same bound checks, but keeps nothing: the
 * decoder checks the rest (duplicate keys, custom metadata) when the tree is
 * built. depth bounds the recursion whatever the input.
 */
static int skip_node(struct dec *d, unsigned depth)
{
	const unsigned char *at = d->p;
	const char *s;
	unsigned tag, b;
	uint64_t n, u;
	size_t len;
	int rc;

	if (d->p < d->end && is_container_tag(*d->p)) {
		ckpt_tree_kind k;

		if ((rc = container_head(d, &k, &n)) < 0)
			return rc;
		if (n && depth == CKPT_TREE_MAX_DEPTH)
			return BAD(d, at, "tree deeper than %d", CKPT_TREE_MAX_DEPTH);
		for (uint64_t i = 0; i < n; i++) {
			if ((k == CKPT_TREE_DICT || k == CKPT_TREE_NAMEDTUPLE) &&
			    (rc = get_bytes(d, &s, &len, 0, "key")) < 0)
				return rc;
			if ((rc = skip_node(d, depth + 1)) < 0)
				return rc;
		}
		return 0;
	}
	if ((rc = get_byte(d, &tag, "node")) < 0)
		return rc;
	if ((tag & ~(unsigned)(TAG_KIND | TAG_CUSTOM)) || (tag & TAG_KIND) < CKPT_TREE_DICT ||
	    (tag & TAG_KIND) > CKPT_TREE_STRING)
		return BAD(d, at, "bad node tag 0x%02x", tag);
	if ((tag & TAG_CUSTOM) && (rc = get_bytes(d, &s, &len, 0, "custom metadata")) < 0)
		return rc;
	switch ((ckpt_tree_kind)(tag & TAG_KIND)) { /* a leaf: containers are above */
	case CKPT_TREE_NONE: return 0;
	case CKPT_TREE_ARRAY:
		if ((rc = get_byte(d, &b, "dtype")) < 0 || (rc = get_byte(d, &b, "ndim")) < 0)
			return rc;
		if (b > CKPT_TREE_MAX_NDIM)
			return BAD(d, d->p - 1, "ndim %u over %d", b, CKPT_TREE_MAX_NDIM);
		while (b--)
			if ((rc = get_varint(d, &u, "dimension")) < 0)
				return rc;
		return 0;
	case CKPT_TREE_INT: return get_varint(d, &u, "int");
	case CKPT_TREE_FLOAT:
		if (left(d) < 8)
			return BAD(d, d->p, "truncated: float of 8 bytes, %zu left", left(d));
		d->p += 8;
		return 0;
	case CKPT_TREE_BOOL: return get_byte(d, &b, "bool");
	default: return get_bytes(d, &s, &len, 1, "string");
	}
}

/* A decoder positioned at byte `at` of the compact tree buf[0, len), checked. */
static int dec_at(struct dec *d, const void *buf, size_t len, size_t at)
{
	d->start = buf;
	d->p = d->start + at;
	d->end = d->start + len;
	if (!buf || len < 2 || at < 1 || at >= len)
		return ckpt_error_set(CKPT_EINVAL, "compact tree: no node at byte %zu of %zu", at,
				      len);
	if (d->start[0] > BIN_VERSION)
		return ckpt_error_set(CKPT_EVERSION, "compact tree: version %u is newer than %d",
				      d->start[0], BIN_VERSION);
	if (d->start[0] != BIN_VERSION)
		return BAD(d, d->start, "bad version %u", d->start[0]);
	return 0;
}

int ckpt_tree_bin_children(const void *buf, size_t len, size_t at, ckpt_tree_bin_cb cb,
			   void *payload)
{
	struct dec d;
	struct tree_bin_child c = {0};
	ckpt_tree_kind k;
	uint64_t n;
	int rc, keyed;

	if ((rc = dec_at(&d, buf, len, at)) < 0 || (rc = container_head(&d, &k, &n)) < 0)
		return rc;
	keyed = k == CKPT_TREE_DICT || k == CKPT_TREE_NAMEDTUPLE;
	for (c.pos = 0; c.pos < n; c.pos++) {
		if (keyed && (rc = get_bytes(&d, &c.key, &c.keylen, 0, "key")) < 0)
			return rc;
		c.at = (size_t)(d.p - d.start);
		if ((rc = skip_node(&d, 1)) < 0)
			return rc;
		c.kind = (ckpt_tree_kind)(d.start[c.at] & TAG_KIND);
		if ((rc = cb(&c, payload)) != 0)
			return rc;
	}
	return 0;
}

int ckpt_tree_bin_parent(size_t *parent, const void *buf, size_t len, size_t at)
{
	/* One pre-order pass with the open containers on a stack, stopping at `at`:
	 * linear in the bytes before the node, whatever its depth. */
	struct frame {
		size_t at;
		uint64_t left; /* children not yet read */
		int keyed;
	} stack[CKPT_TREE_MAX_DEPTH + 1];
	unsigned depth = 0;
	struct dec d;
	int rc;

	*parent = 0;
	if ((rc = dec_at(&d, buf, len, 1)) < 0)
		return rc;
	for (;;) {
		size_t cur = (size_t)(d.p - d.start);
		const char *s;
		size_t slen;

		if (cur == at && depth > 0) {
			*parent = stack[depth - 1].at;
			return 0;
		}
		if (cur >= at)
			break; /* passed it: `at` is inside a node, or the root */
		if (d.p < d.end && is_container_tag(*d.p)) {
			ckpt_tree_kind k;
			uint64_t n;

			if ((rc = container_head(&d, &k, &n)) < 0)
				return rc;
			if (n && depth == CKPT_TREE_MAX_DEPTH) /* as the decoder: its level */
				return BAD(&d, d.start + cur, "tree deeper than %d",
					   CKPT_TREE_MAX_DEPTH);
			stack[depth++] = (struct frame){
			    cur, n, k == CKPT_TREE_DICT || k == CKPT_TREE_NAMEDTUPLE};
		} else if ((rc = skip_node(&d, 0)) < 0) { /* a leaf: no recursion */
			return rc;
		}
		while (depth > 0 && stack[depth - 1].left == 0)
			depth--;
		if (depth == 0)
			break; /* the whole tree read */
		stack[depth - 1].left--;
		if (stack[depth - 1].keyed && (rc = get_bytes(&d, &s, &slen, 0, "key")) < 0)
			return rc;
	}
	return ckpt_error_set(CKPT_ENOTFOUND, "compact tree: no node at byte %zu", at);
}
