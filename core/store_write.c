/*
 * store_write.c — batches, value writers, the compression pool and commits
 * (ckpt/store.h; format in docs/format.md).
 *
 * Design: a batch stages its index changes in memory (a list of ops) and
 * appends chunk bytes to its own new data files d/<gen>-<nonce>-<seq>. A
 * value writer cuts the stream into chunks of chunk_size raw bytes and hands
 * them to a pool of worker threads that compress them (or decide to keep
 * them raw); the writer's thread appends finished chunks in submission order,
 * so data files are written sequentially with one write() per chunk. Behind
 * the writer, data files stream out to disk window by window and leave the
 * page cache (stream_out), so a save reuses a few windows of page cache. At
 * commit the data files are fsynced, then d/, then one sqlite transaction
 * inserts the files, kv and chunks rows and bumps the generation.
 *
 * Two puts avoid copying bytes. ckpt_batch_put_file *adopts* a file: it is
 * hard-linked into d/ under a name of the batch and the value is raw chunks
 * at their place in it (bytes outside the range, like a .npy header, are
 * simply not referenced); its CRCs come from one read of the range. It copies
 * instead when the range is small or a sample of it compresses.
 * ckpt_batch_put_clone hard-links the data files of an immutable store's value
 * into d/ (each inode once per batch; the source's name when free) and copies
 * its chunk table. So a batch has three kinds of data files (batch_file.kind):
 * appended (created and written by the batch), adopted and linked; each gets
 * a files row at commit and is unlinked if the batch does not commit.
 *
 * Invariants:
 *  1. At most max_bytes_in_flight raw bytes are queued or being compressed
 *     by one writer (plus the chunk being filled and compressed outputs).
 *  2. Chunks are appended in order; chunk i of a value holds raw bytes
 *     [i * chunk_size, min(size, (i + 1) * chunk_size)).
 *  3. No index row references a data file before that file and d/ are
 *     fsynced (durability order). Appended and adopted files are fsynced at
 *     commit; linked files are already durable (their store was sealed), only
 *     their new directory entries need d/'s fsync.
 *  4. A batch that fails or is aborted leaves no index change and removes
 *     its data files. After an I/O error the batch is poisoned: every later
 *     call fails and commit refuses.
 *  5. Worker threads never touch the batch or the store: only their job.
 *  6. The whole-value CRC is the chunks' raw CRCs combined in append order
 *     (a raw chunk's stored CRC is its raw CRC: no second pass over it).
 *  7. Chunk buffers are reused within one value and freed when its writer
 *     ends, so an open batch holds no buffers between values.
 *  8. Only the current appended file (b->cur) is ever written; adopted and
 *     linked files are never written by the store, and every data file keeps
 *     the bytes its files row covers unchanged once committed.
 *  9. A zero-copy put that fails stages nothing: the links it made are
 *     removed and no op is added.
 * 10. A tiles-only batch (a non-primary process of a multi-process save,
 *     ckpt_batch_set_tiles_only) stages tiles only: every other put
 *     succeeds without staging an op, writing a byte or taking a buffer.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "bytes.h"
#include "crc32c.h"
#include "error_private.h"
#include "store_private.h"

/* Keep a zstd chunk only if it saves at least 1/10 of the raw bytes. */
#define MIN_SAVING_DIV 10
/* Sample size for the "is this worth compressing" test. */
#define SAMPLE_PIECES 4
#define SAMPLE_PIECE  4096
/* ckpt_batch_put_file: adopt ranges of at least this many chunks, else copy. */
#define ADOPT_MIN_CHUNKS 4
/* ckpt_batch_put_file: windows of the range sampled for compressibility. */
#define SAMPLE_WINDOWS 4
/* ckpt_batch_put_file: bytes read at a time (rounded down to whole chunks). */
#define PUT_FILE_SLICE (8u << 20)
/* Data files go to disk in windows of this many bytes (see stream_out). */
#define WRITEBACK_WINDOW (16u << 20)

typedef struct chunk_rec {
	int64_t file_id;
	uint64_t off;
	uint32_t stored, raw, crc;
	int codec;
	int has_blocks; /* RAW: its block CRCs are in the op's (writer's) blocks */
} chunk_rec;

enum { OP_PUT, OP_DELETE, OP_TILE };

/* Where a tile lies in its global array (ckpt_value_writer_open_tile). */
typedef struct tile_desc {
	uint64_t itemsize, t0;
	unsigned ndim;
	uint64_t global[CKPT_TILE_MAX_NDIM], start[CKPT_TILE_MAX_NDIM], shape[CKPT_TILE_MAX_NDIM];
} tile_desc;

typedef struct op {
	int kind;
	unsigned char *key;
	size_t keylen;
	uint64_t size;
	uint32_t crc, chunk_size;
	int is_inline;
	unsigned char *inl; /* inline bytes (size of them) */
	chunk_rec *chunks;
	uint32_t *blocks; /* block CRCs of the chunks with has_blocks, or NULL */
	uint32_t nchunks;
	tile_desc *tile; /* OP_TILE: the box */
} op;

/* How a data file of the batch came to be in d/ (see the module comment). */
enum { FILE_APPENDED, FILE_ADOPTED, FILE_LINKED };

typedef struct batch_file {
	int64_t id;
	char name[STORE_MAX_FILE_NAME + 1];
	int kind;
	uint64_t size;	  /* appended: bytes written; adopted, linked: the files row size */
	uint64_t flushed; /* bytes [0, flushed) were handed to writeback */
	uint64_t dropped; /* bytes [0, dropped) were written out and left the page cache */
	int fd;		  /* appended: open while current, -1 once fsynced; others: -1 */
	dev_t dev;	  /* linked: the source inode, so that each is linked once */
	ino_t ino;
} batch_file;

typedef struct job {
	unsigned char *raw;
	uint32_t raw_len;
	int level;
	unsigned char *out; /* compressed bytes, or NULL: store raw */
	uint32_t out_len;
	uint32_t crc;		   /* of the stored bytes */
	uint32_t raw_crc;	   /* of the raw bytes (the same for a raw chunk) */
	uint32_t *blocks;	   /* raw: block CRCs, if wanted (see raw_crc) */
	int done;		   /* guarded by pool mu */
	struct job *next;	   /* pool queue */
	struct job *next_inflight; /* writer's FIFO */
} job;

typedef struct pool {
	pthread_mutex_t mu;
	pthread_cond_t work_cv, done_cv;
	job *head, *tail; /* waiting for a worker (guarded by mu) */
	int stop;
	pthread_t *threads;
	unsigned nthreads;
} pool;

struct ckpt_batch {
	ckpt_store *s;
	uint64_t generation; /* expected; the commit uses the index's value + 1 */
	char nonce[17];
	op *ops;
	size_t nops, capops;
	batch_file *files;
	size_t nfiles, capfiles;
	ptrdiff_t cur; /* index in files of the data file being appended, or -1 */
	int64_t next_file_id;
	ckpt_value_writer *writer;
	pool *pool;
	int poisoned; /* first I/O error code, or 0 */
	int tiles_only; /* a non-primary's batch: plain values are accepted and skipped */
	void **spare; /* chunk buffers kept for reuse: fresh pages cost page faults */
	size_t nspare, capspare;
};

struct ckpt_value_writer {
	ckpt_batch *b;
	unsigned char *key;
	size_t keylen;
	int level;
	unsigned char *buf; /* chunk being filled: chunk_size bytes */
	uint32_t fill;
	uint64_t size;
	uint32_t crc; /* of the raw bytes of the chunks appended so far */
	chunk_rec *chunks;
	uint32_t *blocks;  /* capchunks * STORE_NBLOCKS(chunk_size), or NULL */
	uint32_t *bcrcs;   /* one chunk's block CRCs, for raw chunks appended directly */
	int want_blocks;   /* raw chunks record block CRCs (format 1.2, not tiles) */
	uint32_t nchunks, capchunks;
	job *inflight_head, *inflight_tail;
	uint64_t inflight_bytes;
	int failed; /* a write failed: the value is incomplete and close refuses it */
	tile_desc *tile; /* a tile's writer: its box; NULL for a value */
	int skip;   /* a plain value of a tiles-only batch: bytes are dropped, no op */
};

/* ---- the compression pool -------------------------------------------- */

/* Does a sample of the chunk shrink by at least 1/MIN_SAVING_DIV at level 1? */
static int worth_compressing(ZSTD_CCtx *cc, const unsigned char *raw, uint32_t n, void *scratch,
			     size_t scratch_len)
{
	unsigned char sample[SAMPLE_PIECES * SAMPLE_PIECE];
	size_t c;

	if (n <= sizeof(sample))
		return 1;
	for (int i = 0; i < SAMPLE_PIECES; i++)
		memcpy(sample + i * SAMPLE_PIECE,
		       raw + (uint64_t)(n - SAMPLE_PIECE) * (uint64_t)i / (SAMPLE_PIECES - 1),
		       SAMPLE_PIECE);
	c = ZSTD_compressCCtx(cc, scratch, scratch_len, sample, sizeof(sample), 1);
	return !ZSTD_isError(c) && c <= sizeof(sample) - sizeof(sample) / MIN_SAVING_DIV;
}

