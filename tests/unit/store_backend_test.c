/*
 * store_backend_test.c — a backend written outside the library, through
 * <ckpt/sys/store_backend.h> only: every read function of ckpt/store.h works
 * on its inline, chunked (checksummed or not, RAW or zstd frames without a
 * content size) and computed values; writes are refused; a backend of an
 * unknown version or with a missing slot is refused.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <zstd.h>

#include "ckpt/error.h"
#include "ckpt/store.h"
#include "ckpt/sys/error.h"
#include "ckpt/sys/store_backend.h"
#include "crc32c.h"
#include "fsutil.h"

#define CS 4096u	/* chunk size of the chunked values */
#define NRAW (3 * CS + 100)

typedef struct mem_backend {
	ckpt_store_backend base;
	ckpt_store_file file; /* one data file: RAW bytes, then one zstd frame */
	char path[64];
	uint64_t zoff;	      /* where the zstd frame starts */
	uint32_t zlen;
	unsigned char raw[NRAW];
	int freed;
	int *freed_flag;
} mem_backend;

static int computed_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	(void)ctx;
	for (size_t i = 0; i < len; i++)
		((unsigned char *)buf)[i] = (unsigned char)((off + i) * 7);
	return 0;
}

static void computed_free(void *ctx)
{
	free(ctx);
}

static const ckpt_value_reader COMPUTED = {computed_pread, NULL, computed_free};

static int mem_open_value(ckpt_value_source *out, ckpt_store_backend *be, const void *key,
			  size_t keylen)
{
	mem_backend *m = (mem_backend *)be;

	if (keylen == 3 && memcmp(key, "inl", 3) == 0) {
		out->info.size = 5;
		out->info.is_inline = 1;
		out->inline_data = malloc(5);
		memcpy(out->inline_data, "hello", 5);
		return 0;
	}
	if (keylen == 3 && memcmp(key, "raw", 3) == 0) { /* RAW chunks; checksums on chunk 1 only */
		uint32_t n = (NRAW + CS - 1) / CS;
		out->info.size = NRAW;
		out->info.chunk_size = CS;
		out->info.nchunks = n;
		out->info.crc32c = ckpt_crc32c_update(0, m->raw, NRAW);
		out->has_value_crc = 1;
		out->chunks = calloc(n, sizeof(*out->chunks));
		for (uint32_t i = 0; i < n; i++) {
			ckpt_store_chunk *c = &out->chunks[i];
			c->file = &m->file;
			c->off = (uint64_t)i * CS;
			c->raw = c->stored = i + 1 < n ? CS : NRAW - (n - 1) * CS;
			c->codec = CKPT_CODEC_RAW;
			c->has_crc = i == 1;
			c->crc32c = ckpt_crc32c_update(0, m->raw + c->off, c->stored);
		}
		return 0;
	}
	if (keylen == 4 && memcmp(key, "zstd", 4) == 0) { /* one frame, no content size, no CRC */
		out->info.size = NRAW;
		out->info.chunk_size = NRAW;
		out->info.nchunks = 1;
		out->chunks = calloc(1, sizeof(*out->chunks));
		out->chunks[0] = (ckpt_store_chunk){.file = &m->file, .off = m->zoff,
						    .stored = m->zlen, .raw = NRAW,
						    .codec = CKPT_CODEC_ZSTD};
		return 0;
	}
	if (keylen == 3 && memcmp(key, "bad", 3) == 0) { /* a chunk past the end of the file */
		out->info.size = CS;
		out->info.chunk_size = CS;
		out->info.nchunks = 1;
		out->chunks = calloc(1, sizeof(*out->chunks));
		out->chunks[0] = (ckpt_store_chunk){.file = &m->file, .off = m->file.size - 10,
						    .stored = CS, .raw = CS, .codec = CKPT_CODEC_RAW};
		return 0;
	}
	if (keylen == 4 && memcmp(key, "calc", 4) == 0) {
		out->info.size = 1000;
		out->reader = &COMPUTED;
		out->reader_ctx = malloc(1);
		return 0;
	}
	return ckpt_error_set_str(CKPT_ENOTFOUND, "no key");
}

static int mem_list(ckpt_store_backend *be, const void *prefix, size_t prefixlen, int delimiter,
		    ckpt_store_list_cb cb, void *payload)
{
	static const char *const keys[] = {"bad", "calc", "inl", "raw", "zstd"};
	int rc = 0;

	(void)be;
	(void)delimiter;
	for (size_t i = 0; i < 5 && rc == 0; i++)
		if (strlen(keys[i]) >= prefixlen && memcmp(keys[i], prefix, prefixlen) == 0)
			rc = cb(keys[i] + prefixlen, strlen(keys[i]) - prefixlen, 0, payload);
	return rc;
}

