/*
 * pytree_restore.c — restoring a PyTree item (Orbax PyTreeCheckpointHandler
 * restore semantics).
 *
 * Design: the item's metadata tree (ckpt_step_item_tree) is rebuilt with
 * ckpt_tree_map; each selected leaf is read on its own. Selection: all
 * leaves, or those under args->paths, or (partial_restore) those present in
 * the target args->item. An array is read in runs of at most
 * restore_concurrent_bytes straight into the result (or through one bounce
 * buffer of that size when casting), so bytes in flight stay bounded. A
 * target shape that differs is CKPT_ESHAPE when strict; otherwise the
 * overlapping box is copied row by row and the rest stays zero.
 *
 * Invariants:
 *   1. Only selected leaves are opened (partial restore reads nothing else).
 *   2. Every array value's size equals the metadata's nbytes before any
 *      byte of it is used (CKPT_ECORRUPT otherwise).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error_private.h"
#include "mem.h"
#include "pytree_private.h"
#include "fsutil.h"

#define DEFAULT_RESTORE_BYTES (64ull << 20)

struct restore_ctx {
	ckpt_step *s;
	const char *item;
	const ckpt_pytree_restore_args *args;
	char **sels; /* normalized selected paths (args->paths) */
	size_t nsels;
	uint64_t cap;
};

static void shape_str(char *buf, size_t cap, unsigned nd, const uint64_t *shape)
{
	size_t n = (size_t)snprintf(buf, cap, "(");

	for (unsigned i = 0; i < nd && n < cap; i++)
		n += (size_t)snprintf(buf + n, cap - n, i ? ", %llu" : "%llu",
				      (unsigned long long)shape[i]);
	if (n < cap)
		snprintf(buf + n, cap - n, nd == 1 ? ",)" : ")");
}

/* Copy n elements starting at element `from` of v into dst (cast st -> dt). */
static int copy_run(ckpt_value *v, ckpt_dtype st, ckpt_dtype dt, uint64_t from, uint64_t n,
		    unsigned char *dst, unsigned char *bounce, uint64_t per)
{
	size_t ssz = ckpt_dtype_size(st), dsz = ckpt_dtype_size(dt);

	for (uint64_t i = 0; i < n; i += per) {
		uint64_t k = n - i < per ? n - i : per;
		void *buf = st == dt ? dst + i * dsz : bounce;
		size_t got = 0;
		int rc = ckpt_value_pread(&got, v, buf, (size_t)(k * ssz), (from + i) * ssz);

		if (rc)
			return rc;
		if (got != k * ssz)
			return ckpt_error_set(CKPT_ECORRUPT, "short read");
		if (st != dt && (rc = ckpt_dtype_cast(dst + i * dsz, dt, bounce, st, (size_t)k)))
			return rc;
	}
	return 0;
}

/* Copy the box common to shapes ss (saved) and ts (target), both of nd dims. */
static int copy_box(ckpt_value *v, ckpt_dtype st, ckpt_dtype dt, unsigned nd, const uint64_t *ss,
		    const uint64_t *ts, unsigned char *dst, unsigned char *bounce, uint64_t per)
{
	uint64_t idx[CKPT_TREE_MAX_NDIM] = {0};
	uint64_t inner = ss[nd - 1] < ts[nd - 1] ? ss[nd - 1] : ts[nd - 1];
	size_t dsz = ckpt_dtype_size(dt);

	assert(nd >= 1 && nd <= CKPT_TREE_MAX_NDIM);
	for (unsigned d = 0; d < nd; d++)
		if (ss[d] == 0 || ts[d] == 0)
			return 0;
	for (;;) {
		uint64_t so = 0, to = 0;
		for (unsigned d = 0; d + 1 < nd; d++) {
			so = so * ss[d] + idx[d];
			to = to * ts[d] + idx[d];
		}
		so *= ss[nd - 1];
		to *= ts[nd - 1];
		int rc = copy_run(v, st, dt, so, inner, dst + to * dsz, bounce, per);
		if (rc)
			return rc;
		int d = (int)nd - 2;
		for (; d >= 0; d--) {
			uint64_t lim = ss[d] < ts[d] ? ss[d] : ts[d];
			if (++idx[d] < lim)
				break;
			idx[d] = 0;
		}
		if (d < 0)
			return 0;
	}
}

