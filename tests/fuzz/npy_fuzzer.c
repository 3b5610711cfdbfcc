/*
 * npy_fuzzer.c — fuzz target for the .npy header parser and data conversion.
 *
 * Parses the input as a .npy file; when it parses, checks that the header we
 * would write for the same dtype and shape parses back to the same thing,
 * converts the data (when all of it is there and it is small) to C order
 * little-endian, and casts it to every dtype.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ckpt_npy_header h, h2;
	unsigned char hdr[4096];
	size_t hsize, hlen;
	void *conv, *out;

	if (ckpt_npy_header_size(&hsize, data, size) != 0)
		return 0;
	if (ckpt_npy_parse_header(&h, data, size) != 0)
		return 0;
	assert(h.header_len == hsize && h.ndim <= CKPT_NPY_MAX_NDIM);

	/* Our header for the same array must parse back identically. */
	if (ckpt_npy_format_header(hdr, sizeof(hdr), &hlen, h.dtype, h.ndim, h.shape) == 0) {
		int rc = ckpt_npy_parse_header(&h2, hdr, hlen);

		assert(rc == 0 && hlen % 64 == 0);
		assert(h2.dtype == h.dtype && h2.ndim == h.ndim && !h2.fortran_order);
		assert(memcmp(h2.shape, h.shape, h.ndim * sizeof(h.shape[0])) == 0);
		assert(h2.data_len == h.data_len);
		(void)rc;
	}

	if (h.data_len > size - h.header_len || h.data_len > (1u << 20))
		return 0;
	conv = malloc(h.data_len ? h.data_len : 1);
	out = malloc(h.nelems * 16 + 1);
	if (conv && out && ckpt_npy_to_c_le(conv, data + h.header_len, &h) == 0) {
		for (int dt = CKPT_DTYPE_INVALID + 1; dt < CKPT_DTYPE_COUNT; dt++)
			ckpt_dtype_cast(out, (ckpt_dtype)dt, conv, h.dtype, h.nelems);
	}
	free(conv);
	free(out);
	return 0;
}
