/*
 * zarr_fuzzer.c — fuzz target for zarr metadata (.zarray, zarr.json), chunk
 * decoding and shard indexes (core/zarr.c).
 *
 * Input: one mode byte, then
 *   mode 0/1: zarr2 / zarr3 metadata JSON, a NUL byte, and the bytes every
 *             chunk key reads as (so that chunk and shard decoding run on
 *             them): when the metadata parses and the array is small, the
 *             whole array is read and verified;
 *   mode 2:   a shard index: byte 1 = number of chunks, byte 2 = with crc,
 *             then the index bytes, checked against a shard of 4096 bytes.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/error.h"
#include "zarr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct mem {
	const uint8_t *p;
	size_t n;
} mem;

static int m_size(void *ctx, const char *key, uint64_t *len)
{
	mem *m = ctx;
	if (m->n == 0)
		return CKPT_ENOTFOUND; /* no chunk stored: the fill value */
	*len = m->n;
	return 0;
}

static int m_pread(void *ctx, const char *key, void *buf, size_t len, uint64_t off)
{
	mem *m = ctx;
	assert(off <= m->n && len <= m->n - off); /* zarr.c checks ranges before reading */
	memcpy(buf, m->p + off, len);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > (1u << 20))
		return 0;
	if (data[0] % 3 == 2) {
		if (size < 3)
			return 0;
		int rc = zarr_shard_index_check(data + 3, size - 3, data[1], data[2] & 1, 4096);
		assert(rc <= 0);
		return 0;
	}
	const uint8_t *nul = memchr(data + 1, 0, size - 1);
	size_t jlen = nul ? (size_t)(nul - data - 1) : size - 1;
	mem m = {nul ? nul + 1 : NULL, nul ? size - jlen - 2 : 0};
	zarr_array *a = NULL;
	int rc = zarr_parse(&a, (const char *)data + 1, jlen, data[0] % 3, "fuzz");
	assert(rc <= 0 && (rc == 0) == (a != NULL));
	if (rc == 0 && zarr_nbytes(a) <= (1u << 16)) {
		uint64_t cs = ckpt_dtype_size(zarr_dtype(a));
		for (unsigned d = 0; d < zarr_ndim(a); d++)
			cs *= zarr_chunk_shape(a)[d];
		if (cs <= (1u << 20)) {
			zarr_source src = {m_size, m_pread, &m};
			uint8_t *buf = malloc(zarr_nbytes(a) + 1);
			if (buf) {
				rc = zarr_read(a, &src, NULL, 0, buf, (size_t)zarr_nbytes(a), 0,
					       NULL);
				assert(rc <= 0);
				rc = zarr_verify(a, &src);
				assert(rc <= 0);
				free(buf);
			}
		}
	}
	zarr_free(a);
	return 0;
}