/*
 * CRC-32C of a raw chunk; with blocks non-NULL also its block CRCs there
 * (STORE_NBLOCKS entries at most), at the cost of one pass.
 */
static uint32_t raw_crc(const void *p, uint32_t n, uint32_t *blocks)
{
	return blocks ? ckpt_crc32c_blocks(p, n, CKPT_CRC_BLOCK, blocks)
		      : ckpt_crc32c_update(0, p, n);
}

static void compress_job(job *j, ZSTD_CCtx *cc, void *scratch, size_t scratch_len)
{
	if (j->level > 0 && cc && worth_compressing(cc, j->raw, j->raw_len, scratch, scratch_len)) {
		size_t bound = ZSTD_compressBound(j->raw_len), n;
		if ((j->out = malloc(bound)) == NULL)
			goto raw; /* out of memory: storing it raw is still correct */
		n = ZSTD_compressCCtx(cc, j->out, bound, j->raw, j->raw_len, j->level);
		if (!ZSTD_isError(n) && n <= j->raw_len - j->raw_len / MIN_SAVING_DIV) {
			j->out_len = (uint32_t)n;
			j->crc = ckpt_crc32c_update(0, j->out, j->out_len);
			j->raw_crc = ckpt_crc32c_update(0, j->raw, j->raw_len);
			return;
		}
		free(j->out);
		j->out = NULL;
	}
raw:
	j->crc = j->raw_crc = raw_crc(j->raw, j->raw_len, j->blocks);
}

static void *worker_main(void *arg)
{
	pool *p = arg;
	ZSTD_CCtx *cc = ZSTD_createCCtx(); /* NULL: every chunk is stored raw */
	size_t scratch_len = ZSTD_compressBound(SAMPLE_PIECES * SAMPLE_PIECE);
	void *scratch = malloc(scratch_len);

	if (scratch == NULL) {
		ZSTD_freeCCtx(cc);
		cc = NULL;
	}
	pthread_mutex_lock(&p->mu);
	for (;;) {
		job *j;
		while (!p->stop && p->head == NULL)
			pthread_cond_wait(&p->work_cv, &p->mu);
		if (p->head == NULL)
			break;
		j = p->head;
		p->head = j->next;
		if (p->head == NULL)
			p->tail = NULL;
		pthread_mutex_unlock(&p->mu);
		compress_job(j, cc, scratch, scratch_len);
		pthread_mutex_lock(&p->mu);
		j->done = 1;
		pthread_cond_broadcast(&p->done_cv);
	}
	pthread_mutex_unlock(&p->mu);
	ZSTD_freeCCtx(cc);
	free(scratch);
	return NULL;
}

static void pool_free(pool *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->work_cv);
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->work_cv);
	pthread_cond_destroy(&p->done_cv);
	free(p->threads);
	free(p);
}

static int pool_new(pool **out, unsigned n)
{
	pool *p = calloc(1, sizeof(*p));

	if (p == NULL || (p->threads = calloc(n, sizeof(*p->threads))) == NULL) {
		free(p);
		return ckpt_error_nomem();
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work_cv, NULL);
	pthread_cond_init(&p->done_cv, NULL);
	for (; p->nthreads < n; p->nthreads++)
		if (pthread_create(&p->threads[p->nthreads], NULL, worker_main, p) != 0)
			break;
	if (p->nthreads == 0) {
		pool_free(p);
		return ckpt_error_set(CKPT_ERROR, "cannot start compression threads");
	}
	*out = p;
	return 0;
}

/* ---- data files -------------------------------------------------------- */

static int poison(ckpt_batch *b, int rc)
{
	if (b->poisoned == 0)
		b->poisoned = rc;
	return rc;
}

