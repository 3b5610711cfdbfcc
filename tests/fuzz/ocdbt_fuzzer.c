/*
 * ocdbt_fuzzer.c — fuzz target for the OCDBT envelope, manifest and B+tree
 * node decoders (core/ocdbt.c).
 *
 * Input: one mode byte, then the bytes of a manifest (mode & 1 == 0) or of a
 * B+tree node (mode & 1 == 1), envelope included. With mode & 2 the length
 * field and CRC-32C are fixed up first, so that mutations reach the body
 * decoders instead of stopping at the checksum. Must never crash, hang or
 * allocate without bound; the result is checked only for consistency.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/error.h"
#include "crc32c.h"
#include "ocdbt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf;
	size_t n;
	int rc;

	if (size < 1 || size > (1u << 20))
		return 0;
	n = size - 1;
	buf = malloc(n ? n : 1);
	if (!buf)
		return 0;
	memcpy(buf, data + 1, n);
	if ((data[0] & 2) && n >= 16) {
		for (int i = 0; i < 8; i++)
			buf[4 + i] = (uint8_t)((uint64_t)n >> (8 * i));
		uint32_t crc = ckpt_crc32c_update(0, buf, n - 4);
		for (int i = 0; i < 4; i++)
			buf[n - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
	}
	rc = (data[0] & 1) ? ocdbt_check_node_bytes(buf, n) : ocdbt_check_manifest_bytes(buf, n);
	assert(rc <= 0);
	assert(rc == 0 || ckpt_error_last()[0] != '\0');
	free(buf);
	return 0;
}
