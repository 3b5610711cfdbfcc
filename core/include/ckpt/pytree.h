/*
 * ckpt/pytree.h — PyTreeCheckpointHandler and StandardCheckpointHandler.
 *
 * save args:    ckpt_pytree_save_args      (the tree to save, per-leaf SaveArgs)
 * restore args: ckpt_pytree_restore_args   (NULL: restore everything as saved)
 * restore out:  ckpt_tree *                (caller frees with ckpt_tree_free)
 * metadata out: ckpt_tree *                (metadata-only tree: dtypes, shapes)
 *
 * Leaves are stored under "<item>/<leaf path>" and the structure under
 * "<item>/_METADATA" (ckpt/tree.h). StandardCheckpointHandler is the same
 * storage with Orbax's simpler surface: no per-leaf restore args, and only
 * array, scalar and None leaves (strings are refused at save).
 */
#ifndef CKPT_PYTREE_H
#define CKPT_PYTREE_H

#include "ckpt/common.h"

#include "ckpt/handler.h"
#include "ckpt/tree.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CKPT_PYTREE_TYPESTR "orbax.checkpoint._src.handlers.pytree_checkpoint_handler.PyTreeCheckpointHandler"
#define CKPT_STANDARD_TYPESTR "orbax.checkpoint._src.handlers.standard_checkpoint_handler.StandardCheckpointHandler"

/* Orbax SaveArgs for one leaf. */
typedef struct ckpt_leaf_save_args {
	ckpt_dtype dtype;            /* cast to this dtype on save; INVALID keeps it */
	const char *custom_metadata; /* JSON text stored with the leaf, or NULL */
	int compression;             /* -1 item default, 0 raw, 1 compressed */
} ckpt_leaf_save_args;

/*
 * Version 2 added custom_metadata; a version 1 struct (without it) is still
 * accepted, and that member is not read.
 */
#define CKPT_PYTREE_SAVE_ARGS_VERSION 2
typedef struct ckpt_pytree_save_args {
	unsigned version;
	const ckpt_tree *item; /* the tree to save (borrowed for the call) */
	/* Optional per-leaf SaveArgs: called for each leaf with its path, fills *out
	 * (pre-set to defaults). Non-zero return aborts the save. */
	int (*leaf_args)(ckpt_leaf_save_args *out, const char *path, const ckpt_tree *leaf,
			 void *payload);
	void *payload;
	int use_compression; /* default 1 */
	/*
	 * Orbax's ocdbt_target_data_file_size: the size at which the step's data
	 * files roll over. In this store data files belong to the step, not to
	 * an item, so the value applies to the step's writer
	 * (ckpt_step_writer_options.store.target_data_file_size). Here the save
	 * checks it: a value differing from the writer's (its default when 0) is
	 * CKPT_EINVAL, never silently ignored. 0: whatever the writer uses.
	 */
	uint64_t target_data_file_size;
	/*
	 * Bytes of one array held in memory at once while saving it: the slice
	 * a cast (leaf dtype) or a data source converts and hands to the store
	 * (0: 8 MiB; smaller values make smaller slices). It is not Orbax's cap
	 * on all bytes in flight: that is the writer's
	 * ckpt_store_options.max_bytes_in_flight.
	 */
	uint64_t save_concurrent_bytes;
	/*
	 * Orbax's PyTreeSaveArgs.custom_metadata: JSON text kept as the item's
	 * custom metadata (_METADATA's top-level "custom_metadata"); it replaces
	 * the root node's own custom metadata. NULL: the root's. (Version 2.)
	 */
	const char *custom_metadata;
} ckpt_pytree_save_args;
#define CKPT_PYTREE_SAVE_ARGS_INIT \
	{CKPT_PYTREE_SAVE_ARGS_VERSION, NULL, NULL, NULL, 1, 0, 0, NULL}

/* Orbax RestoreArgs / ArrayRestoreArgs for one leaf. */
typedef struct ckpt_leaf_restore_args {
	ckpt_dtype dtype;   /* cast to this dtype on restore; INVALID keeps it */
	unsigned ndim;      /* with has_shape: the target shape */
	uint64_t shape[CKPT_TREE_MAX_NDIM];
	int has_shape;
	/*
	 * A slice (appended; the library allocates this struct): with has_box,
	 * the leaf restored is the box [box_start, box_start + box_shape) of the
	 * saved array (ndim of the saved array's entries; with has_shape, shape
	 * must equal box_shape), reading only the chunks that overlap it
	 * (ckpt_value_pread_box): any process restores any slice of a global
	 * array, whatever the number of processes that saved it.
	 */
	int has_box;
	uint64_t box_start[CKPT_TREE_MAX_NDIM];
	uint64_t box_shape[CKPT_TREE_MAX_NDIM];
} ckpt_leaf_restore_args;

