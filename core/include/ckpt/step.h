/*
 * ckpt/step.h — one step of a checkpoint root: writing it, reading it.
 *
 * Layout (docs/api.md, "Step layout"): ROOT/<step>/ holds one store (ckpt.db + d/).
 * Inside the store:
 *   _CHECKPOINT_METADATA     JSON (Orbax StepMetadata): item_handlers,
 *                            metrics, init/commit_timestamp_nsecs, custom_metadata
 *   <item>/_METADATA         JSON tree metadata of a PyTree item
 *   <item>/<leaf path>       leaf data: arrays as little-endian C-order bytes,
 *                            scalars as their text, strings as their bytes
 *
 * A save writes into ROOT/<step>.ckpt-tmp-<nonce>/ (the directory itself
 * flock()ed while the save runs) and renames it to ROOT/<step> when
 * finalized. Finalized steps are immutable.
 */
#ifndef CKPT_STEP_H
#define CKPT_STEP_H

#include "ckpt/common.h"
#include "ckpt/root.h" /* the root functions lived here before 0.2 */

#include <stddef.h>
#include <stdint.h>

#include "ckpt/multiprocess.h"
#include "ckpt/store.h"
#include "ckpt/tree.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ckpt_step ckpt_step;
typedef struct ckpt_step_writer ckpt_step_writer;
typedef struct ckpt_leaf ckpt_leaf;

#define CKPT_TMP_INFIX ".ckpt-tmp-"

/* ---- writing ---- */

/*
 * Version 2 added performance_metrics and timeout_secs, version 3
 * multiprocess; an older struct (without them) is still accepted, the
 * members it lacks unread (version 1 and 2 callers save as one process).
 */
#define CKPT_STEP_WRITER_OPTIONS_VERSION 3
typedef struct ckpt_step_writer_options {
	unsigned version;
	int force;                   /* replace an existing finalized step */
	ckpt_store_options store;    /* compression, chunking, threads, bytes in flight */
	const char *custom_metadata; /* JSON object for StepMetadata.custom_metadata, or NULL */
	const char *metrics;         /* JSON object for StepMetadata.metrics, or NULL */
	/* The step directory's name (ckpt/manager.h): "<prefix>_<step>" with the step
	 * zero-padded to step_format_fixed_length digits; NULL and 0: "<step>". */
	const char *step_prefix;
	unsigned step_format_fixed_length;
	/* JSON object for StepMetadata.performance_metrics (Orbax's
	 * SaveStepStatistics keys, docs/api.md), or NULL: {}. */
	const char *performance_metrics;
	/* > 0: finalize fails with CKPT_ETIMEDOUT, and no step appears, when
	 * more than this many seconds passed since the writer was opened. */
	double timeout_secs;
	/* Version 3. Several processes saving this step (ckpt/multiprocess.h);
	 * NULL: one process. Borrowed until the writer is freed. */
	const ckpt_multiprocess_options *multiprocess;
} ckpt_step_writer_options;
#define CKPT_STEP_WRITER_OPTIONS_INIT \
	{CKPT_STEP_WRITER_OPTIONS_VERSION, 0, CKPT_STORE_OPTIONS_INIT, NULL, NULL, NULL, 0, NULL, 0, NULL}

