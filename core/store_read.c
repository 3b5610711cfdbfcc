/*
 * store_read.c — reading values, for every backend (ckpt/store.h,
 * ckpt/sys/store_backend.h; the sqlite backend is store_sqlite.c, batches are
 * store_write.c; the format is docs/format.md).
 *
 * Design: a value is opened by asking the backend for its description (inline
 * bytes, a chunk table, or a reader of its own); a chunk table is checked
 * against the bounds every backend must keep. From then on reads use only
 * pread() on data file descriptors the backend opened once and keeps, so they
 * run in parallel without locks and survive the files being unlinked.
 *
 * Invariants:
 *  1. A chunk table is checked before use: chunk i holds raw bytes
 *     [i * chunk_size, min(size, (i + 1) * chunk_size)), a RAW chunk stores
 *     exactly its raw bytes, and every chunk lies inside its data file.
 *  2. Bytes reach the caller only after the CRC32C of the stored bytes that
 *     produced them matched, where the backend records one (inline values:
 *     checked by the backend before ckpt_value_open returns).
 *  3. A zstd chunk must decompress to exactly its raw length.
 *  4. ckpt_value_pread reads only the chunks overlapping the range. Whole
 *     chunks inside the range go straight into the caller's buffer (raw:
 *     read; zstd: decompressed), without the cache, and a run of adjacent
 *     ones is read with one pread(); a partly covered chunk is decoded once
 *     into the cache (if any) and copied from there.
 *  5. Only verified, decoded chunks enter the cache, keyed by (file id,
 *     offset), which is unique in a store because a committed data file never
 *     changes (appended, adopted or hard-linked: see store_write.c).
 *  6. Part of a RAW chunk with block CRCs is read by blocks: only the blocks
 *     the range overlaps are read, each checked against its own CRC, without
 *     the cache (the data file's page cache keeps them). ckpt_value_verify
 *     also checks that a chunk's block CRCs combine to its CRC.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zstd.h>

#include "crc32c.h"
#include "error_private.h"
#include "store_private.h"

struct ckpt_value {
	ckpt_store *s;
	ckpt_value_info info;
	unsigned char *key;
	size_t keylen;
	unsigned char *inl;	      /* inline value (verified), or NULL */
	ckpt_store_chunk *chunks;     /* info.nchunks entries, or NULL */
	const ckpt_value_reader *rd; /* a computed value's reader, or NULL */
	void *rd_ctx;
	int has_value_crc; /* info.crc32c covers the whole value */
	uint32_t *blocks;  /* block CRCs of the chunks with has_blocks, or NULL */
};

/* Check a backend's chunk table (invariant 1); fill in stored_size and codec. */
static int check_chunks(ckpt_value *v)
{
	ckpt_value_info *in = &v->info;
	char kr[160];
	uint64_t n = in->chunk_size ? (in->size + in->chunk_size - 1) / in->chunk_size : 0;

	if (in->chunk_size == 0 || n != in->nchunks || v->chunks == NULL)
		return ckpt_error_set(CKPT_ECORRUPT, "%s: key '%s': %u chunks of %u bytes for %llu",
				      v->s->dir, ckpt_store_key_repr(kr, sizeof(kr), v->key, v->keylen),
				      in->nchunks, in->chunk_size, (unsigned long long)in->size);
	for (uint32_t i = 0; i < in->nchunks; i++) {
		ckpt_store_chunk *c = &v->chunks[i];
		uint64_t want = in->size - (uint64_t)i * in->chunk_size;
		if (want > in->chunk_size)
			want = in->chunk_size;
		if (v->blocks == NULL || v->s->be->version < 3)
			c->has_blocks = 0; /* before version 3 the byte is padding */
		if (c->raw != want || (c->codec == CKPT_CODEC_RAW && c->stored != c->raw) ||
		    (c->has_blocks && c->codec != CKPT_CODEC_RAW) ||
		    (c->codec != CKPT_CODEC_RAW && c->codec != CKPT_CODEC_ZSTD) ||
		    c->stored == 0 || c->off > c->file->size || c->stored > c->file->size - c->off)
			return ckpt_error_set(CKPT_ECORRUPT, "%s/%s: key '%s' chunk %u: bad placement",
					      v->s->dir, c->file->path,
					      ckpt_store_key_repr(kr, sizeof(kr), v->key, v->keylen), i);
		in->stored_size += c->stored;
		if (c->codec == CKPT_CODEC_ZSTD)
			in->codec = CKPT_CODEC_ZSTD;
	}
	return 0;
}

