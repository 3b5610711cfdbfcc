/*
 * pytree.c — PyTreeCheckpointHandler / StandardCheckpointHandler: the
 * handler objects, the save path and the tree rebuilding helper
 * (restore lives in pytree_restore.c).
 *
 * Save: the tree is rebuilt as a metadata-only copy (ckpt_tree_map) while
 * each leaf's data is written to "<item>/<path>": arrays as little-endian
 * C-order bytes streamed through a ckpt_value_writer in slices (cast slice
 * by slice, so memory stays bounded by the slice size whatever the array),
 * scalars as ckpt_scalar_format() text, strings as their bytes. None and
 * empty containers exist only in the metadata. Then the metadata copy goes
 * to "<item>/_METADATA". A sharded array leaf (ckpt_tree_new_sharded_array)
 * writes its replica-0 shards as tiles of "<item>/<path>" and is recorded as
 * an ordinary array of its global shape; the key gets its value when the
 * step writer's finalize closes the tiles (docs/format.md, "Tiles").
 *
 * Snapshot (copy mode of ckpt/async.h): a deep copy of the tree and the
 * caller's per-leaf leaf_args evaluated at once and replayed from a table
 * keyed by the copy's nodes, so a later save on another thread touches
 * nothing of the caller's (a sharded leaf's replica-0 shards are copied
 * too). The copy's array data lives in buffers the
 * snapshot owns; when it is freed they are kept by the handler for the next
 * snapshot (same sizes: a memcpy without page faults, which cost more than
 * the copy itself), so a handler used for copy-mode saves holds one
 * snapshot's worth of memory until the next snapshot or ckpt_handler_free.
 * snapshot_reserve gets such buffers ready before the first snapshot: a
 * thread of the handler allocates and writes them once (the first write of
 * fresh memory is what costs: 0.5-1 s per 256 MiB on the VMs we measured).
 * Spare buffers belong to the handler, not to an item: with one handler
 * for several items, each snapshot takes the spare ones it fits and the
 * rest go, so reuse (and a reserve) needs one handler per item.
 * Snapshot buffers are small pages (malloc), not huge ones: on those VMs a
 * process with huge-page snapshot buffers ran its training steps up to 3x
 * slower while saves ran (docs/manager.md, "Memory of copy-mode saves").
 *
 * Invariants:
 *   1. Every key written is "<item>/" + a leaf path of the saved metadata
 *      tree, or "<item>/_METADATA" (no path starts with '_': names escape it).
 *   2. The stored size of an array leaf is nelems * dtype size of the dtype
 *      recorded in _METADATA (the cast target).
 *   3. ckpt_tree_map keeps every node's custom metadata (root, containers,
 *      leaves, None): what the caller set on the tree is what _METADATA
 *      holds, and what a restore or a metadata call gives back.
 */
#include <assert.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt/sys/handler.h"
#include "error_private.h"
#include "pytree_private.h"
#include "step_private.h"
#include "thread_private.h"
#include "fsutil.h"

#define SAVE_SLICE_BYTES (8u << 20)

/* An array buffer of a snapshot: malloc'd, freed with free(). */
struct snap_buf {
	size_t size;
	void *p;
};

/* A set of buffers; sorted by size when offered for reuse. */
struct snap_bufs {
	struct snap_buf *v;
	size_t n, cap;
};

/* A snapshot_reserve in progress: its thread fills got with buffers of sizes[]. */
struct reserve {
	struct pytree_handler *ph;
	pthread_t thread;
	size_t *sizes, n, cap;
	struct snap_bufs got; /* capacity n; the thread's until joined */
};

struct pytree_handler {
	ckpt_handler base;
	int standard;
	pthread_mutex_t mu;	/* guards spare, live, reserve_stop */
	struct snap_bufs spare; /* the last snapshot's buffers, for the next one */
	unsigned live;		/* snapshots taken and not freed yet */
	struct reserve *reserve; /* running or done, not joined yet; driving thread only */
	int reserve_stop;	 /* tells the reserve's thread to stop early */
};

/* ---- ckpt_tree_map ---- */

/* An empty node of src's kind, with src's custom metadata (containers keep theirs). */
static int new_like(ckpt_tree **out, const ckpt_tree *src)
{
	ckpt_tree_kind k = ckpt_tree_get_kind(src);
	const char *cm = ckpt_tree_custom_metadata(src);
	int rc;

	if (k == CKPT_TREE_NAMEDTUPLE)
		rc = ckpt_tree_new_namedtuple(out, ckpt_tree_namedtuple_type(src));
	else if (k == CKPT_TREE_DICT || k == CKPT_TREE_LIST || k == CKPT_TREE_TUPLE ||
		 k == CKPT_TREE_NONE)
		rc = ckpt_tree_new(out, k);
	else
		return ckpt_error_set(CKPT_EINVAL, "leaf '%s' has no value to copy",
				      ckpt_tree_key(src));
	if (rc == 0 && cm && (rc = ckpt_tree_set_custom_metadata(*out, cm)) < 0) {
		ckpt_tree_free(*out);
		*out = NULL;
	}
	return rc;
}

