/*
 * store_test.c — the key-value store (ckpt/store.h): values of every size,
 * listing, range reads, threads, batches, durability, damaged stores.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "ckpt/store.h"
#include "ckpt/error.h"
#include "store_private.h"
#include "fault_inject.h"

#define CS (64u * 1024) /* small chunks keep the tests fast */

#define FIXTURE_NAME "store_test"
#include "unit/store_fixture.h"

static ckpt_store_options opts_cs(void)
{
	ckpt_store_options o = CKPT_STORE_OPTIONS_INIT;
	o.chunk_size = CS;
	o.inline_max = 100;
	o.threads = 2;
	o.max_bytes_in_flight = 3 * CS;
	return o;
}

static ckpt_store *open_new(const char *dir, const ckpt_store_options *o)
{
	ckpt_store *s = NULL;
	int rc = ckpt_store_open(&s, dir, CKPT_STORE_CREATE, o);
	if (rc)
		fail_msg("open %s: %s", dir, ckpt_error_last());
	return s;
}

static unsigned char *text_bytes(size_t n)
{
	static const char words[] = "the quick brown fox jumps over the lazy dog 0123456789 ";
	unsigned char *p = malloc(n ? n : 1);
	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)words[(i * 7 + i / 13) % (sizeof(words) - 1)];
	return p;
}

static void check_get(ckpt_store *s, const void *key, size_t keylen, const void *want, size_t n)
{
	void *got;
	size_t len;
	int rc = ckpt_store_get(&got, &len, s, key, keylen);
	if (rc)
		fail_msg("get: %s", ckpt_error_last());
	assert_int_equal(len, n);
	assert_non_null(got);
	assert_memory_equal(got, want, n ? n : 1 - 1);
	free(got);
}

static int count_files(const char *dir, const char *sub)
{
	char p[256];
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(p, sizeof(p), "%s/%s", dir, sub);
	if ((d = opendir(p)) == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void sql(const char *dir, const char *q)
{
	char p[256];
	sqlite3 *db;
	snprintf(p, sizeof(p), "%s/ckpt.db", dir);
	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	if (sqlite3_exec(db, q, NULL, NULL, NULL) != SQLITE_OK)
		fail_msg("%s: %s", q, sqlite3_errmsg(db));
	sqlite3_close(db);
}

/* ---- values of every size --------------------------------------------- */

static void roundtrip(int level, int compressible)
{
	const size_t sizes[] = {0, 1, 100, 101, CS - 1, CS, CS + 1, 3 * CS, 5 * 1024 * 1024 + 7};
	const size_t ns = sizeof(sizes) / sizeof(*sizes);
	ckpt_store_options o = opts_cs();
	const char *dir = newdir();
	ckpt_store *s;
	ckpt_batch *b;
	unsigned char *data[16];
	char key[32];

	o.compression_level = level;
	s = open_new(dir, &o);
	assert_int_equal(ckpt_batch_begin(&b, s), 0);
	for (size_t i = 0; i < ns; i++) {
		data[i] = compressible ? text_bytes(sizes[i]) : random_bytes(sizes[i], (unsigned)i);
		snprintf(key, sizeof(key), "v/%zu", sizes[i]);
		if (i % 2) { /* streamed in odd pieces */
			ckpt_value_writer *w;
			assert_int_equal(ckpt_value_writer_open(&w, b, key, strlen(key), NULL), 0);
			for (size_t off = 0; off < sizes[i];) {
				size_t n = sizes[i] - off < 12345 ? sizes[i] - off : 12345;
				assert_int_equal(ckpt_value_writer_write(w, data[i] + off, n), 0);
				off += n;
				assert_true(ckpt_batch_check(b)); /* with a writer open */
			}
			assert_int_equal(ckpt_value_writer_close(w), 0);
		} else {
			assert_int_equal(
			    ckpt_batch_put(b, key, strlen(key), data[i], sizes[i], NULL), 0);
		}
	}
	assert_int_equal(ckpt_batch_commit(b, NULL), 0);
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < ns; i++) {
			ckpt_value_info in;
			snprintf(key, sizeof(key), "v/%zu", sizes[i]);
			check_get(s, key, strlen(key), data[i], sizes[i]);
			assert_int_equal(ckpt_store_stat(&in, s, key, strlen(key)), 0);
			assert_int_equal(in.size, sizes[i]);
			assert_int_equal(in.is_inline, sizes[i] <= 100);
			assert_int_equal(in.nchunks,
					 sizes[i] <= 100 ? 0 : (sizes[i] + CS - 1) / CS);
			if (sizes[i] > 4 * CS) {
				int zstd = level > 0 && compressible;
				assert_int_equal(in.codec, zstd ? CKPT_CODEC_ZSTD : CKPT_CODEC_RAW);
				if (zstd)
					assert_true(in.stored_size < in.size / 2);
				else
					assert_int_equal(in.stored_size, in.size);
			}
			ckpt_value *v;
			assert_int_equal(ckpt_value_open(&v, s, key, strlen(key)), 0);
			assert_int_equal(ckpt_value_verify(v), 0);
			ckpt_value_free(v);
		}
		ckpt_store_free(s); /* second pass: reopened */
		assert_int_equal(ckpt_store_open(&s, dir, 0, NULL), 0);
	}
	ckpt_store_free(s);
	for (size_t i = 0; i < ns; i++)
		free(data[i]);
}

static void test_roundtrip_zstd_text(void **state)
{
	roundtrip(3, 1);
}
static void test_roundtrip_zstd_random(void **state)
{
	roundtrip(3, 0);
}
static void test_roundtrip_raw_text(void **state)
{
	roundtrip(0, 1);
}

static void test_missing_and_replace_delete(void **state)
{
	const char *dir = newdir();
	ckpt_store_options o = opts_cs();
	ckpt_store *s;
	ckpt_batch *b;
	void *p;
	size_t n;
	unsigned char *big = random_bytes(3 * CS, 5);

	assert_int_equal(ckpt_store_open(&s, dir, 0, NULL), CKPT_ENOTFOUND);
	s = open_new(dir, &o);
	assert_int_equal(ckpt_store_get(&p, &n, s, "nope", 4), CKPT_ENOTFOUND);
	put1(s, "k", big, 3 * CS);
	put1(s, "k", "small", 5); /* chunked replaced by inline */
	check_get(s, "k", 1, "small", 5);
	assert_int_equal(ckpt_batch_begin(&b, s), 0);
	assert_int_equal(ckpt_batch_put(b, "x", 1, big, 2 * CS, NULL), 0);
	assert_int_equal(ckpt_batch_delete(b, "k", 1), 0);
	assert_int_equal(ckpt_batch_delete(b, "absent", 6), 0);
	assert_int_equal(ckpt_batch_commit(b, NULL), 0);
	assert_int_equal(ckpt_store_get(&p, &n, s, "k", 1), CKPT_ENOTFOUND);
	check_get(s, "x", 1, big, 2 * CS);
	ckpt_store_free(s);
	free(big);
}

/* ---- listing ---------------------------------------------------------- */

typedef struct listing {
	char out[1024];
	int n, stop_at;
} listing;

static int collect(const void *name, size_t len, int is_prefix, void *payload)
{
	listing *l = payload;
	size_t o = strlen(l->out);
	const unsigned char *p = name;

	for (size_t i = 0; i < len; i++)
		o += (size_t)snprintf(l->out + o, sizeof(l->out) - o,
				      p[i] >= 0x20 && p[i] < 0x7f ? "%c" : "<%02x>", p[i]);
	snprintf(l->out + o, sizeof(l->out) - o, "%s ", is_prefix ? "/" : "");
	return ++l->n == l->stop_at ? 42 : 0;
}

static const char *list(ckpt_store *s, const void *prefix, size_t plen, int delim)
{
	static listing l;
	memset(&l, 0, sizeof(l));
	assert_int_equal(ckpt_store_list(s, prefix, plen, delim, collect, &l), 0);
	return l.out;
}

