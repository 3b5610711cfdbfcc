/*
 * tree.c — PyTree nodes in memory (see ckpt/tree.h and docs/format-pytree.md).
 *
 * A node is a tagged union: containers hold a growable array of children,
 * leaves their value. Names are computed once, when a node is added to its
 * parent (ckpt_key_escape, keyname.c), so lookups by name never escape.
 *
 * Dicts and namedtuples with INDEX_MIN or more children also keep a hash
 * index (open addressing, linear probing) by key and by stem (the name
 * without ".npy"), kept up to date by every mutation. Lookups never build
 * anything, so concurrent readers (the FUSE daemon's threads) need no lock
 * as long as nobody mutates the tree. Lists and tuples need no index: the
 * key is the decimal position. A decoder gives each container all its
 * children at once (ckpt_tree_adopt, tree_private.h): one index build and one
 * pass for duplicate keys, where adding them one by one searches each key and
 * rebuilds the index as it grows.
 *
 * Invariants:
 *  1. Every child c of t has c->parent == t and t->kids[c->pos] == c.
 *  2. c->key is the dict/namedtuple key, or the decimal position for
 *     list/tuple children; c->name == escape(c->key) + (".npy" if array);
 *     the root has key "" and name "". Key and name share one block,
 *     kbuf (in the node's allocation) when it fits, else a malloc'd one
 *     freed through the key.
 *  3. Keys are unique among the children of a dict/namedtuple, hence so
 *     are stems (escaping is injective) and names.
 *  4. idx is NULL or holds every child of a dict/namedtuple exactly once in
 *     both tables, with at most half of the slots used. It is built when a
 *     dict reaches INDEX_MIN children (NULL below that, or after ENOMEM in
 *     ckpt_tree_remove: lookups then scan).
 *  5. An array's nbytes == nelems * dtype size, computed without overflow;
 *     data is NULL (metadata-only) or nbytes bytes, freed iff owned. Its
 *     shape lives in the node's allocation, right after the node.
 *  6. A sharded array has no data of its own; each of its shards is a
 *     non-empty box inside its shape, with borrowed data of the box's bytes.
 */
#include <assert.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ckpt/tree.h"
#include "error_private.h"
#include "mem.h"
#include "tree_private.h"

#define INDEX_MIN 8
/* Bytes of a node's own key block: short keys ("0", "kernel", "leaf_00")
 * need no allocation of their own (sizeof(ckpt_tree) is then 176). */
#define KEY_INLINE 40

struct index {
	size_t cap;	  /* power of two */
	uint32_t *by_key; /* child position + 1, 0 = empty */
	uint32_t *by_stem;
};

/* One local shard of a sharded array: a box of it, its replica id, its data (borrowed). */
struct tree_shard {
	uint64_t start[CKPT_TREE_MAX_NDIM], shape[CKPT_TREE_MAX_NDIM];
	unsigned replica;
	const void *data;
};

struct ckpt_tree {
	ckpt_tree_kind kind;
	ckpt_tree *parent;
	size_t pos; /* position in parent */
	char *key;
	char *name;
	size_t stem_len; /* strlen(name) without ".npy" */
	char *custom;	 /* custom metadata JSON or NULL */
	union {
		struct {
			ckpt_tree **kids;
			size_t n, cap;
			struct index *idx;
			char *type_name; /* namedtuple only */
		} c;
		struct {
			ckpt_dtype dt;
			unsigned ndim;
			uint64_t *shape; /* max(ndim, 1) entries, never NULL */
			uint64_t nelems, nbytes;
			void *data;
			int owned;
			struct tree_shard *shards; /* a sharded array's local shards */
			size_t nshards, capshards;
			int sharded;
		} a;
		int64_t i;
		double f;
		int b;
		struct {
			char *p;
			size_t len;
		} s;
	} u;
	char kbuf[KEY_INLINE]; /* key and name when they fit (invariant 2) */
};

static char empty_str[1];

/* ckpt_tree_starts_as_tree reads the kind as the first unsigned of a tree. */
_Static_assert(sizeof(struct ckpt_tree) % sizeof(uint64_t) == 0,
	       "an array's shape follows its node");
_Static_assert(offsetof(struct ckpt_tree, kind) == 0 && sizeof(ckpt_tree_kind) == sizeof(unsigned),
	       "a tree starts with its kind");

void ckpt_tree_shape_str(char *buf, size_t cap, unsigned nd, const uint64_t *shape)
{
	size_t n = (size_t)snprintf(buf, cap, "(");

	for (unsigned i = 0; i < nd && n < cap; i++)
		n += (size_t)snprintf(buf + n, cap - n, i ? ", %llu" : "%llu",
				      (unsigned long long)shape[i]);
	if (n < cap)
		snprintf(buf + n, cap - n, nd == 1 ? ",)" : ")");
}

int ckpt_tree_starts_as_tree(const void *p)
{
	unsigned k;

	memcpy(&k, p, sizeof(k));
	return k >= CKPT_TREE_DICT && k <= CKPT_TREE_STRING;
}


static int is_container_kind(ckpt_tree_kind k)
{
	return k == CKPT_TREE_DICT || k == CKPT_TREE_LIST || k == CKPT_TREE_TUPLE ||
	       k == CKPT_TREE_NAMEDTUPLE;
}

static int is_keyed(const ckpt_tree *t)
{
	return t->kind == CKPT_TREE_DICT || t->kind == CKPT_TREE_NAMEDTUPLE;
}

static uint64_t hash_bytes(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h ^ (h >> 29);
}

