/* crc32c_test.c — CRC-32C against known vectors, both implementations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "crc32c.h"

static void test_vectors(void **state)
{
	unsigned char zeros[32] = {0}, ones[32], inc[32];

	memset(ones, 0xff, sizeof(ones));
	for (int i = 0; i < 32; i++)
		inc[i] = (unsigned char)i;
	assert_int_equal(ckpt_crc32c_update(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(ckpt_crc32c_update_sw(0, "123456789", 9), 0xE3069283u);
	/* RFC 3720 (iSCSI) B.4 test vectors. */
	assert_int_equal(ckpt_crc32c_update(0, zeros, 32), 0x8A9136AAu);
	assert_int_equal(ckpt_crc32c_update(0, ones, 32), 0x62A8AB43u);
	assert_int_equal(ckpt_crc32c_update(0, inc, 32), 0x46DD794Eu);
	assert_int_equal(ckpt_crc32c_update_sw(0, inc, 32), 0x46DD794Eu);
	assert_int_equal(ckpt_crc32c_update(0, "", 0), 0);
}

static void test_hw_equals_sw_and_chains(void **state)
{
	enum { N = 100003 };
	unsigned char *buf = malloc(N);

	assert_non_null(buf);
	srand(7);
	for (int i = 0; i < N; i++)
		buf[i] = (unsigned char)rand();
	/* every alignment and a few lengths */
	for (int off = 0; off < 9; off++)
		for (int len = 0; len < 70; len += 3)
			assert_int_equal(ckpt_crc32c_update(0, buf + off, (size_t)len),
					 ckpt_crc32c_update_sw(0, buf + off, (size_t)len));
	uint32_t whole = ckpt_crc32c_update(0, buf, N);
	assert_int_equal(whole, ckpt_crc32c_update_sw(0, buf, N));
	for (size_t cut = 0; cut < N; cut += 9973) {
		uint32_t c = ckpt_crc32c_update(0, buf, cut);
		assert_int_equal(ckpt_crc32c_update(c, buf + cut, N - cut), whole);
		c = ckpt_crc32c_update_sw(0, buf, cut);
		assert_int_equal(ckpt_crc32c_update_sw(c, buf + cut, N - cut), whole);
	}
	for (size_t cut = 0; cut <= N; cut += 7919) { /* combine, including empty parts */
		uint32_t a = ckpt_crc32c_update(0, buf, cut);
		uint32_t b = ckpt_crc32c_update(0, buf + cut, N - cut);
		assert_int_equal(ckpt_crc32c_combine(a, b, N - cut), whole);
	}
	assert_int_equal(ckpt_crc32c_combine(whole, 0, 0), whole);
	/* long buffers at odd lengths take the three-stream path */
	for (size_t len = 8191; len < 8200; len++)
		assert_int_equal(ckpt_crc32c_update(0x1234u, buf + 3, len),
				 ckpt_crc32c_update_sw(0x1234u, buf + 3, len));
	buf[N / 2] ^= 1;
	assert_int_not_equal(ckpt_crc32c_update(0, buf, N), whole);
	free(buf);
}

/* ckpt_crc32c_blocks: each block's CRC and the whole CRC, at every split of the tail */
static void test_blocks(void **state)
{
	enum { N = 8192 * 7 + 100 };
	unsigned char *buf = malloc(N + 1);
	uint32_t out[16];

	assert_non_null(buf);
	srand(11);
	for (int i = 0; i < N + 1; i++)
		buf[i] = (unsigned char)rand();
	const size_t blocks[] = {8192, 4096, 1000, 1};
	const size_t lens[] = {0, 1, 8191, 8192, 8193, 3 * 8192, 3 * 8192 + 8, 7 * 8192, N};
	for (size_t b = 0; b < sizeof(blocks) / sizeof(*blocks); b++)
		for (size_t l = 0; l < sizeof(lens) / sizeof(*lens); l++) {
			size_t len = lens[l], bs = blocks[b], nb = (len + bs - 1) / bs;
			const unsigned char *p = buf + (l & 1); /* aligned and not */
			uint32_t *o = nb <= 16 ? out : malloc(nb * sizeof(*o));
			assert_non_null(o);
			assert_int_equal(ckpt_crc32c_blocks(p, len, bs, o),
					 ckpt_crc32c_update_sw(0, p, len));
			assert_int_equal(ckpt_crc32c_join(o, len, bs), ckpt_crc32c_update_sw(0, p, len));
			for (size_t k = 0; k < nb; k++)
				assert_int_equal(o[k], ckpt_crc32c_update_sw(
							   0, p + k * bs,
							   len - k * bs < bs ? len - k * bs : bs));
			if (o != out)
				free(o);
		}
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors),
	    cmocka_unit_test(test_hw_equals_sw_and_chains),
	    cmocka_unit_test(test_blocks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