static void mem_free(ckpt_store_backend *be)
{
	mem_backend *m = (mem_backend *)be;

	close(m->file.fd);
	unlink(m->path);
	*m->freed_flag += 1;
	free(m);
}

static mem_backend *mem_new(int *freed)
{
	mem_backend *m = calloc(1, sizeof(*m));
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	size_t cap = ZSTD_compressBound(NRAW);
	void *z = malloc(cap);
	size_t zn;

	assert_int_equal(ckpt_store_backend_init(&m->base, CKPT_STORE_BACKEND_VERSION), 0);
	m->base.open_value = mem_open_value;
	m->base.list = mem_list;
	m->base.free = mem_free;
	m->freed_flag = freed;
	for (size_t i = 0; i < NRAW; i++)
		m->raw[i] = (unsigned char)(i * 31 + (i >> 8));
	/* A frame without the content size, as TensorStore writes zarr chunks. */
	ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0);
	zn = ZSTD_compress2(cc, z, cap, m->raw, NRAW);
	assert_false(ZSTD_isError(zn));
	assert_int_equal(ZSTD_getFrameContentSize(z, zn), ZSTD_CONTENTSIZE_UNKNOWN);
	snprintf(m->path, sizeof(m->path), "/tmp/ckpt-backend-test.XXXXXX");
	m->file.fd = mkstemp(m->path);
	assert_true(m->file.fd >= 0);
	assert_int_equal(write(m->file.fd, m->raw, NRAW), NRAW);
	assert_int_equal(write(m->file.fd, z, zn), (ssize_t)zn);
	m->zoff = NRAW;
	m->zlen = (uint32_t)zn;
	m->file.size = NRAW + zn;
	m->file.id = 1;
	m->file.path = "data";
	free(z);
	ZSTD_freeCCtx(cc);
	return m;
}

static void check_bytes(ckpt_store *s, const char *key, const unsigned char *want, size_t n)
{
	ckpt_value *v;
	unsigned char *buf = malloc(n + 1);
	size_t got;

	assert_int_equal(ckpt_value_open(&v, s, key, strlen(key)), 0);
	assert_int_equal(ckpt_value_get_info(v)->size, n);
	for (size_t off = 0; off < n; off += 777) {
		size_t len = n - off < 2000 ? n - off : 2000;
		assert_int_equal(ckpt_value_pread(&got, v, buf, len, off), 0);
		assert_int_equal(got, len);
		assert_memory_equal(buf, want + off, len);
	}
	assert_int_equal(ckpt_value_verify(v), 0);
	ckpt_value_free(v);
	free(buf);
}

static void test_reads_through_a_foreign_backend(void **state)
{
	int freed = 0;
	mem_backend *m = mem_new(&freed);
	ckpt_store_options o = CKPT_STORE_OPTIONS_INIT;
	ckpt_store *s;
	ckpt_value_info in;
	ckpt_batch *b;
	unsigned char calc[1000], raw[NRAW];
	void *all;
	size_t n;

	(void)state;
	o.cache_size = 1 << 20;
	memcpy(raw, m->raw, NRAW);
	assert_int_equal(ckpt_store_open_backend(&s, &m->base, "mem", &o), 0);
	for (size_t i = 0; i < sizeof(calc); i++)
		calc[i] = (unsigned char)(i * 7);
	check_bytes(s, "inl", (const unsigned char *)"hello", 5);
	check_bytes(s, "raw", raw, NRAW);
	check_bytes(s, "zstd", raw, NRAW);
	check_bytes(s, "calc", calc, sizeof(calc));
	assert_int_equal(ckpt_store_stat(&in, s, "zstd", 4), 0);
	assert_int_equal(in.codec, CKPT_CODEC_ZSTD);
	assert_int_equal(in.nchunks, 1);
	assert_int_equal(ckpt_store_get(&all, &n, s, "raw", 3), 0);
	assert_int_equal(n, NRAW);
	assert_memory_equal(all, raw, NRAW);
	free(all);
	assert_true(ckpt_store_bytes_read(s) > 0);
	/* A backend's lie about placement is caught before any read. */
	assert_int_equal(ckpt_store_stat(&in, s, "bad", 3), CKPT_ECORRUPT);
	assert_non_null(strstr(ckpt_error_last(), "data"));
	assert_int_equal(ckpt_store_stat(&in, s, "nope", 4), CKPT_ENOTFOUND);
	/* Writes are refused. */
	assert_int_equal(ckpt_batch_begin(&b, s), CKPT_EREADONLY);
	assert_int_equal(ckpt_store_seal(s), CKPT_EREADONLY);
	ckpt_store_free(s);
	assert_int_equal(freed, 1);
}