/*
 * Start saving step `step` under `root` (created if missing): makes the
 * temporary directory and its store and opens one batch. Removes abandoned
 * temporary directories of earlier saves (those whose lock is not held).
 * opts may be NULL. End with ckpt_step_writer_finalize() or _abort().
 * Returns 0, CKPT_EEXISTS (ROOT/<step> exists and !force), CKPT_EINVAL
 * (bad opts: a version this library does not know, of opts or opts->store;
 * custom_metadata, metrics or performance_metrics not a JSON object, a
 * negative or NaN timeout_secs, store options out of range),
 * CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_step_writer_open(ckpt_step_writer **out, const char *root, uint64_t step,
			  const ckpt_step_writer_options *opts);
/* The batch handlers write into (borrowed; committed by finalize). */
CKPT_API ckpt_batch *ckpt_step_writer_batch(ckpt_step_writer *w);
/* The temporary directory (borrowed). */
CKPT_API const char *ckpt_step_writer_dir(const ckpt_step_writer *w);
/*
 * Record that `item` is saved by the handler named typestr (again: no change).
 * Returns 0, CKPT_EEXISTS (the item was already registered with another
 * handler; the message names both), CKPT_EINVAL (a bad item name: empty,
 * with '/', or starting with '_' or '.'), CKPT_EIO (writing the temporary
 * _CHECKPOINT_METADATA), CKPT_ENOMEM.
 */
CKPT_API int ckpt_step_writer_add_item(ckpt_step_writer *w, const char *item, const char *typestr);
/*
 * Commit the batch with _CHECKPOINT_METADATA (commit timestamp now), seal the
 * store, fsync, rename into place, fsync the root. Frees w whatever the
 * result; on failure the temporary directory is removed and no step appears.
 * Returns 0, CKPT_EEXISTS (ROOT/<step> appeared meanwhile, !force),
 * CKPT_ETIMEDOUT (opts.timeout_secs passed before the rename), CKPT_EIO,
 * CKPT_ECORRUPT (the temporary store's index is damaged), CKPT_ENOMEM, or
 * the error of an earlier failed write into the batch (ckpt_batch_commit).
 */
CKPT_API int ckpt_step_writer_finalize(ckpt_step_writer *w);
/* Drop the save and remove its temporary directory. Accepts NULL. */
CKPT_API void ckpt_step_writer_abort(ckpt_step_writer *w);

/* ---- reading ---- */

/*
 * Open the step in directory `dir` (a finalized step, opened immutable and
 * read-only). opts may be NULL; its cache_size sizes the chunk cache. Free
 * with ckpt_step_free().
 * Returns 0, CKPT_ENOTFOUND (no store in dir, or no _CHECKPOINT_METADATA),
 * CKPT_ECORRUPT (damaged index, or a _CHECKPOINT_METADATA that is not a
 * JSON object of item_handlers strings), CKPT_EVERSION (a newer format),
 * CKPT_EINVAL (bad opts: an unknown version, values out of range), CKPT_EIO,
 * CKPT_ENOMEM.
 */
CKPT_API int ckpt_step_open(ckpt_step **out, const char *dir, const ckpt_store_options *opts);
/*
 * As ckpt_step_open, for readers that list before they read (the mount). A
 * step with a listing (ckpt.list, format 1.3, docs/format.md "Step listing")
 * is opened from it alone: items, their trees and _METADATA sizes come from
 * it, and the index is opened and checked only when first needed
 * (ckpt_step_load_index, ckpt_step_store, ckpt_step_item_metadata_json, and
 * every call that reads a value: they return its error). Without a listing,
 * the same as ckpt_step_open. A damaged listing fails either open
 * (CKPT_ECORRUPT; the message says that removing it loses nothing).
 * Returns as ckpt_step_open.
 */
CKPT_API int ckpt_step_open_listed(ckpt_step **out, const char *dir,
				   const ckpt_store_options *opts);
/*
 * Open and check the step's index if the open deferred it; no-op otherwise.
 * A failure is remembered: later calls return it again (same message).
 * Returns 0, CKPT_ECORRUPT (damaged index, or a listing that does not
 * describe it), CKPT_EVERSION, CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_step_load_index(ckpt_step *s);
/*
 * What wrote the step directory dir: "ckpt" (this library: ckpt.db), "orbax"
 * (Orbax through TensorStore: OCDBT + zarr, or zarr directories; opened
 * read-only, docs/format.md "Orbax checkpoints"), or NULL if dir is neither.
 * Static string; looks at a few file names only.
 */
