/*
 * ckpt/interchange.h — steps to and from plain directories (DESIGN section 4).
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

#include "ckpt/step.h"
#include "ckpt/tree.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Read an item directory into a tree (full data). If item_dir/_METADATA
 * exists, the structure and leaf types come from it and every leaf file
 * must exist and agree with it (dtype, shape); otherwise the structure is
 * read from the files. CKPT_EINVAL names the offending file.
 */
CKPT_API int ckpt_interchange_read_item(ckpt_tree **out, const char *item_dir);

/*
 * Save the interchange directory `dir` as ROOT/<step> (all items with the
 * handlers named in dir/_CHECKPOINT_METADATA, PyTree by default). Nothing
 * is saved if any file is invalid. opts may be NULL.
 */
CKPT_API int ckpt_interchange_save(const char *root, uint64_t step, const char *dir,
			  const ckpt_step_writer_options *opts);

/*
 * Write the finalized step s (or, with item != NULL, one item; with path
 * != NULL, one subtree or leaf of it) to out_dir in the interchange layout.
 * out_dir is created; existing files in it are replaced.
 */
CKPT_API int ckpt_interchange_restore(ckpt_step *s, const char *item, const char *path,
			     const char *out_dir);

#ifdef __cplusplus
}
#endif
#endif