static int read_array(ckpt_tree **out, struct restore_ctx *c, const ckpt_tree *meta,
		      const char *path, const char *key, const ckpt_leaf_restore_args *la)
{
	ckpt_dtype st = ckpt_tree_dtype(meta);
	ckpt_dtype dt = la->dtype != CKPT_DTYPE_INVALID ? la->dtype : st;
	unsigned snd = ckpt_tree_ndim(meta), tnd = la->has_shape ? la->ndim : snd;
	const uint64_t *ss = ckpt_tree_shape(meta);
	const uint64_t *ts = la->has_shape ? la->shape : ss;
	size_t ssz = ckpt_dtype_size(st), dsz = ckpt_dtype_size(dt);
	unsigned char *dst = NULL, *bounce = NULL;
	ckpt_value *v = NULL;
	uint64_t tn = 1, per;
	int same = tnd == snd, rc;

	if (dsz == 0 || ssz == 0)
		return ckpt_error_set(CKPT_EINVAL, "leaf '%s': invalid dtype", path);
	if (tnd > CKPT_TREE_MAX_NDIM)
		return ckpt_error_set(CKPT_EINVAL, "leaf '%s': target has too many dimensions",
				      path);
	for (unsigned d = 0; same && d < snd; d++)
		same = ss[d] == ts[d];
	if (!same && (c->args == NULL || c->args->strict || tnd != snd)) {
		char a[256], b[256];
		shape_str(a, sizeof(a), snd, ss);
		shape_str(b, sizeof(b), tnd, ts);
		return ckpt_error_set(
		    CKPT_ESHAPE, "leaf '%s': saved shape %s differs from target %s%s", path, a, b,
		    tnd != snd && c->args && !c->args->strict
			? " (non-strict restore needs the same number of "
			  "dimensions)"
			: "");
	}
	for (unsigned d = 0; d < tnd; d++) {
		if (ts[d] && tn > UINT64_MAX / ts[d] / dsz)
			return ckpt_error_set(CKPT_EINVAL, "leaf '%s': target shape too large",
					      path);
		tn *= ts[d];
	}
	rc = ckpt_value_open(&v, ckpt_step_store(c->s), key, strlen(key));
	if (rc)
		return ckpt_error_wrap(rc, "%s", key);
	if (ckpt_value_get_info(v)->size != ckpt_tree_nbytes(meta)) {
		rc = ckpt_error_set(CKPT_ECORRUPT,
				    "%s: stored value has %llu bytes, metadata says %llu", key,
				    (unsigned long long)ckpt_value_get_info(v)->size,
				    (unsigned long long)ckpt_tree_nbytes(meta));
		goto done;
	}
	per = c->cap / (ssz > dsz ? ssz : dsz);
	if (per == 0)
		per = 1;
	dst = ckpt_mem_malloc_large((size_t)(tn * dsz));
	if (!dst || (st != dt && !(bounce = malloc((size_t)(per < tn ? per : tn) * ssz + 1)))) {
		rc = ckpt_error_nomem();
		goto done;
	}
	if (!same) /* copy_box leaves the padding of a larger target untouched */
		memset(dst, 0, (size_t)(tn * dsz));
	rc = same ? copy_run(v, st, dt, 0, tn, dst, bounce, per)
		  : copy_box(v, st, dt, snd, ss, ts, dst, bounce, per);
	if (rc) {
		ckpt_error_wrap(rc, "%s", key);
		goto done;
	}
	rc = ckpt_tree_new_array(out, dt, tnd, ts, dst, CKPT_TREE_OWN);
	dst = NULL;
done:
	free(dst);
	free(bounce);
	ckpt_value_free(v);
	return rc;
}

static int selected(const struct restore_ctx *c, const char *path)
{
	if (!c->sels)
		return 1;
	for (size_t i = 0; i < c->nsels; i++) {
		size_t n = strlen(c->sels[i]);
		if (n == 0 || (strncmp(path, c->sels[i], n) == 0 && (!path[n] || path[n] == '/')))
			return 1;
	}
	return 0;
}