/* The copy keeps src's custom metadata (invariant 3) unless fn gave it its own. */
static int keep_custom(ckpt_tree *res, const ckpt_tree *src)
{
	const char *cm = ckpt_tree_custom_metadata(src);

	return cm && !ckpt_tree_custom_metadata(res) ? ckpt_tree_set_custom_metadata(res, cm) : 0;
}

static int map_node(ckpt_tree **out, const ckpt_tree *src, const char *path, ckpt_tree_map_fn fn,
		    void *payload)
{
	size_t n = ckpt_tree_count(src);
	ckpt_tree *res = NULL;
	size_t kept = 0;
	int rc;

	*out = NULL;
	if (n == 0) {
		rc = fn(&res, src, path, payload);
		if (rc == 0 && !res)
			rc = new_like(&res, src);
		if (rc == 0)
			rc = keep_custom(res, src);
		if (rc < 0) {
			ckpt_tree_free(res);
			return rc;
		}
		*out = res;
		return rc;
	}
	int keyed = ckpt_tree_get_kind(src) == CKPT_TREE_DICT ||
		    ckpt_tree_get_kind(src) == CKPT_TREE_NAMEDTUPLE;
	rc = new_like(&res, src);
	if (rc == 0)
		rc = keep_custom(res, src);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const ckpt_tree *c = ckpt_tree_child(src, i);
		const char *name = ckpt_tree_name(c);
		size_t nl = strlen(name);
		ckpt_tree *cr = NULL;

		if (ckpt_tree_get_kind(c) == CKPT_TREE_ARRAY && nl >= 4)
			nl -= 4; /* ".npy" */
		char *cp = path[0] ? ckpt_asprintf("%s/%.*s", path, (int)nl, name)
				   : ckpt_asprintf("%.*s", (int)nl, name);
		if (!cp) {
			rc = CKPT_ENOMEM;
			break;
		}
		rc = map_node(&cr, c, cp, fn, payload);
		free(cp);
		if (rc == CKPT_MAP_SKIP) {
			rc = 0;
			if (keyed)
				continue;
			rc = ckpt_tree_new(&cr, CKPT_TREE_NONE);
		} else if (rc == 0) {
			kept++;
		}
		if (rc == 0)
			rc = ckpt_tree_add(res, keyed ? ckpt_tree_key(c) : NULL, cr);
	}
	if (rc == 0 && kept == 0)
		rc = CKPT_MAP_SKIP;
	if (rc != 0) {
		ckpt_tree_free(res);
		return rc;
	}
	*out = res;
	return 0;
}

int ckpt_tree_map(ckpt_tree **out, const ckpt_tree *src, ckpt_tree_map_fn fn, void *payload)
{
	int rc = map_node(out, src, "", fn, payload);

	if (rc == CKPT_MAP_SKIP) {
		rc = ckpt_tree_is_container(src) ? new_like(out, src)
						 : ckpt_tree_new(out, CKPT_TREE_DICT);
		if (rc == 0 && (rc = keep_custom(*out, src)) != 0) {
			ckpt_tree_free(*out);
			*out = NULL;
		}
	}
	return rc;
}

/* ---- save ---- */

struct save_ctx {
	ckpt_step_writer *w;
	const char *item;
	const ckpt_pytree_save_args *args;
	int standard;
	ckpt_pytree_source_fn source;
	void *payload;
	size_t slice;
};

static int put_opts(ckpt_put_options *po, const struct save_ctx *c, int compression)
{
	const int level = ckpt_step_writer_store_options(c->w)->compression_level;

	/* By default a leaf follows the store (level 0 is --no-compress: raw); a
	 * leaf that asks for compression gets at least level 1. */
	*po = (ckpt_put_options)CKPT_PUT_OPTIONS_INIT;
	if (compression < 0)
		po->compression_level = c->args->use_compression ? level : 0;
	else
		po->compression_level = compression ? (level > 0 ? level : 1) : 0;
	return 0;
}

/*
 * Write nel elements into the writer vw just opened (open_rc its open's
 * result), per at a time, from data or (data NULL) from c->source into sbuf,
 * cast from -> to through dbuf (NULL: no cast); close vw, or abort it on an
 * error. Returns 0 or the first error.
 */
static int stream_elements(struct save_ctx *c, int open_rc, ckpt_value_writer *vw,
			   const unsigned char *data, uint64_t nel, size_t per, ckpt_dtype from,
			   ckpt_dtype to, unsigned char *sbuf, unsigned char *dbuf,
			   const ckpt_tree *leaf, const char *path)
{
	size_t ssz = ckpt_dtype_size(from), dsz = ckpt_dtype_size(to);
	int rc = open_rc;

	for (uint64_t i = 0; rc == 0 && i < nel; i += per) {
		size_t n = nel - i < per ? (size_t)(nel - i) : per;
		const void *src = data ? data + i * ssz : sbuf;

		if (!data)
			rc = c->source(sbuf, n * ssz, i * ssz, leaf, path, c->payload);
		if (rc == 0 && dbuf) {
			rc = ckpt_dtype_cast(dbuf, to, src, from, n);
			src = dbuf;
		}
		if (rc == 0)
			rc = ckpt_value_writer_write(vw, src, n * dsz);
	}
	if (vw) {
		if (rc == 0)
			rc = ckpt_value_writer_close(vw);
		else
			ckpt_value_writer_abort(vw);
	}
	return rc;
}