/* A zeroed node and extra zeroed bytes after it (an array's shape). */
static ckpt_tree *node_alloc_extra(ckpt_tree_kind kind, size_t extra)
{
	ckpt_tree *t = calloc(1, sizeof(*t) + extra);

	if (!t)
		return NULL;
	t->kind = kind;
	t->key = empty_str;
	t->name = empty_str;
	return t;
}

static ckpt_tree *node_alloc(ckpt_tree_kind kind)
{
	return node_alloc_extra(kind, 0);
}

/* ---- hash index ---------------------------------------------------------- */

static void index_free(struct index *x)
{
	if (!x)
		return;
	free(x->by_key);
	free(x->by_stem);
	free(x);
}

/*
 * Put child c (its pos set) into x. With kids (the children x indexes), unless
 * a child with c's key is there already: then nothing is put and that child's
 * position + 1 is returned. Returns 0 when c was put.
 */
static size_t index_put_checked(struct index *x, const ckpt_tree *c, ckpt_tree *const *kids)
{
	size_t mask = x->cap - 1;
	size_t i = hash_bytes(c->key, strlen(c->key)) & mask;

	for (; x->by_key[i]; i = (i + 1) & mask)
		if (kids && strcmp(kids[x->by_key[i] - 1]->key, c->key) == 0)
			return x->by_key[i];
	x->by_key[i] = (uint32_t)(c->pos + 1);
	i = hash_bytes(c->name, c->stem_len) & mask;
	while (x->by_stem[i])
		i = (i + 1) & mask;
	x->by_stem[i] = (uint32_t)(c->pos + 1);
	return 0;
}

static void index_put(struct index *x, const ckpt_tree *c)
{
	(void)index_put_checked(x, c, NULL);
}

/*
 * (Re)build the index of t for capacity >= 2 * want children. With dup
 * non-NULL, checks that keys are unique on the way: two equal keys give
 * CKPT_EEXISTS (no message), *dup the later one's position, t's index unchanged.
 */
static int index_build_checked(ckpt_tree *t, size_t want, size_t *dup)
{
	struct index *x = calloc(1, sizeof(*x));
	size_t cap = 16;

	while (cap < 2 * want)
		cap *= 2;
	if (!x)
		return ckpt_error_nomem();
	x->cap = cap;
	x->by_key = calloc(cap, sizeof(uint32_t));
	x->by_stem = calloc(cap, sizeof(uint32_t));
	if (!x->by_key || !x->by_stem) {
		index_free(x);
		return ckpt_error_nomem();
	}
	for (size_t i = 0; i < t->u.c.n; i++) {
		if (index_put_checked(x, t->u.c.kids[i], dup ? t->u.c.kids : NULL)) {
			*dup = i;
			index_free(x);
			return CKPT_EEXISTS;
		}
	}
	index_free(t->u.c.idx);
	t->u.c.idx = x;
	return 0;
}

static int index_build(ckpt_tree *t, size_t want)
{
	return index_build_checked(t, want, NULL);
}

static ckpt_tree *find_key(const ckpt_tree *t, const char *key)
{
	const struct index *x = t->u.c.idx;
	size_t klen = strlen(key);

	if (!x) {
		for (size_t i = 0; i < t->u.c.n; i++)
			if (strcmp(t->u.c.kids[i]->key, key) == 0)
				return t->u.c.kids[i];
		return NULL;
	}
	for (size_t i = hash_bytes(key, klen) & (x->cap - 1); x->by_key[i];
	     i = (i + 1) & (x->cap - 1)) {
		ckpt_tree *c = t->u.c.kids[x->by_key[i] - 1];

		if (strcmp(c->key, key) == 0)
			return c;
	}
	return NULL;
}

static ckpt_tree *find_stem(const ckpt_tree *t, const char *stem, size_t len)
{
	const struct index *x = t->u.c.idx;

	if (!x) {
		for (size_t i = 0; i < t->u.c.n; i++) {
			ckpt_tree *c = t->u.c.kids[i];

			if (c->stem_len == len && memcmp(c->name, stem, len) == 0)
				return c;
		}
		return NULL;
	}
	for (size_t i = hash_bytes(stem, len) & (x->cap - 1); x->by_stem[i];
	     i = (i + 1) & (x->cap - 1)) {
		ckpt_tree *c = t->u.c.kids[x->by_stem[i] - 1];

		if (c->stem_len == len && memcmp(c->name, stem, len) == 0)
			return c;
	}
	return NULL;
}

/* The list/tuple child whose key is the canonical decimal s[0..len), or NULL. */
static ckpt_tree *find_pos(const ckpt_tree *t, const char *s, size_t len)
{
	size_t v = 0;

	if (len == 0 || len > 19 || (s[0] == '0' && len > 1))
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return NULL;
		v = v * 10 + (size_t)(s[i] - '0');
	}
	return v < t->u.c.n ? t->u.c.kids[v] : NULL;
}

/* Child by stem; kind filter: 1 arrays only, 0 non-arrays only, -1 any. */
static ckpt_tree *child_by_stem(const ckpt_tree *t, const char *stem, size_t len, int arrays)
{
	ckpt_tree *c;

	if (!t || !is_container_kind(t->kind))
		return NULL;
	c = is_keyed(t) ? find_stem(t, stem, len) : find_pos(t, stem, len);
	if (c && arrays >= 0 && (c->kind == CKPT_TREE_ARRAY) != arrays)
		return NULL;
	return c;
}

/* ---- names --------------------------------------------------------------- */