static void test_list(void **state)
{
	static const struct {
		const char *k;
		size_t n;
	} keys[] = {
	    {"a", 1},	   {"a/b", 3},	     {"a/c/d", 5}, {"a/c/e", 5},    {"a/c/f/g", 7},
	    {"a\0x", 3},   {"ab", 2},	     {"b", 1},	   {"\xff", 1},	    {"\xff\xff/x", 4},
	    {"x\xffy", 3}, {"x\xff\xff", 3}, {"xa", 2},	   {"\x00\x00", 2}, {"a/\xff", 3},
	};
	ckpt_store_options o = opts_cs();
	ckpt_store *s = open_new(newdir(), &o);
	ckpt_batch *b;
	listing l = {.stop_at = 2};

	assert_int_equal(ckpt_batch_begin(&b, s), 0);
	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++)
		assert_int_equal(ckpt_batch_put(b, keys[i].k, keys[i].n, "v", 1, NULL), 0);
	assert_int_equal(ckpt_batch_commit(b, NULL), 0);

	assert_string_equal(list(s, "", 0, '/'),
			    "<00><00> a a<00>x a/ ab b xa x<ff>y x<ff><ff> <ff> <ff><ff>/ ");
	assert_string_equal(list(s, "a/", 2, '/'), "b c/ <ff> ");
	assert_string_equal(list(s, "a/c/", 4, '/'), "d e f/ ");
	assert_string_equal(list(s, "a/", 2, -1), "b c/d c/e c/f/g <ff> ");
	assert_string_equal(list(s, "a/c", 3, '/'), "/ ");
	assert_string_equal(list(s, "q", 1, '/'), "");
	assert_string_equal(list(s, "x", 1, 0xff), "a / ");
	assert_string_equal(list(s, "", 0, 0xff), "<00><00> a a<00>x a/b a/c/d a/c/e a/c/f/g a// "
						  "ab b xa x/ / ");
	assert_string_equal(list(s, "a", 1, 0), " / /b /c/d /c/e /c/f/g /<ff> b ");
	assert_string_equal(list(s, "\xff", 1, '/'), " <ff>/ ");
	/* a non-zero callback return stops the listing and is returned */
	assert_int_equal(ckpt_store_list(s, "", 0, '/', collect, &l), 42);
	assert_int_equal(l.n, 2);
	ckpt_store_free(s);
}

/*
 * The empty key is a key like any other (docs/format.md invariant 1): put,
 * get, open, list and delete it. sqlite returns a NULL blob for it, which
 * must never reach memcpy/memchr (UBSan caught listing it).
 */
static void test_empty_key(void **state)
{
	ckpt_store_options o = opts_cs();
	char dir[128];
	ckpt_store *s = open_new(strcpy(dir, newdir()), &o);
	unsigned char *big = random_bytes(3 * CS, 9);
	ckpt_value *v;
	ckpt_batch *b;

	assert_int_equal(ckpt_batch_begin(&b, s), 0);
	assert_int_equal(ckpt_batch_put(b, "", 0, "", 0, NULL), 0);
	assert_int_equal(ckpt_batch_put(b, "k", 1, big, 3 * CS, NULL), 0);
	assert_int_equal(ckpt_batch_commit(b, NULL), 0);
	check_get(s, "", 0, "", 0);
	assert_string_equal(list(s, "", 0, '/'), " k ");
	assert_string_equal(list(s, "", 0, -1), " k ");
	assert_int_equal(ckpt_value_open(&v, s, "", 0), 0);
	assert_int_equal(ckpt_value_get_info(v)->size, 0);
	assert_int_equal(ckpt_value_verify(v), 0);
	ckpt_value_free(v);
	/* replaced by a chunked value, then deleted */
	assert_int_equal(ckpt_batch_begin(&b, s), 0);
	assert_int_equal(ckpt_batch_put(b, "", 0, big, 3 * CS, NULL), 0);
	assert_int_equal(ckpt_batch_commit(b, NULL), 0);
	check_get(s, "", 0, big, 3 * CS);
	assert_int_equal(ckpt_store_seal(s), 0);
	ckpt_store_free(s);
	assert_int_equal(ckpt_store_open(&s, dir, CKPT_STORE_IMMUTABLE, NULL), 0);
	check_get(s, "", 0, big, 3 * CS);
	assert_string_equal(list(s, "", 0, '/'), " k ");
	ckpt_store_free(s);
	free(big);
}

static void test_list_one_seek_per_child(void **state)
{
	ckpt_store_options o = opts_cs();
	ckpt_store *s = open_new(newdir(), &o);
	ckpt_batch *b;
	char key[32];
	int runs;

	assert_int_equal(ckpt_batch_begin(&b, s), 0);
	for (int i = 0; i < 2000; i++) {
		snprintf(key, sizeof(key), "%c/%05d", i % 2 ? 'a' : 'b', i);
		assert_int_equal(ckpt_batch_put(b, key, strlen(key), "v", 1, NULL), 0);
	}
	assert_int_equal(ckpt_batch_put(b, "c", 1, "v", 1, NULL), 0);
	assert_int_equal(ckpt_batch_commit(b, NULL), 0);
	runs = sqlite3_stmt_status(s->idx->st_seek, SQLITE_STMTSTATUS_RUN, 0);
	assert_string_equal(list(s, "", 0, '/'), "a/ b/ c ");
	/* a/, b/, c, and the seek that finds nothing more */
	assert_int_equal(sqlite3_stmt_status(s->idx->st_seek, SQLITE_STMTSTATUS_RUN, 0) - runs, 4);
	ckpt_store_free(s);
}

/* ---- range reads and threads ------------------------------------------- */

static void check_ranges(ckpt_store *s, const char *key, const unsigned char *want, size_t size)
{
	const size_t pts[] = {0,      1,	  CS - 1,   CS,	  CS + 1,  2 * CS - 1,
			      2 * CS, 2 * CS + 1, size - 1, size, size + 1};
	const size_t lens[] = {0, 1, 2, CS - 1, CS, CS + 1, 2 * CS + 1, size};
	unsigned char *buf = malloc(size + 10);
	ckpt_value *v;

	assert_int_equal(ckpt_value_open(&v, s, key, strlen(key)), 0);
	for (size_t i = 0; i < sizeof(pts) / sizeof(*pts); i++)
		for (size_t j = 0; j < sizeof(lens) / sizeof(*lens); j++) {
			size_t n = 99, want_n = pts[i] >= size ? 0 : size - pts[i];
			if (want_n > lens[j])
				want_n = lens[j];
			assert_int_equal(ckpt_value_pread(&n, v, buf, lens[j], pts[i]), 0);
			assert_int_equal(n, want_n);
			if (n)
				assert_memory_equal(buf, want + pts[i], n);
		}
	ckpt_value_free(v);
	free(buf);
}

static void test_range_reads(void **state)
{
	const size_t size = 3 * CS + CS / 2;
	unsigned char *text = text_bytes(size), *rnd = random_bytes(size, 9);
	unsigned char *mix = malloc(size); /* zstd and raw chunks alternate */

	for (size_t i = 0; i < size; i++)
		mix[i] = (i / CS) % 2 ? rnd[i] : text[i];

	for (int cache = 0; cache < 2; cache++) {
		ckpt_store_options o = opts_cs();
		ckpt_store *s;
		o.cache_size = cache ? 2 * CS : 0;
		s = open_new(newdir(), &o);
		put1(s, "text", text, size);
		put1(s, "rnd", rnd, size);
		put1(s, "mix", mix, size);
		check_ranges(s, "mix", mix, size);
		check_get(s, "mix", 3, mix, size);
		uint64_t before = ckpt_store_bytes_read(s);
		check_ranges(s, "text", text, size);
		check_ranges(s, "rnd", rnd, size);
		assert_true(ckpt_store_bytes_read(s) > before);
		/* a read inside one chunk touches only that chunk */
		ckpt_value *v;
		unsigned char b4[16];
		size_t n;
		assert_int_equal(ckpt_value_open(&v, s, "rnd", 3), 0);
		before = ckpt_store_bytes_read(s);
		assert_int_equal(ckpt_value_pread(&n, v, b4, sizeof(b4), 2 * CS + 100), 0);
		assert_memory_equal(b4, rnd + 2 * CS + 100, sizeof(b4));
		if (!cache) /* raw: the one block (format 1.2) */
			assert_int_equal(ckpt_store_bytes_read(s) - before, CKPT_CRC_BLOCK);
		ckpt_value_free(v);
		ckpt_store_free(s);
	}
	free(text);
	free(rnd);
	free(mix);
}

