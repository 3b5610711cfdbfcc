/*
 * store.c — a store is a backend and the library's read path
 * (ckpt/store.h, ckpt/sys/store_backend.h). Opening a directory opens its
 * sqlite index (store_sqlite.c); ckpt_store_open_backend wraps any other
 * backend. Values are read in store_read.c, batches written in
 * store_write.c; the on-disk format is docs/format.md.
 *
 * Invariants:
 *  1. s->be is set and owned for the store's whole life; s->idx is either
 *     NULL or s->be itself (the one backend batches can write).
 *  2. A backend is accepted only at a version this library knows, with
 *     every required slot set.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "error_private.h"
#include "store_private.h"

const char *ckpt_store_key_repr(char *buf, size_t cap, const void *key, size_t keylen)
{
	const unsigned char *k = key;
	size_t n = 0;

	assert(cap >= 8);
	for (size_t i = 0; i < keylen; i++) {
		if (n + 8 > cap) {
			memcpy(buf + n, "...", 4);
			return buf;
		}
		if (k[i] >= 0x20 && k[i] < 0x7f && k[i] != '\\')
			buf[n++] = (char)k[i];
		else
			n += (size_t)snprintf(buf + n, cap - n, "\\x%02x", k[i]);
	}
	buf[n] = '\0';
	return buf;
}

/* ---- opening ---------------------------------------------------------- */

int ckpt_store_resolve_options(ckpt_store_options *o, const ckpt_store_options *in)
{
	ckpt_store_options d = CKPT_STORE_OPTIONS_INIT;

	CKPT_CHECK_VERSION(in, CKPT_STORE_OPTIONS_VERSION, "ckpt_store_options");
	*o = in ? *in : d;
	if (o->compression_level < 0 || o->compression_level > ZSTD_maxCLevel())
		return ckpt_error_set(CKPT_EINVAL,
				      "store options: compression level %d not in 0..%d",
				      o->compression_level, ZSTD_maxCLevel());
	if (o->chunk_size == 0)
		o->chunk_size = CKPT_DEFAULT_CHUNK_SIZE;
	if (o->chunk_size < STORE_MIN_CHUNK_SIZE || o->chunk_size > STORE_MAX_CHUNK_SIZE)
		return ckpt_error_set(CKPT_EINVAL, "store options: chunk size %u not in %u..%u",
				      o->chunk_size, STORE_MIN_CHUNK_SIZE, STORE_MAX_CHUNK_SIZE);
	if (o->inline_max == 0)
		o->inline_max = CKPT_DEFAULT_INLINE_MAX;
	if (o->inline_max > o->chunk_size)
		o->inline_max = o->chunk_size;
	if (o->target_data_file_size == 0)
		o->target_data_file_size = CKPT_DEFAULT_TARGET_DATA_FILE_SIZE;
	if (o->threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		o->threads = n > 0 ? (unsigned)n : 1;
	}
	if (o->threads > 256)
		o->threads = 256;
	if (o->max_bytes_in_flight == 0)
		o->max_bytes_in_flight = CKPT_DEFAULT_MAX_BYTES_IN_FLIGHT;
	if (o->max_bytes_in_flight < o->chunk_size)
		o->max_bytes_in_flight = o->chunk_size;
	return 0;
}

/* A store around be (owned, also on failure) with options already resolved. */
static int store_new(ckpt_store **out, ckpt_store_backend *be, const char *dir, unsigned flags,
		     const ckpt_store_options *resolved)
{
	ckpt_store *s;
	int rc = 0;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		be->free(be);
		return ckpt_error_nomem();
	}
	s->be = be;
	s->flags = flags;
	s->opts = *resolved;
	if ((s->dir = strdup(dir)) == NULL ||
	    (s->opts.cache_size && (rc = ckpt_chunk_cache_new(&s->cache, s->opts.cache_size)) < 0)) {
		ckpt_store_free(s);
		return rc < 0 ? rc : ckpt_error_nomem();
	}
	*out = s;
	return 0;
}

int ckpt_store_open(ckpt_store **out, const char *dir, unsigned flags,
		    const ckpt_store_options *opts)
{
	return ckpt_store_open_index(out, dir, "ckpt.db", flags, opts);
}

