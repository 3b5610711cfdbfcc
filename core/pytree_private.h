/*
 * pytree_private.h — pieces of the PyTree handler shared with the
 * interchange module (library only).
 */
#ifndef CKPT_PYTREE_PRIVATE_H
#define CKPT_PYTREE_PRIVATE_H

#include "ckpt/pytree.h"

/*
 * Rebuild a tree node by node. fn is called for every node without
 * children (leaves, None, empty containers) with the node's path (names
 * joined by '/', arrays without ".npy", "" for the root) and must either
 * set *out to a new node, leave *out NULL for a structural copy (None or an
 * empty container of the same kind), or return CKPT_MAP_SKIP to leave the
 * node out. A container whose children are all skipped is skipped; a
 * skipped element of a list or tuple becomes None so indices are kept.
 * Custom metadata of leaves is copied unless fn's node already has some.
 * A skipped root gives an empty container of the root's kind.
 */
#define CKPT_MAP_SKIP 1
typedef int (*ckpt_tree_map_fn)(ckpt_tree **out, const ckpt_tree *src, const char *path,
				void *payload);
int ckpt_tree_map(ckpt_tree **out, const ckpt_tree *src, ckpt_tree_map_fn fn, void *payload);

/*
 * Bytes of array leaves whose data is not in memory (metadata-only arrays):
 * fill buf with exactly len bytes of the leaf's little-endian C-order data
 * at offset off. Offsets arrive in increasing order, each leaf read once
 * from 0 to its end.
 */
typedef int (*ckpt_pytree_source_fn)(void *buf, size_t len, uint64_t off, const ckpt_tree *leaf,
				     const char *path, void *payload);

/*
 * The PyTree save: writes every leaf of args->item under "<item>/" and the
 * item's _METADATA into w's batch. Metadata-only array leaves are read from
 * source (which may be NULL if there are none). standard: refuse strings.
 */
int ckpt_pytree_save_item(ckpt_step_writer *w, const char *item, const ckpt_pytree_save_args *args,
			  int standard, ckpt_pytree_source_fn source, void *payload);

/* The PyTree restore (pytree_restore.c): *out is a ckpt_tree *. args may be NULL. */
int ckpt_pytree_restore_item(void **out, ckpt_step *s, const char *item,
			     const ckpt_pytree_restore_args *args);
/* The metadata tree of an item (a copy; *out is a ckpt_tree *). */
int ckpt_pytree_metadata_item(void **out, ckpt_handler *h, ckpt_step *s, const char *item);

/*
 * The saved tree meta rearranged by transforms as a restore with them
 * would (ckpt/pytree.h): a metadata-only tree of copies of meta's end nodes
 * (leaves, None, empty containers) at their new paths, made dicts between.
 * placed(orig, copy, payload) is called for each copy before it is placed
 * (a non-zero return stops). *out: free with ckpt_tree_free().
 * Returns 0, CKPT_EINVAL (no transforms, a bad rule or regex), CKPT_EEXISTS
 * (two nodes on one path, or one below a leaf), CKPT_ENOMEM, placed's error.
 */
typedef int (*ckpt_pytree_placed_fn)(const ckpt_tree *orig, const ckpt_tree *copy, void *payload);
int ckpt_pytree_transform_meta(ckpt_tree **out, const ckpt_tree *meta,
			       const ckpt_restore_transform *t, size_t n, int default_to_original,
			       ckpt_pytree_placed_fn placed, void *payload);

#endif