CKPT_API const char *ckpt_step_dir_format(const char *dir);
CKPT_API void ckpt_step_free(ckpt_step *s);
/* The step's store (borrowed), its index loaded now if the open deferred it;
 * NULL only when that load fails (ckpt_error_last() says why). */
CKPT_API ckpt_store *ckpt_step_store(ckpt_step *s);
/*
 * ckpt_store_list (ckpt/store.h) of the step's keys under prefix. The keys of
 * an item without _METADATA come from the step's listing when it has one
 * (the index is not loaded: how the mount shows such items); other prefixes
 * list the store. Returns as ckpt_store_list, or the error of loading the
 * index (ckpt_step_load_index).
 */
CKPT_API int ckpt_step_list(ckpt_step *s, const void *prefix, size_t prefixlen, int delimiter,
			    ckpt_store_list_cb cb, void *payload);
/* Bytes of data files read through the step's store so far; 0 while not loaded. */
CKPT_API uint64_t ckpt_step_bytes_read(ckpt_step *s);
CKPT_API const char *ckpt_step_dir(const ckpt_step *s);         /* borrowed */
CKPT_API const char *ckpt_step_metadata_json(const ckpt_step *s); /* _CHECKPOINT_METADATA, borrowed */
CKPT_API int64_t ckpt_step_commit_time_ns(const ckpt_step *s);  /* 0 if unknown */
CKPT_API size_t ckpt_step_item_count(const ckpt_step *s);
CKPT_API const char *ckpt_step_item_name(const ckpt_step *s, size_t i);
CKPT_API const char *ckpt_step_item_typestr(const ckpt_step *s, size_t i);
/* Index of item `name`. Returns 0, CKPT_ENOTFOUND (no such item). */
CKPT_API int ckpt_step_item_find(size_t *out, const ckpt_step *s, const char *name);
/*
 * The metadata tree of a PyTree item (parsed once from <item>/_METADATA and
 * kept; borrowed, valid until ckpt_step_free). Thread-safe.
 * Returns 0, CKPT_ENOTFOUND (no such item, or it has no _METADATA: not a
 * PyTree item), CKPT_ECORRUPT (a _METADATA that does not parse, or damaged
 * data), CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_step_item_tree(const ckpt_tree **out, ckpt_step *s, const char *item);
/*
 * The raw _METADATA JSON of an item (borrowed, same lifetime).
 * Returns 0, CKPT_ENOTFOUND (no such item, or no _METADATA), CKPT_ECORRUPT
 * (a _METADATA that does not parse, or damaged data), CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_step_item_metadata_json(const char **out, ckpt_step *s, const char *item);
/*
 * The length of an item's _METADATA: from the listing when the step has one
 * (the index is not loaded), else of the text read. Returns as
 * ckpt_step_item_metadata_json.
 */
CKPT_API int ckpt_step_item_metadata_size(uint64_t *out, ckpt_step *s, const char *item);

/*
 * Listing a PyTree item's tree without building it: the mount lists the
 * directories of a big step this way and builds the tree
 * (ckpt_step_item_tree) only when a value or an attribute is read. A node is
 * named by an id: 0 for the root, else its offset in the item's compact tree
 * (docs/format.md "Compact tree"), so the same in every open of the step,
 * with or without its listing, and below the item's id limit. With a listing
 * nothing is read but the listing, and its bytes are checked as far as they
 * are listed: a tree the listing carries damaged (past its checksum, so made
 * so on purpose) may list, and fails when it is built. Without a listing,
 * the first call parses _METADATA. Thread-safe.
 */
typedef struct {
	uint64_t id;
	size_t pos; /* its position in its parent: ckpt_tree_child(parent, pos) */
	ckpt_tree_kind kind;
	const char *name; /* as ckpt_tree_name: valid during the callback only */
} ckpt_tree_entry;
typedef int (*ckpt_tree_entry_cb)(const ckpt_tree_entry *e, void *payload);