/*
 * A rename rule of a restore (Orbax's RestoreTransform / transforms, in the
 * direction a C restore can use without a target): the saved leaf whose
 * path is `from` comes back at path `to`. With regex, `from` is a POSIX
 * extended regular expression that must match the whole saved path, and
 * `to` may use \1 .. \9 for its groups ("layers_([0-9]+)/(.*)" ->
 * "blocks/\1/\2"). The first matching rule wins. `to` NULL or "": the
 * leaf is left out. Paths are leaf paths (names joined by '/', no ".npy").
 */
typedef struct ckpt_restore_transform {
	const char *from;
	const char *to;
	int regex;
} ckpt_restore_transform;

/*
 * A computed leaf of a restore (Orbax's RestoreTransform value_fn /
 * multi_value_fn): the saved leaves at inputs[0..ninputs) are restored
 * (only those are read; leaf_args applies to them, the target does not),
 * then fn builds the leaf placed at path `to` of the result.
 *   fn: *out gets the new leaf (the library owns it from then on, also on
 *       failure); inputs are borrowed for the call, in the order given.
 *       Return 0, or a CKPT_E* code with its message set
 *       (ckpt_error_set_str of ckpt/sys/error.h; a positive return is
 *       CKPT_ERROR): the restore fails with that code and message, prefixed
 *       by "item <item>: value transform to '<to>': ". fn 0 with *out
 *       NULL is CKPT_EINVAL. An array fn builds is kept as built (a
 *       target's dtype and shape are not applied to it).
 * Input paths are leaf paths as in `paths` (names joined by '/').
 */
typedef struct ckpt_restore_value_transform {
	const char *to;
	const char *const *inputs;
	size_t ninputs;
	int (*fn)(ckpt_tree **out, const ckpt_tree *const *inputs, size_t n, void *payload);
	void *payload;
} ckpt_restore_value_transform;

/*
 * Version 2 added transforms, ntransforms and transforms_default_to_original;
 * version 3 value_transforms and nvalue_transforms. An older struct is still
 * accepted, the members it lacks unread (defaults).
 */
#define CKPT_PYTREE_RESTORE_ARGS_VERSION 3
typedef struct ckpt_pytree_restore_args {
	unsigned version;
	/*
	 * Optional target: a (metadata-only or full) tree that shapes the result,
	 * as Orbax's `item`: the result has the target's structure (container
	 * kinds, namedtuple types, key order), its array leaves the target's
	 * shape and dtype, its scalar leaves the target's kind (an int saved is
	 * a float for a float target; a float is an int only when integral).
	 * With partial_restore only the key paths present in item are read
	 * (Orbax partial_restore); otherwise the target must have the saved
	 * leaves.
	 */
	const ckpt_tree *item;
	int partial_restore;
	/* Alternatively, the leaf or subtree paths to restore ("params/dense"):
	 * only those leaves are read; the result holds only them. */
	const char *const *paths;
	size_t npaths;
	/* Optional per-leaf RestoreArgs, called with the leaf's metadata. */
	int (*leaf_args)(ckpt_leaf_restore_args *out, const char *path, const ckpt_tree *meta,
			 void *payload);
	void *payload;
	/* strict (default 1): a target shape differing from the saved one is
	 * CKPT_ESHAPE naming the leaf; 0 pads with zeros or truncates. */
	int strict;
	uint64_t restore_concurrent_bytes; /* cap on bytes in flight; 0 = default */
	/*
	 * Renames (version 2): each saved leaf is matched against the rules
	 * (paths: after selection) and placed at the path its rule gives; the
	 * target (item), if any, is looked up at that path. A saved leaf no
	 * rule matches: kept at its own path when transforms_default_to_original
	 * (the default), else left out. A target leaf no saved leaf lands on:
	 * CKPT_ENOTFOUND when transforms_default_to_original, else the target's
	 * own value is used (it must hold data). Two saved leaves landing on
	 * one path: CKPT_EEXISTS. Containers created by a rename are dicts
	 * unless the target says otherwise.
	 */
	const ckpt_restore_transform *transforms;
	size_t ntransforms;
	int transforms_default_to_original; /* default 1 */
	/*
	 * Computed leaves (version 3), after the restore above: each rule's
	 * inputs must all be saved leaves (CKPT_ENOTFOUND naming every missing
	 * one, before anything is read); its `to` must not be a leaf the
	 * restore already gives (CKPT_EEXISTS: leave the saved one out with a
	 * rename rule to ""). A target (item) leaf at `to` is satisfied by it;
	 * the result is then shaped by the target as usual.
	 */
	const ckpt_restore_value_transform *value_transforms;
	size_t nvalue_transforms;
} ckpt_pytree_restore_args;
#define CKPT_PYTREE_RESTORE_ARGS_INIT \
	{CKPT_PYTREE_RESTORE_ARGS_VERSION, NULL, 0, NULL, 0, NULL, NULL, 1, 0, NULL, 0, 1, NULL, 0}

/*
 * Create the handlers. Free with ckpt_handler_free().
 * Returns 0, CKPT_ENOMEM.
 */
CKPT_API int ckpt_pytree_handler_new(ckpt_handler **out);
CKPT_API int ckpt_standard_handler_new(ckpt_handler **out);

#ifdef __cplusplus
}
#endif
#endif
