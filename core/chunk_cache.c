/*
 * chunk_cache.c — LRU cache of decompressed chunks (see chunk_cache.h).
 *
 * One mutex guards the hash table, the LRU list and the reference counts.
 * Readers copy out of an entry without the lock, holding a reference.
 * The hash table has a fixed number of buckets sized from the capacity
 * (about one bucket per 64 KiB), chained through `next`.
 */
#include <assert.h>
#include <pthread.h>
#include <stdlib.h>

#include "chunk_cache.h"
#include "error_private.h"

typedef struct entry {
	ckpt_cached_chunk pub; /* first: entries are handed out as &pub */
	uint64_t k1, k2;
	unsigned refs; /* references held by readers, plus 1 while in the table */
	int in_table;
	struct entry *next;		   /* hash chain */
	struct entry *prev_lru, *next_lru; /* LRU list, most recent at head */
} entry;

struct ckpt_chunk_cache {
	pthread_mutex_t mu;
	uint64_t capacity;
	uint64_t bytes;	 /* sum of pub.len of entries in the table (guarded by mu) */
	size_t nbuckets; /* power of two */
	entry **buckets; /* guarded by mu */
	entry *lru_head, *lru_tail;
};

int ckpt_chunk_cache_new(ckpt_chunk_cache **out, uint64_t capacity)
{
	ckpt_chunk_cache *c;
	size_t n = 64;

	*out = NULL;
	while (n < (1u << 20) && (uint64_t)n * 65536 < capacity)
		n <<= 1;
	c = calloc(1, sizeof(*c));
	if (c == NULL || (c->buckets = calloc(n, sizeof(*c->buckets))) == NULL) {
		free(c);
		return ckpt_error_nomem();
	}
	pthread_mutex_init(&c->mu, NULL);
	c->capacity = capacity;
	c->nbuckets = n;
	*out = c;
	return 0;
}

static size_t bucket_of(const ckpt_chunk_cache *c, uint64_t k1, uint64_t k2)
{
	uint64_t h = k1 * 0x9E3779B97F4A7C15ull + k2; /* then the splitmix64 finalizer */

	h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
	h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
	return (size_t)(h ^ (h >> 31)) & (c->nbuckets - 1);
}

static void entry_free(entry *e)
{
	free((void *)e->pub.data);
	free(e);
}

static void lru_unlink(ckpt_chunk_cache *c, entry *e)
{
	if (e->prev_lru)
		e->prev_lru->next_lru = e->next_lru;
	else
		c->lru_head = e->next_lru;
	if (e->next_lru)
		e->next_lru->prev_lru = e->prev_lru;
	else
		c->lru_tail = e->prev_lru;
	e->prev_lru = e->next_lru = NULL;
}

static void lru_push(ckpt_chunk_cache *c, entry *e)
{
	e->prev_lru = NULL;
	e->next_lru = c->lru_head;
	if (c->lru_head)
		c->lru_head->prev_lru = e;
	c->lru_head = e;
	if (c->lru_tail == NULL)
		c->lru_tail = e;
}

/* Take e out of the table; returns 1 if the caller must free it. */
static int table_remove(ckpt_chunk_cache *c, entry *e)
{
	entry **pp = &c->buckets[bucket_of(c, e->k1, e->k2)];

	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	lru_unlink(c, e);
	assert(c->bytes >= e->pub.len);
	c->bytes -= e->pub.len;
	e->in_table = 0;
	return --e->refs == 0;
}

static entry *lookup(ckpt_chunk_cache *c, uint64_t k1, uint64_t k2)
{
	for (entry *e = c->buckets[bucket_of(c, k1, k2)]; e; e = e->next)
		if (e->k1 == k1 && e->k2 == k2)
			return e;
	return NULL;
}

const ckpt_cached_chunk *ckpt_chunk_cache_get(ckpt_chunk_cache *c, uint64_t k1, uint64_t k2)
{
	entry *e;

	pthread_mutex_lock(&c->mu);
	e = lookup(c, k1, k2);
	if (e) {
		e->refs++;
		lru_unlink(c, e);
		lru_push(c, e);
	}
	pthread_mutex_unlock(&c->mu);
	return e ? &e->pub : NULL;
}

const ckpt_cached_chunk *ckpt_chunk_cache_put(ckpt_chunk_cache *c, uint64_t k1, uint64_t k2,
					      void *data, size_t len)
{
	entry *e = calloc(1, sizeof(*e)), *old, *victims = NULL;

	if (e == NULL) {
		free(data);
		return NULL;
	}
	e->pub.data = data;
	e->pub.len = len;
	e->k1 = k1;
	e->k2 = k2;
	e->refs = 1;
	pthread_mutex_lock(&c->mu);
	old = lookup(c, k1, k2);
	if (old) { /* another reader filled it first */
		old->refs++;
		pthread_mutex_unlock(&c->mu);
		entry_free(e);
		return &old->pub;
	}
	if (len <= c->capacity) {
		while (c->bytes + len > c->capacity) {
			entry *v = c->lru_tail;
			if (table_remove(c, v)) {
				v->next = victims;
				victims = v;
			}
		}
		size_t b = bucket_of(c, k1, k2);
		e->next = c->buckets[b];
		c->buckets[b] = e;
		lru_push(c, e);
		c->bytes += len;
		e->in_table = 1;
		e->refs++;
	}
	assert(c->bytes <= c->capacity);
	pthread_mutex_unlock(&c->mu);
	while (victims) {
		entry *n = victims->next;
		entry_free(victims);
		victims = n;
	}
	return &e->pub;
}

void ckpt_chunk_cache_release(ckpt_chunk_cache *c, const ckpt_cached_chunk *pub)
{
	entry *e = (entry *)pub;
	int dead;

	if (e == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	assert(e->refs > 0);
	dead = --e->refs == 0;
	pthread_mutex_unlock(&c->mu);
	if (dead)
		entry_free(e);
}

uint64_t ckpt_chunk_cache_bytes(ckpt_chunk_cache *c)
{
	uint64_t n;

	pthread_mutex_lock(&c->mu);
	n = c->bytes;
	pthread_mutex_unlock(&c->mu);
	return n;
}

void ckpt_chunk_cache_free(ckpt_chunk_cache *c)
{
	if (c == NULL)
		return;
	while (c->lru_head) {
		entry *e = c->lru_head;
		if (table_remove(c, e))
			entry_free(e);
	}
	pthread_mutex_destroy(&c->mu);
	free(c->buckets);
	free(c);
}