static int write_array(struct save_ctx *c, const char *key, const char *path, const ckpt_tree *leaf,
		       ckpt_dtype to, const ckpt_put_options *po)
{
	ckpt_dtype from = ckpt_tree_dtype(leaf);
	size_t ssz = ckpt_dtype_size(from), dsz = ckpt_dtype_size(to);
	uint64_t nel = ckpt_tree_nelems(leaf);
	const unsigned char *data = ckpt_tree_data(leaf);
	size_t per = c->slice / (ssz > dsz ? ssz : dsz);
	unsigned char *sbuf = NULL, *dbuf = NULL;
	ckpt_value_writer *vw = NULL;
	int rc;

	if (per == 0)
		per = 1;
	if (per > nel)
		per = (size_t)nel;
	if (!data && !c->source)
		return ckpt_error_set(CKPT_EINVAL, "leaf '%s' is a metadata-only array (no data)",
				      path);
	if (!data && per && !(sbuf = malloc(per * ssz)))
		return ckpt_error_nomem();
	if (to != from && per && !(dbuf = malloc(per * dsz))) {
		rc = ckpt_error_nomem();
		goto done;
	}
	rc = ckpt_value_writer_open(&vw, ckpt_step_writer_batch(c->w), key, strlen(key), po);
	rc = stream_elements(c, rc, vw, data, nel, per, from, to, sbuf, dbuf, leaf, path);
	if (rc)
		ckpt_error_wrap(rc, "save %s", key);
done:
	free(sbuf);
	free(dbuf);
	return rc;
}

/*
 * A sharded array leaf: each local shard of replica 0 becomes a tile of the
 * global array (ckpt_value_writer_open_tile), cast slice by slice like any
 * array; other replicas are written by the process holding replica 0. The
 * key's value exists once ckpt_store_close_tiles has checked every process's
 * tiles (the step writer's finalize). An empty global array has no tiles: it
 * is an ordinary empty value.
 */
static int write_shards(struct save_ctx *c, const char *key, const char *path,
			const ckpt_tree *leaf, ckpt_dtype to, const ckpt_put_options *po)
{
	ckpt_dtype from = ckpt_tree_dtype(leaf);
	size_t ssz = ckpt_dtype_size(from), dsz = ckpt_dtype_size(to);
	size_t per = c->slice / (ssz > dsz ? ssz : dsz);
	ckpt_batch *b = ckpt_step_writer_batch(c->w);
	unsigned char *dbuf = NULL;
	int rc = 0;

	if (ckpt_tree_nelems(leaf) == 0)
		return ckpt_batch_put(b, key, strlen(key), "", 0, po);
	if (per == 0)
		per = 1;
	for (size_t i = 0; rc == 0 && i < ckpt_tree_nshards(leaf); i++) {
		const uint64_t *start, *shape;
		unsigned replica;
		const unsigned char *data = ckpt_tree_shard(leaf, i, &start, &shape, &replica);
		ckpt_tile t = {dsz, ckpt_tree_ndim(leaf), ckpt_tree_shape(leaf), start, shape};
		ckpt_value_writer *vw = NULL;
		uint64_t nel = 1;

		if (replica != 0)
			continue; /* another process writes replica 0 of this box */
		for (unsigned d = 0; d < t.ndim; d++)
			nel *= shape[d];
		if (to != from && !dbuf && !(dbuf = malloc(per * dsz))) {
			rc = ckpt_error_nomem();
			break;
		}
		rc = ckpt_value_writer_open_tile(&vw, b, key, strlen(key), &t, po);
		rc = stream_elements(c, rc, vw, data, nel, per, from, to, NULL, dbuf, leaf, path);
	}
	if (rc)
		ckpt_error_wrap(rc, "save the shards of %s (leaf '%s')", key, path);
	free(dbuf);
	return rc;
}

