/*
 * store.c — opening, listing and sealing a store (ckpt/store.h; values are
 * read in store_read.c, batches written in store_write.c; the on-disk format
 * is docs/format.md).
 *
 * Design: one sqlite connection per store, opened defensively and serialised
 * by s->mu; the schema and format version are checked at open, and every
 * statement the readers use is prepared there, so a foreign or damaged
 * ckpt.db fails at open with CKPT_ECORRUPT instead of later.
 *
 * Invariants:
 *  1. Opening without CKPT_STORE_CREATE never creates a file, directory or table.
 *  2. A newer format major is refused (CKPT_EVERSION) before anything else
 *     is read.
 *  3. Listing holds the mutex only around each index seek, never while the
 *     callback runs, and seeks once per child.
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

#include "error_private.h"
#include "store_private.h"

static const char SCHEMA[] =
    "CREATE TABLE meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE files(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    " size INTEGER NOT NULL, generation INTEGER NOT NULL);"
    "CREATE TABLE kv(key BLOB PRIMARY KEY, generation INTEGER NOT NULL,"
    " size INTEGER NOT NULL, crc32c INTEGER NOT NULL, chunk_size INTEGER NOT NULL,"
    " inline BLOB) WITHOUT ROWID;"
    "CREATE TABLE chunks(key BLOB NOT NULL, idx INTEGER NOT NULL, file_id INTEGER NOT NULL,"
    " offset INTEGER NOT NULL, stored_len INTEGER NOT NULL, raw_len INTEGER NOT NULL,"
    " codec INTEGER NOT NULL, crc32c INTEGER NOT NULL, PRIMARY KEY(key, idx)) WITHOUT ROWID;";

int ckpt_store_fault_countdown;

int ckpt_store_fault_hit(void)
{
	return ckpt_store_fault_countdown > 0 && --ckpt_store_fault_countdown == 0;
}

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

int ckpt_store_sqlerr(ckpt_store *s, int code, const char *what)
{
	return ckpt_error_set(code, "%s: %s: %s", s->dbpath, what, sqlite3_errmsg(s->db));
}

int ckpt_store_read_generation(ckpt_store *s, uint64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE name = 'generation'", -1, &st,
			       NULL) != SQLITE_OK)
		return ckpt_store_sqlerr(s, CKPT_ECORRUPT, "reading the generation");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER &&
	    sqlite3_column_int64(st, 0) >= 0) {
		*out = (uint64_t)sqlite3_column_int64(st, 0);
		rc = 0;
	} else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: missing or bad generation", s->dbpath);
	} else {
		rc = ckpt_store_sqlerr(s, CKPT_ECORRUPT, "reading the generation");
	}
	sqlite3_finalize(st);
	return rc;
}

/* ---- opening ---------------------------------------------------------- */

static int resolve_options(ckpt_store_options *o, const ckpt_store_options *in)
{
	ckpt_store_options d = CKPT_STORE_OPTIONS_INIT;

	*o = in ? *in : d;
	if (o->version < 1)
		return ckpt_error_set(CKPT_EINVAL, "store options: bad version %u", o->version);
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

/* "file:" URI for path with everything but unreserved characters and '/' escaped. */
static char *uri_of(const char *path, const char *query)
{
	size_t n = strlen(path);
	char *u = malloc(3 * n + strlen(query) + 8), *p = u;

	if (u == NULL)
		return NULL;
	p += sprintf(p, path[0] == '/' ? "file://" : "file:"); /* empty authority */
	for (const unsigned char *c = (const unsigned char *)path; *c; c++) {
		if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || strchr("/-._~", *c))
			*p++ = (char)*c;
		else
			p += sprintf(p, "%%%02X", *c);
	}
	strcpy(p, query);
	return u;
}

static int exec(ckpt_store *s, const char *sql, int code, const char *what)
{
	if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return ckpt_store_sqlerr(s, code, what);
	return 0;
}

static int not_an_index(ckpt_store *s)
{
	int e = sqlite3_errcode(s->db) & 0xff;

	if (e == SQLITE_IOERR || e == SQLITE_CANTOPEN || e == SQLITE_NOMEM || e == SQLITE_BUSY)
		return ckpt_store_sqlerr(s, e == SQLITE_NOMEM ? CKPT_ENOMEM : CKPT_EIO, "open");
	return ckpt_error_set(CKPT_ECORRUPT, "%s is not a ckpt index: %s", s->dbpath,
			      sqlite3_errmsg(s->db));
}

