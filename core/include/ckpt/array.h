/*
 * ckpt/array.h — ArrayCheckpointHandler: one array or scalar per item.
 *
 * Files of the item:
 *   <item>/<name>.npy     an array: a complete .npy file (header, then the
 *                         little-endian C-order data)
 *   <item>/<name>         a scalar (int, float or bool): its text as
 *                         ckpt_scalar_format() writes it
 * where <name> is checkpoint_name (default "checkpoint").
 *
 * save args:    const ckpt_tree *  an array leaf or an int/float/bool scalar leaf,
 *               or const ckpt_array_save_args * (the leaf and a dtype to cast
 *               it to); both borrowed for the call
 * restore args: ckpt_array_restore_args * or NULL (as saved)
 * restore out:  ckpt_tree *        the array or scalar (ckpt_tree_free)
 * metadata out: ckpt_tree *        metadata-only: dtype and shape, or the
 *                                  scalar kind; reads only the .npy header
 */
#ifndef CKPT_ARRAY_H
#define CKPT_ARRAY_H

#include "ckpt/common.h"

#include "ckpt/handler.h"
#include "ckpt/npy.h"
#include "ckpt/store.h"
#include "ckpt/tree.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CKPT_ARRAY_TYPESTR "orbax.checkpoint._src.handlers.array_checkpoint_handler.ArrayCheckpointHandler"
#define CKPT_ARRAY_DEFAULT_NAME "checkpoint"

/*
 * Orbax's ArraySaveArgs(item, save_args=SaveArgs(dtype=...)). The handler
 * tells these args from a bare ckpt_tree by `tag`, which no tree starts
 * with: always initialise with CKPT_ARRAY_SAVE_ARGS_INIT (a zeroed struct is
 * CKPT_EINVAL).
 */
#define CKPT_ARRAY_SAVE_ARGS_TAG 0x41525241u /* "ARRA" */
#define CKPT_ARRAY_SAVE_ARGS_VERSION 1
typedef struct ckpt_array_save_args {
	unsigned tag;          /* CKPT_ARRAY_SAVE_ARGS_TAG */
	unsigned version;
	const ckpt_tree *item; /* an array with data, or an int/float/bool scalar */
	/* cast the array to it before it is written (numpy's astype); INVALID
	 * keeps its own. A scalar is saved as its text: a dtype is CKPT_EINVAL. */
	ckpt_dtype dtype;
} ckpt_array_save_args;
#define CKPT_ARRAY_SAVE_ARGS_INIT \
	{CKPT_ARRAY_SAVE_ARGS_TAG, CKPT_ARRAY_SAVE_ARGS_VERSION, NULL, CKPT_DTYPE_INVALID}

/*
 * Orbax's ArrayRestoreArgs(restore_args=ArrayRestoreArgs(dtype=...,
 * global_shape=..., strict=...)). Version 2 added ndim, shape, has_shape and
 * strict; a version 1 struct (dtype only) is still accepted, those members
 * unread. Scalar items come back as saved (dtype and shape apply to arrays).
 */
#define CKPT_ARRAY_RESTORE_ARGS_VERSION 2
typedef struct ckpt_array_restore_args {
	unsigned version;
	ckpt_dtype dtype; /* cast the restored array to it; INVALID keeps the saved one */
	/* with has_shape: the target shape (Orbax's global_shape). A saved shape
	 * that differs is CKPT_ESHAPE when strict (the default); strict 0 pads
	 * with zeros or truncates (same number of dimensions only). */
	unsigned ndim;
	uint64_t shape[CKPT_TREE_MAX_NDIM];
	int has_shape;
	int strict;
} ckpt_array_restore_args;
#define CKPT_ARRAY_RESTORE_ARGS_INIT \
	{CKPT_ARRAY_RESTORE_ARGS_VERSION, CKPT_DTYPE_INVALID, 0, {0}, 0, 1}

/*
 * checkpoint_name NULL: "checkpoint". Free with ckpt_handler_free().
 * Returns 0, CKPT_EINVAL (checkpoint_name is not a plain file name), CKPT_ENOMEM.
 */
CKPT_API int ckpt_array_handler_new(ckpt_handler **out, const char *checkpoint_name);

/*
 * The .npy header of a stored value that holds a whole .npy file (an Array
 * or JAX key item's key), read from its first bytes and checked against the
 * value's size: what a reader needs before it reads the data from
 * out->header_len on. Errors name `what`.
 * Returns 0, CKPT_EINVAL (not a valid .npy header, or one that disagrees
 * with the value's size), CKPT_EUNSUPPORTED (a well-formed header of a dtype
 * ckpt/dtype.h lacks), CKPT_ECORRUPT (damaged or short stored value),
 * CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_array_value_header(ckpt_npy_header *out, ckpt_value *v, const char *what);

#ifdef __cplusplus
}
#endif
#endif
