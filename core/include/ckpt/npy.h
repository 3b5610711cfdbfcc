/*
 * ckpt/npy.h — the numpy .npy format, versions 1.0, 2.0 and 3.0.
 *
 * Parsing accepts any header numpy writes (and any byte order or memory
 * order): descr of a supported dtype in either byte order, fortran_order
 * True or False, any shape. It refuses with CKPT_EINVAL (or
 * CKPT_EUNSUPPORTED for a well-formed but unsupported dtype, the message
 * naming it) object, structured, void, string and unknown dtypes, bad magic,
 * truncated headers, malformed dicts, negative or overflowing shapes.
 *
 * Writing produces exactly the header np.save of numpy 1.24 writes for a
 * little-endian C-order array: version 1.0 unless the header needs 2.0,
 * dict keys sorted, growth padding, total header length a multiple of 64.
 *
 * The ML dtypes are written as a one-field structured dtype whose field name
 * is the type's name, so numpy loads them and the bits stay reachable:
 *   bfloat16       [('bfloat16', '<u2')]
 *   float8_e4m3fn  [('float8_e4m3fn', '|u1')]
 *   float8_e5m2    [('float8_e5m2', '|u1')]
 * (np.load(f)['bfloat16'].view(ml_dtypes.bfloat16) gives the array back).
 * These three descrs are the only structured dtypes accepted on input.
 */
#ifndef CKPT_NPY_H
#define CKPT_NPY_H

#include "ckpt/common.h"

#include <stddef.h>
#include <stdint.h>

#include "ckpt/dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CKPT_NPY_MAX_NDIM 32

typedef struct ckpt_npy_header {
	ckpt_dtype dtype;
	int big_endian;    /* data is big-endian (multi-byte dtypes only) */
	int fortran_order; /* data is in Fortran (column-major) order */
	unsigned ndim;
	uint64_t shape[CKPT_NPY_MAX_NDIM];
	unsigned major, minor; /* file format version */
	size_t header_len;     /* bytes before the data (magic + lengths + dict) */
	uint64_t nelems;       /* product of shape (1 for 0-d) */
	uint64_t data_len;     /* nelems * dtype size; checked against overflow */
} ckpt_npy_header;

/*
 * How many bytes the whole header occupies, from its first bytes: needs 10
 * bytes for v1.0 and 12 for v2.0/3.0. Lets a streaming reader know how much
 * to buffer before ckpt_npy_parse_header().
 * Returns 0, CKPT_EINVAL (fewer bytes than that: "truncated"; bad magic, an
 * unknown version, a header length over the limit).
 */
CKPT_API int ckpt_npy_header_size(size_t *out, const void *buf, size_t len);

/*
 * Parse a header from buf (at least the header, maybe followed by data).
 * Returns 0, CKPT_EINVAL (not a valid header: see above), CKPT_EUNSUPPORTED
 * (a well-formed descr of a dtype ckpt/dtype.h lacks; the message names it).
 */
CKPT_API int ckpt_npy_parse_header(ckpt_npy_header *out, const void *buf, size_t len);

/*
 * Length of the header ckpt_npy_format_header() writes for this array.
 * Returns 0 only for invalid arguments.
 */
CKPT_API size_t ckpt_npy_header_len(ckpt_dtype dt, unsigned ndim, const uint64_t *shape);

/*
 * Write the header for a little-endian C-order array into buf (cap bytes);
 * *out_len receives its length (== ckpt_npy_header_len()).
 * Returns 0, CKPT_EINVAL (an invalid dtype or ndim, or cap too small).
 */
CKPT_API int ckpt_npy_format_header(void *buf, size_t cap, size_t *out_len, ckpt_dtype dt, unsigned ndim,
			   const uint64_t *shape);

/*
 * Convert data laid out as described by h (any byte order, C or Fortran
 * order) to little-endian C order. dst and src are h->data_len bytes and
 * must not overlap.
 * Returns 0, CKPT_EINVAL (h is not a valid header: a bad dtype or ndim, a
 * shape whose size overflows or disagrees with h->data_len).
 */
CKPT_API int ckpt_npy_to_c_le(void *dst, const void *src, const ckpt_npy_header *h);

/*
 * Read a whole .npy file: *out_data receives malloc'd little-endian C-order
 * data (caller free()s; non-NULL even when empty) and *out_h its header
 * (describing the converted data: big_endian = fortran_order = 0).
 * Errors name the path.
 * Returns 0, CKPT_ENOTFOUND (no such file), CKPT_EINVAL (not a valid .npy,
 * or the data length disagrees with the header: truncated or trailing
 * bytes), CKPT_EUNSUPPORTED (a dtype ckpt/dtype.h lacks), CKPT_EIO,
 * CKPT_ENOMEM.
 */
CKPT_API int ckpt_npy_read_file(ckpt_npy_header *out_h, void **out_data, const char *path);

/*
 * Write a .npy file (header + data) atomically enough: write then close.
 * Returns 0, CKPT_EINVAL (an invalid dtype, ndim or shape), CKPT_EIO.
 */
CKPT_API int ckpt_npy_write_file(const char *path, ckpt_dtype dt, unsigned ndim, const uint64_t *shape,
			const void *data);

#ifdef __cplusplus
}
#endif
#endif