static int save_leaf(ckpt_tree **out, const ckpt_tree *leaf, const char *path, void *payload)
{
	struct save_ctx *c = payload;
	ckpt_tree_kind k = ckpt_tree_get_kind(leaf);
	ckpt_leaf_save_args la = {CKPT_DTYPE_INVALID, NULL, -1};
	ckpt_put_options po;
	char *key = NULL;
	char txt[64];
	int rc = 0;

	if (ckpt_tree_is_container(leaf) || k == CKPT_TREE_NONE)
		return 0; /* structure only */
	if (k == CKPT_TREE_STRING && c->standard)
		return ckpt_error_set(
		    CKPT_EUNSUPPORTED,
		    "item %s: leaf '%s' is a string; StandardCheckpointHandler saves "
		    "only arrays, scalars and None (use PyTreeCheckpointHandler)",
		    c->item, path);
	if (c->args->leaf_args && (rc = c->args->leaf_args(&la, path, leaf, c->args->payload)))
		return rc < 0
			   ? rc
			   : ckpt_error_set(CKPT_ERROR, "leaf_args stopped the save at '%s'", path);
	key = ckpt_asprintf("%s/%s", c->item, path);
	if (!key)
		return CKPT_ENOMEM;
	put_opts(&po, c, la.compression);
	switch (k) {
	case CKPT_TREE_ARRAY: {
		ckpt_dtype to = la.dtype != CKPT_DTYPE_INVALID ? la.dtype : ckpt_tree_dtype(leaf);
		if (ckpt_dtype_size(to) == 0) {
			rc = ckpt_error_set(CKPT_EINVAL, "leaf '%s': invalid save dtype", path);
			break;
		}
		rc = ckpt_tree_is_sharded(leaf) ? write_shards(c, key, path, leaf, to, &po)
						 : write_array(c, key, path, leaf, to, &po);
		if (rc == 0)
			rc = ckpt_tree_new_array(out, to, ckpt_tree_ndim(leaf),
						 ckpt_tree_shape(leaf), NULL, CKPT_TREE_COPY);
		break;
	}
	case CKPT_TREE_INT:
	case CKPT_TREE_FLOAT:
	case CKPT_TREE_BOOL:
		rc = ckpt_scalar_format(txt, sizeof(txt), leaf);
		if (rc >= 0)
			rc = ckpt_batch_put(ckpt_step_writer_batch(c->w), key, strlen(key), txt,
					    (size_t)rc, &po);
		if (rc == 0)
			rc = ckpt_tree_clone(out, leaf);
		break;
	case CKPT_TREE_STRING: {
		size_t len = 0;
		const char *s = ckpt_tree_string(leaf, &len);
		rc = ckpt_batch_put(ckpt_step_writer_batch(c->w), key, strlen(key), s, len, &po);
		if (rc == 0)
			rc = ckpt_tree_new_string(out, "", 0);
		break;
	}
	default: rc = ckpt_error_set(CKPT_EINVAL, "leaf '%s': unknown kind %d", path, (int)k);
	}
	if (rc == 0 && la.custom_metadata)
		rc = ckpt_tree_set_custom_metadata(*out, la.custom_metadata);
	free(key);
	return rc;
}

int ckpt_pytree_save_item(ckpt_step_writer *w, const char *item, const ckpt_pytree_save_args *args,
			  int standard, ckpt_pytree_source_fn source, void *payload)
{
	struct save_ctx c = {w, item, args, standard, source, payload, SAVE_SLICE_BYTES};
	ckpt_tree *meta = NULL;
	char *json = NULL, *key = NULL;
	int rc;

	CKPT_CHECK_VERSION(args, CKPT_PYTREE_SAVE_ARGS_VERSION, "ckpt_pytree_save_args");
	if (!args || !args->item)
		return ckpt_error_set(CKPT_EINVAL, "item %s: no tree to save", item);
	if (!ckpt_tree_is_container(args->item))
		return ckpt_error_set(CKPT_EINVAL,
				      "item %s: the root of a PyTree must be a container", item);
	if (args->target_data_file_size) {
		uint64_t have = ckpt_step_writer_store_options(w)->target_data_file_size;
		if (!have)
			have = CKPT_DEFAULT_TARGET_DATA_FILE_SIZE;
		if (have != args->target_data_file_size)
			return ckpt_error_set(
			    CKPT_EINVAL,
			    "item %s: target_data_file_size %llu differs from the step's %llu "
			    "(data files belong to the step: set "
			    "ckpt_step_writer_options.store.target_data_file_size)",
			    item, (unsigned long long)args->target_data_file_size,
			    (unsigned long long)have);
	}
	if (args->save_concurrent_bytes && args->save_concurrent_bytes < c.slice)
		c.slice = (size_t)args->save_concurrent_bytes;
	rc = ckpt_tree_map(&meta, args->item, save_leaf, &c);
	/* Orbax's item-level custom_metadata is _METADATA's top-level one: the root's */
	if (rc == 0 && args->version >= 2 && args->custom_metadata)
		rc = ckpt_tree_set_custom_metadata(meta, args->custom_metadata);
	if (rc == 0)
		rc = ckpt_tree_metadata_to_json(&json, meta);
	if (rc == 0 && !(key = ckpt_asprintf("%s/%s", item, CKPT_ITEM_METADATA_NAME)))
		rc = CKPT_ENOMEM;
	if (rc == 0)
		rc = ckpt_batch_put(ckpt_step_writer_batch(w), key, strlen(key), json, strlen(json),
				    NULL);
	free(key);
	free(json);
	ckpt_tree_free(meta);
	return rc;
}

/* ---- the handler objects ---- */

static const char *pytree_typestr(const ckpt_handler *h)
{
	return ((const struct pytree_handler *)h)->standard ? CKPT_STANDARD_TYPESTR
							    : CKPT_PYTREE_TYPESTR;
}

static int pytree_save(ckpt_handler *h, ckpt_step_writer *w, const char *item, const void *args)
{
	return ckpt_pytree_save_item(w, item, args, ((struct pytree_handler *)h)->standard, NULL,
				     NULL);
}

static int pytree_restore(void **out, ckpt_handler *h, ckpt_step *s, const char *item,
			  const void *args)
{
	const ckpt_pytree_restore_args *a = args;

	*out = NULL;
	CKPT_CHECK_VERSION(a, CKPT_PYTREE_RESTORE_ARGS_VERSION, "ckpt_pytree_restore_args");
	if (a && a->leaf_args && ((struct pytree_handler *)h)->standard)
		return ckpt_error_set(CKPT_EINVAL,
				      "StandardCheckpointHandler takes no per-leaf restore args "
				      "(use PyTreeCheckpointHandler)");
	return ckpt_pytree_restore_item(out, s, item, a);
}