/* c's key key[0, klen) (no NUL) and name in one block: "key\0name\0", freed
 * through c->key (invariant 2). */
static int set_key_len(ckpt_tree *c, const char *key, size_t klen)
{
	int is_array = c->kind == CKPT_TREE_ARRAY;
	char *block = c->kbuf, *name;
	size_t slen;

	/* An escaped byte takes 3 ("%00" for the empty key): when even that fits
	 * in kbuf, the name is escaped once, straight into it. */
	if (klen + 1 + 3 * (klen ? klen : 1) + 5 > sizeof(c->kbuf)) {
		slen = ckpt_key_escape_into(NULL, key, klen, is_array);
		if (klen + 1 + slen + 5 > sizeof(c->kbuf) && !(block = malloc(klen + 1 + slen + 5)))
			return ckpt_error_nomem();
	}
	memmove(block, key, klen); /* key may be c's own: the old block is freed after */
	block[klen] = '\0';
	name = block + klen + 1;
	slen = ckpt_key_escape_into(name, block, klen, is_array);
	memcpy(name + slen, is_array ? ".npy" : "", is_array ? 5 : 1);
	if (c->key != empty_str && c->key != c->kbuf && c->key != block)
		free(c->key);
	c->key = block;
	c->name = name;
	c->stem_len = slen;
	return 0;
}

static int set_key(ckpt_tree *c, const char *key)
{
	return set_key_len(c, key, strlen(key));
}

static void clear_key(ckpt_tree *c)
{
	if (c->key != empty_str && c->key != c->kbuf)
		free(c->key); /* and the name with it (set_key) */
	c->key = c->name = empty_str;
	c->stem_len = 0;
}

/* pos in decimal into buf (at least 21 bytes, no NUL added); returns the length. */
static size_t pos_text(char *buf, size_t pos)
{
	char tmp[24];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + pos % 10);
		pos /= 10;
	} while (pos);
	for (size_t i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	return n;
}

static int set_pos_key(ckpt_tree *c, size_t pos)
{
	char buf[24];

	return set_key_len(c, buf, pos_text(buf, pos));
}

/* ---- construction -------------------------------------------------------- */

int ckpt_tree_new(ckpt_tree **out, ckpt_tree_kind kind)
{
	*out = NULL;
	if (!is_container_kind(kind) && kind != CKPT_TREE_NONE)
		return ckpt_error_set(CKPT_EINVAL,
				      "ckpt_tree_new: kind %d is not dict, list, "
				      "tuple or None",
				      (int)kind);
	if (kind == CKPT_TREE_NAMEDTUPLE)
		return ckpt_error_set(CKPT_EINVAL, "ckpt_tree_new: use ckpt_tree_new_namedtuple");
	*out = node_alloc(kind);
	return *out ? 0 : ckpt_error_nomem();
}

int ckpt_tree_new_namedtuple(ckpt_tree **out, const char *type_name)
{
	ckpt_tree *t;

	*out = NULL;
	if (!type_name)
		return ckpt_error_set(CKPT_EINVAL, "namedtuple without a type name");
	t = node_alloc(CKPT_TREE_NAMEDTUPLE);
	if (!t || !(t->u.c.type_name = strdup(type_name))) {
		free(t);
		return ckpt_error_nomem();
	}
	*out = t;
	return 0;
}

int ckpt_tree_new_int(ckpt_tree **out, int64_t v)
{
	*out = node_alloc(CKPT_TREE_INT);
	if (!*out)
		return ckpt_error_nomem();
	(*out)->u.i = v;
	return 0;
}

int ckpt_tree_new_float(ckpt_tree **out, double v)
{
	*out = node_alloc(CKPT_TREE_FLOAT);
	if (!*out)
		return ckpt_error_nomem();
	(*out)->u.f = v;
	return 0;
}

int ckpt_tree_new_bool(ckpt_tree **out, int v)
{
	*out = node_alloc(CKPT_TREE_BOOL);
	if (!*out)
		return ckpt_error_nomem();
	(*out)->u.b = v != 0;
	return 0;
}

int ckpt_tree_new_string(ckpt_tree **out, const char *s, size_t len)
{
	ckpt_tree *t;

	*out = NULL;
	if (!s && len)
		return ckpt_error_set(CKPT_EINVAL, "string leaf: NULL data of length %zu", len);
	if (len == SIZE_MAX)
		return ckpt_error_set(CKPT_EINVAL, "string leaf: length overflows");
	t = node_alloc(CKPT_TREE_STRING);
	if (!t || !(t->u.s.p = malloc(len + 1))) {
		free(t);
		return ckpt_error_nomem();
	}
	if (len)
		memcpy(t->u.s.p, s, len);
	t->u.s.p[len] = '\0';
	t->u.s.len = len;
	*out = t;
	return 0;
}

