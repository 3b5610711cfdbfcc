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
 * save args:    const ckpt_tree *  an array leaf or an int/float/bool scalar leaf
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

/* Orbax's ArrayRestoreArgs(restore_args=RestoreArgs(dtype=...)). */
#define CKPT_ARRAY_RESTORE_ARGS_VERSION 1
typedef struct ckpt_array_restore_args {
	unsigned version;
	ckpt_dtype dtype; /* cast the restored array to it; INVALID keeps the saved one */
} ckpt_array_restore_args;
#define CKPT_ARRAY_RESTORE_ARGS_INIT {CKPT_ARRAY_RESTORE_ARGS_VERSION, CKPT_DTYPE_INVALID}

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
