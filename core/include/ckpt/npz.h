/*
 * ckpt/npz.h — PyTree items as numpy .npz files, both ways.
 *
 * An .npz is a zip archive of .npy files, one per array, named
 * "<key>.npy" (np.savez: entries stored; np.savez_compressed: deflated).
 *
 * Reading (ckpt_npz_open) trusts the central directory and checks it
 * strictly: one disk, a consistent end record (zip64 records only where a
 * field overflows, and then consistent with it), methods stored (0) or
 * deflate (8), no encryption, each local header where the central one says
 * with the same name, entries that do not overlap and lie before the
 * central directory, stored entries whose sizes agree, names that are
 * relative paths ending in ".npy" without "", ".", ".." components,
 * backslashes or NUL, and no name twice. Anything else is CKPT_EINVAL
 * (CKPT_EUNSUPPORTED for another compression method) with a message naming
 * the entry. The CRC-32 of each entry is checked when its data is read.
 *
 * Writing (ckpt_npz_export) produces what np.savez writes: stored entries,
 * each a complete .npy file as np.save writes it (ckpt/npy.h), named by the
 * leaf's keys joined with opts.sep plus ".npy"; zip64 fields only for
 * entries or offsets at or beyond 4 GiB. Scalar, string and None leaves
 * are left out (*left_out counts them; docs/convert.md).
 */
#ifndef CKPT_NPZ_H
#define CKPT_NPZ_H
#include "ckpt/common.h"
#include <stddef.h>
#include <stdint.h>
#include "ckpt/npy.h"
#include "ckpt/safetensors.h"
#include "ckpt/step.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct ckpt_npz_entry {
	char *name;	    /* as in the archive, with ".npy" (malloc'd) */
	uint64_t data_off;  /* where the entry's (compressed) bytes start in the file */
	uint64_t csize;	    /* compressed size */
	uint64_t usize;	    /* uncompressed size: the .npy file's */
	uint32_t crc32;
	int deflated;
} ckpt_npz_entry;

typedef struct ckpt_npz {
	size_t n;
	ckpt_npz_entry *entries; /* in central-directory order */
} ckpt_npz;

/*
 * Read and check the directory of the zip archive open as fd (messages name
 * `what`). *out malloc'd: free with ckpt_npz_free. Returns 0, CKPT_EINVAL,
 * CKPT_EUNSUPPORTED, CKPT_EIO or CKPT_ENOMEM.
 */
CKPT_API int ckpt_npz_open(ckpt_npz **out, int fd, const char *what);
/* The same for an archive held in memory (buf of len bytes, borrowed for the call).
 * Returns the same codes as ckpt_npz_open. */
CKPT_API int ckpt_npz_parse(ckpt_npz **out, const void *buf, size_t len);
CKPT_API void ckpt_npz_free(ckpt_npz *z);

/*
 * Read the whole .npy of entry i of z from fd (or, with fd < 0, from buf of
 * len bytes), inflating if needed and checking its CRC-32 and its header:
 * *out_h and *out_data as ckpt_npy_read_file (little-endian C order).
 * Returns 0, CKPT_ENOTFOUND (no entry i), CKPT_EINVAL (bad entry or .npy,
 * CRC-32 mismatch, or data larger than max bytes), CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_npz_read_entry(ckpt_npy_header *out_h, void **out_data, const ckpt_npz *z,
				 size_t i, int fd, const void *buf, size_t len, uint64_t max);

/*
 * Write the item of s as the .npz file `path`, atomically (temporary file,
 * fsync, rename). *left_out (may be NULL) receives how many leaves were left
 * out. opts may be NULL. Returns 0, CKPT_ENOTFOUND (no such PyTree item),
 * CKPT_EINVAL (two leaves with one name), the code of a leaf read, CKPT_EIO.
 */
CKPT_API int ckpt_npz_export(ckpt_step *s, const char *item, const char *path,
			     const ckpt_safetensors_options *opts, size_t *left_out);

/*
 * Save the .npz file `file` as step `step` of root with one PyTree item
 * `item`, atomically: the directory and every .npy header are checked
 * before the step is started; the data is streamed (inflated, converted to
 * little-endian C order) and every entry's CRC-32 checked, and on any
 * failure nothing is left. Names are split at opts->sep like safetensors.
 * Returns the codes of ckpt_safetensors_import, and CKPT_EUNSUPPORTED for an
 * entry of another compression method.
 */
CKPT_API int ckpt_npz_import(const char *root, uint64_t step, const char *item, const char *file,
			     const ckpt_safetensors_options *opts,
			     const ckpt_step_writer_options *wopts);

#ifdef __cplusplus
}
#endif
#endif