/* ---- snapshots (copy mode of ckpt/async.h) ---- */

/* A leaf's SaveArgs, evaluated when the snapshot was taken. */
struct snap_leaf {
	const ckpt_tree *node; /* in the snapshot's tree */
	ckpt_leaf_save_args la;
	char *custom; /* la.custom_metadata points here */
};

/* One array's copy into the snapshot, done after the tree is mapped (copy_all). */
struct snap_copy {
	void *dst;
	const void *src;
	size_t size;
};

/*
 * args.item is tree, whose array leaves borrow bufs; args.leaf_args/payload
 * replay leaves[] (sorted by node).
 */
struct pytree_snapshot {
	ckpt_pytree_save_args args;
	ckpt_tree *tree;
	struct snap_bufs bufs;
	struct snap_bufs spare; /* while taking the snapshot: the last one's buffers */
	struct snap_copy *copies; /* while taking the snapshot */
	size_t ncopies, capcopies;
	struct snap_leaf *leaves;
	size_t n, cap;
	const ckpt_pytree_save_args *user;
	int standard;
	char *custom; /* args.custom_metadata points here */
};

static void bufs_free(struct snap_bufs *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->v[i].p);
	free(b->v);
	*b = (struct snap_bufs){NULL, 0, 0};
}

static int cmp_buf(const void *a, const void *b)
{
	size_t x = ((const struct snap_buf *)a)->size, y = ((const struct snap_buf *)b)->size;

	return x < y ? -1 : x > y;
}

/*
 * Room for one more element (elem bytes) in an array with n used of *cap:
 * doubles it (64 at first). parray is the address of the array's pointer,
 * of any element type (read and written with memcpy, so not aliased).
 */
static int grow(void *parray, size_t *cap, size_t n, size_t elem)
{
	size_t c = *cap ? 2 * *cap : 64;
	void *old, *p;

	if (n < *cap)
		return 0;
	memcpy(&old, parray, sizeof(old));
	if (c > SIZE_MAX / elem || !(p = realloc(old, c * elem)))
		return ckpt_error_nomem();
	memcpy(parray, &p, sizeof(p));
	*cap = c;
	return 0;
}

/* A buffer of exactly size bytes: a spare one (taken out of spare) or a new one. */
static void *buf_get(struct snap_bufs *spare, size_t size)
{
	const struct snap_buf key = {size, NULL};
	struct snap_buf *f =
	    spare->n ? bsearch(&key, spare->v, spare->n, sizeof(key), cmp_buf) : NULL;

	while (f && f > spare->v && f[-1].size == size)
		f--; /* the first of equal sizes: taken ones have p NULL */
	for (; f && f < spare->v + spare->n && f->size == size; f++) {
		if (f->p) {
			void *p = f->p;
			f->p = NULL;
			return p;
		}
	}
	return malloc(size ? size : 1);
}

/* Whether a snapshot copies node's data into a buffer of its own (snapshot_reserve
 * prepares exactly those). */
static int snap_buffered(const ckpt_tree *node)
{
	return ckpt_tree_get_kind(node) == CKPT_TREE_ARRAY && ckpt_tree_data(node);
}

/* A buffer of size bytes in the snapshot, to be filled from src by its copies. */
static void *snap_buffer(struct pytree_snapshot *sn, const void *src, size_t size)
{
	void *p;

	if (grow(&sn->bufs.v, &sn->bufs.cap, sn->bufs.n, sizeof(*sn->bufs.v)) ||
	    grow(&sn->copies, &sn->capcopies, sn->ncopies, sizeof(*sn->copies)))
		return NULL;
	if (!(p = buf_get(&sn->spare, size)))
		return NULL;
	sn->bufs.v[sn->bufs.n++] = (struct snap_buf){size, p};
	sn->copies[sn->ncopies++] = (struct snap_copy){p, src, size};
	return p;
}

/* A sharded leaf: its replica-0 shards are copied (the others are never written). */
static int snap_shards(ckpt_tree **out, struct pytree_snapshot *sn, const ckpt_tree *src)
{
	size_t esz = ckpt_dtype_size(ckpt_tree_dtype(src));
	int rc = ckpt_tree_new_sharded_array(out, ckpt_tree_dtype(src), ckpt_tree_ndim(src),
					     ckpt_tree_shape(src));

	for (size_t i = 0; rc == 0 && i < ckpt_tree_nshards(src); i++) {
		const uint64_t *start, *shape;
		unsigned replica;
		const void *data = ckpt_tree_shard(src, i, &start, &shape, &replica);
		uint64_t n = esz;
		void *p;
		if (replica != 0)
			continue;
		for (unsigned d = 0; d < ckpt_tree_ndim(src); d++)
			n *= shape[d];
		if (!(p = snap_buffer(sn, data, (size_t)n)))
			rc = ckpt_error_nomem();
		else
			rc = ckpt_tree_add_shard(*out, start, shape, 0, p);
	}
	if (rc) {
		ckpt_tree_free(*out);
		*out = NULL;
	}
	return rc;
}