int ckpt_store_valid_index_name(const char *n)
{
	size_t len = strlen(n);

	if (len == 0 || len > STORE_MAX_FILE_NAME || n[0] == '.')
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!((n[i] >= '0' && n[i] <= '9') || (n[i] >= 'a' && n[i] <= 'z') ||
		      (n[i] >= 'A' && n[i] <= 'Z') || n[i] == '-' || n[i] == '_' || n[i] == '.'))
			return 0;
	return 1;
}

int ckpt_store_open_index(ckpt_store **out, const char *dir, const char *index_name,
			  unsigned flags, const ckpt_store_options *opts)
{
	ckpt_store_options o;
	sqlite_index *x;
	int rc;

	*out = NULL;
	if (!ckpt_store_valid_index_name(index_name))
		return ckpt_error_set(CKPT_EINVAL, "%s: '%s' is not an index file name", dir,
				      index_name);
	if (flags & CKPT_STORE_IMMUTABLE)
		flags |= CKPT_STORE_READONLY;
	if ((flags & CKPT_STORE_CREATE) && (flags & CKPT_STORE_READONLY))
		return ckpt_error_set(CKPT_EINVAL, "%s: cannot create a read-only store", dir);
	if ((rc = ckpt_store_resolve_options(&o, opts)) < 0 ||
	    (rc = ckpt_sqlite_index_open(&x, dir, index_name, flags)) < 0)
		return rc;
	if ((rc = store_new(out, &x->base, dir, flags, &o)) == 0)
		(*out)->idx = x;
	return rc;
}

int ckpt_store_backend_init(ckpt_store_backend *be, unsigned version)
{
	memset(be, 0, sizeof(*be));
	if (version < CKPT_STORE_BACKEND_VERSION_MIN || version > CKPT_STORE_BACKEND_VERSION)
		return ckpt_error_set(CKPT_EVERSION,
				      "store backend version %u; this library knows version %d",
				      version, CKPT_STORE_BACKEND_VERSION);
	be->version = version;
	return 0;
}

int ckpt_store_open_backend(ckpt_store **out, ckpt_store_backend *be, const char *dir,
			    const ckpt_store_options *opts)
{
	ckpt_store_options o;
	int rc;

	*out = NULL;
	if (be->version < CKPT_STORE_BACKEND_VERSION_MIN ||
	    be->version > CKPT_STORE_BACKEND_VERSION) {
		rc = ckpt_error_set(CKPT_EVERSION,
				    "%s: store backend version %u; this library knows version %d", dir,
				    be->version, CKPT_STORE_BACKEND_VERSION);
		if (be->free)
			be->free(be);
		return rc;
	}
	if (be->open_value == NULL || be->list == NULL || be->free == NULL) {
		if (be->free)
			be->free(be);
		return ckpt_error_set(CKPT_EINVAL, "%s: store backend lacks a required slot", dir);
	}
	if ((rc = ckpt_store_resolve_options(&o, opts)) < 0) {
		be->free(be);
		return rc;
	}
	return store_new(out, be, dir, CKPT_STORE_READONLY | CKPT_STORE_IMMUTABLE, &o);
}

void ckpt_store_free(ckpt_store *s)
{
	if (s == NULL)
		return;
	s->be->free(s->be);
	ckpt_chunk_cache_free(s->cache);
	free(s->dir);
	free(s);
}

uint64_t ckpt_store_generation(const ckpt_store *s)
{
	return s->be->generation ? s->be->generation(s->be) : 0;
}

uint64_t ckpt_store_bytes_read(const ckpt_store *s)
{
	return __atomic_load_n(&s->bytes_read, __ATOMIC_RELAXED) +
	       (s->be->bytes_read ? s->be->bytes_read(s->be) : 0);
}

int ckpt_store_list(ckpt_store *s, const void *prefix, size_t prefixlen, int delimiter,
		    ckpt_store_list_cb cb, void *payload)
{
	if (delimiter > 255)
		return ckpt_error_set(CKPT_EINVAL, "list: delimiter %d is not a byte", delimiter);
	return s->be->list(s->be, prefix, prefixlen, delimiter, cb, payload);
}
