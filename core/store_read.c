/*
 * store_read.c — reading values (ckpt/store.h; opening, listing and sealing
 * are in store.c, batches in store_write.c; the format is docs/format.md).
 *
 * Design: a value is opened by loading its kv row and its chunk table
 * (validated against every bound of docs/format.md) into a ckpt_value under
 * the store's mutex; from then on reads use only pread() on data file
 * descriptors that the store opened once and keeps, so they run in parallel
 * without locks and survive the files being unlinked.
 *
 * Invariants:
 *  1. Nothing read from ckpt.db is trusted: every integer is range-checked,
 *     every chunk lies inside its data file (both the recorded and the actual
 *     size), data file names cannot leave d/.
 *  2. Bytes reach the caller only after the CRC32C of the stored bytes that
 *     produced them matched (inline values: checked at ckpt_value_open).
 *  3. A zstd chunk must decompress to exactly its raw length.
 *  4. ckpt_value_pread reads only the chunks overlapping the range. Whole
 *     chunks inside the range go straight into the caller's buffer (raw:
 *     read; zstd: decompressed), without the cache, and a run of adjacent
 *     ones is read with one pread(); a partly covered chunk is decoded once
 *     into the cache (if any) and copied from there.
 *  5. Only verified, decoded chunks enter the cache, keyed by (file id,
 *     offset), which is unique in a store because a committed data file never
 *     changes (appended, adopted or hard-linked: see store_write.c).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
	unsigned char *inl;  /* inline value (verified), or NULL */
	value_chunk *chunks; /* info.nchunks entries */
};

/* ---- values ----------------------------------------------------------- */

static int valid_file_name(const char *n, size_t len)
{
	if (len == 0 || len > STORE_MAX_FILE_NAME || n[0] == '.')
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!((n[i] >= '0' && n[i] <= '9') || (n[i] >= 'a' && n[i] <= 'z') ||
		      (n[i] >= 'A' && n[i] <= 'Z') || n[i] == '-' || n[i] == '_' || n[i] == '.'))
			return 0;
	return 1;
}

/* The data file with this id, opened (mu held). */
static int file_get(store_file **out, ckpt_store *s, int64_t id)
{
	store_file *f = NULL;
	struct stat st;
	const char *name;
	int rc, n;

	for (size_t i = s->nfiles; i-- > 0;)
		if (s->files[i]->id == id) {
			*out = s->files[i];
			return 0;
		}
	sqlite3_reset(s->st_file);
	sqlite3_bind_int64(s->st_file, 1, id);
	rc = sqlite3_step(s->st_file);
	if (rc == SQLITE_DONE) {
		rc =
		    ckpt_error_set(CKPT_ECORRUPT, "%s: data file id %lld is not in the files table",
				   s->dbpath, (long long)id);
		goto done;
	}
	if (rc != SQLITE_ROW) {
		rc = ckpt_store_sqlerr(s, CKPT_ECORRUPT, "reading the files table");
		goto done;
	}
	name = (const char *)sqlite3_column_text(s->st_file, 0);
	n = sqlite3_column_bytes(s->st_file, 0);
	if (sqlite3_column_type(s->st_file, 0) != SQLITE_TEXT || name == NULL ||
	    !valid_file_name(name, (size_t)n) || strlen(name) != (size_t)n ||
	    sqlite3_column_type(s->st_file, 1) != SQLITE_INTEGER ||
	    sqlite3_column_int64(s->st_file, 1) < 0) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: bad files row for id %lld", s->dbpath,
				    (long long)id);
		goto done;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL || (f->name = strdup(name)) == NULL) {
		rc = ckpt_error_nomem();
		goto done;
	}
	f->id = id;
	f->size = (uint64_t)sqlite3_column_int64(s->st_file, 1);
	f->fd = s->ddirfd < 0 ? -1 : openat(s->ddirfd, f->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (f->fd < 0) {
		int e = s->ddirfd < 0 ? ENOENT : errno;
		rc = ckpt_error_errno(e == ENOENT ? CKPT_ECORRUPT : CKPT_EIO, e, "%s/d/%s", s->dir,
				      f->name);
		goto done;
	}
	if (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s/d/%s: not a regular file", s->dir, f->name);
		goto done;
	}
	if ((uint64_t)st.st_size < f->size) {
		rc = ckpt_error_set(CKPT_ECORRUPT,
				    "%s/d/%s: truncated (%lld bytes, index says %llu)", s->dir,
				    f->name, (long long)st.st_size, (unsigned long long)f->size);
		goto done;
	}
	if (s->nfiles == s->capfiles) {
		size_t cap = s->capfiles ? 2 * s->capfiles : 8;
		store_file **nf = realloc(s->files, cap * sizeof(*nf));
		if (nf == NULL) {
			rc = ckpt_error_nomem();
			goto done;
		}
		s->files = nf;
		s->capfiles = cap;
	}
	s->files[s->nfiles++] = f;
	*out = f;
	f = NULL;
	rc = 0;
done:
	sqlite3_reset(s->st_file);
	if (f) {
		if (f->fd >= 0)
			close(f->fd);
		free(f->name);
		free(f);
	}
	return rc;
}