int ckpt_value_open(ckpt_value **out, ckpt_store *s, const void *key, size_t keylen)
{
	ckpt_value_source src;
	ckpt_value *v;
	int rc;

	*out = NULL;
	if (keylen > STORE_MAX_KEY)
		return ckpt_error_set(CKPT_ENOTFOUND, "%s: key too long (%zu bytes)", s->dir,
				      keylen);
	if ((v = calloc(1, sizeof(*v))) == NULL || (v->key = malloc(keylen ? keylen : 1)) == NULL) {
		free(v);
		return ckpt_error_nomem();
	}
	v->s = s;
	v->keylen = keylen;
	if (keylen)
		memcpy(v->key, key, keylen);
	memset(&src, 0, sizeof(src));
	if ((rc = s->be->open_value(&src, s->be, key, keylen)) < 0) {
		ckpt_value_free(v);
		return rc;
	}
	v->info = src.info;
	v->has_value_crc = src.has_value_crc;
	v->inl = src.inline_data;
	v->chunks = src.chunks;
	v->rd = src.reader;
	v->rd_ctx = src.reader_ctx;
	v->blocks = src.block_crcs;
	assert((v->inl != NULL) + (v->chunks != NULL) + (v->rd != NULL) <= 1);
	if (v->rd == &ckpt_tiles_reader) { /* a tiled value: its tiles become values of s */
		v->info.nchunks = 0;
		v->info.is_inline = 0;
		rc = ckpt_tiles_bind(v->rd_ctx, s, key, keylen, &v->info);
	} else if (v->inl || v->rd) {
		v->info.nchunks = 0;
		v->info.is_inline = v->inl != NULL;
		if (v->inl)
			v->info.stored_size = v->info.size;
	} else if (v->info.size > 0 || v->info.nchunks > 0) {
		v->info.is_inline = 0;
		v->info.stored_size = 0;
		v->info.codec = CKPT_CODEC_RAW;
		rc = check_chunks(v);
	} else { /* an empty value needs no bytes: treat it as inline */
		v->info.is_inline = 1;
		rc = (v->inl = malloc(1)) ? 0 : ckpt_error_nomem();
	}
	if (rc < 0) {
		ckpt_value_free(v);
		return rc;
	}
	*out = v;
	return 0;
}

int ckpt_value_from_chunks(ckpt_value **out, ckpt_store *s, const void *key, size_t keylen,
			   const ckpt_value_info *in, ckpt_store_chunk *chunks)
{
	ckpt_value *v;
	int rc;

	*out = NULL;
	if ((v = calloc(1, sizeof(*v))) == NULL || (v->key = malloc(keylen ? keylen : 1)) == NULL) {
		free(v);
		free(chunks);
		return ckpt_error_nomem();
	}
	v->s = s;
	v->keylen = keylen;
	if (keylen)
		memcpy(v->key, key, keylen);
	v->info = *in;
	v->info.is_inline = 0;
	v->info.stored_size = 0;
	v->info.codec = CKPT_CODEC_RAW;
	v->chunks = chunks;
	v->has_value_crc = 1;
	if ((rc = check_chunks(v)) < 0) {
		ckpt_value_free(v);
		return rc;
	}
	*out = v;
	return 0;
}

store_tiled *ckpt_value_tiled(const ckpt_value *v)
{
	return v->rd == &ckpt_tiles_reader ? v->rd_ctx : NULL;
}

const ckpt_value_info *ckpt_value_get_info(const ckpt_value *v)
{
	return &v->info;
}

int ckpt_value_describe(char **out, const ckpt_value *v)
{
	ckpt_store_backend *be = v->s->be;

	*out = NULL;
	if (be->version < 2 || be->describe == NULL)
		return 0;
	return be->describe(out, be, v->key, v->keylen);
}

