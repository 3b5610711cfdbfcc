/*
 * safetensors_private.h — what the conversions share inside the library
 * (safetensors.c, npz.c, the pending steps of interchange.c).
 */
#ifndef CKPT_SAFETENSORS_PRIVATE_H
#define CKPT_SAFETENSORS_PRIVATE_H

#include "ckpt/safetensors.h"

/*
 * ckpt_safetensors_tree, and *leaf_of (malloc'd, caller free()s; may be
 * NULL): leaf_of[i] is the leaf of h->tensors[i], borrowed from *out.
 */
int ckpt_safetensors_tree_map(ckpt_tree **out, const ckpt_tree ***leaf_of,
			      const ckpt_safetensors_header *h, char sep, int origin);
/* (origin 0: the root gets no custom metadata; for .npz files.) */

/* The keys from below the root to node joined with sep (sep 0: concatenated);
 * *out malloc'd. CKPT_EUNSUPPORTED beyond 256 levels, CKPT_ENOMEM. */
int ckpt_convert_join_keys(char **out, const ckpt_tree *node, char sep);

/*
 * Write the file path atomically: create a temporary file beside it, call
 * fill(fd, tmp_name, p) to write its bytes, fsync, close, rename over path.
 * On failure the temporary file is removed and path is untouched.
 */
int ckpt_convert_write_atomic(const char *path, int (*fill)(int fd, const char *tmp, void *p),
			      void *p);

/*
 * Conversion sources inside steps: a file "<item>.safetensors" or
 * "<item>.npz" in an interchange directory or a pending step is the PyTree
 * item <item> (docs/convert.md). kind: 0 for other names, else the format;
 * *stem_len (may be NULL) the length of <item>.
 */
enum { CKPT_CONVERT_SAFETENSORS = 1, CKPT_CONVERT_NPZ = 2 };
int ckpt_convert_kind(const char *name, size_t *stem_len);
/* Check such a file: headers, directory, names; an .npz's entries are also
 * read through (deflate streams, CRC-32s), a safetensors file's data needs no
 * check. fd: the file open, or -1 to open it; messages name file. */
int ckpt_convert_check_file(const char *file, int fd, char sep);
/* Save it as PyTree item `item` into w (checked again; data streamed). */
int ckpt_convert_save_item(ckpt_step_writer *w, const char *item, const char *file, char sep);
/*
 * The same for a clone stub of a step's <item>.safetensors (ckpt/clone.h):
 * save, as PyTree item `item` into w, the bytes the mount shows as
 * <src_item>.safetensors of step s ('.' joins names), read through s; with
 * w NULL only check that s has them. file names the stub in messages.
 */
int ckpt_convert_save_view(ckpt_step_writer *w, const char *item, const char *file, ckpt_step *s,
			   const char *src_item);
/* The .npz halves of the two (npz.c). */
int ckpt_npz_check_file(const char *file, int fd, char sep);
int ckpt_npz_save_item(ckpt_step_writer *w, const char *item, const char *file, char sep);

#endif