/* *out = the item's id limit: every id of the item is below it.
 * Returns 0, CKPT_ENOTFOUND (no tree: not a PyTree item), CKPT_EINVAL (no
 * item of that index), and without a listing as ckpt_step_item_tree. */
CKPT_API int ckpt_step_item_id_limit(uint64_t *out, ckpt_step *s, size_t item);
/*
 * cb(entry) for each child of node id, in order (None children included);
 * its first nonzero return stops the listing and is returned. id is 0 or
 * one this listed (another may list what is not there). Two equal keys in
 * the container fail the listing, after cb has seen them.
 * Returns 0, cb's return, CKPT_EINVAL (node id is not a container, or no
 * item of that index), CKPT_ECORRUPT (malformed bytes, equal keys),
 * CKPT_EVERSION, or as ckpt_step_item_id_limit.
 */
CKPT_API int ckpt_step_item_children(ckpt_step *s, size_t item, uint64_t id, ckpt_tree_entry_cb cb,
				     void *payload);
/* *parent = the id of the container holding node id (0: the root), found in one pass
 * over the tree's bytes before the node. Returns 0, CKPT_ENOTFOUND (no node id, or
 * the root), CKPT_ECORRUPT, CKPT_EVERSION, or as ckpt_step_item_id_limit. */
CKPT_API int ckpt_step_item_parent(uint64_t *parent, ckpt_step *s, size_t item, uint64_t id);

/* ---- leaves as files ---- */

/*
 * A leaf of an item's metadata tree, seen as its interchange file: an array
 * is a complete .npy file (header as np.save writes it, then the data), a
 * scalar its ckpt_scalar_format() text and a newline, a string its bytes. `node` is a leaf of
 * ckpt_step_item_tree(s, item). Free before the step.
 * Returns 0, CKPT_EINVAL (node is a container or None: no data), CKPT_ENOTFOUND
 * (no stored value for the leaf), CKPT_ECORRUPT (the stored value disagrees
 * with the metadata, or is damaged), CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_leaf_open(ckpt_leaf **out, ckpt_step *s, const char *item, const ckpt_tree *node);
CKPT_API uint64_t ckpt_leaf_file_size(const ckpt_leaf *l);
/*
 * The file size of leaf `node` from its metadata alone, without the step's
 * index: an array's is its .npy header and nbytes (ckpt_leaf_open refuses a
 * stored value of another size). Returns 0, CKPT_ENOTFOUND (a scalar or a
 * string: its size is its stored value's), CKPT_EINVAL (not a leaf with data).
 */
CKPT_API int ckpt_leaf_size_from_tree(uint64_t *out, const ckpt_tree *node);
CKPT_API const ckpt_value_info *ckpt_leaf_value_info(const ckpt_leaf *l);
CKPT_API const char *ckpt_leaf_key(const ckpt_leaf *l); /* store key, for messages */
/*
 * Where the leaf's bytes come from: ckpt_value_describe (ckpt/store.h) of
 * its stored value: a malloc'd JSON object text the caller free()s, e.g. a
 * leaf of an Orbax step: its zarr format, codec chain and chunk shape; NULL
 * for a leaf of a native step.
 * Returns 0, CKPT_ENOMEM, or another CKPT_E* code from the store's backend.
 */
CKPT_API int ckpt_leaf_describe(char **out, const ckpt_leaf *l);
/*
 * Read file bytes [off, off+len); *out_n receives the count (short only at
 * the end of the file). Thread-safe. Errors name the leaf.
 * Returns 0, CKPT_ECORRUPT (damaged or short stored data), CKPT_EIO,
 * CKPT_ENOMEM.
 */
CKPT_API int ckpt_leaf_pread(size_t *out_n, ckpt_leaf *l, void *buf, size_t len, uint64_t off);
CKPT_API void ckpt_leaf_free(ckpt_leaf *l);

#ifdef __cplusplus
}
#endif
#endif
