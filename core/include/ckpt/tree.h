/*
 * ckpt/tree.h — PyTrees in memory, their names on disk, and _METADATA.
 *
 * A ckpt_tree is one node: a container (dict, list, tuple, namedtuple), None,
 * or a leaf (array, int, float, bool, string). A node owns its children and,
 * unless borrowed, its array data; freeing the root frees everything.
 *
 * Every node has:
 *   key   its key in the parent: dict key, namedtuple field, or the decimal
 *         index in a list/tuple; "" for the root.
 *   name  its file name in the mounted/interchange view: the key escaped
 *         (see ckpt_key_escape) plus ".npy" for arrays.
 *   path  the names from the root joined by '/', without the ".npy" suffix;
 *         this is the key of the leaf's data inside the item in the store.
 *
 * Metadata trees (from _METADATA, or ckpt_pytree metadata) have the same
 * shape with array data NULL and scalar values unset.
 */
#ifndef CKPT_TREE_H
#define CKPT_TREE_H

#include "ckpt/common.h"

#include <stddef.h>
#include <stdint.h>

#include "ckpt/dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ckpt_tree ckpt_tree;

typedef enum ckpt_tree_kind {
	CKPT_TREE_DICT = 1,
	CKPT_TREE_LIST,
	CKPT_TREE_TUPLE,
	CKPT_TREE_NAMEDTUPLE,
	CKPT_TREE_NONE,
	CKPT_TREE_ARRAY,
	CKPT_TREE_INT,
	CKPT_TREE_FLOAT,
	CKPT_TREE_BOOL,
	CKPT_TREE_STRING,
} ckpt_tree_kind;

#define CKPT_TREE_MAX_NDIM 32

/* Array data ownership for ckpt_tree_new_array(). */
enum {
	CKPT_TREE_COPY = 0,   /* copy the data */
	CKPT_TREE_BORROW = 1, /* keep the pointer; caller keeps it alive until the tree is freed */
	CKPT_TREE_OWN = 2,    /* take a malloc'd pointer; the tree free()s it */
};

/* Constructors. The caller owns *out (ckpt_tree_free) until it is added to a parent. */
/* Returns 0, CKPT_EINVAL (kind is not DICT, LIST, TUPLE or NONE), CKPT_ENOMEM. */
CKPT_API int ckpt_tree_new(ckpt_tree **out, ckpt_tree_kind kind); /* DICT, LIST, TUPLE or NONE */
/* Returns 0, CKPT_EINVAL (type_name is NULL), CKPT_ENOMEM. */
CKPT_API int ckpt_tree_new_namedtuple(ckpt_tree **out, const char *type_name);
/* Scalar leaves. Returns 0, CKPT_ENOMEM. */
CKPT_API int ckpt_tree_new_int(ckpt_tree **out, int64_t v);
CKPT_API int ckpt_tree_new_float(ckpt_tree **out, double v);
CKPT_API int ckpt_tree_new_bool(ckpt_tree **out, int v);
/*
 * A string leaf: a copy of s[0..len) (NUL bytes allowed), NUL-terminated.
 * Returns 0, CKPT_EINVAL (s is NULL and len > 0, or len is SIZE_MAX),
 * CKPT_ENOMEM.
 */
CKPT_API int ckpt_tree_new_string(ckpt_tree **out, const char *s, size_t len);
/*
 * An array leaf: C-order little-endian data of nelems(shape) * dtype size
 * bytes. data may be NULL (a metadata-only array: dtype and shape).
 * ownership is CKPT_TREE_COPY, _BORROW or _OWN (on failure an OWNed
 * pointer is freed).
 * Returns 0, CKPT_EINVAL (a bad ownership, an invalid dtype, ndim over
 * CKPT_TREE_MAX_NDIM, an element count or byte size that overflows),
 * CKPT_ENOMEM.
 */
CKPT_API int ckpt_tree_new_array(ckpt_tree **out, ckpt_dtype dt, unsigned ndim, const uint64_t *shape,
			void *data, int ownership);

/*
 * A sharded array leaf (docs/api.md, "Several processes"): this process's
 * shards of a global array of dtype dt and global_shape, added with
 * ckpt_tree_add_shard. It has no data of its own (ckpt_tree_data is NULL);
 * saving it writes each shard of replica 0 as a tile of the global array,
 * and _METADATA records an ordinary array of the global shape. Restored, it
 * is an ordinary array.
 * Returns what ckpt_tree_new_array returns.
 */
CKPT_API int ckpt_tree_new_sharded_array(ckpt_tree **out, ckpt_dtype dt, unsigned ndim,
					 const uint64_t *global_shape);