typedef struct reader_arg {
	ckpt_value *v;
	const unsigned char *want;
	size_t size;
	unsigned seed;
	int bad;
} reader_arg;

static void *reader(void *p)
{
	reader_arg *a = p;
	unsigned char *buf = malloc(3 * CS);

	for (int i = 0; i < 300; i++) {
		size_t off = (size_t)rand_r(&a->seed) % a->size;
		size_t len = (size_t)rand_r(&a->seed) % (3 * CS), n;
		if (ckpt_value_pread(&n, a->v, buf, len, off) != 0 ||
		    n != (len < a->size - off ? len : a->size - off) ||
		    memcmp(buf, a->want + off, n) != 0)
			a->bad++;
	}
	free(buf);
	return NULL;
}

static void test_concurrent_preads(void **state)
{
	const size_t size = 40 * CS + 123;
	unsigned char *text = text_bytes(size);
	ckpt_store_options o = opts_cs();
	ckpt_store *s;
	ckpt_value *v;
	pthread_t t[8];
	reader_arg a[8];

	o.cache_size = 5 * CS;
	s = open_new(newdir(), &o);
	put1(s, "big", text, size);
	assert_int_equal(ckpt_value_open(&v, s, "big", 3), 0);
	for (int i = 0; i < 8; i++) {
		a[i] = (reader_arg){v, text, size, (unsigned)i + 1, 0};
		assert_int_equal(pthread_create(&t[i], NULL, reader, &a[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(a[i].bad, 0);
	}
	ckpt_value_free(v);
	ckpt_store_free(s);
	free(text);
}

/* ---- batches, generations, durability ----------------------------------- */

static void test_abort_and_generations(void **state)
{
	const char *dir = newdir();
	ckpt_store_options o = opts_cs();
	ckpt_store *s = open_new(dir, &o);
	ckpt_batch *b, *b2;
	ckpt_value_writer *w;
	ckpt_value_info in;
	unsigned char *big = random_bytes(4 * CS, 3);
	uint64_t g = 0;
	void *p;
	size_t n;

	assert_int_equal(ckpt_store_generation(s), 0);
	assert_int_equal(ckpt_batch_begin(&b, s), 0);
	assert_int_equal(ckpt_batch_begin(&b2, s), CKPT_EBUSY);
	assert_int_equal(ckpt_batch_put(b, "a", 1, big, 4 * CS, NULL), 0);
	assert_int_equal(ckpt_batch_put(b, "i", 1, "x", 1, NULL), 0);
	assert_int_equal(ckpt_value_writer_open(&w, b, "w", 1, NULL), 0);
	assert_int_equal(ckpt_value_writer_write(w, big, 2 * CS), 0);
	assert_int_equal(count_files(dir, "d"), 1);
	ckpt_batch_abort(b); /* also drops the open writer */
	assert_int_equal(count_files(dir, "d"), 0);
	assert_int_equal(ckpt_store_get(&p, &n, s, "a", 1), CKPT_ENOTFOUND);
	assert_int_equal(ckpt_store_get(&p, &n, s, "i", 1), CKPT_ENOTFOUND);
	assert_int_equal(ckpt_store_generation(s), 0);

	for (uint64_t i = 1; i <= 3; i++) {
		assert_int_equal(ckpt_batch_begin(&b, s), 0);
		assert_int_equal(ckpt_batch_put(b, &"abc"[i - 1], 1, big, i * CS, NULL), 0);
		assert_int_equal(ckpt_batch_commit(b, &g), 0);
		assert_int_equal(g, i);
		assert_int_equal(ckpt_store_generation(s), i);
	}
	assert_int_equal(ckpt_store_stat(&in, s, "b", 1), 0);
	assert_int_equal(in.generation, 2);
	/* writer left open at commit: refused, nothing visible */
	assert_int_equal(ckpt_batch_begin(&b, s), 0);
	assert_int_equal(ckpt_batch_put(b, "z", 1, "zz", 2, NULL), 0);
	assert_int_equal(ckpt_value_writer_open(&w, b, "w", 1, NULL), 0);
	assert_int_not_equal(ckpt_batch_commit(b, NULL), 0);
	assert_int_equal(ckpt_store_get(&p, &n, s, "z", 1), CKPT_ENOTFOUND);
	assert_int_equal(ckpt_store_generation(s), 3);
	ckpt_store_free(s);
	assert_int_equal(ckpt_store_open(&s, dir, CKPT_STORE_READONLY, NULL), 0);
	assert_int_equal(ckpt_store_generation(s), 3);
	check_get(s, "c", 1, big, 3 * CS);
	assert_int_equal(ckpt_batch_begin(&b, s), CKPT_EREADONLY);
	ckpt_store_free(s);
	free(big);
}

static void test_rollover_seal_immutable(void **state)
{
	const char *dir = newdir();
	char copy[160], cmd[600], p[200];
	ckpt_store_options o = opts_cs();
	ckpt_store *s;
	unsigned char *big = random_bytes(10 * CS, 4);
	struct stat st;

	o.target_data_file_size = 3 * CS;
	o.compression_level = 0;
	s = open_new(dir, &o);
	put1(s, "big", big, 10 * CS);
	assert_int_equal(count_files(dir, "d"), 4); /* 3 + 3 + 3 + 1 chunks */
	assert_int_equal(ckpt_store_seal(s), 0);
	ckpt_store_free(s);
	assert_int_equal(count_files(dir, ""), 2); /* ckpt.db and d/ only */
	snprintf(p, sizeof(p), "%s/ckpt.db-journal", dir);
	assert_int_not_equal(stat(p, &st), 0);
	snprintf(copy, sizeof(copy), "%s copy?#%%", dir); /* URI-hostile name */
	snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s' && chmod -R a-w '%s'", dir, copy, copy);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(ckpt_store_open(&s, copy, CKPT_STORE_IMMUTABLE, &o), 0);
	check_get(s, "big", 3, big, 10 * CS);
	ckpt_store_free(s);
	assert_int_equal(count_files(copy, ""), 2);
	/* a relative path works too */
	assert_int_equal(chdir(root), 0);
	assert_int_equal(ckpt_store_open(&s, strrchr(copy, '/') + 1, CKPT_STORE_IMMUTABLE, &o), 0);
	check_get(s, "big", 3, big, 10 * CS);
	ckpt_store_free(s);
	assert_int_equal(chdir("/"), 0);
	snprintf(cmd, sizeof(cmd), "chmod -R u+w '%s'", copy);
	assert_int_equal(system(cmd), 0);
	free(big);
}

static void test_read_after_unlink(void **state)
{
	const char *dir = newdir();
	char cmd[200];
	ckpt_store_options o = opts_cs();
	ckpt_store *s = open_new(dir, &o);
	unsigned char *big = random_bytes(3 * CS, 6), *buf = malloc(3 * CS);
	ckpt_value *v;
	size_t n;

	put1(s, "big", big, 3 * CS);
	assert_int_equal(ckpt_value_open(&v, s, "big", 3), 0);
	snprintf(cmd, sizeof(cmd), "rm -f %s/d/*", dir);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(ckpt_value_pread(&n, v, buf, 3 * CS, 0), 0);
	assert_int_equal(n, 3 * CS);
	assert_memory_equal(buf, big, n);
	ckpt_value_free(v);
	ckpt_store_free(s);
	free(big);
	free(buf);
}

/* ---- damaged stores ---------------------------------------------------- */

static void test_newer_major_refused(void **state)
{
	const char *dir = newdir();
	ckpt_store_options o = opts_cs();
	ckpt_store *s = open_new(dir, &o);

	ckpt_store_free(s);
	sql(dir, "UPDATE meta SET value = 3 WHERE name = 'format_major'");
	assert_int_equal(ckpt_store_open(&s, dir, 0, NULL), CKPT_EVERSION);
	assert_non_null(strstr(ckpt_error_last(), "format version 3."));
	assert_int_equal(ckpt_store_open(&s, dir, CKPT_STORE_READONLY, NULL), CKPT_EVERSION);
	sql(dir, "UPDATE meta SET value = 1 WHERE name = 'format_major';"
		 "UPDATE meta SET value = 7 WHERE name = 'format_minor'");
	assert_int_equal(ckpt_store_open(&s, dir, 0, NULL), 0); /* newer minor is fine */
	ckpt_store_free(s);
}

static void flip_byte(const char *dir, const char *key, int chunk, long delta)
{
	char p[256], q[256];
	sqlite3 *db;
	sqlite3_stmt *st;
	FILE *f;
	int c;

	snprintf(p, sizeof(p), "%s/ckpt.db", dir);
	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	snprintf(q, sizeof(q),
		 "SELECT f.name, c.offset FROM chunks c JOIN files f ON f.id = c.file_id"
		 " WHERE c.key = CAST('%s' AS BLOB) AND c.idx = %d",
		 key, chunk);
	assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(p, sizeof(p), "%s/d/%s", dir, (const char *)sqlite3_column_text(st, 0));
	long off = (long)sqlite3_column_int64(st, 1) + delta;
	sqlite3_finalize(st);
	sqlite3_close(db);
	assert_non_null(f = fopen(p, "r+b"));
	fseek(f, off, SEEK_SET);
	c = fgetc(f);
	fseek(f, off, SEEK_SET);
	fputc(c ^ 0x40, f);
	fclose(f);
}

static void test_corrupt_chunk(void **state)
{
	const size_t size = 4 * CS;
	unsigned char *text = text_bytes(size), *rnd = random_bytes(size, 8), *buf = malloc(size);
	const char *dir = newdir();
	ckpt_store_options o = opts_cs();
	ckpt_store *s = open_new(dir, &o);
	ckpt_batch *b;

	assert_int_equal(ckpt_batch_begin(&b, s), 0);
	assert_int_equal(ckpt_batch_put(b, "t", 1, text, size, NULL), 0);
	assert_int_equal(ckpt_batch_put(b, "r", 1, rnd, size, NULL), 0);
	assert_int_equal(ckpt_batch_commit(b, NULL), 0);
	ckpt_store_free(s);
	flip_byte(dir, "t", 2, 5);
	flip_byte(dir, "r", 2, 1000);
	for (int cache = 0; cache < 2; cache++) {
		o.cache_size = cache ? size : 0;
		assert_int_equal(ckpt_store_open(&s, dir, CKPT_STORE_READONLY, &o), 0);
		for (int k = 0; k < 2; k++) {
			const char *key = k ? "r" : "t";
			const unsigned char *want = k ? rnd : text;
			ckpt_value *v;
			size_t n;
			void *p;
			assert_int_equal(ckpt_value_open(&v, s, key, 1), 0);
			for (uint32_t c = 0; c < 4; c++) {
				int rc = ckpt_value_pread(&n, v, buf, CS, c * CS);
				int rc2 = ckpt_value_pread(&n, v, buf, 10, c * CS + 7);
				if (c == 2) {
					assert_int_equal(rc, CKPT_ECORRUPT);
					assert_int_equal(rc2, CKPT_ECORRUPT);
					assert_non_null(strstr(ckpt_error_last(), "chunk 2"));
					assert_non_null(strstr(ckpt_error_last(), "/d/"));
					assert_non_null(
					    strstr(ckpt_error_last(), k ? "'r'" : "'t'"));
				} else {
					assert_int_equal(rc, 0);
					assert_int_equal(rc2, 0);
					assert_memory_equal(buf, want + c * CS + 7, 10);
				}
			}
			/* a read spanning all chunks (one pread) names the bad one */
			assert_int_equal(ckpt_value_pread(&n, v, buf, size, 0), CKPT_ECORRUPT);
			assert_non_null(strstr(ckpt_error_last(), "chunk 2"));
			assert_int_equal(ckpt_value_verify(v), CKPT_ECORRUPT);
			ckpt_value_free(v);
			assert_int_equal(ckpt_store_get(&p, &n, s, key, 1), CKPT_ECORRUPT);
		}
		ckpt_store_free(s);
	}
	free(text);
	free(rnd);
	free(buf);
}

/* Bytes the store reads for [off, off + len) of key, which must equal want there. */
static uint64_t read_cost(ckpt_store *s, const char *key, const unsigned char *want,
			  uint64_t off, size_t len, int expect)
{
	unsigned char *buf = malloc(len);
	uint64_t before = ckpt_store_bytes_read(s);
	ckpt_value *v;
	size_t n;

	assert_int_equal(ckpt_value_open(&v, s, key, strlen(key)), 0);
	assert_int_equal(ckpt_value_pread(&n, v, buf, len, off), expect);
	if (expect == 0)
		assert_memory_equal(buf, want + off, len);
	ckpt_value_free(v);
	free(buf);
	return ckpt_store_bytes_read(s) - before;
}

/* Format 1.2: part of a raw chunk is read and checked by 8 KiB blocks. */
static void test_block_crcs(void **state)
{
	const uint32_t B = CKPT_CRC_BLOCK;
	const size_t size = 3 * CS + 5000; /* the last chunk is one short block: none */
	unsigned char *rnd = random_bytes(size, 21);
	const char *dir = newdir();
	char d[128];
	ckpt_store_options o = opts_cs();
	ckpt_store *s = open_new(dir, &o);
	ckpt_value *v;

	snprintf(d, sizeof(d), "%s", dir);
	put1(s, "r", rnd, size);
	check_ranges(s, "r", rnd, size);
	for (unsigned seed = 1; seed < 300; seed++) { /* random ranges, every alignment */
		uint64_t off = (uint64_t)rand_r(&seed) % size;
		size_t len = 1 + (size_t)rand_r(&seed) % (size - off);
		read_cost(s, "r", rnd, off, len < 3 * B ? len : len % (3 * B) + 1, 0);
	}
	assert_int_equal(read_cost(s, "r", rnd, CS + 3 * B + 100, 16, 0), B);
	assert_int_equal(read_cost(s, "r", rnd, CS + B - 8, 16, 0), 2 * B);
	/* a bounced first block, three whole ones, a bounced last one */
	assert_int_equal(read_cost(s, "r", rnd, CS + 8000, 3 * B + 300, 0), 5 * B);
	/* the tail of a chunk whose last block is whole */
	assert_int_equal(read_cost(s, "r", rnd, 2 * CS - 10, 10, 0), B);
	/* the short last chunk has no blocks: it is read whole */
	assert_int_equal(read_cost(s, "r", rnd, 3 * CS + 10, 10, 0), 5000);
	ckpt_store_free(s);

	/* a flipped byte fails only the reads of its block, and verify */
	flip_byte(d, "r", 1, 5 * B + 10);
	assert_int_equal(ckpt_store_open(&s, d, CKPT_STORE_READONLY, &o), 0);
	read_cost(s, "r", rnd, CS + 4 * B, B, 0);
	read_cost(s, "r", rnd, CS + 6 * B, 100, 0);
	read_cost(s, "r", rnd, CS + 5 * B + 100, 10, CKPT_ECORRUPT);
	assert_non_null(strstr(ckpt_error_last(), "chunk 1"));
	assert_non_null(strstr(ckpt_error_last(), "CRC32C mismatch in block 5"));
	read_cost(s, "r", rnd, CS, CS, CKPT_ECORRUPT); /* the whole chunk: its CRC */
	assert_int_equal(ckpt_value_open(&v, s, "r", 1), 0);
	assert_int_equal(ckpt_value_verify(v), CKPT_ECORRUPT);
	ckpt_value_free(v);
	ckpt_store_free(s);
	flip_byte(d, "r", 1, 5 * B + 10); /* flipped back */

	/* block CRCs of the wrong length, or that do not add up to the chunk's CRC */
	sql(d, "UPDATE chunks SET blocks = x'0102' WHERE idx = 0");
	assert_int_equal(ckpt_store_open(&s, d, CKPT_STORE_READONLY, &o), 0);
	assert_int_equal(ckpt_value_open(&v, s, "r", 1), CKPT_ECORRUPT);
	assert_non_null(strstr(ckpt_error_last(), "bad block CRCs in chunk row 0"));
	ckpt_store_free(s);
	sql(d, "UPDATE chunks SET blocks = zeroblob(4 * 8) WHERE idx = 0");
	assert_int_equal(ckpt_store_open(&s, d, CKPT_STORE_READONLY, &o), 0);
	read_cost(s, "r", rnd, 100, 10, CKPT_ECORRUPT);
	assert_non_null(strstr(ckpt_error_last(), "block 0"));
	read_cost(s, "r", rnd, 0, CS, 0); /* the chunk's own CRC still holds */
	assert_int_equal(ckpt_value_open(&v, s, "r", 1), 0);
	assert_int_equal(ckpt_value_verify(v), CKPT_ECORRUPT);
	assert_non_null(strstr(ckpt_error_last(), "block CRCs do not combine"));
	ckpt_value_free(v);
	ckpt_store_free(s);
	sql(d, "UPDATE chunks SET blocks = x'00000000' WHERE idx = 3"); /* 5000 bytes: one */
	sql(d, "UPDATE chunks SET blocks = NULL WHERE idx = 0");
	assert_int_equal(ckpt_store_open(&s, d, CKPT_STORE_READONLY, &o), 0);
	assert_int_equal(read_cost(s, "r", rnd, 100, 10, 0), CS); /* none: the whole chunk */
	read_cost(s, "r", rnd, 3 * CS + 10, 10, CKPT_ECORRUPT);
	ckpt_store_free(s);

	/* a 1.1 store (no blocks column) reads as before and takes new values */
	sql(d, "UPDATE chunks SET blocks = NULL WHERE idx = 3;"
	       "ALTER TABLE chunks DROP COLUMN blocks;"
	       "UPDATE meta SET value = 1 WHERE name = 'format_minor'");
	assert_int_equal(ckpt_store_open(&s, d, 0, &o), 0);
	check_ranges(s, "r", rnd, size);
	assert_int_equal(read_cost(s, "r", rnd, CS + 100, 10, 0), CS);
	put1(s, "r2", rnd, size);
	check_ranges(s, "r2", rnd, size);
	assert_int_equal(read_cost(s, "r2", rnd, CS + 100, 10, 0), CS);
	ckpt_store_free(s);
	free(rnd);
}

static void test_corrupt_inline_and_rows(void **state)
{
	const char *dir = newdir();
	ckpt_store_options o = opts_cs();
	ckpt_store *s = open_new(dir, &o);
	unsigned char *rnd = random_bytes(2 * CS, 1);
	ckpt_batch *b;
	void *p;
	size_t n;

	assert_int_equal(ckpt_batch_begin(&b, s), 0);
	assert_int_equal(ckpt_batch_put(b, "in\x01\xff", 4, "hello", 5, NULL), 0);
	assert_int_equal(ckpt_batch_put(b, "big", 3, rnd, 2 * CS, NULL), 0);
	assert_int_equal(ckpt_batch_put(b, "big2", 4, rnd, 2 * CS, NULL), 0);
	assert_int_equal(ckpt_batch_put(b, "big3", 4, rnd, 2 * CS, NULL), 0);
	assert_int_equal(ckpt_batch_commit(b, NULL), 0);
	put1(s, "big4", rnd, 2 * CS); /* data file 2 */
	ckpt_store_free(s);
	sql(dir,
	    "UPDATE kv SET inline = CAST('hellp' AS BLOB) WHERE key = X'696E01FF';"
	    "UPDATE chunks SET offset = 1000000000 WHERE key = CAST('big' AS BLOB) AND idx = 1;"
	    "UPDATE chunks SET raw_len = 5 WHERE key = CAST('big2' AS BLOB) AND idx = 0;"
	    "UPDATE kv SET crc32c = (crc32c + 1) % 4294967296 WHERE key = CAST('big4' AS BLOB);"
	    "UPDATE files SET name = '../../etc/passwd' WHERE id = 1;");
	assert_int_equal(ckpt_store_open(&s, dir, 0, NULL), 0);
	assert_int_equal(ckpt_store_get(&p, &n, s, "in\x01\xff", 4), CKPT_ECORRUPT);
	assert_non_null(strstr(ckpt_error_last(), "in\\x01\\xff"));
	assert_int_equal(ckpt_store_get(&p, &n, s, "big", 3), CKPT_ECORRUPT);
	assert_int_equal(ckpt_store_get(&p, &n, s, "big2", 4), CKPT_ECORRUPT);
	assert_int_equal(ckpt_store_get(&p, &n, s, "big3", 4), CKPT_ECORRUPT);
	assert_non_null(strstr(ckpt_error_last(), "bad files row"));
	/* chunks intact, whole-value CRC wrong: ranges read, whole reads fail */
	ckpt_value *v;
	assert_int_equal(ckpt_value_open(&v, s, "big4", 4), 0);
	assert_int_equal(ckpt_value_pread(&n, v, rnd, CS, CS), 0);
	assert_int_equal(ckpt_value_verify(v), CKPT_ECORRUPT);
	assert_non_null(strstr(ckpt_error_last(), "whole-value"));
	ckpt_value_free(v);
	assert_int_equal(ckpt_store_get(&p, &n, s, "big4", 4), CKPT_ECORRUPT);
	ckpt_store_free(s);
	free(rnd);
}

static void test_garbage_db(void **state)
{
	static const char *const contents[] = {"", "this is not a database at all, just text\n"};
	ckpt_store *s;

	for (int i = 0; i < 3; i++) {
		const char *dir = newdir();
		char p[256];
		FILE *f;
		mkdir(dir, 0755);
		snprintf(p, sizeof(p), "%s/ckpt.db", dir);
		if (i < 2) {
			assert_non_null(f = fopen(p, "wb"));
			fputs(contents[i], f);
			for (int k = 0; i == 1 && k < 200; k++)
				fputs("garbage garbage garbage garbage\n", f);
			fclose(f);
		} else { /* a real sqlite database of someone else */
			sql(dir, "CREATE TABLE meta(x); CREATE TABLE kv(a, b)");
		}
		assert_int_equal(ckpt_store_open(&s, dir, 0, NULL), CKPT_ECORRUPT);
		assert_non_null(strstr(ckpt_error_last(), "is not a ckpt index"));
		assert_int_equal(ckpt_store_open(&s, dir, CKPT_STORE_READONLY, NULL),
				 CKPT_ECORRUPT);
		assert_int_equal(ckpt_store_open(&s, dir, CKPT_STORE_CREATE, NULL),
				 i == 0 ? 0 : CKPT_ECORRUPT); /* an empty file is an empty db */
		ckpt_store_free(i == 0 ? s : NULL);
	}
}

static void test_fault_injection(void **state)
{
	const char *dir = newdir();
	ckpt_store_options o = opts_cs();
	ckpt_store *s;
	unsigned char *big = random_bytes(8 * CS, 2), *text = text_bytes(8 * CS);
	int failures = 0, n;

	o.target_data_file_size = 2 * CS;
	s = open_new(dir, &o);
	put1(s, "old", big, 3 * CS);
	n = count_files(dir, "d");
	for (int fault = 1;; fault++) {
		ckpt_batch *b;
		int rc;
		assert_int_equal(ckpt_batch_begin(&b, s), 0);
		arm(fault); /* the fault-th I/O call of the batch fails */
		rc = ckpt_batch_put(b, "new", 3, big, 8 * CS, NULL);
		if (rc == 0)
			rc = ckpt_batch_put(b, "txt", 3, text, 8 * CS, NULL);
		if (rc == 0)
			rc = ckpt_batch_put(b, "old", 3, "x", 1, NULL);
		if (rc == 0) {
			rc = ckpt_batch_commit(b, NULL);
		} else {
			assert_int_equal(ckpt_batch_commit(b, NULL), rc); /* poisoned */
		}
		disarm();
		if (rc == 0) /* no fault left, or one the commit absorbs: checked below */
			break;
		failures++;
		if (rc != CKPT_EIO && rc != CKPT_ECORRUPT)
			fail_msg("fault %d: %d: %s", fault, rc, ckpt_error_last());
		/* the previous generation is intact, nothing of the batch is left */
		ckpt_store_free(s);
		assert_int_equal(ckpt_store_open(&s, dir, 0, &o), 0);
		assert_int_equal(ckpt_store_generation(s), 1);
		check_get(s, "old", 3, big, 3 * CS);
		assert_int_equal(count_files(dir, "d"), n);
		assert_int_equal(ckpt_store_stat(&(ckpt_value_info){0}, s, "new", 3),
				 CKPT_ENOTFOUND);
	}
	assert_true(failures >= 10);
	assert_int_equal(ckpt_store_generation(s), 2);
	check_get(s, "new", 3, big, 8 * CS);
	check_get(s, "txt", 3, text, 8 * CS);
	check_get(s, "old", 3, "x", 1);
	ckpt_store_free(s);
	free(big);
	free(text);
}

/* ---- zero-copy puts: adopted files and clones --------------------------- */

/* Write n bytes to dir/name (created). */
static void write_file(const char *dir, const char *name, const void *p, size_t n)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(f = fopen(path, "wb"));
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

/* stat of the only file in dir/d. */
static struct stat only_data_file(const char *dir)
{
	char p[600];
	struct dirent *e;
	struct stat st;
	DIR *d;

	assert_int_equal(count_files(dir, "d"), 1);
	snprintf(p, sizeof(p), "%s/d", dir);
	assert_non_null(d = opendir(p));
	while ((e = readdir(d)) != NULL && e->d_name[0] == '.')
		;
	assert_non_null(e);
	snprintf(p, sizeof(p), "%s/d/%s", dir, e->d_name);
	closedir(d);
	assert_int_equal(stat(p, &st), 0);
	return st;
}

static struct stat stat_in(const char *dir, const char *name)
{
	char p[256];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	assert_int_equal(stat(p, &st), 0);
	return st;
}

static void check_verify(ckpt_store *s, const char *key)
{
	ckpt_value *v;

	assert_int_equal(ckpt_value_open(&v, s, key, strlen(key)), 0);
	if (ckpt_value_verify(v) != 0)
		fail_msg("verify %s: %s", key, ckpt_error_last());
	ckpt_value_free(v);
}

/* put_file of one key in its own batch. */
static int put_file1(ckpt_store *s, const char *key, int dirfd, const char *name, uint64_t off,
		     uint64_t len, int level)
{
	ckpt_put_options po = CKPT_PUT_OPTIONS_INIT;
	ckpt_batch *b;
	int rc;

	po.compression_level = level;
	assert_int_equal(ckpt_batch_begin(&b, s), 0);
	rc = ckpt_batch_put_file(b, key, strlen(key), dirfd, name, off, len, &po);
	assert_int_equal(ckpt_batch_commit(b, NULL), 0);
	return rc;
}

static void test_put_file_adopts(void **state)
{
	const size_t off = 12345, len = (2u << 20) + 3; /* odd offset, short last chunk */
	const char *dir = newdir();
	char src[160];
	ckpt_store_options o = opts_cs();
	unsigned char *data = random_bytes(off + len + 99, 11);
	ckpt_value_info in;
	ckpt_store *s;
	struct stat st;
	int dfd;

	snprintf(src, sizeof(src), "%s-files", dir);
	assert_int_equal(mkdir(src, 0755), 0);
	write_file(src, "a.npy", data, off + len + 99);
	assert_true((dfd = open(src, O_RDONLY | O_DIRECTORY)) >= 0);
	s = open_new(dir, &o);
	assert_int_equal(put_file1(s, "a", dfd, "a.npy", off, len, -1), 0);
	check_get(s, "a", 1, data + off, len);
	check_verify(s, "a");
	assert_int_equal(ckpt_store_stat(&in, s, "a", 1), 0);
	assert_int_equal(in.stored_size, len);
	assert_int_equal(in.codec, CKPT_CODEC_RAW);
	assert_int_equal(in.nchunks, (len + CS - 1) / CS);
	/* with block CRCs: part of a chunk reads the blocks it overlaps */
	assert_int_equal(read_cost(s, "a", data + off, CS + 8190, 4, 0), 2 * CKPT_CRC_BLOCK);
	check_ranges(s, "a", data + off, len);
	/* adopted, not copied: d/ holds the same inode */
	st = only_data_file(dir);
	assert_int_equal(st.st_nlink, 2);
	assert_int_equal(st.st_ino, stat_in(src, "a.npy").st_ino);
	assert_int_equal(st.st_size, off + len + 99);
	/* commit fails at each step: fsync of the adopted file, of d/, the index */
	int faults = 0;
	for (;; faults++) {
		ckpt_batch *b;
		int rc;
		assert_int_equal(ckpt_batch_begin(&b, s), 0);
		assert_int_equal(ckpt_batch_put_file(b, "a2", 2, dfd, "a.npy", 0, len, NULL), 0);
		assert_int_equal(stat_in(src, "a.npy").st_nlink, 3);
		arm(faults + 1); /* the (faults+1)-th I/O call of the commit fails */
		rc = ckpt_batch_commit(b, NULL);
		disarm();
		if (rc == 0) /* no fault left, or one the commit absorbs: checked below */
			break;
		if (rc != CKPT_EIO && rc != CKPT_ECORRUPT)
			fail_msg("fault %d: %d: %s", faults + 1, rc, ckpt_error_last());
		assert_int_equal(stat_in(src, "a.npy").st_nlink, 2);
		assert_int_equal(ckpt_store_stat(&in, s, "a2", 2), CKPT_ENOTFOUND);
	}
	assert_true(faults >= 3); /* the adopted file's fsync, d/'s, the index's writes */
	check_get(s, "a2", 2, data, len);
	/* the store no longer needs the original name */
	assert_int_equal(unlinkat(dfd, "a.npy", 0), 0);
	ckpt_store_free(s);
	assert_int_equal(ckpt_store_open(&s, dir, CKPT_STORE_READONLY, NULL), 0);
	check_get(s, "a", 1, data + off, len);
	ckpt_store_free(s);
	close(dfd);
	free(data);
}

static void test_put_file_copies(void **state)
{
	const size_t len = 8 * CS + 5;
	const char *dir = newdir();
	char src[160];
	ckpt_store_options o = opts_cs();
	unsigned char *zeros = calloc(1, len), *rnd = random_bytes(len, 12);
	ckpt_value_info in;
	ckpt_store *s;
	ckpt_batch *b;
	void *p;
	size_t n;
	int dfd;

	snprintf(src, sizeof(src), "%s-files", dir);
	assert_int_equal(mkdir(src, 0755), 0);
	write_file(src, "zeros", zeros, len);
	write_file(src, "rnd", rnd, len);
	assert_true((dfd = open(src, O_RDONLY | O_DIRECTORY)) >= 0);
	s = open_new(dir, &o);
	/* compressible at level 1: copied and compressed */
	assert_int_equal(put_file1(s, "z", dfd, "zeros", 0, len, 1), 0);
	check_get(s, "z", 1, zeros, len);
	check_verify(s, "z");
	assert_int_equal(ckpt_store_stat(&in, s, "z", 1), 0);
	assert_true(in.stored_size < in.size);
	assert_int_equal(in.codec, CKPT_CODEC_ZSTD);
	assert_int_equal(only_data_file(dir).st_nlink, 1);
	assert_int_equal(stat_in(src, "zeros").st_nlink, 1);
	/* the same bytes at level 0 are adopted */
	assert_int_equal(put_file1(s, "z0", dfd, "zeros", 0, len, 0), 0);
	assert_int_equal(stat_in(src, "zeros").st_nlink, 2);
	check_get(s, "z0", 2, zeros, len);
	/* fewer than 4 chunks: copied; up to inline_max: inline */
	assert_int_equal(put_file1(s, "r3", dfd, "rnd", 1, 3 * CS, 1), 0);
	assert_int_equal(put_file1(s, "r50", dfd, "rnd", 7, 50, 1), 0);
	assert_int_equal(stat_in(src, "rnd").st_nlink, 1);
	check_get(s, "r3", 2, rnd + 1, 3 * CS);
	check_get(s, "r50", 3, rnd + 7, 50);
	assert_int_equal(ckpt_store_stat(&in, s, "r50", 3), 0);
	assert_true(in.is_inline);
	/* a file shorter than the range, or missing: nothing staged */
	n = (size_t)count_files(dir, "d");
	assert_int_equal(put_file1(s, "bad", dfd, "rnd", 2, len - 1, 0), CKPT_EINVAL);
	assert_int_equal(put_file1(s, "bad", dfd, "rnd", len + 1, 0, 0), CKPT_EINVAL);
	assert_int_equal(put_file1(s, "bad", dfd, "nope", 0, 1, 0), CKPT_ENOTFOUND);
	assert_int_equal(ckpt_store_get(&p, &n, s, "bad", 3), CKPT_ENOTFOUND);
	assert_int_equal(count_files(dir, "d"), 3); /* z, z0 (adopted), r3 */
	/* abort removes the adopted link and leaves the file */
	assert_int_equal(ckpt_batch_begin(&b, s), 0);
	assert_int_equal(ckpt_batch_put_file(b, "r", 1, dfd, "rnd", 0, len, NULL), 0);
	assert_int_equal(stat_in(src, "rnd").st_nlink, 2);
	assert_int_equal(count_files(dir, "d"), 4);
	ckpt_batch_abort(b);
	assert_int_equal(stat_in(src, "rnd").st_nlink, 1);
	assert_int_equal(count_files(dir, "d"), 3);
	assert_int_equal(ckpt_store_get(&p, &n, s, "r", 1), CKPT_ENOTFOUND);
	ckpt_store_free(s);
	close(dfd);
	free(zeros);
	free(rnd);
}

/* A directory on another filesystem than root (NULL if there is none). */
static const char *other_fs_dir(void)
{
	static char d[64];
	struct stat a, b;

	strcpy(d, "/dev/shm/store_test.XXXXXX");
	if (mkdtemp(d) == NULL)
		return NULL;
	if (stat(d, &a) < 0 || stat(root, &b) < 0 || a.st_dev == b.st_dev) {
		rmdir(d);
		return NULL;
	}
	return d;
}

static void test_put_file_other_fs(void **state)
{
	const size_t len = 6 * CS;
	const char *src = other_fs_dir(), *dir = newdir();
	ckpt_store_options o = opts_cs();
	unsigned char *rnd = random_bytes(len, 13);
	char cmd[128];
	ckpt_store *s;
	int dfd;

	if (src == NULL)
		skip();
	write_file(src, "rnd", rnd, len);
	assert_true((dfd = open(src, O_RDONLY | O_DIRECTORY)) >= 0);
	s = open_new(dir, &o);
	assert_int_equal(put_file1(s, "r", dfd, "rnd", 0, len, 0), 0); /* EXDEV: copied */
	check_get(s, "r", 1, rnd, len);
	assert_int_equal(only_data_file(dir).st_nlink, 1);
	assert_int_equal(stat_in(src, "rnd").st_nlink, 1);
	ckpt_store_free(s);
	close(dfd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", src);
	assert_int_equal(system(cmd), 0);
	free(rnd);
}

/* A sealed store in dir with "big" (random, 3 data files), "txt" (zstd) and "small" (inline). */
static void make_clone_source(const char *dir, const unsigned char *big, size_t nbig,
			      const unsigned char *txt, size_t ntxt)
{
	ckpt_store_options o = opts_cs();
	ckpt_store *s;
	ckpt_batch *b;

	o.target_data_file_size = 3 * CS;
	s = open_new(dir, &o);
	assert_int_equal(ckpt_batch_begin(&b, s), 0);
	assert_int_equal(ckpt_batch_put(b, "big", 3, big, nbig, NULL), 0);
	assert_int_equal(ckpt_batch_put(b, "txt", 3, txt, ntxt, NULL), 0);
	assert_int_equal(ckpt_batch_put(b, "small", 5, "hello", 5, NULL), 0);
	assert_int_equal(ckpt_batch_commit(b, NULL), 0);
	assert_int_equal(ckpt_store_seal(s), 0);
	ckpt_store_free(s);
}

static int clone1(ckpt_store *s, const char *key, ckpt_store *src, const char *src_key)
{
	ckpt_batch *b;
	int rc;

	assert_int_equal(ckpt_batch_begin(&b, s), 0);
	rc = ckpt_batch_put_clone(b, key, strlen(key), src, src_key, strlen(src_key));
	assert_int_equal(ckpt_batch_commit(b, NULL), 0);
	return rc;
}

/* Every data file of dst is a file of src's d/ (same name and inode), or -1. */
static int shared_files(const char *dst, const char *src)
{
	char p[600];
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(p, sizeof(p), "%s/d", dst);
	assert_non_null(d = opendir(p));
	while ((e = readdir(d)) != NULL) {
		struct stat a, b;
		char q[600];
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/d/%s", dst, e->d_name);
		snprintf(q, sizeof(q), "%s/d/%s", src, e->d_name);
		if (stat(p, &a) < 0 || stat(q, &b) < 0 || a.st_ino != b.st_ino)
			n = -1;
		else if (n >= 0)
			n++;
	}
	closedir(d);
	return n;
}

static void test_put_clone(void **state)
{
	const size_t nbig = 7 * CS + 17, ntxt = 6 * CS;
	const char *names[] = {"big", "txt", "small"};
	unsigned char *big = random_bytes(nbig, 14), *txt = text_bytes(ntxt);
	const unsigned char *want[] = {big, txt, (const unsigned char *)"hello"};
	const size_t sizes[] = {nbig, ntxt, 5};
	char src_dir[160], dst_dir[160], cmd[400];
	ckpt_store_options o = opts_cs();
	ckpt_store *src, *dst;
	ckpt_batch *b;
	int nsrc;

	snprintf(src_dir, sizeof(src_dir), "%s", newdir());
	snprintf(dst_dir, sizeof(dst_dir), "%s", newdir());
	make_clone_source(src_dir, big, nbig, txt, ntxt);
	nsrc = count_files(src_dir, "d");
	assert_true(nsrc >= 3);
	dst = open_new(dst_dir, &o);
	/* refused unless the source is immutable */
	assert_int_equal(ckpt_store_open(&src, src_dir, CKPT_STORE_READONLY, NULL), 0);
	assert_int_equal(clone1(dst, "x", src, "big"), CKPT_EINVAL);
	ckpt_store_free(src);
	assert_int_equal(ckpt_store_open(&src, src_dir, CKPT_STORE_IMMUTABLE, NULL), 0);
	assert_int_equal(clone1(dst, "x", src, "nope"), CKPT_ENOTFOUND);
	assert_int_equal(count_files(dst_dir, "d"), 0);
	/* one batch: each key, plus big a second time (its files linked once) */
	assert_int_equal(ckpt_batch_begin(&b, dst), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(ckpt_batch_put_clone(b, names[i], strlen(names[i]), src, names[i],
						      strlen(names[i])),
				 0);
	assert_int_equal(ckpt_batch_put_clone(b, "big2", 4, src, "big", 3), 0);
	assert_true(ckpt_batch_check(b)); /* linked files and their chunk tables */
	assert_int_equal(ckpt_batch_commit(b, NULL), 0);
	assert_int_equal(shared_files(dst_dir, src_dir), nsrc);
	/* a later batch reuses the committed links */
	assert_int_equal(clone1(dst, "big3", src, "big"), 0);
	assert_int_equal(count_files(dst_dir, "d"), nsrc);
	for (int i = 0; i < 3; i++) {
		ckpt_value_info a, c;
		assert_int_equal(ckpt_store_stat(&a, src, names[i], strlen(names[i])), 0);
		assert_int_equal(ckpt_store_stat(&c, dst, names[i], strlen(names[i])), 0);
		assert_int_equal(c.size, a.size);
		assert_int_equal(c.crc32c, a.crc32c);
		assert_int_equal(c.stored_size, a.stored_size);
		assert_int_equal(c.is_inline, i == 2);
		assert_int_equal(c.codec, i == 1 ? CKPT_CODEC_ZSTD : CKPT_CODEC_RAW);
	}
	ckpt_store_free(src);
	/* the clone does not need the source any more */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", src_dir);
	assert_int_equal(system(cmd), 0);
	ckpt_store_free(dst);
	assert_int_equal(ckpt_store_open(&dst, dst_dir, CKPT_STORE_READONLY, NULL), 0);
	for (int i = 0; i < 3; i++) {
		check_get(dst, names[i], strlen(names[i]), want[i], sizes[i]);
		check_verify(dst, names[i]);
	}
	check_get(dst, "big2", 4, big, nbig);
	check_get(dst, "big3", 4, big, nbig);
	/* the block CRCs came along: part of a raw chunk reads one 8 KiB block */
	assert_int_equal(read_cost(dst, "big", big, 2 * CS + 100, 10, 0), CKPT_CRC_BLOCK);
	ckpt_store_free(dst);
	free(big);
	free(txt);
}

static void test_put_clone_name_taken_abort_other_fs(void **state)
{
	const size_t nbig = 7 * CS + 17, ntxt = 6 * CS;
	unsigned char *big = random_bytes(nbig, 15), *txt = text_bytes(ntxt);
	char src_dir[160], dst_dir[160], cmd[400];
	const char *shm;
	ckpt_store_options o = opts_cs();
	ckpt_store *src, *dst;
	ckpt_batch *b;
	struct dirent *e;
	DIR *d;
	void *p;
	size_t n;

	snprintf(src_dir, sizeof(src_dir), "%s", newdir());
	snprintf(dst_dir, sizeof(dst_dir), "%s", newdir());
	make_clone_source(src_dir, big, nbig, txt, ntxt);
	assert_int_equal(ckpt_store_open(&src, src_dir, CKPT_STORE_IMMUTABLE, NULL), 0);
	dst = open_new(dst_dir, &o);
	/* dst/d already has other files named like every source file */
	snprintf(cmd, sizeof(cmd), "%s/d", src_dir);
	assert_non_null(d = opendir(cmd));
	snprintf(cmd, sizeof(cmd), "%s/d", dst_dir);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			write_file(cmd, e->d_name, "other", 5);
	closedir(d);
	n = (size_t)count_files(dst_dir, "d");
	/* abort removes the links */
	assert_int_equal(ckpt_batch_begin(&b, dst), 0);
	assert_int_equal(ckpt_batch_put_clone(b, "big", 3, src, "big", 3), 0);
	assert_true((size_t)count_files(dst_dir, "d") > n);
	ckpt_batch_abort(b);
	assert_int_equal(count_files(dst_dir, "d"), n);
	/* linked under other names */
	assert_int_equal(clone1(dst, "big", src, "big"), 0);
	assert_true((size_t)count_files(dst_dir, "d") > n);
	check_get(dst, "big", 3, big, nbig);
	check_verify(dst, "big");
	ckpt_store_free(dst);
	/* another filesystem: unsupported, nothing staged */
	if ((shm = other_fs_dir()) != NULL) {
		snprintf(dst_dir, sizeof(dst_dir), "%s/s", shm);
		dst = open_new(dst_dir, &o);
		assert_int_equal(clone1(dst, "txt", src, "txt"), CKPT_EUNSUPPORTED);
		assert_int_equal(ckpt_store_get(&p, &n, dst, "txt", 3), CKPT_ENOTFOUND);
		assert_int_equal(count_files(dst_dir, "d"), 0);
		assert_int_equal(clone1(dst, "small", src, "small"), 0); /* inline: copied */
		check_get(dst, "small", 5, "hello", 5);
		ckpt_store_free(dst);
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", shm);
		assert_int_equal(system(cmd), 0);
	}
	/* a clone that fails after linking some files stages nothing */
	check_get(src, "big", 3, big, nbig); /* the source keeps its files open */
	snprintf(cmd, sizeof(cmd), "rm '%s'/d/*-2", src_dir); /* big's last file */
	assert_int_equal(system(cmd), 0);
	snprintf(dst_dir, sizeof(dst_dir), "%s", newdir());
	dst = open_new(dst_dir, &o);
	assert_int_equal(clone1(dst, "big", src, "big"), CKPT_EIO);
	assert_int_equal(count_files(dst_dir, "d"), 0);
	assert_int_equal(ckpt_store_get(&p, &n, dst, "big", 3), CKPT_ENOTFOUND);
	ckpt_store_free(dst);
	ckpt_store_free(src);
	free(big);
	free(txt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip_zstd_text),
	    cmocka_unit_test(test_roundtrip_zstd_random),
	    cmocka_unit_test(test_roundtrip_raw_text),
	    cmocka_unit_test(test_missing_and_replace_delete),
	    cmocka_unit_test(test_list),
	    cmocka_unit_test(test_empty_key),
	    cmocka_unit_test(test_list_one_seek_per_child),
	    cmocka_unit_test(test_range_reads),
	    cmocka_unit_test(test_concurrent_preads),
	    cmocka_unit_test(test_abort_and_generations),
	    cmocka_unit_test(test_rollover_seal_immutable),
	    cmocka_unit_test(test_read_after_unlink),
	    cmocka_unit_test(test_newer_major_refused),
	    cmocka_unit_test(test_corrupt_chunk),
	    cmocka_unit_test(test_block_crcs),
	    cmocka_unit_test(test_corrupt_inline_and_rows),
	    cmocka_unit_test(test_garbage_db),
	    cmocka_unit_test(test_fault_injection),
	    cmocka_unit_test(test_put_file_adopts),
	    cmocka_unit_test(test_put_file_copies),
	    cmocka_unit_test(test_put_file_other_fs),
	    cmocka_unit_test(test_put_clone),
	    cmocka_unit_test(test_put_clone_name_taken_abort_other_fs),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