int ckpt_tree_new_array(ckpt_tree **out, ckpt_dtype dt, unsigned ndim, const uint64_t *shape,
			void *data, int ownership)
{
	size_t esize = ckpt_dtype_size(dt);
	uint64_t n = 1;
	ckpt_tree *t = NULL;
	int rc = 0;

	*out = NULL;
	if (ownership != CKPT_TREE_COPY && ownership != CKPT_TREE_BORROW &&
	    ownership != CKPT_TREE_OWN) {
		rc = ckpt_error_set(CKPT_EINVAL, "array leaf: bad ownership %d", ownership);
		goto done;
	}
	if (esize == 0) {
		rc = ckpt_error_set(CKPT_EINVAL, "array leaf: invalid dtype %d", (int)dt);
		goto done;
	}
	if (ndim > CKPT_TREE_MAX_NDIM || (ndim && !shape)) {
		rc = ckpt_error_set(CKPT_EINVAL, "array leaf: bad ndim %u (max %d)", ndim,
				    CKPT_TREE_MAX_NDIM);
		goto done;
	}
	for (unsigned i = 0; i < ndim; i++) {
		if (shape[i] && n > UINT64_MAX / shape[i]) {
			rc = ckpt_error_set(CKPT_EINVAL, "array leaf: element count overflows");
			goto done;
		}
		n *= shape[i];
	}
	if (n > SIZE_MAX / esize) {
		rc = ckpt_error_set(CKPT_EINVAL, "array leaf: byte size overflows");
		goto done;
	}
	t = node_alloc_extra(CKPT_TREE_ARRAY, (ndim ? ndim : 1) * sizeof(uint64_t));
	if (!t) {
		rc = ckpt_error_nomem();
		goto done;
	}
	t->u.a.shape = (uint64_t *)(t + 1); /* invariant 5 */
	if (ndim)
		memcpy(t->u.a.shape, shape, ndim * sizeof(uint64_t));
	t->u.a.dt = dt;
	t->u.a.ndim = ndim;
	t->u.a.nelems = n;
	t->u.a.nbytes = n * esize;
	if (data && ownership == CKPT_TREE_COPY) {
		t->u.a.data = ckpt_mem_malloc_large((size_t)t->u.a.nbytes);
		if (!t->u.a.data) {
			rc = ckpt_error_nomem();
			goto done;
		}
		memcpy(t->u.a.data, data, t->u.a.nbytes);
		t->u.a.owned = 1;
	} else if (data) {
		t->u.a.data = data;
		t->u.a.owned = ownership == CKPT_TREE_OWN;
		data = NULL;
	}
	*out = t;
	t = NULL;
done:
	if (ownership == CKPT_TREE_OWN && rc < 0)
		free(data);
	ckpt_tree_free(t);
	return rc;
}

int ckpt_tree_add(ckpt_tree *parent, const char *key, ckpt_tree *child)
{
	ckpt_tree **kids;
	int rc;

	if (!parent || !child || !is_container_kind(parent->kind) || child->parent) {
		rc = ckpt_error_set(CKPT_EINVAL, "ckpt_tree_add: %s",
				    !parent || !child ? "NULL argument"
				    : child->parent   ? "child already has a parent"
						      : "parent is not a container");
		goto fail;
	}
	for (const ckpt_tree *a = parent; a; a = a->parent) {
		if (a == child) /* not freed: it is the caller's tree */
			return ckpt_error_set(CKPT_EINVAL, "ckpt_tree_add: child is an ancestor "
							   "of the parent");
	}
	if (is_keyed(parent) != (key != NULL)) {
		rc = ckpt_error_set(CKPT_EINVAL, "ckpt_tree_add: %s",
				    key ? "lists and tuples take no key"
					: "dicts and namedtuples need a key");
		goto fail;
	}
	if (key && find_key(parent, key)) {
		rc = ckpt_error_set(CKPT_EEXISTS, "key '%s' already present", key);
		goto fail;
	}
	if (parent->u.c.n >= UINT32_MAX - 1) {
		rc = ckpt_error_set(CKPT_EINVAL, "too many children");
		goto fail;
	}
	if (parent->u.c.n == parent->u.c.cap) {
		size_t cap = parent->u.c.cap ? 2 * parent->u.c.cap : 4;

		kids = realloc(parent->u.c.kids, cap * sizeof(*kids));
		if (!kids) {
			rc = ckpt_error_nomem();
			goto fail;
		}
		parent->u.c.kids = kids;
		parent->u.c.cap = cap;
	}
	/* A child detached with its key (ckpt_tree_detach_all) and added back under
	 * the same key keeps its strings: no allocation per node when a restore
	 * rearranges a tree. An unnamed node (name "") always gets one. */
	char pos[24];
	if (!key) {
		snprintf(pos, sizeof(pos), "%zu", parent->u.c.n);
		key = pos;
	}
	if (child->name != empty_str && !strcmp(child->key, key))
		rc = 0;
	else
		rc = set_key(child, key);
	if (key == pos)
		key = NULL;
	if (rc < 0)
		goto fail;
	child->pos = parent->u.c.n;
	child->parent = parent;
	parent->u.c.kids[parent->u.c.n++] = child;
	if (is_keyed(parent) && parent->u.c.n >= INDEX_MIN) {
		struct index *x = parent->u.c.idx;

		if (x && 2 * parent->u.c.n <= x->cap)
			index_put(x, child);
		else if ((rc = index_build(parent, 2 * parent->u.c.n)) < 0)
			goto undo;
	}
	return 0;
undo:
	parent->u.c.n--;
	child->parent = NULL;
fail:
	if (!child || !child->parent)
		ckpt_tree_free(child);
	return rc;
}

