/*
 * ckpt/clone.h — clone stubs: a leaf of a finalized step, by reference.
 *
 * A leaf file of a pending step (ckpt/pending.h) or of an interchange
 * directory may be a *clone stub*: a regular file with the mode bit S_ISVTX
 * whose content is the text
 *     CKPT_CLONE_MAGIC "<step>\n<item>\n<path>\n"
 * (path as in ckpt/tree.h: the leaf's tree path, ".npy" left out) and which
 * stands for the whole file of that leaf of the finalized step ROOT/<step>.
 * Saving shares the source's stored chunks (ckpt_batch_put_clone) instead
 * of copying bytes.
 *
 * A stub whose path is empty stands instead for the whole file that the
 * mount shows as <item>.safetensors in ROOT/<step> (the PyTree item as one
 * safetensors file, tensor names joined with '.'; docs/convert.md); it is
 * valid only as a "<name>.safetensors" file at the top of a pending step,
 * where it is what that file's bytes would be: ignored beside a directory
 * <name>/, else imported as the item <name> (read through the source step
 * and stored anew: nothing is shared, unlike a leaf's stub).
 */
#ifndef CKPT_CLONE_H
#define CKPT_CLONE_H

#include <stddef.h>
#include <stdint.h>

#include "ckpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* First bytes of a clone stub. */
#define CKPT_CLONE_MAGIC "\x93" "CKPTCLONE1\n"

/* A parsed clone stub. */
typedef struct ckpt_clone_ref {
	uint64_t step;
	char *item; /* malloc'd */
	char *path; /* malloc'd: the leaf's tree path; "" for <item>.safetensors */
} ckpt_clone_ref;

/*
 * The content of a clone stub for ref: *out malloc'd, *len its length.
 * Returns 0, CKPT_EINVAL (a bad item name or leaf path), CKPT_ENOMEM.
 */
CKPT_API int ckpt_clone_stub_format(char **out, size_t *len, const ckpt_clone_ref *ref);
/*
 * Parse a stub's content; free with ckpt_clone_ref_clear().
 * Returns 0, CKPT_EINVAL (buf is not a clone stub), CKPT_ENOMEM.
 */
CKPT_API int ckpt_clone_stub_parse(ckpt_clone_ref *out, const void *buf, size_t len);
/*
 * If the open file fd is a clone stub (S_ISVTX and the magic), parse it into
 * *out.
 * Returns 1 (a stub, parsed), 0 (an ordinary file), CKPT_EINVAL (S_ISVTX
 * and the magic, but not a valid stub), CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_clone_stub_read(ckpt_clone_ref *out, int fd);
CKPT_API void ckpt_clone_ref_clear(ckpt_clone_ref *ref);

#ifdef __cplusplus
}
#endif
#endif