/*
 * Add a local shard to a sharded array leaf: the box [start, start + shape)
 * (ndim entries each, copied), its replica id (only replica 0 is written: a
 * box held by several processes is written once), and its C-order data of
 * the box's bytes (borrowed: kept alive until the save that uses it ends).
 * Returns 0, CKPT_EINVAL (leaf not a sharded array, a NULL argument, an
 * empty box or one outside the global shape), CKPT_ENOMEM.
 */
CKPT_API int ckpt_tree_add_shard(ckpt_tree *leaf, const uint64_t *start, const uint64_t *shape,
				 unsigned replica_id, const void *data);
/* Returns 1 for a sharded array leaf, else 0. */
CKPT_API int ckpt_tree_is_sharded(const ckpt_tree *t);
/* Shards of a sharded array leaf (0 for any other node). */
CKPT_API size_t ckpt_tree_nshards(const ckpt_tree *t);
/* Shard i: its data (borrowed), box and replica id; NULL if there is no shard i. */
CKPT_API const void *ckpt_tree_shard(const ckpt_tree *t, size_t i, const uint64_t **start,
				     const uint64_t **shape, unsigned *replica_id);

/*
 * Add child to a container. Dict and namedtuple take a key (CKPT_EEXISTS if
 * present; any string, including "" or "a/b"); list and tuple take key NULL
 * and append. Takes ownership of child, also on failure, except when child
 * already has a parent or is an ancestor of parent (CKPT_EINVAL, nothing
 * changes). List/tuple children get key "0", "1", ...
 * Returns 0, CKPT_EEXISTS (key already present), CKPT_EINVAL (a NULL
 * argument, parent not a container, a key given to a list/tuple or none to
 * a dict/namedtuple, child already has a parent or is an ancestor of parent,
 * too many children), CKPT_ENOMEM.
 */
CKPT_API int ckpt_tree_add(ckpt_tree *parent, const char *key, ckpt_tree *child);

/* Detach child i from its parent and return it (caller owns it; its key
 * becomes ""). Later list/tuple children are renumbered. NULL if no child i. */
CKPT_API ckpt_tree *ckpt_tree_remove(ckpt_tree *parent, size_t i);

CKPT_API void ckpt_tree_free(ckpt_tree *t);

/*
 * Deep copy (array data copied unless metadata-only); free with ckpt_tree_free().
 * Returns 0, CKPT_EINVAL (t is NULL), CKPT_ENOMEM.
 */
CKPT_API int ckpt_tree_clone(ckpt_tree **out, const ckpt_tree *t);

/* Navigation. Returned nodes are borrowed from the tree. */
CKPT_API ckpt_tree_kind ckpt_tree_get_kind(const ckpt_tree *t);
/* Returns 1 if t is a container, else 0. */
CKPT_API int ckpt_tree_is_container(const ckpt_tree *t); /* dict, list, tuple, namedtuple */
CKPT_API size_t ckpt_tree_count(const ckpt_tree *t);     /* children; 0 for leaves */
CKPT_API ckpt_tree *ckpt_tree_child(const ckpt_tree *t, size_t i);
CKPT_API ckpt_tree *ckpt_tree_parent(const ckpt_tree *t);
CKPT_API const char *ckpt_tree_key(const ckpt_tree *t);
CKPT_API const char *ckpt_tree_name(const ckpt_tree *t);
CKPT_API const char *ckpt_tree_namedtuple_type(const ckpt_tree *t); /* NULL unless namedtuple */
/*
 * Children by key, and by file name (exact: "kernel.npy" for an array).
 * O(1): dicts keep a hash index, list keys are positions. Lookups never
 * modify the tree, so threads may look up concurrently while nobody mutates.
 */
CKPT_API ckpt_tree *ckpt_tree_find(const ckpt_tree *t, const char *key);
CKPT_API ckpt_tree *ckpt_tree_find_name(const ckpt_tree *t, const char *name);
/*
 * Resolve a '/'-separated path of names below t ("params/dense/kernel";
 * the ".npy" of an array may be given or left out). "" gives t. *out is
 * borrowed from the tree.
 * Returns 0, CKPT_ENOTFOUND (a component is missing; the message names the
 * first), CKPT_EINVAL (t or path is NULL).
 */
CKPT_API int ckpt_tree_lookup(ckpt_tree **out, const ckpt_tree *t, const char *path);
/*
 * The node's path from the root (see above); malloc'd, caller free()s.
 * Returns 0, CKPT_EINVAL (t is NULL), CKPT_ENOMEM.
 */
CKPT_API int ckpt_tree_path(char **out, const ckpt_tree *t);