ckpt_tree *ckpt_tree_remove(ckpt_tree *parent, size_t i)
{
	ckpt_tree *c;

	if (!parent || !is_container_kind(parent->kind) || i >= parent->u.c.n)
		return NULL;
	c = parent->u.c.kids[i];
	memmove(parent->u.c.kids + i, parent->u.c.kids + i + 1,
		(parent->u.c.n - i - 1) * sizeof(*parent->u.c.kids));
	parent->u.c.n--;
	for (size_t j = i; j < parent->u.c.n; j++) {
		ckpt_tree *s = parent->u.c.kids[j];

		s->pos = j;
		/* A list key is its position; if renaming fails (ENOMEM) the old
		 * key stays, which lookups by position do not use anyway. */
		if (!is_keyed(parent))
			(void)set_pos_key(s, j);
	}
	if (parent->u.c.idx) {
		index_free(parent->u.c.idx);
		parent->u.c.idx = NULL;
		if (parent->u.c.n >= INDEX_MIN)
			(void)index_build(parent, parent->u.c.n); /* ENOMEM: lookups scan */
	}
	c->parent = NULL;
	c->pos = 0;
	clear_key(c);
	return c;
}

int ckpt_tree_detach_all(ckpt_tree ***kids, size_t *n, ckpt_tree *t)
{
	ckpt_tree **k;

	*kids = NULL;
	*n = 0;
	if (!t || !is_container_kind(t->kind))
		return ckpt_error_set(CKPT_EINVAL, "detach: not a container");
	if (!(k = malloc((t->u.c.n ? t->u.c.n : 1) * sizeof(*k))))
		return ckpt_error_nomem();
	for (size_t i = 0; i < t->u.c.n; i++) {
		k[i] = t->u.c.kids[i];
		k[i]->parent = NULL;
		k[i]->pos = 0;
	}
	*kids = k;
	*n = t->u.c.n;
	t->u.c.n = 0;
	index_free(t->u.c.idx);
	t->u.c.idx = NULL;
	return 0;
}

int ckpt_tree_set_key(ckpt_tree *c, const char *key, size_t len)
{
	if (!c || c->parent || (!key && len))
		return ckpt_error_set(CKPT_EINVAL,
				      "set key: a NULL argument, or a node with a parent");
	if (!key)
		key = "";
	assert(!memchr(key, '\0', len));
	return set_key_len(c, key, len);
}

/* 1 if two of t's keyed children have equal keys (t is small): *dup is the later one's position. */
static int small_dup(const ckpt_tree *t, size_t *dup)
{
	for (size_t i = 1; i < t->u.c.n; i++)
		for (size_t j = 0; j < i; j++)
			if (strcmp(t->u.c.kids[i]->key, t->u.c.kids[j]->key) == 0) {
				*dup = i;
				return 1;
			}
	return 0;
}

int ckpt_tree_adopt(ckpt_tree *t, ckpt_tree **kids, size_t n, size_t *dup)
{
	int rc = 0;

	*dup = 0;
	if (!t || !is_container_kind(t->kind) || t->u.c.n || (!kids && n) || n >= UINT32_MAX - 1)
		return ckpt_error_set(CKPT_EINVAL, "adopt: not an empty container, or too many "
						   "children");
	for (size_t i = 0; i < n; i++) {
		assert(kids[i] && !kids[i]->parent && kids[i] != t);
		kids[i]->pos = i;
		if (is_keyed(t))
			assert(kids[i]->name != empty_str); /* ckpt_tree_set_key */
		else if ((rc = set_pos_key(kids[i], i)) < 0)
			goto fail;
	}
	free(t->u.c.kids);
	t->u.c.kids = kids;
	t->u.c.n = t->u.c.cap = n;
	if (is_keyed(t)) {
		if (n >= INDEX_MIN)
			rc = index_build_checked(t, n, dup);
		else if (small_dup(t, dup))
			rc = CKPT_EEXISTS;
	}
	if (rc < 0) { /* give the children back */
		t->u.c.kids = NULL;
		t->u.c.n = t->u.c.cap = 0;
		if (rc == CKPT_EEXISTS)
			rc = ckpt_error_set(rc, "key '%s' already present", kids[*dup]->key);
		goto fail;
	}
	for (size_t i = 0; i < n; i++)
		kids[i]->parent = t;
	return 0;
fail:
	for (size_t i = 0; i < n; i++)
		kids[i]->pos = 0;
	return rc;
}

void ckpt_tree_free(ckpt_tree *t)
{
	if (!t)
		return;
	if (is_container_kind(t->kind)) {
		for (size_t i = 0; i < t->u.c.n; i++)
			ckpt_tree_free(t->u.c.kids[i]);
		free(t->u.c.kids);
		index_free(t->u.c.idx);
		free(t->u.c.type_name);
	} else if (t->kind == CKPT_TREE_ARRAY) {
		if (t->u.a.owned)
			free(t->u.a.data);
		free(t->u.a.shards);
	} else if (t->kind == CKPT_TREE_STRING) {
		free(t->u.s.p);
	}
	clear_key(t);
	free(t->custom);
	free(t);
}