static int restore_leaf(ckpt_tree **out, const ckpt_tree *meta, const char *path, void *payload)
{
	struct restore_ctx *c = payload;
	const ckpt_pytree_restore_args *a = c->args;
	ckpt_leaf_restore_args la = {CKPT_DTYPE_INVALID, 0, {0}, 0};
	ckpt_tree_kind k = ckpt_tree_get_kind(meta);
	void *val = NULL;
	size_t len = 0;
	char *key = NULL;
	int rc = 0;

	if (!selected(c, path))
		return CKPT_MAP_SKIP;
	if (a && a->item) {
		ckpt_tree *t = NULL;
		if (ckpt_tree_lookup(&t, a->item, path) != 0) {
			if (a->partial_restore)
				return CKPT_MAP_SKIP;
			return ckpt_error_set(
			    CKPT_EINVAL,
			    "item %s: the target has no '%s', which the checkpoint "
			    "has (use partial_restore to restore a subset)",
			    c->item, path);
		}
		if (ckpt_tree_get_kind(t) == CKPT_TREE_ARRAY && k == CKPT_TREE_ARRAY) {
			la.dtype = ckpt_tree_dtype(t);
			la.ndim = ckpt_tree_ndim(t);
			memcpy(la.shape, ckpt_tree_shape(t), la.ndim * sizeof(uint64_t));
			la.has_shape = 1;
		}
	}
	if (ckpt_tree_is_container(meta) || k == CKPT_TREE_NONE)
		return 0;
	if (a && a->leaf_args && (rc = a->leaf_args(&la, path, meta, a->payload)))
		return rc < 0 ? rc
			      : ckpt_error_set(CKPT_ERROR, "leaf_args stopped the restore at '%s'",
					       path);
	key = ckpt_asprintf("%s/%s", c->item, path);
	if (!key)
		return CKPT_ENOMEM;
	if (k == CKPT_TREE_ARRAY) {
		rc = read_array(out, c, meta, path, key, &la);
		goto done;
	}
	rc = ckpt_store_get(&val, &len, ckpt_step_store(c->s), key, strlen(key));
	if (rc) {
		ckpt_error_wrap(rc, "%s", key);
		goto done;
	}
	if (k == CKPT_TREE_STRING)
		rc = ckpt_tree_new_string(out, val, len);
	else if ((rc = ckpt_scalar_parse(out, val, len, k)) != 0)
		rc = ckpt_error_wrap(CKPT_ECORRUPT, "%s", key);
done:
	free(val);
	free(key);
	return rc;
}

/* Every leaf of the target must exist in the checkpoint. */
static int check_target_leaf(ckpt_tree *node, const char *path, void *payload)
{
	const struct restore_ctx *c = payload;
	const ckpt_tree *meta = NULL;
	ckpt_tree *m = NULL;

	if (ckpt_tree_is_container(node) || ckpt_tree_get_kind(node) == CKPT_TREE_NONE)
		return 0;
	if (ckpt_step_item_tree(&meta, c->s, c->item) != 0)
		return CKPT_ERROR;
	if (ckpt_tree_lookup(&m, meta, path) != 0)
		return ckpt_error_set(CKPT_ENOTFOUND,
				      "item %s: the target's leaf '%s' is not in the "
				      "checkpoint",
				      c->item, path);
	return 0;
}

int ckpt_pytree_restore_item(void **out, ckpt_step *s, const char *item,
			     const ckpt_pytree_restore_args *args)
{
	struct restore_ctx c = {s, item, args, NULL, 0, DEFAULT_RESTORE_BYTES};
	const ckpt_tree *meta = NULL;
	ckpt_tree *res = NULL;
	int rc;

	*out = NULL;
	CKPT_CHECK_VERSION(args, CKPT_PYTREE_RESTORE_ARGS_VERSION, "ckpt_pytree_restore_args");
	rc = ckpt_step_item_tree(&meta, s, item);
	if (rc)
		return rc;
	if (args && args->restore_concurrent_bytes)
		c.cap = args->restore_concurrent_bytes;
	if (args && args->item) {
		rc = ckpt_tree_walk((ckpt_tree *)args->item, check_target_leaf, &c);
		if (rc)
			return rc;
	}
	if (args && args->paths) {
		c.sels = calloc(args->npaths ? args->npaths : 1, sizeof(char *));
		if (!c.sels)
			return ckpt_error_nomem();
		for (; rc == 0 && c.nsels < args->npaths; c.nsels++) {
			ckpt_tree *n = NULL;
			rc = ckpt_tree_lookup(&n, meta, args->paths[c.nsels]);
			if (rc == 0)
				rc = ckpt_tree_path(&c.sels[c.nsels], n);
			else
				ckpt_error_wrap(rc, "item %s", item);
		}
	}
	if (rc == 0)
		rc = ckpt_tree_map(&res, meta, restore_leaf, &c);
	for (size_t i = 0; c.sels && i < c.nsels; i++)
		free(c.sels[i]);
	free(c.sels);
	if (rc == 0)
		*out = res;
	return rc;
}

int ckpt_pytree_metadata_item(void **out, ckpt_handler *h, ckpt_step *s, const char *item)
{
	const ckpt_tree *meta = NULL;
	ckpt_tree *copy = NULL;
	int rc;

	(void)h;
	*out = NULL;
	rc = ckpt_step_item_tree(&meta, s, item);
	if (rc == 0)
		rc = ckpt_tree_clone(&copy, meta);
	if (rc == 0)
		*out = copy;
	return rc;
}