static int int_col(sqlite3_stmt *st, int col, int64_t lo, int64_t hi, int64_t *out)
{
	if (sqlite3_column_type(st, col) != SQLITE_INTEGER)
		return 0;
	*out = sqlite3_column_int64(st, col);
	return *out >= lo && *out <= hi;
}

/* Load the chunk table of v (mu held). */
static int load_chunks(ckpt_value *v)
{
	ckpt_store *s = v->s;
	ckpt_value_info *in = &v->info;
	char kr[160];
	uint32_t i = 0;
	int rc;

	if ((v->chunks = calloc(in->nchunks ? in->nchunks : 1, sizeof(*v->chunks))) == NULL)
		return ckpt_error_nomem();
	sqlite3_bind_blob(s->st_chunks, 1, v->key, (int)v->keylen, SQLITE_STATIC);
	while ((rc = sqlite3_step(s->st_chunks)) == SQLITE_ROW) {
		value_chunk *c = &v->chunks[i];
		uint64_t want_raw = in->size - (uint64_t)i * in->chunk_size;
		int64_t idx, fid = 0, off = 0, stored = 0, raw = 0, codec = 0, crc = 0;

		if (want_raw > in->chunk_size)
			want_raw = in->chunk_size;
		if (i >= in->nchunks || !int_col(s->st_chunks, 0, i, i, &idx) ||
		    !int_col(s->st_chunks, 1, INT64_MIN, INT64_MAX, &fid) ||
		    !int_col(s->st_chunks, 2, 0, INT64_MAX / 2, &off) ||
		    !int_col(s->st_chunks, 4, (int64_t)want_raw, (int64_t)want_raw, &raw) ||
		    !int_col(s->st_chunks, 5, CKPT_CODEC_RAW, CKPT_CODEC_ZSTD, &codec) ||
		    !int_col(s->st_chunks, 3, codec == CKPT_CODEC_RAW ? raw : 1,
			     codec == CKPT_CODEC_RAW ? raw
						     : (int64_t)ZSTD_compressBound((size_t)raw),
			     &stored) ||
		    !int_col(s->st_chunks, 6, 0, UINT32_MAX, &crc)) {
			rc = ckpt_error_set(
			    CKPT_ECORRUPT, "%s: key '%s': bad chunk row %u", s->dbpath,
			    ckpt_store_key_repr(kr, sizeof(kr), v->key, v->keylen), i);
			goto done;
		}
		if ((rc = file_get(&c->file, s, fid)) < 0) {
			ckpt_error_wrap(rc, "key '%s' chunk %u",
					ckpt_store_key_repr(kr, sizeof(kr), v->key, v->keylen), i);
			goto done;
		}
		if ((uint64_t)off + (uint64_t)stored > c->file->size) {
			rc = ckpt_error_set(
			    CKPT_ECORRUPT,
			    "%s/d/%s: key '%s' chunk %u lies past the end of the file", s->dir,
			    c->file->name, ckpt_store_key_repr(kr, sizeof(kr), v->key, v->keylen),
			    i);
			goto done;
		}
		c->off = (uint64_t)off;
		c->stored = (uint32_t)stored;
		c->raw = (uint32_t)raw;
		c->codec = (int)codec;
		c->crc = (uint32_t)crc;
		in->stored_size += c->stored;
		if (c->codec == CKPT_CODEC_ZSTD)
			in->codec = CKPT_CODEC_ZSTD;
		i++;
	}
	if (rc != SQLITE_DONE) {
		rc = ckpt_store_sqlerr(s, CKPT_ECORRUPT, "reading chunks");
		goto done;
	}
	rc = 0;
	if (i != in->nchunks)
		rc = ckpt_error_set(
		    CKPT_ECORRUPT, "%s: key '%s' has %u chunks, expected %u", s->dbpath,
		    ckpt_store_key_repr(kr, sizeof(kr), v->key, v->keylen), i, in->nchunks);
done:
	sqlite3_reset(s->st_chunks);
	sqlite3_clear_bindings(s->st_chunks);
	return rc;
}

