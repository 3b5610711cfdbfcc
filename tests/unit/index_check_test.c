/*
 * index_check_test.c — the sealed index checksum (docs/format.md, "Index
 * checksum"): a sealed store opens checked; a store without one (format 1.0,
 * or never sealed) still opens, unchecked; a batch clears the checksum and a
 * seal records it again; and a flip of any single bit in any byte of a small
 * sealed ckpt.db never changes what a reader returns: the open fails, or every
 * key and value is exactly as written (0 silent changes).
 *
 * CKPT_FLIP_STRIDE (default 1: every byte) sets the distance between flipped
 * offsets; tests/stress/ runs the same walk on other stores. The walk over an
 * unsealed copy reports, as a figure and not an assertion, how many flips a
 * reader without the checksum would have missed.
 */
#include <fcntl.h>
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

#include "ckpt/error.h"
#include "ckpt/store.h"

#define CS (64u * 1024)

#define FIXTURE_NAME "index_check_test"
#include "unit/store_fixture.h"

/* The keys and values of the small store: inline, chunked, empty, binary keys. */
#define NKEYS 7
static const struct {
	const char *k;
	size_t klen, vlen;
} keys[NKEYS] = {
    {"_CHECKPOINT_METADATA", 20, 300},
    {"state/_METADATA", 15, 900},
    {"state/a", 7, 3 * CS + 17}, /* chunked: 4 chunks */
    {"state/b", 7, 64},
    {"state/c\0\xff", 9, 0},
    {"", 0, 5},
    {"z", 1, CS}, /* chunked: 1 chunk */
};

static unsigned char *value_of(size_t i)
{
	unsigned char *p = malloc(keys[i].vlen + 1);
	unsigned s = 77 + (unsigned)i;
	assert_non_null(p);
	for (size_t j = 0; j < keys[i].vlen; j++) {
		s = s * 1103515245u + 12345u;
		p[j] = (unsigned char)(i % 2 ? 'a' + (s >> 16) % 26 : s >> 16);
	}
	return p;
}

static void make_store(const char *dir, int seal)
{
	ckpt_store_options o = CKPT_STORE_OPTIONS_INIT;
	ckpt_store *s;
	ckpt_batch *b;

	o.chunk_size = CS;
	o.inline_max = 1000;
	o.threads = 1;
	assert_int_equal(ckpt_store_open(&s, dir, CKPT_STORE_CREATE, &o), 0);
	assert_int_equal(ckpt_batch_begin(&b, s), 0);
	for (size_t i = 0; i < NKEYS; i++) {
		unsigned char *v = value_of(i);
		assert_int_equal(ckpt_batch_put(b, keys[i].k, keys[i].klen, v, keys[i].vlen, NULL),
				 0);
		free(v);
	}
	assert_int_equal(ckpt_batch_commit(b, NULL), 0);
	if (seal)
		assert_int_equal(ckpt_store_seal(s), 0);
	ckpt_store_free(s);
}

typedef struct {
	size_t n;
	int bad;
} seen;

static int count_key(const void *name, size_t len, int is_prefix, void *payload)
{
	seen *c = payload;
	int known = 0;
	for (size_t i = 0; i < NKEYS; i++)
		known |= len == keys[i].klen && memcmp(name, keys[i].k, len) == 0;
	c->bad |= !known || is_prefix;
	c->n++;
	return 0;
}

/*
 * Read everything back as a reader would: 1 if every key is listed once and
 * every value is exactly as written, 0 if anything failed (an error: a
 * detected change), -1 if the store opened and answered something else (a
 * silent change).
 */
static int read_back(const char *dir)
{
	ckpt_store *s;
	seen c = {0};
	int result = 1;

	if (ckpt_store_open(&s, dir, CKPT_STORE_IMMUTABLE, NULL) != 0)
		return 0;
	if (ckpt_store_list(s, "", 0, -1, count_key, &c) != 0) {
		result = 0;
		goto done;
	}
	if (c.bad || c.n != NKEYS)
		result = -1;
	for (size_t i = 0; i < NKEYS && result == 1; i++) {
		unsigned char *want = value_of(i);
		void *got = NULL;
		size_t n = 0;
		int rc = ckpt_store_get(&got, &n, s, keys[i].k, keys[i].klen);
		if (rc != 0)
			result = 0;
		else if (n != keys[i].vlen || (n && memcmp(got, want, n) != 0))
			result = -1;
		free(got);
		free(want);
	}
done:
	ckpt_store_free(s);
	return result;
}