/* Create the schema in an empty database, or check the existing one. */
static int check_schema(ckpt_store *s)
{
	sqlite3_stmt *st = NULL;
	int64_t major = -1, minor = -1, ntables = -1;
	int rc = 0;

	if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM sqlite_schema", -1, &st, NULL) !=
		SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		rc = not_an_index(s);
		goto done;
	}
	ntables = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (ntables == 0 && (s->flags & CKPT_STORE_CREATE) && !(s->flags & CKPT_STORE_READONLY)) {
		char sql[sizeof(SCHEMA) + 256];
		snprintf(sql, sizeof(sql),
			 "BEGIN IMMEDIATE; %s INSERT INTO meta VALUES('format_major', %d),"
			 "('format_minor', %d), ('generation', 0); COMMIT;",
			 SCHEMA, CKPT_FORMAT_MAJOR, CKPT_FORMAT_MINOR);
		if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
			rc = ckpt_store_sqlerr(s, CKPT_EIO, "creating the index");
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			goto done;
		}
	}
	if (sqlite3_prepare_v2(s->db, "SELECT name, value FROM meta", -1, &st, NULL) != SQLITE_OK) {
		rc = not_an_index(s);
		goto done;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		int64_t v =
		    sqlite3_column_type(st, 1) == SQLITE_INTEGER ? sqlite3_column_int64(st, 1) : -1;
		if (name && strcmp(name, "format_major") == 0)
			major = v;
		else if (name && strcmp(name, "format_minor") == 0)
			minor = v;
	}
	if (rc != SQLITE_DONE) {
		rc = not_an_index(s);
		goto done;
	}
	rc = 0;
	if (major < 0 || minor < 0) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s is not a ckpt index: no format version",
				    s->dbpath);
		goto done;
	}
	if (major > CKPT_FORMAT_MAJOR) {
		rc = ckpt_error_set(
		    CKPT_EVERSION, "%s has format version %lld.%lld; this ckpt reads up to %d.x",
		    s->dbpath, (long long)major, (long long)minor, CKPT_FORMAT_MAJOR);
		goto done;
	}
	if ((rc = ckpt_store_read_generation(s, &s->generation)) < 0)
		goto done;
	/* Preparing the statements checks that every table and column exists. */
	if (sqlite3_prepare_v2(s->db,
			       "SELECT generation, size, crc32c, chunk_size, inline FROM kv"
			       " WHERE key = ?1",
			       -1, &s->st_kv, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->db,
			       "SELECT idx, file_id, offset, stored_len, raw_len, codec, crc32c"
			       " FROM chunks WHERE key = ?1 ORDER BY idx",
			       -1, &s->st_chunks, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->db, "SELECT name, size, generation FROM files WHERE id = ?1", -1,
			       &s->st_file, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->db, "SELECT key FROM kv WHERE key >= ?1 ORDER BY key LIMIT 1", -1,
			       &s->st_seek, NULL) != SQLITE_OK)
		rc = not_an_index(s);
done:
	sqlite3_finalize(st);
	return rc;
}

static int open_db(ckpt_store *s)
{
	int oflags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_PRIVATECACHE, rc;
	char *uri = NULL;
	const char *name = s->dbpath;

	if (s->flags & CKPT_STORE_IMMUTABLE) {
		if ((uri = uri_of(s->dbpath, "?mode=ro&immutable=1")) == NULL)
			return ckpt_error_nomem();
		name = uri;
		oflags |= SQLITE_OPEN_READONLY | SQLITE_OPEN_URI;
	} else if (s->flags & CKPT_STORE_READONLY) {
		oflags |= SQLITE_OPEN_READONLY;
	} else {
		oflags |= SQLITE_OPEN_READWRITE |
			  ((s->flags & CKPT_STORE_CREATE) ? SQLITE_OPEN_CREATE : 0);
	}
	rc = sqlite3_open_v2(name, &s->db, oflags, NULL);
	free(uri);
	if (rc != SQLITE_OK) {
		if (s->db == NULL)
			return ckpt_error_nomem();
		return ckpt_store_sqlerr(s, CKPT_EIO, "open");
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, NULL);
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_ENABLE_VIEW, 0, NULL);
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL);
	sqlite3_busy_timeout(s->db, 10000);
	if (sqlite3_exec(s->db, "PRAGMA trusted_schema = OFF; PRAGMA cell_size_check = ON;", NULL,
			 NULL, NULL) != SQLITE_OK)
		return not_an_index(s);
	if (!(s->flags & (CKPT_STORE_READONLY | CKPT_STORE_IMMUTABLE))) {
		/* Rollback journal: a committed store is just ckpt.db, nothing beside it. */
		if (sqlite3_exec(s->db, "PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL;",
				 NULL, NULL, NULL) != SQLITE_OK)
			return not_an_index(s);
	}
	return check_schema(s);
}