/* Load the kv row (and chunks) of v->key (mu held). */
static int load_value(ckpt_value *v)
{
	ckpt_store *s = v->s;
	sqlite3_stmt *st = s->st_kv;
	ckpt_value_info *in = &v->info;
	int64_t gen = 0, size = 0, crc = 0, cs = 0;
	char kr[160];
	int rc;

	sqlite3_bind_blob(st, 1, v->key, (int)v->keylen, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		rc = ckpt_error_set(CKPT_ENOTFOUND, "%s: no key '%s'", s->dir,
				    ckpt_store_key_repr(kr, sizeof(kr), v->key, v->keylen));
		goto done;
	}
	if (rc != SQLITE_ROW) {
		rc = ckpt_store_sqlerr(s, CKPT_ECORRUPT, "reading kv");
		goto done;
	}
	rc = 0;
	if (!int_col(st, 0, 1, INT64_MAX, &gen) || !int_col(st, 1, 0, INT64_MAX / 2, &size) ||
	    !int_col(st, 2, 0, UINT32_MAX, &crc) || !int_col(st, 3, 0, STORE_MAX_CHUNK_SIZE, &cs))
		rc = CKPT_ECORRUPT;
	in->generation = (uint64_t)gen;
	in->size = (uint64_t)size;
	in->crc32c = (uint32_t)crc;
	in->chunk_size = (uint32_t)cs;
	in->codec = CKPT_CODEC_RAW;
	if (rc == 0 && sqlite3_column_type(st, 4) != SQLITE_NULL) {
		const void *b = sqlite3_column_blob(st, 4);
		size_t n = (size_t)sqlite3_column_bytes(st, 4);
		in->is_inline = 1;
		if (sqlite3_column_type(st, 4) != SQLITE_BLOB || n != in->size) {
			rc = CKPT_ECORRUPT;
		} else if ((v->inl = malloc(n ? n : 1)) == NULL) {
			rc = ckpt_error_nomem();
			goto done;
		} else {
			if (n)
				memcpy(v->inl, b, n);
			in->stored_size = n;
			if (ckpt_crc32c_update(0, v->inl, n) != in->crc32c) {
				rc = ckpt_error_set(
				    CKPT_ECORRUPT, "%s: inline value of key '%s': CRC32C mismatch",
				    s->dbpath,
				    ckpt_store_key_repr(kr, sizeof(kr), v->key, v->keylen));
				goto done;
			}
		}
	} else if (rc == 0) {
		uint64_t n = cs ? (in->size + (uint64_t)cs - 1) / (uint64_t)cs : 0;
		if (cs == 0 || n > UINT32_MAX / 2)
			rc = CKPT_ECORRUPT;
		in->nchunks = (uint32_t)n;
	}
	if (rc == CKPT_ECORRUPT) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: bad kv row for key '%s'", s->dbpath,
				    ckpt_store_key_repr(kr, sizeof(kr), v->key, v->keylen));
		goto done;
	}
	sqlite3_reset(st);
	if (!in->is_inline)
		rc = load_chunks(v);