const ckpt_store_chunk *ckpt_value_chunk_table(const ckpt_value *v)
{
	return v->chunks;
}

const uint32_t *ckpt_value_chunk_blocks(const ckpt_value *v, uint32_t i)
{
	assert(v->chunks && i < v->info.nchunks);
	return v->chunks[i].has_blocks ? store_chunk_blocks(v->blocks, i, v->info.chunk_size)
				       : NULL;
}

void ckpt_value_free(ckpt_value *v)
{
	if (v == NULL)
		return;
	if (v->rd)
		v->rd->free(v->rd_ctx);
	free(v->key);
	free(v->inl);
	free(v->chunks);
	free(v->blocks);
	free(v);
}

int ckpt_store_stat(ckpt_value_info *out, ckpt_store *s, const void *key, size_t keylen)
{
	ckpt_value *v;
	int rc = ckpt_value_open(&v, s, key, keylen);

	if (rc == 0) {
		*out = v->info;
		ckpt_value_free(v);
	}
	return rc;
}

static int corrupt(const ckpt_value *v, uint32_t i, const char *what)
{
	char kr[160];

	return ckpt_error_set(CKPT_ECORRUPT, "%s/%s: key '%s' chunk %u (offset %llu): %s",
			      v->s->dir, v->chunks[i].file->path,
			      ckpt_store_key_repr(kr, sizeof(kr), v->key, v->keylen), i,
			      (unsigned long long)v->chunks[i].off, what);
}

/* preadv() until every iovec is full; 0, the errno, or -1 at the end of the file. */
static int preadv_full(int fd, struct iovec *iov, int n, off_t off)
{
	while (n > 0) {
		ssize_t r = preadv(fd, iov, n, off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? errno : -1;
		off += r;
		for (; n > 0 && (size_t)r >= iov->iov_len; iov++, n--)
			r -= (ssize_t)iov->iov_len;
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + r;
			iov->iov_len -= (size_t)r;
		}
	}
	return 0;
}

/* A failed read of chunk i (preadv_full's result err, non-zero): its error. */
static int read_failed(ckpt_value *v, uint32_t i, int err)
{
	char kr[160];

	if (err < 0)
		return corrupt(v, i, "data file ends inside the chunk");
	return ckpt_error_errno(CKPT_EIO, err, "%s/%s: reading key '%s' chunk %u", v->s->dir,
				v->chunks[i].file->path,
				ckpt_store_key_repr(kr, sizeof(kr), v->key, v->keylen), i);
}

/* Largest run of adjacent chunks read with one pread(). */
#define MAX_SPAN (32u << 20)

/*
 * Read the stored bytes of chunks i .. i+n-1, which lie back to back in one
 * data file, into dst with one read (preadv_full), and check each chunk's CRC.
 */
static int read_stored(ckpt_value *v, uint32_t i, uint32_t n, void *dst)
{
	const ckpt_store_chunk *c = &v->chunks[i];
	size_t done = 0, total = 0;
	struct iovec iov;
	int err;

	for (uint32_t k = 0; k < n; k++)
		total += v->chunks[i + k].stored;
	iov.iov_base = dst;
	iov.iov_len = total;
	if ((err = preadv_full(c->file->fd, &iov, 1, (off_t)c->off)) != 0)
		return read_failed(v, i, err);
	__atomic_fetch_add(&v->s->bytes_read, total, __ATOMIC_RELAXED);
	for (uint32_t k = i; k < i + n; k++) {
		const ckpt_store_chunk *ck = &v->chunks[k];
		if (ck->has_crc && ckpt_crc32c_update(0, (char *)dst + done, ck->stored) != ck->crc32c)
			return corrupt(v, k, "CRC32C mismatch");
		done += ck->stored;
	}
	return 0;
}

static int decompress(ckpt_value *v, uint32_t i, void *dst, const void *src)
{
	const ckpt_store_chunk *c = &v->chunks[i];
	size_t n = ZSTD_decompress(dst, c->raw, src, c->stored);

	if (ZSTD_isError(n))
		return corrupt(v, i, ZSTD_getErrorName(n));
	if (n != c->raw)
		return corrupt(v, i, "decompressed size differs from the raw length");
	return 0;
}

