/* chunk_cache_test.c — LRU order, byte bound, references, concurrency. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "chunk_cache.h"

static void *filled(size_t n, int c)
{
	void *p = malloc(n);
	assert_non_null(p);
	memset(p, c, n);
	return p;
}

static void test_lru_and_bound(void **state)
{
	ckpt_chunk_cache *c;
	const ckpt_cached_chunk *e;

	assert_int_equal(ckpt_chunk_cache_new(&c, 300), 0);
	assert_null(ckpt_chunk_cache_get(c, 1, 0));
	for (int i = 0; i < 3; i++) {
		e = ckpt_chunk_cache_put(c, 1, (uint64_t)i, filled(100, i), 100);
		assert_non_null(e);
		ckpt_chunk_cache_release(c, e);
	}
	assert_int_equal(ckpt_chunk_cache_bytes(c), 300);
	/* touch 0 so that 1 is the least recently used */
	e = ckpt_chunk_cache_get(c, 1, 0);
	assert_non_null(e);
	assert_int_equal(((const unsigned char *)e->data)[99], 0);
	ckpt_chunk_cache_release(c, e);
	e = ckpt_chunk_cache_put(c, 1, 3, filled(100, 3), 100);
	ckpt_chunk_cache_release(c, e);
	assert_int_equal(ckpt_chunk_cache_bytes(c), 300);
	assert_null(ckpt_chunk_cache_get(c, 1, 1));
	e = ckpt_chunk_cache_get(c, 1, 2);
	assert_non_null(e);
	ckpt_chunk_cache_release(c, e);
	/* a key differing only in k1 is another entry */
	assert_null(ckpt_chunk_cache_get(c, 2, 2));
	/* too big: detached, not cached, still usable */
	e = ckpt_chunk_cache_put(c, 9, 9, filled(1000, 9), 1000);
	assert_non_null(e);
	assert_int_equal(e->len, 1000);
	assert_int_equal(((const unsigned char *)e->data)[999], 9);
	ckpt_chunk_cache_release(c, e);
	assert_null(ckpt_chunk_cache_get(c, 9, 9));
	assert_true(ckpt_chunk_cache_bytes(c) <= 300);
	ckpt_chunk_cache_free(c);
	ckpt_chunk_cache_free(NULL);
}

static void test_evicted_while_referenced(void **state)
{
	ckpt_chunk_cache *c;
	const ckpt_cached_chunk *held, *e;

	assert_int_equal(ckpt_chunk_cache_new(&c, 100), 0);
	held = ckpt_chunk_cache_put(c, 0, 0, filled(100, 5), 100);
	e = ckpt_chunk_cache_put(c, 0, 1, filled(100, 6), 100); /* evicts (0,0) */
	ckpt_chunk_cache_release(c, e);
	assert_null(ckpt_chunk_cache_get(c, 0, 0));
	assert_int_equal(((const unsigned char *)held->data)[50], 5); /* still valid (ASan) */
	ckpt_chunk_cache_release(c, held);
	/* duplicate put returns the existing entry */
	e = ckpt_chunk_cache_put(c, 0, 1, filled(100, 7), 100);
	assert_int_equal(((const unsigned char *)e->data)[0], 6);
	ckpt_chunk_cache_release(c, e);
	ckpt_chunk_cache_free(c);
}

static ckpt_chunk_cache *shared;

static void *hammer(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;

	for (int i = 0; i < 20000; i++) {
		uint64_t k = (uint64_t)(rand_r(&seed) % 64);
		const ckpt_cached_chunk *e = ckpt_chunk_cache_get(shared, 7, k);
		if (e == NULL)
			e = ckpt_chunk_cache_put(shared, 7, k, filled(64, (int)k), 64);
		if (e == NULL || ((const unsigned char *)e->data)[63] != (unsigned char)k)
			return (void *)1;
		ckpt_chunk_cache_release(shared, e);
	}
	return NULL;
}

static void test_threads(void **state)
{
	pthread_t t[8];
	void *r;

	assert_int_equal(ckpt_chunk_cache_new(&shared, 64 * 20), 0);
	for (int i = 0; i < 8; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer, (void *)(uintptr_t)(i + 1)),
				 0);
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], &r);
		assert_null(r);
	}
	assert_true(ckpt_chunk_cache_bytes(shared) <= 64 * 20);
	ckpt_chunk_cache_free(shared);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lru_and_bound),
	    cmocka_unit_test(test_evicted_while_referenced),
	    cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