/* ckpt_tree_map callback: copy a leaf; array data goes into the snapshot's buffers. */
static int snap_copy(ckpt_tree **out, const ckpt_tree *src, const char *path, void *payload)
{
	struct pytree_snapshot *sn = payload;
	size_t size = (size_t)ckpt_tree_nbytes(src);
	void *p;

	(void)path;
	if (ckpt_tree_is_container(src) || ckpt_tree_get_kind(src) == CKPT_TREE_NONE)
		return 0; /* structural copy */
	if (ckpt_tree_is_sharded(src))
		return snap_shards(out, sn, src);
	if (!snap_buffered(src))
		return ckpt_tree_clone(out, src);
	if (!(p = snap_buffer(sn, ckpt_tree_data(src), size)))
		return ckpt_error_nomem();
	return ckpt_tree_new_array(out, ckpt_tree_dtype(src), ckpt_tree_ndim(src),
				   ckpt_tree_shape(src), p, CKPT_TREE_BORROW);
}

/* Bytes [from, to) of the concatenation of the copies c[0..n). */
struct copy_range {
	const struct snap_copy *c;
	size_t n, from, to;
};

static void *copy_range_run(void *arg)
{
	const struct copy_range *r = arg;
	size_t at = 0;

	for (size_t i = 0; i < r->n && at < r->to; at += r->c[i++].size) {
		size_t a = r->from > at ? r->from - at : 0;
		size_t b = r->to - at < r->c[i].size ? r->to - at : r->c[i].size;
		if (a < b)
			memcpy((char *)r->c[i].dst + a, (const char *)r->c[i].src + a, b - a);
	}
	return NULL;
}

/*
 * Do the snapshot's copies. Above PAR_COPY_MIN bytes a second thread copies
 * half of them: the caller is blocked meanwhile, so the other core is free
 * (a warm 1 GiB: 0.066 s on one thread, 0.045 s on two, here).
 */
#define PAR_COPY_MIN (64u << 20)
static void copy_all(const struct snap_copy *c, size_t n)
{
	size_t total = 0;
	pthread_t th;

	for (size_t i = 0; i < n; i++)
		total += c[i].size;
	struct copy_range lo = {c, n, 0, total / 2}, hi = {c, n, total / 2, total};
	if (total < PAR_COPY_MIN || sysconf(_SC_NPROCESSORS_ONLN) < 2 ||
	    pthread_create(&th, NULL, copy_range_run, &hi) != 0) {
		lo.to = total;
		copy_range_run(&lo);
		return;
	}
	copy_range_run(&lo);
	pthread_join(th, NULL);
}

static int cmp_snap_leaf(const void *a, const void *b)
{
	const ckpt_tree *x = ((const struct snap_leaf *)a)->node;
	const ckpt_tree *y = ((const struct snap_leaf *)b)->node;

	return x < y ? -1 : x > y;
}

static int snap_replay(ckpt_leaf_save_args *out, const char *path, const ckpt_tree *leaf,
		       void *payload)
{
	const struct pytree_snapshot *sn = payload;
	const struct snap_leaf key = {leaf, {CKPT_DTYPE_INVALID, NULL, -1}, NULL};
	const struct snap_leaf *f =
	    sn->n ? bsearch(&key, sn->leaves, sn->n, sizeof(key), cmp_snap_leaf) : NULL;

	(void)path;
	assert(f); /* every leaf save_leaf asks for was evaluated by snap_eval */
	if (f)
		*out = f->la;
	return 0;
}

/* ckpt_tree_walk callback: evaluate the caller's leaf_args for the leaves save_leaf asks. */
static int snap_eval(ckpt_tree *node, const char *path, void *payload)
{
	struct pytree_snapshot *sn = payload;
	ckpt_tree_kind k = ckpt_tree_get_kind(node);
	struct snap_leaf *l;
	int rc;

	if (ckpt_tree_is_container(node) || k == CKPT_TREE_NONE ||
	    (k == CKPT_TREE_STRING && sn->standard))
		return 0;
	if (grow(&sn->leaves, &sn->cap, sn->n, sizeof(*sn->leaves)))
		return CKPT_ENOMEM;
	l = &sn->leaves[sn->n];
	*l = (struct snap_leaf){node, {CKPT_DTYPE_INVALID, NULL, -1}, NULL};
	rc = sn->user->leaf_args(&l->la, path, node, sn->user->payload);
	if (rc)
		return rc < 0
			   ? rc
			   : ckpt_error_set(CKPT_ERROR, "leaf_args stopped the save at '%s'", path);
	if (l->la.custom_metadata && !(l->custom = strdup(l->la.custom_metadata)))
		return ckpt_error_nomem();
	l->la.custom_metadata = l->custom;
	sn->n++;
	return 0;
}