/*
 * Decode chunks i .. i+n-1 (back to back in one file) into dst, which
 * receives their raw bytes in order. Raw chunks are read straight into dst.
 */
static int read_chunks(ckpt_value *v, uint32_t i, uint32_t n, void *dst)
{
	size_t stored = 0, raw = 0;
	char *tmp;
	int rc = 0;

	for (uint32_t k = i; k < i + n; k++)
		if (v->chunks[k].codec != CKPT_CODEC_RAW)
			break;
		else if (k == i + n - 1)
			return read_stored(v, i, n, dst);
	for (uint32_t k = i; k < i + n; k++)
		stored += v->chunks[k].stored;
	if ((tmp = malloc(stored)) == NULL)
		return ckpt_error_nomem();
	if ((rc = read_stored(v, i, n, tmp)) == 0) {
		stored = 0;
		for (uint32_t k = i; k < i + n && rc == 0; k++) {
			const ckpt_store_chunk *c = &v->chunks[k];
			if (c->codec == CKPT_CODEC_RAW)
				memcpy((char *)dst + raw, tmp + stored, c->raw);
			else
				rc = decompress(v, k, (char *)dst + raw, tmp + stored);
			stored += c->stored;
			raw += c->raw;
		}
	}
	free(tmp);
	return rc;
}

static int read_chunk(ckpt_value *v, uint32_t i, void *dst)
{
	return read_chunks(v, i, 1, dst);
}

/* Where block k of a read_blocks read lands: the bounce buffer for a partly
 * covered first or last block (bounced), else its place in dst. */
struct block_map {
	uint32_t k0, k1, a;
	int head, tail;
	unsigned char *bounce;
	char *dst;
};

static unsigned char *block_buf(const struct block_map *m, uint32_t k, int *bounced)
{
	*bounced = 1;
	if (k == m->k0 && m->head)
		return m->bounce;
	if (k == m->k1 - 1 && m->tail)
		return m->bounce + CKPT_CRC_BLOCK;
	*bounced = 0;
	return (unsigned char *)m->dst + ((uint64_t)k * CKPT_CRC_BLOCK - m->a);
}

/*
 * Bytes [a, b) of RAW chunk i, which has block CRCs (invariant 6): one preadv
 * of the blocks the range overlaps, whole blocks straight into dst, a partly
 * covered first or last block into a bounce buffer; each block checked.
 */
static int read_blocks(ckpt_value *v, uint32_t i, char *dst, uint32_t a, uint32_t b)
{
	const ckpt_store_chunk *c = &v->chunks[i];
	const uint32_t B = CKPT_CRC_BLOCK, k0 = a / B, k1 = (b + B - 1) / B;
	const uint32_t end = k1 * B < c->stored ? k1 * B : c->stored; /* of the bytes read */
	struct block_map m = {k0, k1, a, a > k0 * B, b < end, NULL, dst}; /* head, tail: partial */
	const uint32_t *crcs = ckpt_value_chunk_blocks(v, i);
	struct iovec iov[3];
	int n = 0, rc = 0, err, bounced;

	assert(crcs && a < b && b <= c->stored && c->stored == c->raw);
	if ((m.head || m.tail) && (m.bounce = malloc(2 * (size_t)B)) == NULL)
		return ckpt_error_nomem();
	for (uint32_t k = k0; k < k1; k++) {
		uint32_t lo = k * B, hi = end - lo < B ? end : lo + B;
		unsigned char *p = block_buf(&m, k, &bounced);
		if (n > 0 && (unsigned char *)iov[n - 1].iov_base + iov[n - 1].iov_len == p) {
			iov[n - 1].iov_len += hi - lo;
		} else {
			assert(n < 3); /* a bounced first block, whole blocks, a bounced last one */
			iov[n].iov_base = p;
			iov[n++].iov_len = hi - lo;
		}
	}
	if ((err = preadv_full(c->file->fd, iov, n, (off_t)(c->off + (uint64_t)k0 * B))) != 0) {
		free(m.bounce);
		return read_failed(v, i, err);
	}
	__atomic_fetch_add(&v->s->bytes_read, (uint64_t)(end - k0 * B), __ATOMIC_RELAXED);
	for (uint32_t k = k0; k < k1 && rc == 0; k++) {
		uint32_t lo = k * B, hi = end - lo < B ? end : lo + B;
		const unsigned char *p = block_buf(&m, k, &bounced);
		if (ckpt_crc32c_update(0, p, hi - lo) != crcs[k]) {
			char what[64];
			snprintf(what, sizeof(what), "CRC32C mismatch in block %u", k);
			rc = corrupt(v, i, what);
		} else if (bounced) {
			uint32_t from = a > lo ? a : lo, to = b < hi ? b : hi;
			memcpy(dst + (from - a), p + (from - lo), to - from);
		}
	}
	free(m.bounce);
	return rc;
}

