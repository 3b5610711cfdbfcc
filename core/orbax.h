/*
 * orbax.h — a step written by Orbax (Python) seen as a native step (library only).
 *
 * An Orbax step directory (OCDBT + zarr, or one zarr directory per leaf) is
 * opened as a read-only store backend (ckpt/sys/store_backend.h) presenting
 * the keyspace of a native step (docs/api.md "Step layout"):
 *   _CHECKPOINT_METADATA   Orbax's, with item_handlers completed from the
 *                          items found (PyTree items named by our typestr)
 *   <item>/_METADATA       Orbax's _METADATA with dtype and shape added from
 *                          each leaf's zarr metadata (format-pytree.md §4)
 *   <item>/<leaf path>     each leaf's little-endian C-order bytes, decoded
 *                          lazily from its zarr chunks; scalars as text,
 *                          strings from _strings.json
 *   <item>/<file>          items of other handlers: their files as they are
 * so every reader of native steps (tree, leaves, restore, verify, the mount)
 * works unchanged. docs/format.md "Orbax checkpoints" has the details.
 *
 * Opening reads the manifest, the B+tree nodes holding each leaf's zarr
 * metadata (small values, inline in leaf nodes) and the JSON files; no array
 * data. A leaf's bytes are read on demand, one zarr chunk at a time through
 * a bounded chunk cache.
 */
#ifndef CKPT_ORBAX_H
#define CKPT_ORBAX_H

#include "ckpt/store.h"

/* 1 if dir looks like an Orbax step (or a bare PyTreeCheckpointer dir), else 0. Cheap: a few stats.
 */
int ckpt_orbax_is_step(const char *dir);

/* Open the Orbax step in dir as a read-only store. opts may be NULL; its
 * cache_size bounds the decoded-chunk cache (0: ORBAX_DEFAULT_CACHE). */
int ckpt_orbax_store_open(ckpt_store **out, const char *dir, const ckpt_store_options *opts);

#define ORBAX_DEFAULT_CACHE (64ull << 20)
#define ORBAX_MAX_JSON	    (64u << 20) /* _METADATA, _CHECKPOINT_METADATA, _strings.json */

#endif