/* The snapshot's buffers become the handler's spare ones (the older spare ones go). */
static void pytree_snapshot_free(ckpt_handler *h, void *snap)
{
	struct pytree_handler *ph = (struct pytree_handler *)h;
	struct pytree_snapshot *sn = snap;

	if (!sn)
		return;
	for (size_t i = 0; i < sn->n; i++)
		free(sn->leaves[i].custom);
	free(sn->leaves);
	free(sn->custom);
	ckpt_tree_free(sn->tree);
	bufs_free(&sn->spare);
	if (sn->bufs.n > 1)
		qsort(sn->bufs.v, sn->bufs.n, sizeof(*sn->bufs.v), cmp_buf);
	pthread_mutex_lock(&ph->mu);
	struct snap_bufs old = ph->spare;
	ph->spare = sn->bufs;
	assert(ph->live > 0);
	ph->live--;
	pthread_mutex_unlock(&ph->mu);
	bufs_free(&old);
	free(sn);
}

/* ---- snapshot_reserve ---- */

/* Whether reserve_join asked the reserve's thread to stop. */
static int reserve_stopped(struct pytree_handler *ph)
{
	int stop;

	pthread_mutex_lock(&ph->mu);
	stop = ph->reserve_stop;
	pthread_mutex_unlock(&ph->mu);
	return stop;
}

#define RESERVE_CHUNK ((size_t)2 << 20) /* written between two looks at reserve_stop */

static void *reserve_run(void *arg)
{
	struct reserve *r = arg;

	ckpt_thread_background();
	for (size_t i = 0; i < r->n && !reserve_stopped(r->ph); i++) {
		char *p = malloc(r->sizes[i]);

		if (!p)
			break; /* out of memory: the snapshot allocates the rest and reports it */
		r->got.v[r->got.n++] = (struct snap_buf){r->sizes[i], p};
		/* The first write. Not zeros: malloc + memset 0 may be compiled as calloc,
		 * which writes nothing. A buffer left half written is still whole. */
		for (size_t at = 0; at < r->sizes[i] && !reserve_stopped(r->ph); at += RESERVE_CHUNK)
			memset(p + at, 0x5a,
			       r->sizes[i] - at < RESERVE_CHUNK ? r->sizes[i] - at : RESERVE_CHUNK);
	}
	return NULL;
}

/* Stop the reserve's thread (within a chunk); what it got becomes spare. */
static void reserve_join(struct pytree_handler *ph)
{
	struct reserve *r = ph->reserve;

	if (!r)
		return;
	pthread_mutex_lock(&ph->mu);
	ph->reserve_stop = 1;
	pthread_mutex_unlock(&ph->mu);
	pthread_join(r->thread, NULL);
	pthread_mutex_lock(&ph->mu);
	ph->reserve_stop = 0;
	size_t need = ph->spare.n + r->got.n;
	if (r->got.n && need > ph->spare.cap) {
		void *v = realloc(ph->spare.v, need * sizeof(*ph->spare.v));
		if (v) {
			ph->spare.v = v;
			ph->spare.cap = need;
		}
	}
	if (r->got.n && need <= ph->spare.cap) {
		memcpy(ph->spare.v + ph->spare.n, r->got.v, r->got.n * sizeof(*r->got.v));
		ph->spare.n = need;
		r->got.n = 0;
		qsort(ph->spare.v, ph->spare.n, sizeof(*ph->spare.v), cmp_buf);
	}
	pthread_mutex_unlock(&ph->mu);
	bufs_free(&r->got); /* those that did not fit (out of memory) */
	free(r->sizes);
	free(r);
	ph->reserve = NULL;
}

