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

#define CKPT_PYTREE_SAVE_ARGS_VERSION 1
typedef struct ckpt_pytree_save_args {
	unsigned version;
	const ckpt_tree *item; /* the tree to save (borrowed for the call) */
	/* Optional per-leaf SaveArgs: called for each leaf with its path, fills *out
	 * (pre-set to defaults). Non-zero return aborts the save. */
	int (*leaf_args)(ckpt_leaf_save_args *out, const char *path, const ckpt_tree *leaf,
			 void *payload);
	void *payload;
	int use_compression;            /* default 1 */
	uint64_t target_data_file_size; /* 0 = store default (ocdbt_target_data_file_size) */
	uint64_t save_concurrent_bytes; /* cap on bytes in flight; 0 = default */
} ckpt_pytree_save_args;
#define CKPT_PYTREE_SAVE_ARGS_INIT {CKPT_PYTREE_SAVE_ARGS_VERSION, NULL, NULL, NULL, 1, 0, 0}

/* Orbax RestoreArgs / ArrayRestoreArgs for one leaf. */
typedef struct ckpt_leaf_restore_args {
	ckpt_dtype dtype;   /* cast to this dtype on restore; INVALID keeps it */
	unsigned ndim;      /* with has_shape: the target shape */
	uint64_t shape[CKPT_TREE_MAX_NDIM];
	int has_shape;
} ckpt_leaf_restore_args;

#define CKPT_PYTREE_RESTORE_ARGS_VERSION 1
typedef struct ckpt_pytree_restore_args {
	unsigned version;
	/*
	 * Optional target: a (metadata-only or full) tree whose array leaves give
	 * the shape and dtype to restore to. With partial_restore only the key
	 * paths present in item are read (Orbax partial_restore); otherwise the
	 * target must have the saved structure.
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
} ckpt_pytree_restore_args;
#define CKPT_PYTREE_RESTORE_ARGS_INIT \
	{CKPT_PYTREE_RESTORE_ARGS_VERSION, NULL, 0, NULL, 0, NULL, NULL, 1, 0}

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
