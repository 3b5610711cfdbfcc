/*
 * ckpt/dtype.h — element types of array leaves.
 *
 * Stored array data is always little-endian, C order. The ML types bfloat16,
 * float8_e4m3fn and float8_e5m2 have no numpy name; how they appear in .npy
 * files is documented in ckpt/npy.h and docs/format.md.
 */
#ifndef CKPT_DTYPE_H
#define CKPT_DTYPE_H

#include "ckpt/common.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ckpt_dtype {
	CKPT_DTYPE_INVALID = 0,
	CKPT_DTYPE_BOOL,
	CKPT_DTYPE_INT8,
	CKPT_DTYPE_INT16,
	CKPT_DTYPE_INT32,
	CKPT_DTYPE_INT64,
	CKPT_DTYPE_UINT8,
	CKPT_DTYPE_UINT16,
	CKPT_DTYPE_UINT32,
	CKPT_DTYPE_UINT64,
	CKPT_DTYPE_FLOAT16,
	CKPT_DTYPE_FLOAT32,
	CKPT_DTYPE_FLOAT64,
	CKPT_DTYPE_COMPLEX64,
	CKPT_DTYPE_COMPLEX128,
	CKPT_DTYPE_BFLOAT16,
	CKPT_DTYPE_FLOAT8_E4M3FN,
	CKPT_DTYPE_FLOAT8_E5M2,
	CKPT_DTYPE_COUNT
} ckpt_dtype;

/* Bytes per element; 0 for CKPT_DTYPE_INVALID or out-of-range values. */
CKPT_API size_t ckpt_dtype_size(ckpt_dtype dt);

/* numpy/ml_dtypes name ("float32", "bfloat16"); "invalid" if unknown. Static. */
CKPT_API const char *ckpt_dtype_name(ckpt_dtype dt);

/*
 * Parse a name as printed by ckpt_dtype_name().
 * Returns 0, CKPT_EINVAL (an unknown name; the message names it).
 */
CKPT_API int ckpt_dtype_from_name(ckpt_dtype *out, const char *name);

/*
 * Convert n elements from src (type st) to dst (type dt), both little-endian.
 * numpy "unsafe" casting, made defined: float -> int saturates and NaN gives
 * 0; complex -> real drops the imaginary part; anything -> bool is != 0;
 * float -> bfloat16/float8 rounds to nearest even (float8_e4m3fn saturates
 * to +-448 and has no infinity; NaN stays NaN). dst and src must not overlap
 * unless dt == st.
 * Returns 0, CKPT_EINVAL (dt or st is not a valid dtype).
 */
CKPT_API int ckpt_dtype_cast(void *dst, ckpt_dtype dt, const void *src, ckpt_dtype st, size_t n);

#ifdef __cplusplus
}
#endif
#endif