static int clone_node(ckpt_tree **out, const ckpt_tree *t)
{
	ckpt_tree *c = NULL;
	int rc;

	switch (t->kind) {
	case CKPT_TREE_DICT:
	case CKPT_TREE_LIST:
	case CKPT_TREE_TUPLE:
	case CKPT_TREE_NONE: rc = ckpt_tree_new(&c, t->kind); break;
	case CKPT_TREE_NAMEDTUPLE: rc = ckpt_tree_new_namedtuple(&c, t->u.c.type_name); break;
	case CKPT_TREE_ARRAY:
		rc = ckpt_tree_new_array(&c, t->u.a.dt, t->u.a.ndim, t->u.a.shape, t->u.a.data,
					 CKPT_TREE_COPY);
		for (size_t i = 0; rc == 0 && t->u.a.sharded && i < t->u.a.nshards; i++) {
			const struct tree_shard *sh = &t->u.a.shards[i];
			c->u.a.sharded = 1;
			rc = ckpt_tree_add_shard(c, sh->start, sh->shape, sh->replica, sh->data);
		}
		if (rc == 0 && t->u.a.sharded)
			c->u.a.sharded = 1;
		break;
	case CKPT_TREE_INT: rc = ckpt_tree_new_int(&c, t->u.i); break;
	case CKPT_TREE_FLOAT: rc = ckpt_tree_new_float(&c, t->u.f); break;
	case CKPT_TREE_BOOL: rc = ckpt_tree_new_bool(&c, t->u.b); break;
	case CKPT_TREE_STRING: rc = ckpt_tree_new_string(&c, t->u.s.p, t->u.s.len); break;
	default: rc = ckpt_error_set(CKPT_EINVAL, "clone: bad node kind %d", (int)t->kind);
	}
	if (rc < 0)
		return rc;
	if (t->custom && !(c->custom = strdup(t->custom))) {
		ckpt_tree_free(c);
		return ckpt_error_nomem();
	}
	if (is_container_kind(t->kind)) {
		for (size_t i = 0; i < t->u.c.n; i++) {
			const ckpt_tree *k = t->u.c.kids[i];
			ckpt_tree *kc;

			rc = clone_node(&kc, k);
			if (rc >= 0)
				rc = ckpt_tree_add(c, is_keyed(t) ? k->key : NULL, kc);
			if (rc < 0) {
				ckpt_tree_free(c);
				return rc;
			}
		}
	}
	*out = c;
	return 0;
}

int ckpt_tree_clone(ckpt_tree **out, const ckpt_tree *t)
{
	*out = NULL;
	if (!t)
		return ckpt_error_set(CKPT_EINVAL, "clone: NULL tree");
	return clone_node(out, t);
}

/* ---- navigation ---------------------------------------------------------- */

ckpt_tree_kind ckpt_tree_get_kind(const ckpt_tree *t)
{
	return t ? t->kind : 0;
}

int ckpt_tree_is_container(const ckpt_tree *t)
{
	return t && is_container_kind(t->kind);
}

size_t ckpt_tree_count(const ckpt_tree *t)
{
	return ckpt_tree_is_container(t) ? t->u.c.n : 0;
}

ckpt_tree *ckpt_tree_child(const ckpt_tree *t, size_t i)
{
	return i < ckpt_tree_count(t) ? t->u.c.kids[i] : NULL;
}

ckpt_tree *ckpt_tree_parent(const ckpt_tree *t)
{
	return t ? t->parent : NULL;
}

const char *ckpt_tree_key(const ckpt_tree *t)
{
	return t ? t->key : NULL;
}

const char *ckpt_tree_name(const ckpt_tree *t)
{
	return t ? t->name : NULL;
}

const char *ckpt_tree_namedtuple_type(const ckpt_tree *t)
{
	return t && t->kind == CKPT_TREE_NAMEDTUPLE ? t->u.c.type_name : NULL;
}

ckpt_tree *ckpt_tree_find(const ckpt_tree *t, const char *key)
{
	if (!ckpt_tree_is_container(t) || !key)
		return NULL;
	return is_keyed(t) ? find_key(t, key) : find_pos(t, key, strlen(key));
}

ckpt_tree *ckpt_tree_find_name(const ckpt_tree *t, const char *name)
{
	size_t len;

	if (!name)
		return NULL;
	len = strlen(name);
	if (len >= 4 && memcmp(name + len - 4, ".npy", 4) == 0)
		return child_by_stem(t, name, len - 4, 1);
	return child_by_stem(t, name, len, 0);
}

int ckpt_tree_lookup(ckpt_tree **out, const ckpt_tree *t, const char *path)
{
	const ckpt_tree *cur = t;
	const char *p = path;

	*out = NULL;
	if (!t || !path)
		return ckpt_error_set(CKPT_EINVAL, "lookup: NULL argument");
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		const ckpt_tree *c = NULL;

		if (len >= 4 && memcmp(p + len - 4, ".npy", 4) == 0)
			c = child_by_stem(cur, p, len - 4, 1);
		if (!c)
			c = child_by_stem(cur, p, len, -1);
		if (!c)
			return ckpt_error_set(CKPT_ENOTFOUND, "no '%.*s' in '%.*s'", (int)len, p,
					      (int)(p - path), path);
		cur = c;
		p += len;
		if (*p == '/')
			p++;
	}
	*out = (ckpt_tree *)cur;
	return 0;
}

int ckpt_tree_path(char **out, const ckpt_tree *t)
{
	size_t len = 0;
	char *s, *w;

	*out = NULL;
	if (!t)
		return ckpt_error_set(CKPT_EINVAL, "path: NULL node");
	for (const ckpt_tree *n = t; n->parent; n = n->parent)
		len += n->stem_len + (n != t);
	s = malloc(len + 1);
	if (!s)
		return ckpt_error_nomem();
	w = s + len;
	*w = '\0';
	for (const ckpt_tree *n = t; n->parent; n = n->parent) {
		if (n != t)
			*--w = '/';
		w -= n->stem_len;
		memcpy(w, n->name, n->stem_len);
	}
	assert(w == s);
	*out = s;
	return 0;
}

/* ---- leaves -------------------------------------------------------------- */

ckpt_dtype ckpt_tree_dtype(const ckpt_tree *t)
{
	return t && t->kind == CKPT_TREE_ARRAY ? t->u.a.dt : CKPT_DTYPE_INVALID;
}