int ckpt_store_open(ckpt_store **out, const char *dir, unsigned flags,
		    const ckpt_store_options *opts)
{
	ckpt_store *s = NULL;
	struct stat st;
	char *ddir = NULL;
	int rc;

	*out = NULL;
	if (flags & CKPT_STORE_IMMUTABLE)
		flags |= CKPT_STORE_READONLY;
	if ((flags & CKPT_STORE_CREATE) && (flags & CKPT_STORE_READONLY))
		return ckpt_error_set(CKPT_EINVAL, "%s: cannot create a read-only store", dir);
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return ckpt_error_nomem();
	pthread_mutex_init(&s->mu, NULL);
	s->ddirfd = -1;
	s->flags = flags;
	if ((rc = resolve_options(&s->opts, opts)) < 0)
		goto done;
	if ((s->dir = strdup(dir)) == NULL || asprintf(&s->dbpath, "%s/ckpt.db", dir) < 0 ||
	    asprintf(&ddir, "%s/d", dir) < 0) {
		s->dbpath = NULL;
		ddir = NULL;
		rc = ckpt_error_nomem();
		goto done;
	}
	if (flags & CKPT_STORE_CREATE) {
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			rc = ckpt_error_errno(CKPT_EIO, errno, "mkdir %s", dir);
			goto done;
		}
		if (mkdir(ddir, 0755) < 0 && errno != EEXIST) {
			rc = ckpt_error_errno(CKPT_EIO, errno, "mkdir %s", ddir);
			goto done;
		}
	} else if (stat(s->dbpath, &st) < 0) {
		rc = errno == ENOENT
			 ? ckpt_error_set(CKPT_ENOTFOUND, "%s: no store here (no ckpt.db)", dir)
			 : ckpt_error_errno(CKPT_EIO, errno, "%s", s->dbpath);
		goto done;
	} else if (!S_ISREG(st.st_mode)) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s is not a ckpt index: not a regular file",
				    s->dbpath);
		goto done;
	}
	if ((rc = open_db(s)) < 0)
		goto done;
	/* d/ may be missing when no value is chunked (some copy tools drop empty dirs). */
	s->ddirfd = open(ddir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->ddirfd < 0 && errno != ENOENT) {
		rc = ckpt_error_errno(CKPT_EIO, errno, "open %s", ddir);
		goto done;
	}
	if (s->opts.cache_size && (rc = ckpt_chunk_cache_new(&s->cache, s->opts.cache_size)) < 0)
		goto done;
	if (flags & CKPT_STORE_CREATE) { /* make the new directory entries durable */
		int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || fsync(fd) < 0 || (s->ddirfd >= 0 && fsync(s->ddirfd) < 0))
			rc = ckpt_error_errno(CKPT_EIO, errno, "fsync %s", dir);
		if (fd >= 0)
			close(fd);
	}