/* Copy bytes [a, b) of chunk i to dst. */
static int read_chunk_range(ckpt_value *v, uint32_t i, char *dst, uint32_t a, uint32_t b)
{
	const ckpt_store_chunk *c = &v->chunks[i];
	ckpt_chunk_cache *cache = v->s->cache;
	const ckpt_cached_chunk *e = NULL;
	void *raw;
	int rc;

	if (a == 0 && b == c->raw)
		return read_chunk(v, i, dst);
	if (c->has_blocks)
		return read_blocks(v, i, dst, a, b);
	if (cache && (e = ckpt_chunk_cache_get(cache, (uint64_t)c->file->id, c->off)) != NULL) {
		memcpy(dst, (const char *)e->data + a, b - a);
		ckpt_chunk_cache_release(cache, e);
		return 0;
	}
	if ((raw = malloc(c->raw)) == NULL)
		return ckpt_error_nomem();
	if ((rc = read_chunk(v, i, raw)) < 0) {
		free(raw);
		return rc;
	}
	if (cache == NULL) {
		memcpy(dst, (char *)raw + a, b - a);
		free(raw);
		return 0;
	}
	if ((e = ckpt_chunk_cache_put(cache, (uint64_t)c->file->id, c->off, raw, c->raw)) == NULL)
		return ckpt_error_nomem();
	memcpy(dst, (const char *)e->data + a, b - a);
	ckpt_chunk_cache_release(cache, e);
	return 0;
}

int ckpt_value_pread(size_t *out_n, ckpt_value *v, void *buf, size_t len, uint64_t off)
{
	const ckpt_value_info *in = &v->info;
	uint64_t end, pos;
	int rc;

	*out_n = 0;
	if (off >= in->size || len == 0)
		return 0;
	end = in->size - off < len ? in->size : off + len;
	if (in->is_inline || v->rd) {
		if (in->is_inline)
			memcpy(buf, v->inl + off, (size_t)(end - off));
		else if ((rc = v->rd->pread(v->rd_ctx, buf, (size_t)(end - off), off)) < 0)
			return rc;
		*out_n = (size_t)(end - off);
		return 0;
	}
	for (pos = off; pos < end;) {
		uint32_t i = (uint32_t)(pos / in->chunk_size), n = 1;
		uint64_t cstart = (uint64_t)i * in->chunk_size;
		uint64_t cend = cstart + v->chunks[i].raw;
		uint64_t stop = end < cend ? end : cend, span;

		assert(i < in->nchunks && pos >= cstart && pos < cend);
		if (pos > cstart || stop < cend) { /* part of one chunk */
			rc = read_chunk_range(v, i, (char *)buf + (pos - off),
					      (uint32_t)(pos - cstart), (uint32_t)(stop - cstart));
		} else { /* whole chunks: one pread for a run of adjacent ones */
			const ckpt_store_chunk *c = &v->chunks[i];
			for (span = c->stored; i + n < in->nchunks; n++) {
				const ckpt_store_chunk *p = &v->chunks[i + n - 1], *q = p + 1;
				if (q->file != c->file || q->off != p->off + p->stored ||
				    span + q->stored > MAX_SPAN || stop + q->raw > end)
					break;
				span += q->stored;
				stop += q->raw;
			}
			rc = read_chunks(v, i, n, (char *)buf + (pos - off));
		}
		if (rc < 0)
			return rc;
		pos = stop;
	}
	*out_n = (size_t)(end - off);
	return 0;
}