unsigned ckpt_tree_ndim(const ckpt_tree *t)
{
	return t && t->kind == CKPT_TREE_ARRAY ? t->u.a.ndim : 0;
}

const uint64_t *ckpt_tree_shape(const ckpt_tree *t)
{
	return t && t->kind == CKPT_TREE_ARRAY ? t->u.a.shape : NULL;
}

uint64_t ckpt_tree_nelems(const ckpt_tree *t)
{
	return t && t->kind == CKPT_TREE_ARRAY ? t->u.a.nelems : 0;
}

uint64_t ckpt_tree_nbytes(const ckpt_tree *t)
{
	return t && t->kind == CKPT_TREE_ARRAY ? t->u.a.nbytes : 0;
}

int ckpt_tree_new_sharded_array(ckpt_tree **out, ckpt_dtype dt, unsigned ndim,
				const uint64_t *global_shape)
{
	int rc = ckpt_tree_new_array(out, dt, ndim, global_shape, NULL, CKPT_TREE_COPY);

	if (rc == 0)
		(*out)->u.a.sharded = 1;
	return rc;
}

int ckpt_tree_add_shard(ckpt_tree *leaf, const uint64_t *start, const uint64_t *shape,
			unsigned replica_id, const void *data)
{
	struct tree_shard *sh;

	if (!ckpt_tree_is_sharded(leaf) || (leaf->u.a.ndim && (!start || !shape)) || !data)
		return ckpt_error_set(CKPT_EINVAL,
				      "add shard: not a sharded array leaf, or a NULL argument");
	for (unsigned d = 0; d < leaf->u.a.ndim; d++)
		if (shape[d] == 0 || start[d] >= leaf->u.a.shape[d] ||
		    shape[d] > leaf->u.a.shape[d] - start[d])
			return ckpt_error_set(CKPT_EINVAL,
					      "add shard: dimension %u: box %" PRIu64 ":%" PRIu64
					      " is empty or outside 0:%" PRIu64,
					      d, start[d], start[d] + shape[d], leaf->u.a.shape[d]);
	if (leaf->u.a.nshards == leaf->u.a.capshards) {
		size_t cap = leaf->u.a.capshards ? 2 * leaf->u.a.capshards : 4;
		struct tree_shard *n = realloc(leaf->u.a.shards, cap * sizeof(*n));
		if (!n)
			return ckpt_error_nomem();
		leaf->u.a.shards = n;
		leaf->u.a.capshards = cap;
	}
	sh = &leaf->u.a.shards[leaf->u.a.nshards++];
	memset(sh, 0, sizeof(*sh));
	if (leaf->u.a.ndim) {
		memcpy(sh->start, start, leaf->u.a.ndim * sizeof(uint64_t));
		memcpy(sh->shape, shape, leaf->u.a.ndim * sizeof(uint64_t));
	}
	sh->replica = replica_id;
	sh->data = data;
	return 0;
}

int ckpt_tree_is_sharded(const ckpt_tree *t)
{
	return t && t->kind == CKPT_TREE_ARRAY && t->u.a.sharded;
}

size_t ckpt_tree_nshards(const ckpt_tree *t)
{
	return ckpt_tree_is_sharded(t) ? t->u.a.nshards : 0;
}

const void *ckpt_tree_shard(const ckpt_tree *t, size_t i, const uint64_t **start,
			    const uint64_t **shape, unsigned *replica_id)
{
	const struct tree_shard *sh;

	if (i >= ckpt_tree_nshards(t))
		return NULL;
	sh = &t->u.a.shards[i];
	*start = sh->start;
	*shape = sh->shape;
	*replica_id = sh->replica;
	return sh->data;
}

const void *ckpt_tree_data(const ckpt_tree *t)
{
	return t && t->kind == CKPT_TREE_ARRAY ? t->u.a.data : NULL;
}

int64_t ckpt_tree_int(const ckpt_tree *t)
{
	return t && t->kind == CKPT_TREE_INT ? t->u.i : 0;
}

double ckpt_tree_float(const ckpt_tree *t)
{
	return t && t->kind == CKPT_TREE_FLOAT ? t->u.f : 0.0;
}

int ckpt_tree_bool(const ckpt_tree *t)
{
	return t && t->kind == CKPT_TREE_BOOL ? t->u.b : 0;
}

const char *ckpt_tree_string(const ckpt_tree *t, size_t *len)
{
	if (!t || t->kind != CKPT_TREE_STRING) {
		if (len)
			*len = 0;
		return NULL;
	}
	if (len)
		*len = t->u.s.len;
	return t->u.s.p;
}

int ckpt_tree_set_custom_metadata(ckpt_tree *t, const char *json)
{
	cJSON *j;
	char *copy = NULL;

	if (!t)
		return ckpt_error_set(CKPT_EINVAL, "custom metadata: NULL node");
	if (json) {
		j = cJSON_ParseWithOpts(json, NULL, 1);
		if (!j)
			return ckpt_error_set(CKPT_EINVAL, "custom metadata of '%s' is not JSON",
					      t->key);
		cJSON_Delete(j);
		copy = strdup(json);
		if (!copy)
			return ckpt_error_nomem();
	}
	free(t->custom);
	t->custom = copy;
	return 0;
}

const char *ckpt_tree_custom_metadata(const ckpt_tree *t)
{
	return t ? t->custom : NULL;
}

/* ---- walk ---------------------------------------------------------------- */

struct walk {
	char *buf;
	size_t len, cap;
	ckpt_tree_walk_cb cb;
	void *payload;
};

