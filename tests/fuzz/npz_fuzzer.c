/*
 * npz_fuzzer.c — fuzz target for the .npz (zip) reader.
 *
 * Reads the input's central directory; when it parses, checks invariant 1
 * of npz.c (entries inside the archive) and reads every entry (inflating,
 * checking CRC-32 and the .npy header), each bounded to 1 MiB of data.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>

#include "ckpt/npz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ckpt_npz *z = NULL;

	if (ckpt_npz_parse(&z, data, size) != 0)
		return 0;
	for (size_t i = 0; i < z->n; i++) {
		const ckpt_npz_entry *e = &z->entries[i];
		ckpt_npy_header h;
		void *d = NULL;
		assert(e->data_off <= size && e->csize <= size - e->data_off);
		assert(e->deflated || e->csize == e->usize);
		if (ckpt_npz_read_entry(&h, &d, z, i, -1, data, size, 1u << 20) == 0)
			assert(d && h.header_len + h.data_len == e->usize);
		free(d);
	}
	ckpt_npz_free(z);
	return 0;
}
