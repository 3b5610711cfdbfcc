/*
 * crc32c.h — CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the
 * checksum of every chunk and inline value of the store (docs/format.md).
 *
 * ckpt_crc32c_update(0, buf, len) is the CRC of buf; pass the previous result
 * to continue over more bytes: update(update(0, a), b) == crc of a||b.
 * crc32c("123456789") = 0xE3069283. Uses the SSE4.2 crc32 instruction when
 * the CPU has it (detected once at run time; three interleaved streams joined
 * with ckpt_crc32c_combine for long buffers), a lookup table otherwise.
 */
#ifndef CKPT_CRC32C_H
#define CKPT_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t ckpt_crc32c_update(uint32_t crc, const void *buf, size_t len);

/*
 * The CRC of a||b from crc_a = CRC(a), crc_b = CRC(b) and len_b = |b|,
 * without the bytes (zlib's crc32_combine for this polynomial). A few
 * microseconds: use it per chunk, not per byte.
 */
uint32_t ckpt_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

/*
 * The CRC of buf, and in out[k] the CRC of its k-th `block` bytes (the last
 * block may be shorter): ceil(len / block) entries, block > 0. About as fast
 * as ckpt_crc32c_update: three blocks are the three interleaved streams, and
 * the whole CRC joins the blocks with one multiplication each.
 */
uint32_t ckpt_crc32c_blocks(const void *buf, size_t len, size_t block, uint32_t *out);

/*
 * The CRC of len bytes from the CRCs of their consecutive `block`-byte
 * blocks (the last may be shorter): what ckpt_crc32c_blocks returns, without
 * the bytes; one multiplication per whole block.
 */
uint32_t ckpt_crc32c_join(const uint32_t *crcs, size_t len, size_t block);

/* The portable table implementation, exposed so tests can compare both. */
uint32_t ckpt_crc32c_update_sw(uint32_t crc, const void *buf, size_t len);

#endif