static int write_all(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

static int sync_fd(int fd)
{
	return fdatasync(fd);
}

/*
 * Stream the data file out behind the writer: start writeback of each new
 * WRITEBACK_WINDOW, wait for the window before it and drop that one from the
 * page cache. A save thus recycles a few windows of page cache instead of
 * filling fresh memory with bytes nobody reads back soon (first touch of
 * fresh pages costs more than the copy), and commit's fdatasync has little
 * left to do. Advisory only: fdatasync at commit still reports any I/O error.
 */
static void stream_out(batch_file *f)
{
	if (f->size - f->flushed < WRITEBACK_WINDOW)
		return;
	if (f->flushed > f->dropped) {
		(void)sync_file_range(f->fd, (off_t)f->dropped, (off_t)(f->flushed - f->dropped),
				      SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
					  SYNC_FILE_RANGE_WAIT_AFTER);
		(void)posix_fadvise(f->fd, (off_t)f->dropped, (off_t)(f->flushed - f->dropped),
				    POSIX_FADV_DONTNEED);
		f->dropped = f->flushed;
	}
	(void)sync_file_range(f->fd, (off_t)f->flushed, (off_t)(f->size - f->flushed),
			      SYNC_FILE_RANGE_WRITE);
	f->flushed = f->size;
}

/* fsync and close the current data file, if any. */
static int finish_file(ckpt_batch *b)
{
	batch_file *f = b->cur >= 0 ? &b->files[b->cur] : NULL;
	int rc = 0;

	b->cur = -1;
	if (f == NULL)
		return 0;
	assert(f->kind == FILE_APPENDED && f->fd >= 0);
	if (sync_fd(f->fd) < 0)
		rc = poison(b,
			    ckpt_error_errno(CKPT_EIO, errno, "fsync %s/d/%s", b->s->dir, f->name));
	close(f->fd);
	f->fd = -1;
	return rc;
}

/*
 * The next entry of b->files, with the next id and a name in the batch's
 * scheme, not yet counted: the caller makes it a data file, then counts it
 * (b->nfiles++, b->next_file_id++). Pointers into b->files die here.
 */
static batch_file *next_file(ckpt_batch *b)
{
	batch_file *f;

	if (b->nfiles == b->capfiles) {
		size_t cap = b->capfiles ? 2 * b->capfiles : 4;
		batch_file *nf = realloc(b->files, cap * sizeof(*nf));
		if (nf == NULL)
			return NULL;
		b->files = nf;
		b->capfiles = cap;
	}
	f = &b->files[b->nfiles];
	memset(f, 0, sizeof(*f));
	f->id = b->next_file_id;
	f->fd = -1;
	snprintf(f->name, sizeof(f->name), "%llu-%s-%zu", (unsigned long long)b->generation,
		 b->nonce, b->nfiles);
	return f;
}

static int new_file(ckpt_batch *b)
{
	batch_file *f;
	int rc;

	if ((rc = finish_file(b)) < 0)
		return rc;
	if ((f = next_file(b)) == NULL)
		return ckpt_error_nomem();
	f->kind = FILE_APPENDED;
	f->fd = openat(b->s->idx->ddirfd, f->name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (f->fd < 0)
		return poison(
		    b, ckpt_error_errno(CKPT_EIO, errno, "create %s/d/%s", b->s->dir, f->name));
	b->cur = (ptrdiff_t)b->nfiles++;
	b->next_file_id++;
	return 0;
}

/* Add c, with its block CRCs if blocks is non-NULL (a raw chunk). */
static int writer_add_chunk(ckpt_value_writer *w, const chunk_rec *c, const uint32_t *blocks)
{
	const size_t bpc = STORE_NBLOCKS(w->b->s->opts.chunk_size);

	if (w->nchunks == w->capchunks) {
		uint32_t cap = w->capchunks ? 2 * w->capchunks : 16;
		chunk_rec *nc = realloc(w->chunks, cap * sizeof(*nc));
		if (nc == NULL)
			return ckpt_error_nomem();
		w->chunks = nc;
		if (w->want_blocks) {
			uint32_t *nb = realloc(w->blocks, cap * bpc * sizeof(*nb));
			if (nb == NULL)
				return ckpt_error_nomem();
			w->blocks = nb;
		}
		w->capchunks = cap;
	}
	w->chunks[w->nchunks] = *c;
	w->chunks[w->nchunks].has_blocks = blocks && w->want_blocks && c->stored > CKPT_CRC_BLOCK;
	if (w->chunks[w->nchunks].has_blocks)
		memcpy(store_chunk_blocks(w->blocks, w->nchunks, w->b->s->opts.chunk_size), blocks,
		       STORE_NBLOCKS(c->stored) * sizeof(*blocks));
	w->nchunks++;
	return 0;
}

/*
 * Append one chunk's stored bytes to the batch's current data file; raw_crc
 * (of its raw bytes) extends the whole-value CRC.
 */
static int append_chunk(ckpt_value_writer *w, const void *stored, uint32_t stored_len,
			uint32_t raw_len, int codec, uint32_t crc, uint32_t raw_crc,
			const uint32_t *blocks)
{
	ckpt_batch *b = w->b;
	batch_file *f = b->cur >= 0 ? &b->files[b->cur] : NULL;
	chunk_rec c;
	int rc;

	if (f == NULL || (f->size > 0 && f->size + stored_len > b->s->opts.target_data_file_size)) {
		if ((rc = new_file(b)) < 0)
			return rc;
		f = &b->files[b->cur];
	}
	if (write_all(f->fd, stored, stored_len, f->size) < 0)
		return poison(
		    b, ckpt_error_errno(CKPT_EIO, errno, "write %s/d/%s", b->s->dir, f->name));
	c.file_id = f->id;
	c.off = f->size;
	c.stored = stored_len;
	c.raw = raw_len;
	c.crc = crc;
	c.codec = codec;
	f->size += stored_len;
	stream_out(f);
	w->crc = ckpt_crc32c_combine(w->crc, raw_crc, raw_len);
	return writer_add_chunk(w, &c, codec == CKPT_CODEC_RAW ? blocks : NULL);
}

/* ---- value writers ----------------------------------------------------- */

/* A chunk_size buffer, reused if one is spare. */
static void *buf_get(ckpt_batch *b)
{
	return b->nspare ? b->spare[--b->nspare] : malloc(b->s->opts.chunk_size);
}

static void buf_put(ckpt_batch *b, void *p)
{
	if (p && b->nspare < b->capspare)
		b->spare[b->nspare++] = p;
	else
		free(p);
}

static void job_free(ckpt_batch *b, job *j)
{
	if (j) {
		buf_put(b, j->raw);
		free(j->out);
		free(j->blocks);
		free(j);
	}
}

/*
 * Append finished jobs in submission order. While more than `limit` raw
 * bytes are in flight, wait for the oldest job (limit 0: wait for all).
 */
static int drain(ckpt_value_writer *w, uint64_t limit)
{
	pool *p = w->b->pool;
	int rc = 0;

	while (w->inflight_head && rc == 0) {
		job *j = w->inflight_head;
		pthread_mutex_lock(&p->mu);
		if (!j->done && w->inflight_bytes <= limit) {
			pthread_mutex_unlock(&p->mu);
			break;
		}
		while (!j->done)
			pthread_cond_wait(&p->done_cv, &p->mu);
		pthread_mutex_unlock(&p->mu);
		w->inflight_head = j->next_inflight;
		if (w->inflight_head == NULL)
			w->inflight_tail = NULL;
		w->inflight_bytes -= j->raw_len;
		if (w->b->poisoned)
			rc = w->b->poisoned;
		else if (j->out)
			rc = append_chunk(w, j->out, j->out_len, j->raw_len, CKPT_CODEC_ZSTD,
					  j->crc, j->raw_crc, NULL);
		else
			rc = append_chunk(w, j->raw, j->raw_len, j->raw_len, CKPT_CODEC_RAW, j->crc,
					  j->crc, j->blocks);
		job_free(w->b, j);
	}
	return rc;
}

/* Hand the full chunk buffer (w->buf, w->fill bytes) on; takes a fresh buffer. */
static int submit_chunk(ckpt_value_writer *w)
{
	ckpt_batch *b = w->b;
	const ckpt_store_options *o = &b->s->opts;
	job *j;
	int rc;

	assert(w->fill > 0);
	if (w->level == 0) { /* nothing to compress: append right away */
		uint32_t crc = raw_crc(w->buf, w->fill, w->bcrcs);
		rc = append_chunk(w, w->buf, w->fill, w->fill, CKPT_CODEC_RAW, crc, crc, w->bcrcs);
		w->fill = 0;
		return rc;
	}
	if (b->pool == NULL && (rc = pool_new(&b->pool, o->threads)) < 0)
		return rc;
	if ((rc = drain(w, o->max_bytes_in_flight - w->fill)) < 0)
		return rc;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return ckpt_error_nomem();
	j->raw = w->buf;
	j->raw_len = w->fill;
	j->level = w->level;
	/* no memory for block CRCs: the chunk goes without them (they are optional) */
	if (w->want_blocks)
		j->blocks = malloc(STORE_NBLOCKS(w->fill) * sizeof(*j->blocks));
	if ((w->buf = buf_get(b)) == NULL) {
		w->buf = j->raw;
		free(j);
		return ckpt_error_nomem();
	}
	w->fill = 0;
	if (w->inflight_tail)
		w->inflight_tail->next_inflight = j;
	else
		w->inflight_head = j;
	w->inflight_tail = j;
	w->inflight_bytes += j->raw_len;
	pthread_mutex_lock(&b->pool->mu);
	if (b->pool->tail)
		b->pool->tail->next = j;
	else
		b->pool->head = j;
	b->pool->tail = j;
	pthread_cond_signal(&b->pool->work_cv);
	pthread_mutex_unlock(&b->pool->mu);
	return drain(w, UINT64_MAX); /* append whatever is already finished */
}

static int check_key(const ckpt_batch *b, size_t keylen)
{
	if (keylen > STORE_MAX_KEY)
		return ckpt_error_set(CKPT_EINVAL, "%s: key of %zu bytes is too long (max %u)",
				      b->s->dir, keylen, STORE_MAX_KEY);
	return 0;
}

static int level_of(const ckpt_batch *b, const ckpt_put_options *opts, int *out)
{
	CKPT_CHECK_VERSION(opts, CKPT_PUT_OPTIONS_VERSION, "ckpt_put_options");
	int l = opts && opts->compression_level >= 0 ? opts->compression_level
						     : b->s->opts.compression_level;

	if (l > ZSTD_maxCLevel())
		return ckpt_error_set(CKPT_EINVAL, "compression level %d > %d", l,
				      ZSTD_maxCLevel());
	*out = l;
	return 0;
}

/* A value writer; `plain` (not a tile's): dropped by a tiles-only batch (invariant 10). */
static int writer_open(ckpt_value_writer **out, ckpt_batch *b, const void *key, size_t keylen,
		       const ckpt_put_options *opts, int plain)
{
	ckpt_value_writer *w;
	int rc, level = 0;

	*out = NULL;
	if (b->poisoned)
		return ckpt_error_set(b->poisoned, "%s: batch failed earlier", b->s->dir);
	if (b->writer)
		return ckpt_error_set(CKPT_EBUSY, "%s: another value writer is open", b->s->dir);
	if ((rc = check_key(b, keylen)) < 0 || (rc = level_of(b, opts, &level)) < 0)
		return rc;
	if (plain && b->tiles_only) { /* a writer that drops what it is given */
		if ((w = calloc(1, sizeof(*w))) == NULL)
			return ckpt_error_nomem();
		w->skip = 1;
		w->b = b;
		b->writer = w;
		*out = w;
		return 0;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL || (w->key = malloc(keylen ? keylen : 1)) == NULL ||
	    (w->buf = buf_get(b)) == NULL) {
		if (w)
			free(w->key);
		free(w);
		return ckpt_error_nomem();
	}
	if (keylen)
		memcpy(w->key, key, keylen);
	w->keylen = keylen;
	w->level = level;
	w->b = b;
	/* Block CRCs (docs/format.md) for values, not tiles; without memory, none. */
	if (plain && b->s->idx->has_blocks && b->s->opts.chunk_size > CKPT_CRC_BLOCK)
		w->want_blocks = (w->bcrcs = malloc(STORE_NBLOCKS(b->s->opts.chunk_size) *
						    sizeof(*w->bcrcs))) != NULL;
	b->writer = w;
	*out = w;
	return 0;
}

int ckpt_value_writer_open(ckpt_value_writer **out, ckpt_batch *b, const void *key, size_t keylen,
			   const ckpt_put_options *opts)
{
	return writer_open(out, b, key, keylen, opts, 1);
}

int ckpt_value_writer_open_tile(ckpt_value_writer **out, ckpt_batch *b, const void *key,
				size_t keylen, const ckpt_tile *t, const ckpt_put_options *opts)
{
	tile_desc *td;
	uint64_t gvol = 1;
	char kr[160];
	int rc;

	*out = NULL;
	if (t->ndim > CKPT_TILE_MAX_NDIM || t->itemsize == 0 || t->itemsize > STORE_MAX_ITEMSIZE)
		return ckpt_error_set(CKPT_EINVAL, "%s: tile of key '%s': ndim %u, itemsize %zu",
				      b->s->dir, ckpt_store_key_repr(kr, sizeof(kr), key, keylen),
				      t->ndim, t->itemsize);
	if ((td = calloc(1, sizeof(*td))) == NULL)
		return ckpt_error_nomem();
	td->itemsize = t->itemsize;
	td->ndim = t->ndim;
	for (unsigned d = 0; d < t->ndim; d++) {
		const uint64_t g = t->global_shape[d], a = t->start[d], n = t->shape[d];
		if (g == 0 || g > (uint64_t)INT64_MAX / 2 / gvol || n == 0 || a >= g || n > g - a) {
			free(td);
			return ckpt_error_set(CKPT_EINVAL,
					      "%s: tile of key '%s': dimension %u: box %llu:%llu is"
					      " empty or outside 0:%llu",
					      b->s->dir, ckpt_store_key_repr(kr, sizeof(kr), key, keylen),
					      d, (unsigned long long)a, (unsigned long long)(a + n),
					      (unsigned long long)g);
		}
		gvol *= g;
		td->global[d] = g;
		td->start[d] = a;
		td->shape[d] = n;
		td->t0 = td->t0 * g + a;
	}
	if (gvol > (uint64_t)INT64_MAX / 2 / t->itemsize) {
		free(td);
		return ckpt_error_set(CKPT_EINVAL, "%s: tile of key '%s': the array is too large",
				      b->s->dir, ckpt_store_key_repr(kr, sizeof(kr), key, keylen));
	}
	if ((rc = writer_open(out, b, key, keylen, opts, 0)) < 0) {
		free(td);
		return rc;
	}
	(*out)->tile = td;
	return 0;
}

int ckpt_value_writer_write(ckpt_value_writer *w, const void *buf, size_t len)
{
	const uint32_t cs = w->b->s->opts.chunk_size;
	const unsigned char *p = buf;
	int rc;

	if (w->b->poisoned || w->failed)
		return ckpt_error_set(w->b->poisoned ? w->b->poisoned : w->failed,
				      "%s: value writer failed earlier", w->b->s->dir);
	if (w->skip)
		return 0;
	w->size += len; /* w->crc grows as chunks are appended */
	while (len > 0) {
		if (w->level == 0 && w->fill == 0 && len >= cs) {
			/* Raw and aligned: write straight from the caller's buffer. */
			uint32_t crc = raw_crc(p, cs, w->bcrcs);
			if ((rc = append_chunk(w, p, cs, cs, CKPT_CODEC_RAW, crc, crc, w->bcrcs)) < 0)
				return w->failed = rc;
			p += cs;
			len -= cs;
			continue;
		}
		size_t n = cs - w->fill < len ? cs - w->fill : len;
		memcpy(w->buf + w->fill, p, n);
		w->fill += (uint32_t)n;
		p += n;
		len -= n;
		if (w->fill == cs && (rc = submit_chunk(w)) < 0)
			return w->failed = rc;
	}
	return 0;
}

static void writer_free(ckpt_value_writer *w)
{
	if (w->inflight_head) { /* workers may still hold these: wait, then drop */
		pool *p = w->b->pool;
		pthread_mutex_lock(&p->mu);
		for (job *j = w->inflight_head; j; j = j->next_inflight)
			while (!j->done)
				pthread_cond_wait(&p->done_cv, &p->mu);
		pthread_mutex_unlock(&p->mu);
		while (w->inflight_head) {
			job *j = w->inflight_head;
			w->inflight_head = j->next_inflight;
			job_free(w->b, j);
		}
	}
	w->b->writer = NULL;
	free(w->key);
	free(w->tile);
	if (w->buf)
		buf_put(w->b, w->buf);
	while (w->b->nspare) /* an open batch holds no memory between values */
		free(w->b->spare[--w->b->nspare]);
	free(w->chunks);
	free(w->blocks);
	free(w->bcrcs);
	free(w);
}

void ckpt_value_writer_abort(ckpt_value_writer *w)
{
	if (w)
		writer_free(w);
}

static int add_op(ckpt_batch *b, const op *o)
{
	if (b->nops == b->capops) {
		size_t cap = b->capops ? 2 * b->capops : 16;
		op *n = realloc(b->ops, cap * sizeof(*n));
		if (n == NULL)
			return ckpt_error_nomem();
		b->ops = n;
		b->capops = cap;
	}
	b->ops[b->nops++] = *o;
	return 0;
}

int ckpt_value_writer_close(ckpt_value_writer *w)
{
	ckpt_batch *b = w->b;
	op o = {.kind = OP_PUT, .key = w->key, .keylen = w->keylen, .size = w->size};
	int rc = b->poisoned ? b->poisoned : w->failed;

	if (rc < 0) {
		ckpt_error_set(rc, "%s: value writer failed earlier", b->s->dir);
		goto done;
	}
	if (w->skip)
		goto done;
	if (w->tile) { /* a tile is always chunked, so that it reads alone */
		uint64_t want = w->tile->itemsize;
		for (unsigned d = 0; d < w->tile->ndim; d++)
			want *= w->tile->shape[d];
		if (w->size != want) {
			char kr[160];
			rc = ckpt_error_set(CKPT_EINVAL,
					    "%s: tile of key '%s': %llu bytes written, the box has %llu",
					    b->s->dir,
					    ckpt_store_key_repr(kr, sizeof(kr), w->key, w->keylen),
					    (unsigned long long)w->size, (unsigned long long)want);
			goto done;
		}
		o.kind = OP_TILE;
	}
	if (!w->tile && w->nchunks == 0 && w->inflight_head == NULL &&
	    w->fill <= b->s->opts.inline_max) {
		o.is_inline = 1;
		if ((o.inl = malloc(w->fill ? w->fill : 1)) == NULL) {
			rc = ckpt_error_nomem();
			goto done;
		}
		memcpy(o.inl, w->buf, w->fill);
		o.crc = ckpt_crc32c_update(0, w->buf, w->fill);
	} else {
		if ((w->fill > 0 && (rc = submit_chunk(w)) < 0) ||
		    (w->inflight_head && (rc = drain(w, 0)) < 0))
			goto done;
		assert(w->inflight_head == NULL);
		o.crc = w->crc; /* complete only now that every chunk is appended */
		o.chunk_size = b->s->opts.chunk_size;
		o.chunks = w->chunks;
		o.blocks = w->blocks;
		o.nchunks = w->nchunks;
		w->chunks = NULL;
		w->blocks = NULL;
	}
	o.tile = w->tile;
	if ((rc = add_op(b, &o)) < 0) {
		free(o.inl);
		free(o.chunks);
		free(o.blocks);
		goto done;
	}
	w->key = NULL; /* now owned by the op */
	w->tile = NULL;
done:
	writer_free(w);
	return rc;
}

int ckpt_batch_put(ckpt_batch *b, const void *key, size_t keylen, const void *val, size_t len,
		   const ckpt_put_options *opts)
{
	ckpt_value_writer *w;
	int rc;

	CKPT_CHECK_VERSION(opts, CKPT_PUT_OPTIONS_VERSION, "ckpt_put_options");
	if (b->tiles_only)
		return b->poisoned ? ckpt_error_set(b->poisoned, "%s: batch failed earlier", b->s->dir)
				   : 0;
	if (len <= b->s->opts.inline_max && !b->poisoned && !b->writer) { /* no chunk buffer */
		op o = {.kind = OP_PUT,
			.keylen = keylen,
			.size = len,
			.is_inline = 1,
			.crc = ckpt_crc32c_update(0, val, len)};
		if ((rc = check_key(b, keylen)) < 0)
			return rc;
		if ((o.key = malloc(keylen ? keylen : 1)) == NULL ||
		    (o.inl = malloc(len ? len : 1)) == NULL) {
			free(o.key);
			return ckpt_error_nomem();
		}
		if (keylen)
			memcpy(o.key, key, keylen);
		if (len)
			memcpy(o.inl, val, len);
		if ((rc = add_op(b, &o)) < 0) {
			free(o.key);
			free(o.inl);
		}
		return rc;
	}
	if ((rc = ckpt_value_writer_open(&w, b, key, keylen, opts)) < 0)
		return rc;
	if ((rc = ckpt_value_writer_write(w, val, len)) < 0) {
		ckpt_value_writer_abort(w);
		return rc;
	}
	return ckpt_value_writer_close(w);
}

int ckpt_batch_delete(ckpt_batch *b, const void *key, size_t keylen)
{
	op o = {.kind = OP_DELETE, .keylen = keylen};
	int rc;

	if ((rc = check_key(b, keylen)) < 0 || b->tiles_only)
		return rc;
	if ((o.key = malloc(keylen ? keylen : 1)) == NULL)
		return ckpt_error_nomem();
	if (keylen)
		memcpy(o.key, key, keylen);
	if ((rc = add_op(b, &o)) < 0)
		free(o.key);
	return rc;
}

/* ---- batches ----------------------------------------------------------- */

void ckpt_batch_set_tiles_only(ckpt_batch *b, int on)
{
	assert(b->writer == NULL && b->nops == 0); /* set once, before the first put */
	b->tiles_only = on != 0;
}

int ckpt_batch_begin(ckpt_batch **out, ckpt_store *s)
{
	ckpt_batch *b = NULL;
	sqlite3_stmt *st = NULL;
	unsigned char rnd[8];
	int rc = 0;

	*out = NULL;
	if (s->idx == NULL || (s->flags & CKPT_STORE_READONLY))
		return ckpt_error_set(CKPT_EREADONLY, "%s: store is read-only", s->dir);
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return ckpt_error_errno(CKPT_EIO, errno, "getrandom");
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return ckpt_error_nomem();
	for (int i = 0; i < 8; i++)
		snprintf(b->nonce + 2 * i, 3, "%02x", rnd[i]);
	b->s = s;
	b->cur = -1;
	b->capspare = s->opts.max_bytes_in_flight / s->opts.chunk_size + 2;
	if ((b->spare = calloc(b->capspare, sizeof(*b->spare))) == NULL) {
		free(b);
		return ckpt_error_nomem();
	}
	pthread_mutex_lock(&s->idx->mu);
	if (s->idx->batch) {
		rc = ckpt_error_set(CKPT_EBUSY, "%s: a batch is already open", s->dir);
		goto done;
	}
	if (sqlite3_prepare_v2(s->idx->db, "SELECT COALESCE(MAX(id), 0) + 1 FROM files", -1, &st,
			       NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		rc = ckpt_store_sqlerr(s->idx, CKPT_ECORRUPT, "reading the files table");
		goto done;
	}
	if (s->idx->ddirfd < 0) {
		char ddir[4096];
		snprintf(ddir, sizeof(ddir), "%s/d", s->dir);
		if ((mkdir(ddir, 0755) < 0 && errno != EEXIST) ||
		    (s->idx->ddirfd = open(ddir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
			rc = ckpt_error_errno(CKPT_EIO, errno, "mkdir %s", ddir);
			goto done;
		}
	}
	b->next_file_id = sqlite3_column_int64(st, 0);
	b->generation = ckpt_store_generation(s) + 1;
	s->idx->batch = b;
done:
	pthread_mutex_unlock(&s->idx->mu);
	sqlite3_finalize(st);
	if (rc < 0) {
		free(b->spare);
		free(b);
		return rc;
	}
	*out = b;
	return 0;
}

/* Free b and, unless committed, remove its data files. */
static void batch_free(ckpt_batch *b, int committed)
{
	ckpt_store *s = b->s;

	if (b->writer)
		writer_free(b->writer);
	pool_free(b->pool);
	for (size_t i = 0; i < b->nfiles; i++) {
		if (b->files[i].fd >= 0)
			close(b->files[i].fd);
		if (!committed)
			unlinkat(s->idx->ddirfd, b->files[i].name, 0);
	}
	if (!committed && b->nfiles)
		fsync(s->idx->ddirfd);
	for (size_t i = 0; i < b->nops; i++) {
		free(b->ops[i].key);
		free(b->ops[i].inl);
		free(b->ops[i].chunks);
		free(b->ops[i].blocks);
		free(b->ops[i].tile);
	}
	free(b->ops);
	free(b->files);
	assert(b->nspare == 0);
	free(b->spare);
	pthread_mutex_lock(&s->idx->mu);
	assert(s->idx->batch == b);
	s->idx->batch = NULL;
	pthread_mutex_unlock(&s->idx->mu);
	free(b);
}

void ckpt_batch_abort(ckpt_batch *b)
{
	if (b)
		batch_free(b, 0);
}

void ckpt_store_batch_release(sqlite_index *x)
{
	if (x->batch)
		batch_free(x->batch, 0);
}

static int step_done(ckpt_store *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return ckpt_store_sqlerr(s->idx, CKPT_EIO, what);
	return 0;
}

/* The rows of one tile (mu held, transaction open). */
static int write_tile(ckpt_batch *b, const op *o, uint64_t gen, sqlite3_stmt *del,
		      sqlite3_stmt *ins, sqlite3_stmt *insc)
{
	const tile_desc *t = o->tile;
	unsigned char dims[3][8 * CKPT_TILE_MAX_NDIM + 1];
	const uint64_t *src[3] = {t->global, t->start, t->shape};
	int rc;

	for (int k = 0; k < 3; k++)
		for (unsigned d = 0; d < t->ndim; d++)
			ckpt_put_le64(dims[k] + 8 * d, src[k][d]);
	sqlite3_bind_blob(del, 1, o->key, (int)o->keylen, SQLITE_STATIC);
	sqlite3_bind_int64(del, 2, (int64_t)t->t0);
	if ((rc = step_done(b->s, del, "replacing a tile")) < 0)
		return rc;
	sqlite3_bind_blob(ins, 1, o->key, (int)o->keylen, SQLITE_STATIC);
	sqlite3_bind_int64(ins, 2, (int64_t)t->t0);
	sqlite3_bind_text(ins, 3, b->s->idx->index_name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(ins, 4, (int64_t)gen);
	sqlite3_bind_int64(ins, 5, (int64_t)t->itemsize);
	sqlite3_bind_int64(ins, 6, t->ndim);
	for (int k = 0; k < 3; k++) /* a non-NULL pointer: a 0-d array is an empty blob */
		sqlite3_bind_blob(ins, 7 + k, dims[k], (int)(8 * t->ndim), SQLITE_STATIC);
	sqlite3_bind_int64(ins, 10, (int64_t)o->size);
	sqlite3_bind_int64(ins, 11, o->crc);
	sqlite3_bind_int64(ins, 12, o->chunk_size);
	if ((rc = step_done(b->s, ins, "inserting a tile")) < 0)
		return rc;
	sqlite3_bind_blob(insc, 1, o->key, (int)o->keylen, SQLITE_STATIC);
	sqlite3_bind_int64(insc, 2, (int64_t)t->t0);
	for (uint32_t c = 0; c < o->nchunks && rc == 0; c++) {
		const chunk_rec *r = &o->chunks[c];
		sqlite3_bind_int64(insc, 3, c);
		sqlite3_bind_int64(insc, 4, r->file_id);
		sqlite3_bind_int64(insc, 5, (int64_t)r->off);
		sqlite3_bind_int64(insc, 6, r->stored);
		sqlite3_bind_int64(insc, 7, r->raw);
		sqlite3_bind_int64(insc, 8, r->codec);
		sqlite3_bind_int64(insc, 9, r->crc);
		rc = step_done(b->s, insc, "inserting a tile chunk");
	}
	return rc;
}

/* Insert everything of b in the open transaction (mu held). */
static int write_index(ckpt_batch *b, uint64_t gen)
{
	static const char *const sql[] = {
	    "INSERT INTO files(id, name, size, generation) VALUES(?1, ?2, ?3, ?4)",
	    "DELETE FROM kv WHERE key = ?1",
	    "DELETE FROM chunks WHERE key = ?1",
	    "INSERT INTO kv(key, generation, size, crc32c, chunk_size, inline)"
	    " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
	    "INSERT INTO chunks(key, idx, file_id, offset, stored_len, raw_len, codec, crc32c)"
	    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	    "UPDATE meta SET value = ?1 WHERE name = 'generation'",
	    /* Only in an index with tiles (docs/format.md, "Tiles"): */
	    "DELETE FROM tiles WHERE key = ?1",
	    "DELETE FROM tile_chunks WHERE key = ?1",
	    "DELETE FROM tile_chunks WHERE key = ?1 AND t0 = ?2",
	    "INSERT OR REPLACE INTO tiles(key, t0, source, generation, itemsize, ndim, global_shape,"
	    " start, shape, size, crc32c, chunk_size) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
	    " ?11, ?12)",
	    "INSERT INTO tile_chunks(key, t0, idx, file_id, offset, stored_len, raw_len, codec,"
	    " crc32c) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	};
	static const char ins_chunk_blocks[] = /* format 1.2 on */
	    "INSERT INTO chunks(key, idx, file_id, offset, stored_len, raw_len, codec, crc32c,"
	    " blocks) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
	enum { FILES, DEL_KV, DEL_CHUNKS, INS_KV, INS_CHUNK, SET_GEN, NPLAIN,
	       DEL_TILES = NPLAIN, DEL_TCHUNKS, DEL_TILE, INS_TILE, INS_TCHUNK, NST };
	ckpt_store *s = b->s;
	sqlite3_stmt *st[NST] = {0};
	unsigned char *enc = NULL; /* one chunk's block CRCs as stored */
	int rc = 0, tiles = 0, nst = NPLAIN;

	for (size_t i = 0; i < b->nops && !tiles; i++)
		tiles = b->ops[i].kind == OP_TILE;
	if (tiles) {
		char schema[2048];
		snprintf(schema, sizeof(schema), STORE_TILES_SCHEMA, "", "");
		if (sqlite3_exec(s->idx->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
			rc = ckpt_store_sqlerr(s->idx, CKPT_EIO, "creating the tiles tables");
			goto done;
		}
	} else if ((rc = tiles = ckpt_store_has_tiles_table(s->idx, "main")) < 0) {
		goto done;
	}
	if (tiles)
		nst = NST;
	for (int i = 0; i < nst; i++)
		if (sqlite3_prepare_v2(s->idx->db,
				       i == INS_CHUNK && s->idx->has_blocks ? ins_chunk_blocks : sql[i],
				       -1, &st[i], NULL) != SQLITE_OK) {
			rc = ckpt_store_sqlerr(s->idx, CKPT_ECORRUPT, "preparing the commit");
			goto done;
		}
	rc = 0;
	for (size_t i = 0; i < b->nfiles && rc == 0; i++) {
		sqlite3_bind_int64(st[FILES], 1, b->files[i].id);
		sqlite3_bind_text(st[FILES], 2, b->files[i].name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st[FILES], 3, (int64_t)b->files[i].size);
		sqlite3_bind_int64(st[FILES], 4, (int64_t)gen);
		rc = step_done(s, st[FILES], "inserting a data file");
	}
	for (size_t i = 0; i < b->nops && rc == 0; i++) {
		const op *o = &b->ops[i];
		if (o->kind == OP_TILE) {
			rc = write_tile(b, o, gen, st[DEL_TILE], st[INS_TILE], st[INS_TCHUNK]);
			continue;
		}
		for (int k = DEL_KV; k <= INS_KV; k++)
			sqlite3_bind_blob(st[k], 1, o->key, (int)o->keylen, SQLITE_STATIC);
		if ((rc = step_done(s, st[DEL_CHUNKS], "deleting chunks")) < 0)
			break;
		if (tiles) { /* a value or a delete replaces the key's tiles */
			sqlite3_bind_blob(st[DEL_TILES], 1, o->key, (int)o->keylen, SQLITE_STATIC);
			sqlite3_bind_blob(st[DEL_TCHUNKS], 1, o->key, (int)o->keylen, SQLITE_STATIC);
			if ((rc = step_done(s, st[DEL_TILES], "deleting tiles")) < 0 ||
			    (rc = step_done(s, st[DEL_TCHUNKS], "deleting tiles")) < 0)
				break;
		}
		if (o->kind == OP_DELETE) {
			rc = step_done(s, st[DEL_KV], "deleting a key");
			continue;
		}
		sqlite3_bind_int64(st[INS_KV], 2, (int64_t)gen);
		sqlite3_bind_int64(st[INS_KV], 3, (int64_t)o->size);
		sqlite3_bind_int64(st[INS_KV], 4, o->crc);
		sqlite3_bind_int64(st[INS_KV], 5, o->chunk_size);
		if (o->is_inline)
			sqlite3_bind_blob(st[INS_KV], 6, o->inl ? (const void *)o->inl : "",
					  (int)o->size, SQLITE_STATIC);
		else
			sqlite3_bind_null(st[INS_KV], 6);
		if ((rc = step_done(s, st[DEL_KV], "replacing a key")) < 0 ||
		    (rc = step_done(s, st[INS_KV], "inserting a key")) < 0)
			break;
		sqlite3_bind_blob(st[INS_CHUNK], 1, o->key, (int)o->keylen, SQLITE_STATIC);
		if (o->blocks && s->idx->has_blocks && enc == NULL &&
		    (enc = malloc(4 * (size_t)STORE_NBLOCKS(STORE_MAX_CHUNK_SIZE))) == NULL) {
			rc = ckpt_error_nomem();
			break;
		}
		for (uint32_t c = 0; c < o->nchunks && rc == 0; c++) {
			const chunk_rec *r = &o->chunks[c];
			if (r->has_blocks && s->idx->has_blocks) {
				uint32_t nb = STORE_NBLOCKS(r->stored);
				assert(o->blocks && r->codec == CKPT_CODEC_RAW);
				ckpt_blocks_encode(enc, store_chunk_blocks(o->blocks, c, o->chunk_size),
						   nb);
				sqlite3_bind_blob(st[INS_CHUNK], 9, enc, (int)(4 * nb), SQLITE_STATIC);
			} else if (s->idx->has_blocks) {
				sqlite3_bind_null(st[INS_CHUNK], 9);
			}
			sqlite3_bind_int64(st[INS_CHUNK], 2, c);
			sqlite3_bind_int64(st[INS_CHUNK], 3, r->file_id);
			sqlite3_bind_int64(st[INS_CHUNK], 4, (int64_t)r->off);
			sqlite3_bind_int64(st[INS_CHUNK], 5, r->stored);
			sqlite3_bind_int64(st[INS_CHUNK], 6, r->raw);
			sqlite3_bind_int64(st[INS_CHUNK], 7, r->codec);
			sqlite3_bind_int64(st[INS_CHUNK], 8, r->crc);
			rc = step_done(s, st[INS_CHUNK], "inserting a chunk");
		}
	}
	if (rc == 0) {
		sqlite3_bind_int64(st[SET_GEN], 1, (int64_t)gen);
		rc = step_done(s, st[SET_GEN], "setting the generation");
	}
done:
	for (int i = 0; i < NST; i++)
		sqlite3_finalize(st[i]);
	free(enc);
	return rc;
}

/* fdatasync the adopted files (their writer may never have synced them). */
static int sync_adopted(ckpt_batch *b)
{
	for (size_t i = 0; i < b->nfiles; i++) {
		const batch_file *f = &b->files[i];
		int fd, e = 0;
		if (f->kind != FILE_ADOPTED)
			continue;
		fd = openat(b->s->idx->ddirfd, f->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		if (fd < 0 || sync_fd(fd) < 0)
			e = errno;
		if (fd >= 0)
			close(fd);
		if (e)
			return poison(b, ckpt_error_errno(CKPT_EIO, e, "fsync %s/d/%s", b->s->dir,
							  f->name));
	}
	return 0;
}

int ckpt_batch_commit(ckpt_batch *b, uint64_t *out_generation)
{
	ckpt_store *s = b->s;
	uint64_t gen = 0;
	int rc = b->poisoned, in_txn = 0;

	assert(ckpt_batch_check(b));
	if (rc < 0) {
		ckpt_error_set(rc, "%s: batch failed earlier; nothing committed", s->dir);
		goto done;
	}
	if (b->writer) {
		rc = ckpt_error_set(CKPT_EINVAL, "%s: commit with a value writer still open",
				    s->dir);
		goto done;
	}
	/* Durability order: data files, then d/, then the index. */
	if ((rc = finish_file(b)) < 0 || (rc = sync_adopted(b)) < 0)
		goto done;
	if (b->nfiles && fsync(s->idx->ddirfd) < 0) {
		rc = ckpt_error_errno(CKPT_EIO, errno, "fsync %s/d", s->dir);
		goto done;
	}
	pthread_mutex_lock(&s->idx->mu);
	if (sqlite3_exec(s->idx->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		rc = ckpt_store_sqlerr(s->idx, CKPT_EIO, "begin");
	} else {
		in_txn = 1;
		if ((rc = ckpt_store_read_generation(s->idx, &gen)) == 0)
			rc = write_index(b, ++gen);
		/* The index changes: its checksum no longer holds (a seal records a new one). */
		if (rc == 0 && sqlite3_exec(s->idx->db, "PRAGMA application_id = 0", NULL, NULL,
					    NULL) != SQLITE_OK)
			rc = ckpt_store_sqlerr(s->idx, CKPT_EIO, "clearing the index checksum");
		if (rc == 0 && sqlite3_exec(s->idx->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			rc = ckpt_store_sqlerr(s->idx, CKPT_EIO, "commit");
		if (rc == 0) {
			in_txn = 0;
			__atomic_store_n(&s->idx->generation, gen, __ATOMIC_RELEASE);
		}
	}
	if (in_txn)
		sqlite3_exec(s->idx->db, "ROLLBACK", NULL, NULL, NULL);
	pthread_mutex_unlock(&s->idx->mu);
done:
	if (rc == 0 && out_generation)
		*out_generation = gen;
	batch_free(b, rc == 0);
	return rc;
}

/* ---- zero-copy puts: adopted and linked data files ------------------- */

/* Read exactly len bytes at off; -1 with errno set (ENODATA if the file ends first). */
static int read_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ENODATA;
			return -1;
		}
		done += (size_t)n;
	}
	return 0;
}

/* Bytes read at a time from a file being adopted or copied: whole chunks, bounded. */
static size_t slice_of(const ckpt_batch *b)
{
	const uint32_t cs = b->s->opts.chunk_size;

	return cs >= PUT_FILE_SLICE ? cs : PUT_FILE_SLICE / cs * cs;
}

/*
 * 1 if a sample of [off, off + len) of fd shrinks at level 1 (the test
 * compress_job makes per chunk, on SAMPLE_WINDOWS windows spread over the
 * range), 0 if not, or an error.
 */
static int range_compresses(const ckpt_batch *b, int fd, const char *name, uint64_t off,
			    uint64_t len)
{
	uint64_t win = b->s->opts.chunk_size < 2 * SAMPLE_PIECES * SAMPLE_PIECE
			   ? 2 * SAMPLE_PIECES * SAMPLE_PIECE
			   : b->s->opts.chunk_size;
	size_t scratch_len = ZSTD_compressBound(SAMPLE_PIECES * SAMPLE_PIECE);
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	void *buf, *scratch = malloc(scratch_len);
	int rc = 0;

	if (win > len)
		win = len;
	if ((buf = malloc(win)) == NULL || scratch == NULL || cc == NULL) {
		rc = ckpt_error_nomem();
		goto done;
	}
	for (int k = 0; k < SAMPLE_WINDOWS && rc == 0; k++) {
		uint64_t at = off + (len - win) * (uint64_t)k / (SAMPLE_WINDOWS - 1);
		if (read_full(fd, buf, (size_t)win, at) < 0)
			rc = ckpt_error_errno(CKPT_EIO, errno, "read %s", name);
		else if (worth_compressing(cc, buf, (uint32_t)win, scratch, scratch_len))
			rc = 1;
	}
done:
	ZSTD_freeCCtx(cc);
	free(scratch);
	free(buf);
	return rc;
}

/* Put [off, off + len) of fd through a value writer (compressed chunk by chunk). */
static int copy_range(ckpt_batch *b, const void *key, size_t keylen, int fd, const char *name,
		      uint64_t off, uint64_t len, const ckpt_put_options *opts)
{
	size_t slice = len < slice_of(b) ? (size_t)len : slice_of(b);
	unsigned char *buf = malloc(slice ? slice : 1);
	ckpt_value_writer *w = NULL;
	int rc;

	if (buf == NULL)
		return ckpt_error_nomem();
	if ((rc = ckpt_value_writer_open(&w, b, key, keylen, opts)) < 0)
		goto done;
	for (uint64_t done = 0; done < len && rc == 0; done += slice) {
		size_t n = len - done < slice ? (size_t)(len - done) : slice;
		if (read_full(fd, buf, n, off + done) < 0)
			rc = ckpt_error_errno(CKPT_EIO, errno, "read %s", name);
		else
			rc = ckpt_value_writer_write(w, buf, n);
	}
	if (rc == 0)
		rc = ckpt_value_writer_close(w);
	else
		ckpt_value_writer_abort(w);
done:
	free(buf);
	return rc;
}

/* Is d/name the inode of st? */
static int same_inode(int ddirfd, const char *name, const struct stat *st)
{
	struct stat ls;

	return fstatat(ddirfd, name, &ls, AT_SYMLINK_NOFOLLOW) == 0 && ls.st_dev == st->st_dev &&
	       ls.st_ino == st->st_ino;
}

/* Checks shared by the zero-copy puts. */
static int can_put(const ckpt_batch *b, size_t keylen)
{
	if (b->poisoned)
		return ckpt_error_set(b->poisoned, "%s: batch failed earlier", b->s->dir);
	if (b->writer)
		return ckpt_error_set(CKPT_EBUSY, "%s: a value writer is open", b->s->dir);
	return check_key(b, keylen);
}

/* A copy of key (never NULL), or NULL when out of memory. */
static unsigned char *key_dup(const void *key, size_t keylen)
{
	unsigned char *k = malloc(keylen ? keylen : 1);

	if (k && keylen)
		memcpy(k, key, keylen);
	return k;
}

int ckpt_batch_put_file(ckpt_batch *b, const void *key, size_t keylen, int dirfd, const char *name,
			uint64_t off, uint64_t len, const ckpt_put_options *opts)
{
	const uint32_t cs = b->s->opts.chunk_size;
	const size_t slice = slice_of(b);
	op o = {.kind = OP_PUT, .keylen = keylen, .size = len, .chunk_size = cs};
	unsigned char *buf = NULL;
	batch_file *f;
	struct stat st;
	int fd = -1, level = 0, rc;

	if ((rc = can_put(b, keylen)) < 0 || (rc = level_of(b, opts, &level)) < 0 || b->tiles_only)
		return rc;
	/* A file of a pending step (anyone wrote it): never a symlink, never wait on a FIFO. */
	if ((fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)) < 0 ||
	    fstat(fd, &st) < 0) {
		rc = ckpt_error_errno(errno == ENOENT ? CKPT_ENOTFOUND : CKPT_EIO, errno, "open %s",
				      name);
		goto done;
	}
	if (!S_ISREG(st.st_mode) || off > (uint64_t)st.st_size ||
	    len > (uint64_t)st.st_size - off) {
		rc = ckpt_error_set(CKPT_EINVAL, "%s: not a regular file of at least %llu bytes",
				    name, (unsigned long long)(off + len));
		goto done;
	}
	if (len / cs >= UINT32_MAX / 2) { /* the chunk count a reader accepts */
		rc = ckpt_error_set(CKPT_EINVAL, "%s: %llu bytes is too large a value", name,
				    (unsigned long long)len);
		goto done;
	}
	/* Small values are not worth a data file; compressible ones are worth a copy. */
	if (len <= b->s->opts.inline_max || len < (uint64_t)ADOPT_MIN_CHUNKS * cs ||
	    (level > 0 && (rc = range_compresses(b, fd, name, off, len)) != 0)) {
		if (rc >= 0)
			rc = copy_range(b, key, keylen, fd, name, off, len, opts);
		goto done;
	}
	/* Adopt: raw chunks in place, their CRCs from one read of the range. */
	o.nchunks = (uint32_t)((len + cs - 1) / cs);
	if (b->s->idx->has_blocks && cs > CKPT_CRC_BLOCK) /* optional: none without memory */
		o.blocks = malloc((size_t)o.nchunks * STORE_NBLOCKS(cs) * sizeof(*o.blocks));
	if ((o.chunks = calloc(o.nchunks, sizeof(*o.chunks))) == NULL ||
	    (buf = malloc(slice)) == NULL || (o.key = key_dup(key, keylen)) == NULL ||
	    (f = next_file(b)) == NULL) {
		rc = ckpt_error_nomem();
		goto done;
	}
	for (uint64_t pos = 0; pos < len; pos += slice) {
		size_t n = len - pos < slice ? (size_t)(len - pos) : slice;
		if (read_full(fd, buf, n, off + pos) < 0) {
			rc = ckpt_error_errno(CKPT_EIO, errno, "read %s", name);
			goto done;
		}
		for (size_t k = 0; k < n; k += cs) {
			size_t i = (pos + k) / cs;
			chunk_rec *c = &o.chunks[i];
			c->raw = c->stored = (uint32_t)(n - k < cs ? n - k : cs);
			c->has_blocks = o.blocks && c->stored > CKPT_CRC_BLOCK;
			c->crc = raw_crc(buf + k, c->stored,
					 c->has_blocks ? store_chunk_blocks(o.blocks, (uint32_t)i, cs)
						       : NULL);
			c->off = off + pos + k;
			c->file_id = f->id;
			c->codec = CKPT_CODEC_RAW;
			o.crc = ckpt_crc32c_combine(o.crc, c->crc, c->raw);
		}
	}
	if (linkat(dirfd, name, b->s->idx->ddirfd, f->name, 0) < 0) {
		if (errno == EXDEV || errno == EPERM || errno == EMLINK)
			rc = copy_range(b, key, keylen, fd, name, off, len, opts);
		else
			rc = ckpt_error_errno(CKPT_EIO, errno, "link %s to %s/d/%s", name,
					      b->s->dir, f->name);
		goto done;
	}
	if (!same_inode(b->s->idx->ddirfd, f->name, &st)) {
		unlinkat(b->s->idx->ddirfd, f->name, 0);
		rc = ckpt_error_set(CKPT_EIO, "%s: replaced while being put", name);
		goto done;
	}
	/* Start writeback now; the fdatasync at commit waits for it (invariant 3). */
	(void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	f->kind = FILE_ADOPTED;
	f->size = (uint64_t)st.st_size;
	if ((rc = add_op(b, &o)) < 0) {
		unlinkat(b->s->idx->ddirfd, f->name, 0);
		goto done;
	}
	o.key = NULL; /* now owned by the op */
	o.chunks = NULL;
	o.blocks = NULL;
	b->nfiles++;
	b->next_file_id++;
done:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(o.key);
	free(o.chunks);
	free(o.blocks);
	return rc;
}

/* The id of the committed files row `name` if it covers min_size bytes: 1, 0 if none, or an error. */
static int committed_file_id(ckpt_store *s, const char *name, uint64_t min_size, int64_t *id)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;

	pthread_mutex_lock(&s->idx->mu);
	if (sqlite3_prepare_v2(s->idx->db, "SELECT id, size FROM files WHERE name = ?1", -1, &st,
			       NULL) != SQLITE_OK) {
		rc = ckpt_store_sqlerr(s->idx, CKPT_EIO, "reading the files table");
	} else {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW &&
		    sqlite3_column_int64(st, 1) >= (int64_t)min_size) {
			*id = sqlite3_column_int64(st, 0);
			rc = 1;
		}
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->idx->mu);
	return rc;
}

/*
 * The id, in this batch, of src's data file sf hard-linked into d/: an entry
 * of the batch that links the same inode, a committed files row of a file of
 * that name and inode, or a new FILE_LINKED entry under the source's name (or
 * a name in the batch's scheme when d/ has another file of that name).
 */
static int link_src_file(ckpt_batch *b, const ckpt_store *src, const ckpt_store_file *sf, int64_t *id)
{
	ckpt_store *s = b->s;
	char batch_name[sizeof(b->files->name)];
	struct stat sst;
	batch_file *f;
	int rc, e = 0;

	if (fstat(sf->fd, &sst) < 0)
		return ckpt_error_errno(CKPT_EIO, errno, "stat %s/d/%s", src->dir, native_file_name(sf));
	for (size_t i = 0; i < b->nfiles; i++)
		if (b->files[i].kind == FILE_LINKED && b->files[i].dev == sst.st_dev &&
		    b->files[i].ino == sst.st_ino) {
			*id = b->files[i].id;
			return 0;
		}
	if ((f = next_file(b)) == NULL)
		return ckpt_error_nomem();
	f->kind = FILE_LINKED;
	f->size = sf->size;
	f->dev = sst.st_dev;
	f->ino = sst.st_ino;
	memcpy(batch_name, f->name, sizeof(batch_name));
	snprintf(f->name, sizeof(f->name), "%s", native_file_name(sf));
	if (linkat(src->idx->ddirfd, native_file_name(sf), s->idx->ddirfd, f->name, 0) < 0) {
		e = errno;
		if (e == EEXIST && same_inode(s->idx->ddirfd, f->name, &sst)) {
			/* Linked before: by a committed batch (reuse its row) or a crashed one. */
			if ((rc = committed_file_id(s, f->name, sf->size, id)) != 0)
				return rc < 0 ? rc : 0;
			e = 0; /* a crash's leftover: this batch's now */
		} else if (e == EEXIST) {
			memcpy(f->name, batch_name, sizeof(batch_name));
			e = linkat(src->idx->ddirfd, native_file_name(sf), s->idx->ddirfd, f->name, 0) < 0 ? errno : 0;
		}
	}
	if (e)
		return ckpt_error_errno(e == EXDEV || e == EPERM || e == EMLINK ? CKPT_EUNSUPPORTED
										 : CKPT_EIO,
					e, "link %s/d/%s into %s/d", src->dir, native_file_name(sf), s->dir);
	if (!same_inode(s->idx->ddirfd, f->name, &sst)) {
		unlinkat(s->idx->ddirfd, f->name, 0);
		return ckpt_error_set(CKPT_EIO, "%s/d/%s: replaced while being linked", src->dir,
				      native_file_name(sf));
	}
	*id = f->id;
	b->nfiles++;
	b->next_file_id++;
	return 0;
}

/* A copy of an inline value through a normal put. */
static int clone_inline(ckpt_batch *b, const void *key, size_t keylen, ckpt_value *v)
{
	const uint64_t size = ckpt_value_get_info(v)->size;
	void *val = malloc(size ? (size_t)size : 1);
	size_t n;
	int rc;

	if (val == NULL)
		return ckpt_error_nomem();
	if ((rc = ckpt_value_pread(&n, v, val, (size_t)size, 0)) == 0)
		rc = ckpt_batch_put(b, key, keylen, val, n, NULL);
	free(val);
	return rc;
}

int ckpt_batch_put_clone(ckpt_batch *b, const void *key, size_t keylen, ckpt_store *src,
			 const void *src_key, size_t src_keylen)
{
	const size_t nfiles = b->nfiles;
	const int64_t next_id = b->next_file_id;
	op o = {.kind = OP_PUT, .keylen = keylen};
	const ckpt_value_info *in;
	const ckpt_store_chunk *c;
	const uint32_t *blk;
	ckpt_value *v = NULL;
	size_t bpc;
	int rc;

	if ((rc = can_put(b, keylen)) < 0 || b->tiles_only)
		return rc;
	if (!(src->flags & CKPT_STORE_IMMUTABLE))
		return ckpt_error_set(CKPT_EINVAL, "%s: a clone source must be open immutable",
				      src->dir);
	if (src->idx == NULL)
		return ckpt_error_set(CKPT_EUNSUPPORTED,
				      "%s: only a ckpt index's data files can be linked", src->dir);
	if ((rc = ckpt_value_open(&v, src, src_key, src_keylen)) < 0)
		return rc;
	in = ckpt_value_get_info(v);
	if (ckpt_value_tiled(v)) { /* tiles are not one chunk table: the caller copies */
		ckpt_value_free(v);
		return ckpt_error_set(CKPT_EUNSUPPORTED, "%s: a tiled value is copied, not linked",
				      src->dir);
	}
	if (in->is_inline) {
		rc = clone_inline(b, key, keylen, v);
		ckpt_value_free(v);
		return rc;
	}
	c = ckpt_value_chunk_table(v);
	bpc = STORE_NBLOCKS(in->chunk_size);
	o.size = in->size;
	o.crc = in->crc32c;
	o.chunk_size = in->chunk_size;
	o.nchunks = in->nchunks;
	if ((o.chunks = calloc(o.nchunks ? o.nchunks : 1, sizeof(*o.chunks))) == NULL ||
	    (o.key = key_dup(key, keylen)) == NULL) {
		rc = ckpt_error_nomem();
		goto done;
	}
	for (uint32_t i = 0; i < o.nchunks; i++) {
		chunk_rec *r = &o.chunks[i];
		if (i > 0 && c[i].file == c[i - 1].file)
			r->file_id = r[-1].file_id;
		else if ((rc = link_src_file(b, src, c[i].file, &r->file_id)) < 0)
			goto done;
		r->off = c[i].off;
		r->stored = c[i].stored;
		r->raw = c[i].raw;
		r->crc = c[i].crc32c;
		r->codec = c[i].codec;
		if ((blk = ckpt_value_chunk_blocks(v, i)) != NULL && b->s->idx->has_blocks &&
		    (o.blocks || (o.blocks = malloc((size_t)o.nchunks * bpc * sizeof(*blk))))) {
			memcpy(store_chunk_blocks(o.blocks, i, in->chunk_size), blk,
			       STORE_NBLOCKS(r->stored) * sizeof(*blk));
			r->has_blocks = 1;
		}
	}
	if ((rc = add_op(b, &o)) < 0)
		goto done;
	o.key = NULL; /* now owned by the op */
	o.chunks = NULL;
	o.blocks = NULL;
done:
	if (rc < 0) { /* nothing staged: drop the links made here */
		for (size_t i = nfiles; i < b->nfiles; i++)
			unlinkat(b->s->idx->ddirfd, b->files[i].name, 0);
		b->nfiles = nfiles;
		b->next_file_id = next_id;
	}
	ckpt_value_free(v);
	free(o.key);
	free(o.chunks);
	free(o.blocks);
	return rc;
}

/* ---- the invariants, checked in one call (store_private.h) -------------- */

int ckpt_batch_check(const ckpt_batch *b)
{
	assert(b->s->idx && b->s->idx->batch == b); /* the store's one open batch */
	assert(b->cur == -1 || (b->cur >= 0 && (size_t)b->cur < b->nfiles));
	assert(b->nfiles <= b->capfiles && b->nops <= b->capops && b->nspare <= b->capspare);
	assert(b->writer == NULL || b->writer->b == b);
	for (size_t i = 0; i < b->nfiles; i++) {
		const batch_file *f = &b->files[i];
		assert(f->id < b->next_file_id);
		assert(i == 0 || f->id > b->files[i - 1].id); /* ids in creation order */
		assert(f->kind == FILE_APPENDED || f->kind == FILE_ADOPTED || f->kind == FILE_LINKED);
		/* invariant 8: only the current appended file is ever open for writing */
		assert(f->fd < 0 || ((ptrdiff_t)i == b->cur && f->kind == FILE_APPENDED));
		assert(f->dropped <= f->flushed && f->flushed <= f->size);
		assert(f->name[0] && strlen(f->name) <= STORE_MAX_FILE_NAME);
	}
	for (size_t i = 0; i < b->nops; i++) {
		const op *p = &b->ops[i];
		assert(p->kind == OP_PUT || p->kind == OP_DELETE || p->kind == OP_TILE);
		assert((p->kind == OP_TILE) == (p->tile != NULL));
		assert(p->keylen <= STORE_MAX_KEY);
		if (p->kind == OP_DELETE || p->is_inline) {
			assert(p->chunks == NULL && p->nchunks == 0);
			continue;
		}
		/* invariant 2: chunk i holds raw bytes [i * chunk_size, ...) */
		assert(p->chunk_size > 0 && p->chunk_size <= STORE_MAX_CHUNK_SIZE);
		assert(p->nchunks == (p->size + p->chunk_size - 1) / p->chunk_size);
		for (uint32_t k = 0; k < p->nchunks; k++) {
			const chunk_rec *c = &p->chunks[k];
			uint64_t want = p->size - (uint64_t)k * p->chunk_size;
			assert(c->raw == (want < p->chunk_size ? want : p->chunk_size));
			assert(c->codec == CKPT_CODEC_ZSTD || c->stored == c->raw);
			/* block CRCs only of raw chunks, kept in the op's array */
			assert(!c->has_blocks || (c->codec == CKPT_CODEC_RAW && p->blocks));
		}
	}
	return 1;
}