/*
 * Extend crc over the raw bytes of chunks i .. i+n-1, just read into buf:
 * a raw chunk's CRC was verified on the way in and is the CRC of its raw
 * bytes, so it is combined without another pass over the data.
 */
static uint32_t chunks_crc(const ckpt_value *v, uint32_t crc, uint32_t i, uint32_t n,
			   const unsigned char *buf)
{
	for (uint32_t k = i; k < i + n; k++) {
		const ckpt_store_chunk *c = &v->chunks[k];
		crc = c->codec == CKPT_CODEC_RAW && c->has_crc
			  ? ckpt_crc32c_combine(crc, c->crc32c, c->raw)
			  : ckpt_crc32c_update(crc, buf, c->raw);
		buf += c->raw;
	}
	return crc;
}

int ckpt_value_verify(ckpt_value *v)
{
	const ckpt_value_info *in = &v->info;
	uint32_t crc = 0;
	void *buf;
	char kr[160];
	int rc = 0;

	if (in->is_inline)
		return 0; /* checked by ckpt_value_open */
	if (v->rd && v->rd->verify)
		return v->rd->verify(v->rd_ctx);
	if (v->rd) { /* read it all: the reader checks what it reads */
		void *all = NULL;
		size_t n;
		rc = ckpt_store_get(&all, &n, v->s, v->key, v->keylen);
		free(all);
		return rc;
	}
	/* A chunk's block CRCs must describe the bytes its CRC describes (invariant 6). */
	for (uint32_t i = 0; i < in->nchunks; i++) {
		const uint32_t *blk = ckpt_value_chunk_blocks(v, i);
		if (blk && ckpt_crc32c_join(blk, v->chunks[i].stored, CKPT_CRC_BLOCK) !=
			       v->chunks[i].crc32c)
			return corrupt(v, i, "its block CRCs do not combine to its CRC32C");
	}
	/* Whole chunks at a time, so that ckpt_value_pread reads runs of them at once. */
	size_t win =
	    (MAX_SPAN / in->chunk_size ? MAX_SPAN / in->chunk_size : 1) * (size_t)in->chunk_size;
	if ((buf = malloc(win)) == NULL)
		return ckpt_error_nomem();
	for (uint64_t off = 0; off < in->size && rc == 0; off += win) {
		size_t n;
		uint32_t first = (uint32_t)(off / in->chunk_size);
		if ((rc = ckpt_value_pread(&n, v, buf, win, off)) == 0)
			crc =
			    chunks_crc(v, crc, first,
				       (uint32_t)((n + in->chunk_size - 1) / in->chunk_size), buf);
	}
	free(buf);
	if (rc == 0 && v->has_value_crc && crc != in->crc32c)
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: key '%s': whole-value CRC32C mismatch",
				    v->s->dir,
				    ckpt_store_key_repr(kr, sizeof(kr), v->key, v->keylen));
	return rc;
}

int ckpt_store_get(void **out, size_t *out_len, ckpt_store *s, const void *key, size_t keylen)
{
	ckpt_value *v = NULL;
	void *buf = NULL;
	size_t n = 0;
	char kr[160];
	int rc;

	*out = NULL;
	*out_len = 0;
	if ((rc = ckpt_value_open(&v, s, key, keylen)) < 0)
		return rc;
	if (v->info.size > SIZE_MAX - 1 || (buf = malloc((size_t)v->info.size + 1)) == NULL) {
		rc = ckpt_error_nomem();
		goto done;
	}
	if ((rc = ckpt_value_pread(&n, v, buf, (size_t)v->info.size, 0)) < 0)
		goto done;
	assert(n == v->info.size);
	if (v->has_value_crc && !v->info.is_inline &&
	    (v->rd ? ckpt_crc32c_update(0, buf, n) : chunks_crc(v, 0, 0, v->info.nchunks, buf)) !=
		v->info.crc32c) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: key '%s': whole-value CRC32C mismatch",
				    s->dir, ckpt_store_key_repr(kr, sizeof(kr), key, keylen));
		goto done;
	}
	*out = buf;
	*out_len = n;
	buf = NULL;
done:
	free(buf);
	ckpt_value_free(v);
	return rc;
}