/* Leaves. Getters on the wrong kind return 0/NULL. */
CKPT_API ckpt_dtype ckpt_tree_dtype(const ckpt_tree *t);
CKPT_API unsigned ckpt_tree_ndim(const ckpt_tree *t);
CKPT_API const uint64_t *ckpt_tree_shape(const ckpt_tree *t);
CKPT_API uint64_t ckpt_tree_nelems(const ckpt_tree *t);
CKPT_API uint64_t ckpt_tree_nbytes(const ckpt_tree *t);
CKPT_API const void *ckpt_tree_data(const ckpt_tree *t); /* NULL for metadata-only */
CKPT_API int64_t ckpt_tree_int(const ckpt_tree *t);
CKPT_API double ckpt_tree_float(const ckpt_tree *t);
/* Returns the value of a bool leaf, 1 or 0 (0 for another kind). */
CKPT_API int ckpt_tree_bool(const ckpt_tree *t);
CKPT_API const char *ckpt_tree_string(const ckpt_tree *t, size_t *len); /* NUL-terminated too */

/*
 * Per-node custom metadata (a JSON text), NULL if none. Copied in (NULL
 * clears it); borrowed out.
 * Returns 0, CKPT_EINVAL (t is NULL, or json is not one JSON value),
 * CKPT_ENOMEM.
 */
CKPT_API int ckpt_tree_set_custom_metadata(ckpt_tree *t, const char *json);
CKPT_API const char *ckpt_tree_custom_metadata(const ckpt_tree *t);

/*
 * Visit every node, depth-first pre-order, containers before their
 * children. path is the node's path (as ckpt_tree_path), valid during the
 * call. A non-zero return stops the walk and is returned.
 * Returns 0, cb's non-zero return, CKPT_EINVAL (t or cb is NULL),
 * CKPT_ENOMEM.
 */
typedef int (*ckpt_tree_walk_cb)(ckpt_tree *node, const char *path, void *payload);
CKPT_API int ckpt_tree_walk(ckpt_tree *t, ckpt_tree_walk_cb cb, void *payload);

/*
 * Names (docs/format-pytree.md). escape turns a key into the stem of its file
 * name (arrays then add ".npy"; neither function adds or strips it). A key
 * byte is written %XX (uppercase hex) when it is '%', '/' or a control byte
 * (0x01-0x1F, 0x7F); when it is a leading '_' or '.' (names starting with
 * '_' are reserved for _METADATA, _CHECKPOINT_METADATA and the like; this
 * also covers "." and ".."); or, when is_array is 0, the '.' of a final
 * ".npy". The empty key is "%00". Other bytes (UTF-8 included) stay.
 * unescape accepts only what escape produces (CKPT_EINVAL otherwise), so
 * keys and names correspond one to one and never collide.
 * Both return malloc'd strings.
 * Returns 0, CKPT_EINVAL (a NULL key or name; for unescape, a name escape
 * does not produce), CKPT_ENOMEM.
 */
CKPT_API int ckpt_key_escape(char **out, const char *key, int is_array);
CKPT_API int ckpt_key_unescape(char **out, const char *name, int is_array);

/*
 * Scalars as text: int as decimal, float as Python repr() ("0.1", "1e+20",
 * "inf", "nan"), bool as "True"/"False". Returns the length written
 * (excluding NUL); buf of 32 bytes always suffices.
 * Returns the length (>= 0), CKPT_EINVAL (buf is NULL or too small, leaf is
 * not an int, float or bool).
 */
CKPT_API int ckpt_scalar_format(char *buf, size_t cap, const ckpt_tree *leaf);
/*
 * Parse text into a scalar leaf. kind CKPT_TREE_INT/FLOAT/BOOL forces the
 * type (CKPT_EINVAL if it does not parse); kind 0 guesses int, then float,
 * then bool, else returns CKPT_EINVAL (the caller makes a string). Leading
 * and trailing whitespace is ignored. Free *out with ckpt_tree_free().
 * Returns 0, CKPT_EINVAL (text NULL, does not parse as the kind asked or
 * as any, an int out of int64 range, kind not a scalar kind), CKPT_ENOMEM.
 */
CKPT_API int ckpt_scalar_parse(ckpt_tree **out, const char *text, size_t len, ckpt_tree_kind kind);

/*
 * _METADATA: the tree's structure and per-leaf metadata as JSON, in the
 * spirit of Orbax's (tree_metadata keyed by key path, key_metadata with key
 * types, value_metadata with value_type, dtype, shape), extended so that
 * list/tuple/namedtuple/None and empty containers round-trip.
 * to_json: *out malloc'd. from_json: a metadata-only tree (ckpt_tree_free).
 * Returns 0, CKPT_EINVAL (root is NULL, or deeper than _METADATA allows),
 * CKPT_ENOMEM.
 */
CKPT_API int ckpt_tree_metadata_to_json(char **out, const ckpt_tree *root);
/*
 * Returns 0, CKPT_EINVAL (malformed input; the message says what is wrong),
 * CKPT_EVERSION (a newer ckptfs_metadata_version), CKPT_ENOMEM.
 */
CKPT_API int ckpt_tree_metadata_from_json(ckpt_tree **out, const char *json, size_t len);

#ifdef __cplusplus
}
#endif
#endif