done:
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

int ckpt_value_open(ckpt_value **out, ckpt_store *s, const void *key, size_t keylen)
{
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
	pthread_mutex_lock(&s->mu);
	rc = load_value(v);
	pthread_mutex_unlock(&s->mu);
	if (rc < 0) {
		ckpt_value_free(v);
		return rc;
	}
	*out = v;
	return 0;
}

const ckpt_value_info *ckpt_value_get_info(const ckpt_value *v)
{
	return &v->info;
}

const value_chunk *ckpt_value_chunk_table(const ckpt_value *v)
{
	return v->info.is_inline ? NULL : v->chunks;
}

void ckpt_value_free(ckpt_value *v)
{
	if (v == NULL)
		return;
	free(v->key);
	free(v->inl);
	free(v->chunks);
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

	return ckpt_error_set(CKPT_ECORRUPT, "%s/d/%s: key '%s' chunk %u (offset %llu): %s",
			      v->s->dir, v->chunks[i].file->name,
			      ckpt_store_key_repr(kr, sizeof(kr), v->key, v->keylen), i,
			      (unsigned long long)v->chunks[i].off, what);
}

/* Largest run of adjacent chunks read with one pread(). */
#define MAX_SPAN (32u << 20)

/*
 * Read the stored bytes of chunks i .. i+n-1, which lie back to back in one
 * data file, into dst with one pread loop, and check each chunk's CRC.
 */
static int read_stored(ckpt_value *v, uint32_t i, uint32_t n, void *dst)
{
	const value_chunk *c = &v->chunks[i];
	size_t done = 0, total = 0;

	for (uint32_t k = 0; k < n; k++)
		total += v->chunks[i + k].stored;
	while (done < total) {
		ssize_t r =
		    pread(c->file->fd, (char *)dst + done, total - done, (off_t)(c->off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			char kr[160];
			return ckpt_error_errno(
			    CKPT_EIO, errno, "%s/d/%s: reading key '%s' chunk %u", v->s->dir,
			    c->file->name, ckpt_store_key_repr(kr, sizeof(kr), v->key, v->keylen),
			    i);
		}
		if (r == 0)
			return corrupt(v, i, "data file ends inside the chunk");
		done += (size_t)r;
	}
	__atomic_fetch_add(&v->s->bytes_read, total, __ATOMIC_RELAXED);
	done = 0;
	for (uint32_t k = i; k < i + n; k++) {
		if (ckpt_crc32c_update(0, (char *)dst + done, v->chunks[k].stored) !=
		    v->chunks[k].crc)
			return corrupt(v, k, "CRC32C mismatch");
		done += v->chunks[k].stored;
	}
	return 0;
}

static int decompress(ckpt_value *v, uint32_t i, void *dst, const void *src)
{
	const value_chunk *c = &v->chunks[i];
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
			const value_chunk *c = &v->chunks[k];
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

/* Copy bytes [a, b) of chunk i to dst. */
static int read_chunk_range(ckpt_value *v, uint32_t i, char *dst, uint32_t a, uint32_t b)
{
	const value_chunk *c = &v->chunks[i];
	ckpt_chunk_cache *cache = v->s->cache;
	const ckpt_cached_chunk *e = NULL;
	void *raw;
	int rc;

	if (a == 0 && b == c->raw)
		return read_chunk(v, i, dst);
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
	if (in->is_inline) {
		memcpy(buf, v->inl + off, (size_t)(end - off));
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
			const value_chunk *c = &v->chunks[i];
			for (span = c->stored; i + n < in->nchunks; n++) {
				const value_chunk *p = &v->chunks[i + n - 1], *q = p + 1;
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
		const value_chunk *c = &v->chunks[k];
		crc = c->codec == CKPT_CODEC_RAW ? ckpt_crc32c_combine(crc, c->crc, c->raw)
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
	if (rc == 0 && crc != in->crc32c)
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
	if (!v->info.is_inline && chunks_crc(v, 0, 0, v->info.nchunks, buf) != v->info.crc32c) {
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
