/*
 * crc32c.c — CRC-32C with SSE4.2 and a table fallback (see crc32c.h).
 *
 * Invariants:
 *  1. Both implementations compute the same function (tested on random data).
 *  2. The pre/post inversion is done here, so callers chain plain results.
 *  3. ckpt_crc32c_combine(crc(a), crc(b), |b|) == crc(a||b) (tested).
 *  4. ckpt_crc32c_blocks returns crc(buf) and each block's own CRC (tested).
 */
#include <pthread.h>
#include <string.h>

#include "crc32c.h"

#define POLY 0x82F63B78u

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_init(void)
{
	for (unsigned i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
		table[0][i] = c;
	}
	for (unsigned i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
}

uint32_t ckpt_crc32c_update_sw(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	pthread_once(&table_once, table_init);
	crc = ~crc;
	while (len >= 8) { /* slicing-by-8, little-endian load */
		uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
				     (uint32_t)p[3] << 24);
		crc = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^
		      table[5][(lo >> 16) & 0xff] ^ table[4][lo >> 24] ^ table[3][p[4]] ^
		      table[2][p[5]] ^ table[1][p[6]] ^ table[0][p[7]];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

/* a * b modulo the CRC polynomial (bit-reflected: x^0 is the top bit). */
static uint32_t multmodp(uint32_t a, uint32_t b)
{
	uint32_t m = 1u << 31, p = 0;

	for (;;) {
		if (a & m) {
			p ^= b;
			if ((a & (m - 1)) == 0)
				break;
		}
		m >>= 1;
		b = b & 1 ? (b >> 1) ^ POLY : b >> 1;
	}
	return p;
}

static uint32_t x2n_table[32]; /* x^(2^k) modulo the polynomial */
static pthread_once_t x2n_once = PTHREAD_ONCE_INIT;

static void x2n_init(void)
{
	uint32_t p = 1u << 30; /* x^1 */

	x2n_table[0] = p;
	for (int k = 1; k < 32; k++)
		x2n_table[k] = p = multmodp(p, p);
}

/* x^(8 * n) modulo the polynomial: what a CRC is multiplied by to skip n bytes. */
static uint32_t x8nmodp(uint64_t n)
{
	uint32_t p = 1u << 31; /* x^0 */
	unsigned k = 3;

	pthread_once(&x2n_once, x2n_init);
	for (; n; n >>= 1, k++)
		if (n & 1)
			p = multmodp(x2n_table[k & 31], p);
	return p;
}

uint32_t ckpt_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
	return multmodp(x8nmodp(len_b), crc_a) ^ crc_b;
}

uint32_t ckpt_crc32c_join(const uint32_t *out, size_t len, size_t block)
{
	uint32_t op = x8nmodp(block), crc = 0;

	for (size_t k = 0; k * block < len; k++) {
		size_t n = len - k * block < block ? len - k * block : block;
		crc = n == block ? multmodp(op, crc) ^ out[k] : ckpt_crc32c_combine(crc, out[k], n);
	}
	return crc;
}

#if defined(__x86_64__)
#include <nmmintrin.h>

/* Below this, one stream; above, three interleaved ones (the instruction's
 * latency is 3 cycles, its throughput 1 per cycle). */
#define STREAMS_MIN 8192

__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint64_t c = ~crc;

	if (len >= STREAMS_MIN) {
		size_t part = len / 3 & ~(size_t)7;
		const unsigned char *p1 = p + part, *p2 = p1 + part;
		uint64_t c1 = 0xFFFFFFFFu, c2 = 0xFFFFFFFFu;

		for (size_t i = 0; i < part; i += 8) {
			uint64_t w0, w1, w2;
			memcpy(&w0, p + i, 8);
			memcpy(&w1, p1 + i, 8);
			memcpy(&w2, p2 + i, 8);
			c = _mm_crc32_u64(c, w0);
			c1 = _mm_crc32_u64(c1, w1);
			c2 = _mm_crc32_u64(c2, w2);
		}
		crc = ckpt_crc32c_combine(~(uint32_t)c, ~(uint32_t)c1, part);
		crc = ckpt_crc32c_combine(crc, ~(uint32_t)c2, part);
		p += 3 * part;
		len -= 3 * part;
		c = ~crc;
	}

	while (len && ((uintptr_t)p & 7)) {
		c = _mm_crc32_u8((uint32_t)c, *p++);
		len--;
	}
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		c = _mm_crc32_u64(c, w);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	return ~(uint32_t)c;
}

/* The CRCs of three blocks of n bytes (n a multiple of 8) at p, as three streams. */
__attribute__((target("sse4.2"))) static void crc3_hw(const unsigned char *p, size_t n,
						      uint32_t *out)
{
	uint64_t c0 = 0xFFFFFFFFu, c1 = 0xFFFFFFFFu, c2 = 0xFFFFFFFFu;

	for (size_t i = 0; i < n; i += 8) {
		uint64_t w0, w1, w2;
		memcpy(&w0, p + i, 8);
		memcpy(&w1, p + n + i, 8);
		memcpy(&w2, p + 2 * n + i, 8);
		c0 = _mm_crc32_u64(c0, w0);
		c1 = _mm_crc32_u64(c1, w1);
		c2 = _mm_crc32_u64(c2, w2);
	}
	out[0] = ~(uint32_t)c0;
	out[1] = ~(uint32_t)c1;
	out[2] = ~(uint32_t)c2;
}

static int have_hw = -1;

static int hw_available(void)
{
	int hw = __atomic_load_n(&have_hw, __ATOMIC_RELAXED);

	if (hw < 0) {
		__builtin_cpu_init();
		hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
		__atomic_store_n(&have_hw, hw, __ATOMIC_RELAXED);
	}
	return hw;
}

uint32_t ckpt_crc32c_update(uint32_t crc, const void *buf, size_t len)
{
	return hw_available() ? crc_hw(crc, buf, len) : ckpt_crc32c_update_sw(crc, buf, len);
}

/* The CRCs of the leading whole blocks of p, three at a time; how many were done. */
static size_t blocks3(const unsigned char *p, size_t len, size_t block, uint32_t *out)
{
	size_t k = 0;

	if (block % 8 == 0 && hw_available())
		for (; (k + 3) * block <= len; k += 3)
			crc3_hw(p + k * block, block, out + k);
	return k;
}
#else
uint32_t ckpt_crc32c_update(uint32_t crc, const void *buf, size_t len)
{
	return ckpt_crc32c_update_sw(crc, buf, len);
}

static size_t blocks3(const unsigned char *p, size_t len, size_t block, uint32_t *out)
{
	(void)p, (void)len, (void)block, (void)out;
	return 0;
}
#endif

uint32_t ckpt_crc32c_blocks(const void *buf, size_t len, size_t block, uint32_t *out)
{
	const unsigned char *p = buf;

	for (size_t k = blocks3(p, len, block, out); k * block < len; k++)
		out[k] = ckpt_crc32c_update(0, p + k * block,
					    len - k * block < block ? len - k * block : block);
	return ckpt_crc32c_join(out, len, block);
}
