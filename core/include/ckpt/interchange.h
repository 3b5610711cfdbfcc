/*
 * ckpt/interchange.h — steps to and from plain directories (docs/api.md,
 * "Interchange directories").
 *
 * The interchange directory of a step is what `cp -r MNT/STEP dir/` gives:
 *   dir/_CHECKPOINT_METADATA       (optional on input)
 *   dir/<item>/_METADATA           (optional on input: without it the
 *                                   structure is read from the files:
 *                                   directories are dicts, *.npy arrays,
 *                                   other files scalars (int, float,
 *                                   True/False) or else strings)
 *   dir/<item>/<path>.npy          array leaves
 *   dir/<item>/<path>              scalar leaves as text, string leaves as bytes
 */
#ifndef CKPT_INTERCHANGE_H
#define CKPT_INTERCHANGE_H

#include "ckpt/common.h"

#include "ckpt/pytree.h"
#include "ckpt/step.h"
#include "ckpt/tree.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Read an item directory into a tree (full data). If item_dir/_METADATA
 * exists, the structure and leaf types come from it and every leaf file
 * must exist and agree with it (dtype, shape); otherwise the structure is
 * read from the files. Free *out with ckpt_tree_free().
 * Returns 0, CKPT_EINVAL (a malformed file, a missing scalar file, a file
 * that disagrees with _METADATA, item_dir unreadable; the message names
 * it), CKPT_ENOTFOUND (a .npy file _METADATA names is missing),
 * CKPT_EUNSUPPORTED (a .npy of a dtype ckpt/dtype.h lacks), CKPT_EVERSION (a
 * _METADATA of a newer format), CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_interchange_read_item(ckpt_tree **out, const char *item_dir);

/*
 * Save the interchange directory `dir` as ROOT/<step> (all items with the
 * handlers named in dir/_CHECKPOINT_METADATA, PyTree by default). Nothing
 * is saved if any file is invalid. opts may be NULL.
 * Returns 0, CKPT_EINVAL (an invalid file or item name, a
 * _CHECKPOINT_METADATA that is not a JSON object, dir unreadable; bad opts,
 * as ckpt_step_writer_open says; the message names the file), CKPT_EUNSUPPORTED (a .npy of a dtype
 * ckpt/dtype.h lacks, a string leaf in a Standard item), CKPT_EVERSION (a
 * _METADATA of a newer format), CKPT_EEXISTS (the step exists and
 * !opts->force), CKPT_ERROR (compression threads did not start), CKPT_EIO,
 * CKPT_ENOMEM.
 */
CKPT_API int ckpt_interchange_save(const char *root, uint64_t step, const char *dir,
			  const ckpt_step_writer_options *opts);

/*
 * Write the finalized step s (or, with item != NULL, one item; with path
 * != NULL, one subtree or leaf of it) to out_dir in the interchange layout.
 * out_dir is created; existing files in it are replaced.
 * Returns 0, CKPT_ENOTFOUND (no such item, or no such path in it),
 * CKPT_EINVAL (path names a None leaf: no file to write), CKPT_ECORRUPT
 * (damaged step data or metadata), CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_interchange_restore(ckpt_step *s, const char *item, const char *path,
			     const char *out_dir);

/*
 * Write PyTree item `item` of the finalized step s to out_dir as
 * ckpt_interchange_restore does, rearranged by transforms t[0..n) as a
 * restore with them (ckpt_pytree_restore_args.transforms, ckpt/pytree.h):
 * each saved leaf's file lands at its new path, and _METADATA describes the
 * new tree, so ckpt_interchange_save reads the directory back as the
 * renamed model. Leaves are streamed; nothing is held whole in memory.
 * Returns 0, CKPT_ENOTFOUND (no such item, or no _METADATA: not a PyTree
 * item), CKPT_EINVAL (item NULL, no transforms, a bad rule or regex),
 * CKPT_EEXISTS (two leaves renamed to one path, or one below a leaf),
 * CKPT_ECORRUPT (damaged step data), CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_interchange_restore_mapped(ckpt_step *s, const char *item,
					     const ckpt_restore_transform *t, size_t n,
					     int default_to_original, const char *out_dir);

#ifdef __cplusplus
}
#endif
#endif