/* ckpt_tree_walk callback: the size of each array a snapshot copies. */
static int reserve_size(ckpt_tree *node, const char *path, void *payload)
{
	struct reserve *r = payload;

	(void)path;
	if (!snap_buffered(node) || ckpt_tree_nbytes(node) == 0)
		return 0;
	if (grow(&r->sizes, &r->cap, r->n, sizeof(*r->sizes)))
		return CKPT_ENOMEM;
	r->sizes[r->n++] = (size_t)ckpt_tree_nbytes(node);
	return 0;
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Start a thread that allocates and writes the buffers a snapshot of args
 * needs beyond the spare ones, which then become spare ones themselves.
 * Nothing to do while a snapshot is live (a save is running): its buffers
 * go to the next snapshot, and more would be a third copy of the state.
 */
static int pytree_snapshot_reserve(ckpt_handler *h, const void *args)
{
	struct pytree_handler *ph = (struct pytree_handler *)h;
	const ckpt_pytree_save_args *a = args;
	struct reserve *r;
	size_t keep = 0, j = 0;
	int rc;

	if (!a || !a->item)
		return ckpt_error_set(CKPT_EINVAL, "snapshot reserve: no tree to save");
	reserve_join(ph); /* one at a time; what it got counts below */
	if (!(r = calloc(1, sizeof(*r))))
		return ckpt_error_nomem();
	r->ph = ph;
	rc = ckpt_tree_walk((ckpt_tree *)a->item, reserve_size, r); /* reserve_size only reads */
	if (rc == 0 && r->n > 1)
		qsort(r->sizes, r->n, sizeof(*r->sizes), cmp_size);
	/* keep the sizes the spare buffers (sorted by size too) do not cover; none
	 * while a snapshot is live: its buffers become the next one's */
	pthread_mutex_lock(&ph->mu);
	if (ph->live)
		r->n = 0;
	for (size_t i = 0; rc == 0 && i < r->n; i++) {
		while (j < ph->spare.n && ph->spare.v[j].size < r->sizes[i])
			j++;
		if (j < ph->spare.n && ph->spare.v[j].size == r->sizes[i])
			j++;
		else
			r->sizes[keep++] = r->sizes[i];
	}
	pthread_mutex_unlock(&ph->mu);
	r->n = keep;
	if (rc == 0 && r->n && !(r->got.v = calloc(r->n, sizeof(*r->got.v))))
		rc = ckpt_error_nomem();
	if (rc == 0 && r->n) {
		r->got.cap = r->n;
		int err = pthread_create(&r->thread, NULL, reserve_run, r);
		if (err)
			rc = ckpt_error_errno(CKPT_ERROR, err, "snapshot reserve: start thread");
		else
			ph->reserve = r;
	}
	if (ph->reserve != r) {
		free(r->got.v);
		free(r->sizes);
		free(r);
	}
	return rc;
}

/*
 * A copy of the tree (array data included, into the buffers of the last
 * snapshot where the sizes match: a training loop saves the same shapes
 * each time, and refilling memory costs no page faults) and of every
 * leaf's SaveArgs.
 */
static int pytree_snapshot(void **out, ckpt_handler *h, const void *args)
{
	struct pytree_handler *ph = (struct pytree_handler *)h;
	const ckpt_pytree_save_args *a = args;
	struct pytree_snapshot *sn = NULL;
	int rc;

	*out = NULL;
	CKPT_CHECK_VERSION(a, CKPT_PYTREE_SAVE_ARGS_VERSION, "ckpt_pytree_save_args");
	if (!a || !a->item)
		return ckpt_error_set(CKPT_EINVAL, "snapshot: no tree to save");
	if (!(sn = calloc(1, sizeof(*sn))))
		return ckpt_error_nomem();
	sn->args = (ckpt_pytree_save_args)CKPT_PYTREE_SAVE_ARGS_INIT;
	memcpy(&sn->args, a,
	       a->version >= 2 ? sizeof(*a) : offsetof(ckpt_pytree_save_args, custom_metadata));
	sn->args.version = CKPT_PYTREE_SAVE_ARGS_VERSION;
	if (sn->args.custom_metadata && !(sn->custom = strdup(sn->args.custom_metadata))) {
		free(sn);
		return ckpt_error_nomem();
	}
	sn->args.custom_metadata = sn->custom;
	sn->user = a;
	sn->standard = ph->standard;
	reserve_join(ph);
	pthread_mutex_lock(&ph->mu);
	sn->spare = ph->spare;
	ph->spare = (struct snap_bufs){NULL, 0, 0};
	ph->live++;
	pthread_mutex_unlock(&ph->mu);
	rc = ckpt_tree_map(&sn->tree, a->item, snap_copy, sn);
	if (rc == 0)
		copy_all(sn->copies, sn->ncopies);
	free(sn->copies);
	sn->copies = NULL;
	bufs_free(&sn->spare); /* those not reused */
	if (rc == 0 && a->leaf_args) {
		rc = ckpt_tree_walk(sn->tree, snap_eval, sn);
		if (sn->n > 1)
			qsort(sn->leaves, sn->n, sizeof(*sn->leaves), cmp_snap_leaf);
	}
	sn->args.item = sn->tree;
	sn->args.leaf_args = a->leaf_args ? snap_replay : NULL;
	sn->args.payload = sn;
	sn->user = NULL; /* the caller's args are not touched after this call */
	if (rc) {
		pytree_snapshot_free(h, sn);
		return rc;
	}
	*out = sn;
	return 0;
}

static void pytree_close(ckpt_handler *h)
{
	struct pytree_handler *ph = (struct pytree_handler *)h;

	reserve_join(ph);
	assert(ph->live == 0); /* handlers outlive their saves (ckpt/async.h) */
	bufs_free(&ph->spare);
	pthread_mutex_destroy(&ph->mu);
	free(h);
}

static void pytree_tree_free(ckpt_handler *h, void *t)
{
	ckpt_tree_free(t);
}

static const ckpt_handler_vtable pytree_vt = {
    .version = CKPT_HANDLER_VTABLE_VERSION,
    .typestr = pytree_typestr,
    .save = pytree_save,
    .snapshot = pytree_snapshot,
    .snapshot_free = pytree_snapshot_free,
    .restore = pytree_restore,
    .metadata = ckpt_pytree_metadata_item,
    .restored_free = pytree_tree_free,
    .metadata_free = pytree_tree_free,
    .finalize = NULL,
    .close = pytree_close,
    .snapshot_reserve = pytree_snapshot_reserve,
};

static int handler_new(ckpt_handler **out, int standard)
{
	struct pytree_handler *h = calloc(1, sizeof(*h));

	*out = NULL;
	if (!h)
		return ckpt_error_nomem();
	h->base.vt = &pytree_vt;
	h->standard = standard;
	pthread_mutex_init(&h->mu, NULL);
	*out = &h->base;
	return 0;
}

int ckpt_pytree_handler_new(ckpt_handler **out)
{
	return handler_new(out, 0);
}

int ckpt_standard_handler_new(ckpt_handler **out)
{
	return handler_new(out, 1);
}