done:
	free(ddir);
	if (rc < 0) {
		ckpt_store_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

void ckpt_store_free(ckpt_store *s)
{
	if (s == NULL)
		return;
	ckpt_store_batch_release(s);
	sqlite3_finalize(s->st_kv);
	sqlite3_finalize(s->st_chunks);
	sqlite3_finalize(s->st_file);
	sqlite3_finalize(s->st_seek);
	sqlite3_close(s->db);
	for (size_t i = 0; i < s->nfiles; i++) {
		close(s->files[i]->fd);
		free(s->files[i]->name);
		free(s->files[i]);
	}
	free(s->files);
	if (s->ddirfd >= 0)
		close(s->ddirfd);
	ckpt_chunk_cache_free(s->cache);
	pthread_mutex_destroy(&s->mu);
	free(s->dir);
	free(s->dbpath);
	free(s);
}

uint64_t ckpt_store_generation(const ckpt_store *s)
{
	return __atomic_load_n(&s->generation, __ATOMIC_ACQUIRE);
}

uint64_t ckpt_store_bytes_read(const ckpt_store *s)
{
	return __atomic_load_n(&s->bytes_read, __ATOMIC_RELAXED);
}

/* ---- listing ---------------------------------------------------------- */

/*
 * Smallest key greater than every key starting with p[0..n): drop trailing
 * 0xFF bytes and increment the last remaining one. Returns the new length,
 * 0 if there is none (p was all 0xFF: nothing sorts after its extensions).
 */
static size_t prefix_successor(unsigned char *p, size_t n)
{
	while (n > 0 && p[n - 1] == 0xFF)
		n--;
	if (n > 0)
		p[n - 1]++;
	return n;
}

int ckpt_store_list(ckpt_store *s, const void *prefix, size_t prefixlen, int delimiter,
		    ckpt_store_list_cb cb, void *payload)
{
	unsigned char *seek = NULL;
	size_t seeklen = prefixlen, cap = prefixlen + 64;
	int rc = 0;

	if (delimiter > 255)
		return ckpt_error_set(CKPT_EINVAL, "list: delimiter %d is not a byte", delimiter);
	if ((seek = malloc(cap)) == NULL)
		return ckpt_error_nomem();
	if (prefixlen)
		memcpy(seek, prefix, prefixlen);
	for (;;) {
		const unsigned char *k, *d = NULL;
		size_t klen, namelen;
		int is_prefix = 0;

		pthread_mutex_lock(&s->mu);
		sqlite3_bind_blob(s->st_seek, 1, seek, (int)seeklen, SQLITE_STATIC);
		rc = sqlite3_step(s->st_seek);
		if (rc != SQLITE_ROW) {
			rc = rc == SQLITE_DONE ? 0 : ckpt_store_sqlerr(s, CKPT_ECORRUPT, "listing");
			sqlite3_reset(s->st_seek);
			pthread_mutex_unlock(&s->mu);
			break;
		}
		k = sqlite3_column_blob(s->st_seek, 0);
		klen = (size_t)sqlite3_column_bytes(s->st_seek, 0);
		if (klen < prefixlen || (prefixlen && memcmp(k, prefix, prefixlen) != 0)) {
			sqlite3_reset(s->st_seek);
			pthread_mutex_unlock(&s->mu);
			rc = 0;
			break;
		}
		if (delimiter >= 0)
			d = memchr(k + prefixlen, delimiter, klen - prefixlen);
		namelen = d ? (size_t)(d - k) - prefixlen : klen - prefixlen;
		is_prefix = d != NULL;
		/* Next seek: past this key, or past every key under prefix+name+delimiter. */
		if (klen + 1 > cap) {
			unsigned char *ns = realloc(seek, klen + 64);
			if (ns == NULL) {
				sqlite3_reset(s->st_seek);
				pthread_mutex_unlock(&s->mu);
				rc = ckpt_error_nomem();
				break;
			}
			seek = ns;
			cap = klen + 64;
		}
		memcpy(seek, k, klen);
		sqlite3_reset(s->st_seek);
		pthread_mutex_unlock(&s->mu);
		if ((rc = cb(seek + prefixlen, namelen, is_prefix, payload)) != 0)
			break;
		if (is_prefix) {
			seeklen = prefix_successor(seek, prefixlen + namelen + 1);
			if (seeklen == 0)
				break; /* all 0xFF: nothing sorts after it */
		} else {
			seek[klen] = 0x00; /* key || 0x00 is the smallest key after key */
			seeklen = klen + 1;
		}
	}
	free(seek);
	return rc;
}

/* ---- sealing ---------------------------------------------------------- */

static int fsync_path(const char *path, int dir)
{
	int fd = open(path, (dir ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC), rc = 0;

	if (fd < 0 || fsync(fd) < 0)
		rc = ckpt_error_errno(CKPT_EIO, errno, "fsync %s", path);
	if (fd >= 0)
		close(fd);
	return rc;
}

int ckpt_store_seal(ckpt_store *s)
{
	static const char *const sidecars[] = {"-journal", "-wal", "-shm"};
	uint64_t gen;
	int rc;

	if (s->flags & CKPT_STORE_READONLY)
		return ckpt_error_set(CKPT_EREADONLY, "%s: store is read-only", s->dir);
	pthread_mutex_lock(&s->mu);
	if (s->batch) {
		rc = ckpt_error_set(CKPT_EBUSY, "%s: a batch is still open", s->dir);
		goto done;
	}
	/* Leaving WAL mode checkpoints and removes the WAL; reading rolls back a hot journal. */
	if ((rc = exec(s, "PRAGMA journal_mode = DELETE", CKPT_EIO, "seal")) < 0 ||
	    (rc = ckpt_store_read_generation(s, &gen)) < 0)
		goto done;
	for (size_t i = 0; i < sizeof(sidecars) / sizeof(*sidecars); i++) {
		char p[4096];
		snprintf(p, sizeof(p), "%s%s", s->dbpath, sidecars[i]);
		if (access(p, F_OK) == 0) {
			rc = ckpt_error_set(CKPT_EIO, "seal: %s still exists", p);
			goto done;
		}
	}
	if ((rc = fsync_path(s->dbpath, 0)) < 0 ||
	    (s->ddirfd >= 0 && fsync(s->ddirfd) < 0 &&
	     (rc = ckpt_error_errno(CKPT_EIO, errno, "fsync %s/d", s->dir)) < 0) ||
	    (rc = fsync_path(s->dir, 1)) < 0)
		goto done;
done:
	pthread_mutex_unlock(&s->mu);
	return rc;
}