static int walk_node(struct walk *w, ckpt_tree *t, int top)
{
	size_t saved = w->len;
	int rc;

	if (!top) {
		size_t need = w->len + 1 + t->stem_len + 1;

		if (need > w->cap) {
			size_t cap = w->cap * 2 > need ? w->cap * 2 : need;
			char *b = realloc(w->buf, cap);

			if (!b)
				return ckpt_error_nomem();
			w->buf = b;
			w->cap = cap;
		}
		if (w->len)
			w->buf[w->len++] = '/';
		memcpy(w->buf + w->len, t->name, t->stem_len);
		w->len += t->stem_len;
		w->buf[w->len] = '\0';
	}
	rc = w->cb(t, w->buf, w->payload);
	for (size_t i = 0; rc == 0 && is_container_kind(t->kind) && i < t->u.c.n; i++)
		rc = walk_node(w, t->u.c.kids[i], 0);
	w->len = saved;
	w->buf[saved] = '\0';
	return rc;
}

int ckpt_tree_walk(ckpt_tree *t, ckpt_tree_walk_cb cb, void *payload)
{
	struct walk w = {.cb = cb, .payload = payload};
	int rc;

	if (!t || !cb)
		return ckpt_error_set(CKPT_EINVAL, "walk: NULL argument");
	/* Paths are from the root, as ckpt_tree_path, also when t is a subtree. */
	rc = ckpt_tree_path(&w.buf, t);
	if (rc < 0)
		return rc;
	w.len = strlen(w.buf);
	w.cap = w.len + 1;
	rc = walk_node(&w, t, 1);
	free(w.buf);
	return rc;
}

int ckpt_tree_retype(ckpt_tree *t, ckpt_tree_kind kind, const char *type_name)
{
	char *tn = NULL;

	if (!t || !is_container_kind(t->kind) || !is_container_kind(kind))
		return ckpt_error_set(CKPT_EINVAL, "retype: not a container");
	if ((kind == CKPT_TREE_DICT || kind == CKPT_TREE_NAMEDTUPLE) != is_keyed(t))
		return ckpt_error_set(CKPT_EINVAL, "retype: %s children cannot become %s",
				      is_keyed(t) ? "keyed" : "positional",
				      is_keyed(t) ? "a list or tuple" : "a dict or namedtuple");
	if (kind == CKPT_TREE_NAMEDTUPLE) {
		if (!type_name)
			return ckpt_error_set(CKPT_EINVAL, "namedtuple without a type name");
		if (!(tn = strdup(type_name)))
			return ckpt_error_nomem();
	}
	free(t->u.c.type_name);
	t->u.c.type_name = tn;
	t->kind = kind;
	return 0;
}

/* ---- the invariants, checked in one call (tree_private.h) ---------------- */

static void check_index(const ckpt_tree *t)
{
	const struct index *x = t->u.c.idx;
	size_t keys = 0, stems = 0;

	if (!x)
		return;
	assert(x->cap && (x->cap & (x->cap - 1)) == 0); /* a power of two */
	for (size_t i = 0; i < x->cap; i++) {
		assert(x->by_key[i] <= t->u.c.n && x->by_stem[i] <= t->u.c.n);
		keys += x->by_key[i] != 0;
		stems += x->by_stem[i] != 0;
	}
	assert(keys == t->u.c.n && stems == t->u.c.n && 2 * keys <= x->cap); /* invariant 4 */
}

static void check_node(const ckpt_tree *t, const ckpt_tree *parent, size_t pos)
{
	assert(t->parent == parent);
	if (!parent) {
		assert(t->key[0] == '\0' && t->name[0] == '\0'); /* invariant 2: the root */
	} else {
		char *want = NULL;
		assert(parent->u.c.kids[pos] == t && t->pos == pos); /* invariant 1 */
		if (!is_keyed(parent)) {
			char num[24];
			snprintf(num, sizeof(num), "%zu", pos);
			assert(strcmp(t->key, num) == 0); /* invariant 2: positional key */
		}
		if (ckpt_key_escape(&want, t->key, t->kind == CKPT_TREE_ARRAY) == 0) {
			/* invariant 2: name = escape(key) + ".npy" for arrays */
			assert(t->stem_len == strlen(want) && strncmp(t->name, want, t->stem_len) == 0);
			assert(strcmp(t->name + t->stem_len,
				      t->kind == CKPT_TREE_ARRAY ? ".npy" : "") == 0);
			free(want);
		}
	}
	if (is_container_kind(t->kind)) {
		assert(t->u.c.n <= t->u.c.cap);
		if (is_keyed(t)) {
			check_index(t);
			for (size_t i = 0; i < t->u.c.n; i++) /* invariant 3: unique keys */
				assert(find_key(t, t->u.c.kids[i]->key) == t->u.c.kids[i]);
		}
		for (size_t i = 0; i < t->u.c.n; i++)
			check_node(t->u.c.kids[i], t, i);
	} else if (t->kind == CKPT_TREE_ARRAY) {
		uint64_t n = 1;
		for (unsigned d = 0; d < t->u.a.ndim; d++)
			n *= t->u.a.shape[d];
		assert(t->u.a.shape != NULL && n == t->u.a.nelems); /* invariant 5 */
		assert(t->u.a.nbytes == t->u.a.nelems * ckpt_dtype_size(t->u.a.dt));
		assert(t->u.a.data || !t->u.a.owned);
	}
}

int ckpt_tree_check(const ckpt_tree *t)
{
	check_node(t, t->parent, t->parent ? t->pos : 0);
	return 1;
}