/* Flip one bit of every stride-th byte of dir/ckpt.db; count the outcomes. */
static void flip_walk(const char *dir, size_t stride, int verbose, size_t *nflips,
		      size_t *ndetected, size_t *nsilent)
{
	char db[256];
	struct stat st;
	int fd;

	snprintf(db, sizeof(db), "%s/ckpt.db", dir);
	assert_int_equal(stat(db, &st), 0);
	assert_true((fd = open(db, O_RDWR)) >= 0);
	*nflips = *ndetected = *nsilent = 0;
	for (off_t off = 0; off < st.st_size; off += (off_t)stride) {
		unsigned char b, f;
		int r;
		assert_int_equal(pread(fd, &b, 1, off), 1);
		f = (unsigned char)(b ^ (1u << (off % 8)));
		assert_int_equal(pwrite(fd, &f, 1, off), 1);
		r = read_back(dir);
		assert_int_equal(pwrite(fd, &b, 1, off), 1);
		(*nflips)++;
		*ndetected += r == 0;
		*nsilent += r < 0;
		if (r < 0 && verbose)
			print_message("silent change: bit %d of byte %lld\n", (int)(off % 8),
				      (long long)off);
	}
	close(fd);
}

static size_t stride(void)
{
	const char *e = getenv("CKPT_FLIP_STRIDE");
	return e && atoi(e) > 0 ? (size_t)atoi(e) : 1;
}

static void test_flip_every_byte_sealed(void **state)
{
	const char *dir = newdir();
	size_t n, det, silent;

	make_store(dir, 1);
	assert_int_equal(read_back(dir), 1);
	flip_walk(dir, stride(), 1, &n, &det, &silent);
	print_message("sealed ckpt.db: %zu flips, %zu detected, %zu silent\n", n, det, silent);
	assert_int_equal(silent, 0);
	assert_int_equal(det, n); /* the checksum covers every byte, unused ones too */
	assert_int_equal(read_back(dir), 1);
}

/* Without the checksum (format 1.0): the figure the checksum improves on. */
static void test_flip_every_byte_unsealed(void **state)
{
	const char *dir = newdir();
	size_t n, det, silent;

	make_store(dir, 0);
	assert_int_equal(read_back(dir), 1);
	flip_walk(dir, stride() * 7, 0, &n, &det, &silent);
	print_message("unsealed ckpt.db (no checksum, every 7th byte): %zu flips, %zu detected, "
		      "%zu silent\n",
		      n, det, silent);
	assert_int_equal(read_back(dir), 1);
}

static void test_checked_unchecked_reseal(void **state)
{
	const char *dir = newdir();
	ckpt_store *s;
	ckpt_batch *b;

	make_store(dir, 0);
	assert_int_equal(ckpt_store_open(&s, dir, CKPT_STORE_IMMUTABLE, NULL), 0);
	assert_int_equal(ckpt_store_index_checked(s), 0); /* as a 1.0 store: unchecked */
	ckpt_store_free(s);
	assert_int_equal(ckpt_store_open(&s, dir, 0, NULL), 0);
	assert_int_equal(ckpt_store_seal(s), 0);
	assert_int_equal(ckpt_store_index_checked(s), 1);
	/* a batch on the sealed store clears the checksum: unchecked, not corrupt */
	assert_int_equal(ckpt_batch_begin(&b, s), 0);
	assert_int_equal(ckpt_batch_put(b, "new", 3, "x", 1, NULL), 0);
	assert_int_equal(ckpt_batch_commit(b, NULL), 0);
	ckpt_store_free(s);
	assert_int_equal(ckpt_store_open(&s, dir, CKPT_STORE_READONLY, NULL), 0);
	assert_int_equal(ckpt_store_index_checked(s), 0);
	ckpt_store_free(s);
	assert_int_equal(ckpt_store_open(&s, dir, 0, NULL), 0);
	assert_int_equal(ckpt_store_seal(s), 0);
	ckpt_store_free(s);
	assert_int_equal(ckpt_store_open(&s, dir, CKPT_STORE_IMMUTABLE, NULL), 0);
	assert_int_equal(ckpt_store_index_checked(s), 1);
	ckpt_store_free(s);
}

/* A hand edit of a sealed index (as sqlite3 or Python would make it) is caught. */
static void test_edit_after_seal(void **state)
{
	const char *dir = newdir();
	char db[256];
	sqlite3 *h;
	ckpt_store *s;

	make_store(dir, 1);
	snprintf(db, sizeof(db), "%s/ckpt.db", dir);
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, "UPDATE kv SET key = X'73746174652f5f4d45544144415441'"
					 " || X'00' WHERE key = CAST('state/b' AS BLOB)",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(h);
	assert_int_equal(ckpt_store_open(&s, dir, CKPT_STORE_IMMUTABLE, NULL), CKPT_ECORRUPT);
	assert_non_null(strstr(ckpt_error_last(), "damaged index: CRC32C mismatch"));
	assert_int_equal(ckpt_store_open(&s, dir, 0, NULL), CKPT_ECORRUPT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_checked_unchecked_reseal),
	    cmocka_unit_test(test_edit_after_seal),
	    cmocka_unit_test(test_flip_every_byte_sealed),
	    cmocka_unit_test(test_flip_every_byte_unsealed),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