static void test_checksummed_chunk_is_checked(void **state)
{
	int freed = 0;
	mem_backend *m = mem_new(&freed);
	ckpt_store *s;
	ckpt_value *v;
	unsigned char buf[CS];
	size_t n;

	(void)state;
	/* Flip a byte of chunk 1 (the one with a CRC) and one of chunk 0 (no CRC). */
	assert_int_equal(pwrite(m->file.fd, "X", 1, CS + 5), 1);
	assert_int_equal(pwrite(m->file.fd, "X", 1, 5), 1);
	assert_int_equal(ckpt_store_open_backend(&s, &m->base, "mem", NULL), 0);
	assert_int_equal(ckpt_value_open(&v, s, "raw", 3), 0);
	assert_int_equal(ckpt_value_pread(&n, v, buf, CS, 0), 0); /* nothing records it */
	assert_int_equal(ckpt_value_pread(&n, v, buf, CS, CS), CKPT_ECORRUPT);
	assert_non_null(strstr(ckpt_error_last(), "chunk 1"));
	assert_int_equal(ckpt_value_verify(v), CKPT_ECORRUPT);
	ckpt_value_free(v);
	ckpt_store_free(s);
}

static void test_refuses_unknown_version_and_missing_slots(void **state)
{
	int freed = 0;
	mem_backend *m = mem_new(&freed);
	ckpt_store *s = (ckpt_store *)1;
	ckpt_store_backend tmp;

	(void)state;
	assert_int_equal(ckpt_store_backend_init(&tmp, CKPT_STORE_BACKEND_VERSION + 1),
			 CKPT_EVERSION);
	m->base.version = CKPT_STORE_BACKEND_VERSION + 1;
	assert_int_equal(ckpt_store_open_backend(&s, &m->base, "mem", NULL), CKPT_EVERSION);
	assert_null(s);
	assert_int_equal(freed, 1); /* ownership passed even on failure */
	m = mem_new(&freed);
	m->base.list = NULL;
	assert_int_equal(ckpt_store_open_backend(&s, &m->base, "mem", NULL), CKPT_EINVAL);
	assert_int_equal(freed, 2);
}

static int mem_describe(char **out, ckpt_store_backend *be, const void *key, size_t keylen)
{
	(void)be;
	return (*out = ckpt_asprintf("{\"key\":\"%.*s\"}", (int)keylen, (const char *)key)) ? 0
											 : CKPT_ENOMEM;
}

static void test_describe_slot(void **state)
{
	int freed = 0;
	mem_backend *m = mem_new(&freed);
	ckpt_store *s = NULL;
	ckpt_value *v = NULL;
	char *d = (char *)1;

	(void)state;
	/* no slot: nothing to say */
	assert_int_equal(ckpt_store_open_backend(&s, &m->base, "mem", NULL), 0);
	assert_int_equal(ckpt_value_open(&v, s, "raw", 3), 0);
	assert_int_equal(ckpt_value_describe(&d, v), 0);
	assert_null(d);
	ckpt_value_free(v);
	ckpt_store_free(s);
	/* the slot answers for the value's key */
	m = mem_new(&freed);
	m->base.describe = mem_describe;
	assert_int_equal(ckpt_store_open_backend(&s, &m->base, "mem", NULL), 0);
	assert_int_equal(ckpt_value_open(&v, s, "raw", 3), 0);
	assert_int_equal(ckpt_value_describe(&d, v), 0);
	assert_string_equal(d, "{\"key\":\"raw\"}");
	free(d);
	ckpt_value_free(v);
	ckpt_store_free(s);
	/* a version-1 backend is still accepted, and its (absent) slot never read */
	m = mem_new(&freed);
	m->base.version = 1;
	m->base.describe = mem_describe; /* past the end of a real version-1 struct */
	assert_int_equal(ckpt_store_open_backend(&s, &m->base, "mem", NULL), 0);
	assert_int_equal(ckpt_value_open(&v, s, "raw", 3), 0);
	d = (char *)1;
	assert_int_equal(ckpt_value_describe(&d, v), 0);
	assert_null(d);
	ckpt_value_free(v);
	ckpt_store_free(s);
	assert_int_equal(freed, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reads_through_a_foreign_backend),
	    cmocka_unit_test(test_checksummed_chunk_is_checked),
	    cmocka_unit_test(test_refuses_unknown_version_and_missing_slots),
	    cmocka_unit_test(test_describe_slot),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
