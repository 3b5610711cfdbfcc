/*
 * store_sqlite.c — the sqlite index of docs/format.md as a store backend
 * (ckpt/sys/store_backend.h): opening ckpt.db defensively, listing, loading
 * a value's kv row and chunk table, sealing. Batches that write the index are
 * in store_write.c; the read path shared by every backend is store_read.c.
 *
 * Design: one sqlite connection per store, opened defensively and serialised
 * by x->mu; the schema and format version are checked at open, and every
 * statement the readers use is prepared there, so a foreign or damaged
 * ckpt.db fails at open with CKPT_ECORRUPT instead of later. A value is
 * opened by loading its kv row and its chunk table, validated against every
 * bound of docs/format.md; data files are opened once, on first use, and kept.
 *
 * Invariants:
 *  1. Opening without CKPT_STORE_CREATE never creates a file, directory or table.
 *  2. A newer format major is refused (CKPT_EVERSION) before anything else
 *     is read.
 *  3. Listing holds the mutex only around each index seek, never while the
 *     callback runs, and seeks once per child.
 *  4. Nothing read from ckpt.db is trusted: every integer is range-checked,
 *     every chunk lies inside its data file (both the recorded and the actual
 *     size), data file names cannot leave d/.
 *  5. An inline value's CRC-32C is checked when it is loaded.
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

#include "bytes.h"
#include "crc32c.h"
#include "error_private.h"
#include "fsutil.h"
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
    " codec INTEGER NOT NULL, crc32c INTEGER NOT NULL, blocks BLOB,"
    " PRIMARY KEY(key, idx)) WITHOUT ROWID;";

int ckpt_store_sqlerr(sqlite_index *x, int code, const char *what)
{
	return ckpt_error_set(code, "%s: %s: %s", x->dbpath, what, sqlite3_errmsg(x->db));
}

int ckpt_store_read_generation(sqlite_index *x, uint64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(x->db, "SELECT value FROM meta WHERE name = 'generation'", -1, &st,
			       NULL) != SQLITE_OK)
		return ckpt_store_sqlerr(x, CKPT_ECORRUPT, "reading the generation");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER &&
	    sqlite3_column_int64(st, 0) >= 0) {
		*out = (uint64_t)sqlite3_column_int64(st, 0);
		rc = 0;
	} else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: missing or bad generation", x->dbpath);
	} else {
		rc = ckpt_store_sqlerr(x, CKPT_ECORRUPT, "reading the generation");
	}
	sqlite3_finalize(st);
	return rc;
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

static int exec(sqlite_index *x, const char *sql, int code, const char *what)
{
	if (sqlite3_exec(x->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return ckpt_store_sqlerr(x, code, what);
	return 0;
}

static int not_an_index(sqlite_index *x)
{
	int e = sqlite3_errcode(x->db) & 0xff;

	if (e == SQLITE_IOERR || e == SQLITE_CANTOPEN || e == SQLITE_NOMEM || e == SQLITE_BUSY)
		return ckpt_store_sqlerr(x, e == SQLITE_NOMEM ? CKPT_ENOMEM : CKPT_EIO, "open");
	return ckpt_error_set(CKPT_ECORRUPT, "%s is not a ckpt index: %s", x->dbpath,
			      sqlite3_errmsg(x->db));
}

/* Create the schema in an empty database, or check the existing one. */
static int check_schema(sqlite_index *x)
{
	sqlite3_stmt *st = NULL;
	int64_t major = -1, minor = -1, ntables = -1;
	int rc = 0;

	if (sqlite3_prepare_v2(x->db, "SELECT count(*) FROM sqlite_schema", -1, &st, NULL) !=
		SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		rc = not_an_index(x);
		goto done;
	}
	ntables = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (ntables == 0 && (x->flags & CKPT_STORE_CREATE) && !(x->flags & CKPT_STORE_READONLY)) {
		char sql[sizeof(SCHEMA) + 256];
		snprintf(sql, sizeof(sql),
			 "BEGIN IMMEDIATE; %s INSERT INTO meta VALUES('format_major', %d),"
			 "('format_minor', %d), ('generation', 0); COMMIT;",
			 SCHEMA, STORE_FORMAT_BASE_MAJOR, STORE_FORMAT_BASE_MINOR);
		if (sqlite3_exec(x->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
			rc = ckpt_store_sqlerr(x, CKPT_EIO, "creating the index");
			sqlite3_exec(x->db, "ROLLBACK", NULL, NULL, NULL);
			goto done;
		}
	}
	if (sqlite3_prepare_v2(x->db, "SELECT name, value FROM meta", -1, &st, NULL) != SQLITE_OK) {
		rc = not_an_index(x);
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
		rc = not_an_index(x);
		goto done;
	}
	rc = 0;
	if (major < 0 || minor < 0) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s is not a ckpt index: no format version",
				    x->dbpath);
		goto done;
	}
	if (major > CKPT_FORMAT_MAJOR) {
		rc = ckpt_error_set(
		    CKPT_EVERSION, "%s has format version %lld.%lld; this ckpt reads up to %d.x",
		    x->dbpath, (long long)major, (long long)minor, CKPT_FORMAT_MAJOR);
		goto done;
	}
	if ((rc = ckpt_store_read_generation(x, &x->generation)) < 0)
		goto done;
	/* Preparing the statements checks that every table and column exists; the
	 * blocks column is in stores of format 1.2 on, and may be missing. */
	x->has_blocks = sqlite3_prepare_v2(x->db,
					   "SELECT idx, file_id, offset, stored_len, raw_len, codec,"
					   " crc32c, blocks FROM chunks WHERE key = ?1 ORDER BY idx",
					   -1, &x->st_chunks, NULL) == SQLITE_OK;
	if (sqlite3_prepare_v2(x->db,
			       "SELECT generation, size, crc32c, chunk_size, inline FROM kv"
			       " WHERE key = ?1",
			       -1, &x->st_kv, NULL) != SQLITE_OK ||
	    (!x->has_blocks &&
	     sqlite3_prepare_v2(x->db,
				"SELECT idx, file_id, offset, stored_len, raw_len, codec, crc32c"
				" FROM chunks WHERE key = ?1 ORDER BY idx",
				-1, &x->st_chunks, NULL) != SQLITE_OK) ||
	    sqlite3_prepare_v2(x->db, "SELECT name, size, generation FROM files WHERE id = ?1", -1,
			       &x->st_file, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(x->db, "SELECT key FROM kv WHERE key >= ?1 ORDER BY key LIMIT 1", -1,
			       &x->st_seek, NULL) != SQLITE_OK)
		rc = not_an_index(x);
done:
	sqlite3_finalize(st);
	return rc;
}

/* ---- the index checksum (format 1.1, docs/format.md "Index checksum") ---- */

/*
 * CRC-32C of the whole file open as fd, its bytes STORE_SEAL_CRC_OFF..+4
 * read as zero; hdr receives its first 100 bytes (zeros past its end).
 */
static int index_crc(int fd, const char *what, uint32_t *crc, unsigned char hdr[100])
{
	enum { BLK = 1 << 18 };
	unsigned char *buf = malloc(BLK);
	uint64_t off = 0;
	uint32_t c = 0;
	int rc = 0;

	memset(hdr, 0, 100);
	if (buf == NULL)
		return ckpt_error_nomem();
	for (;;) {
		ssize_t n = pread(fd, buf, BLK, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = ckpt_error_errno(CKPT_EIO, errno, "read %s", what);
			break;
		}
		if (n == 0)
			break;
		for (uint64_t i = off; i < off + (uint64_t)n && i < 100; i++)
			hdr[i] = buf[i - off];
		for (uint64_t i = STORE_SEAL_CRC_OFF; i < STORE_SEAL_CRC_OFF + 4; i++)
			if (i >= off && i < off + (uint64_t)n)
				buf[i - off] = 0;
		c = ckpt_crc32c_update(c, buf, (size_t)n);
		off += (uint64_t)n;
	}
	free(buf);
	*crc = c;
	return rc;
}

/*
 * Check the index checksum of ckpt.db open as fd (docs/format.md, "Index
 * checksum"): sets x->index_checked when it is there and matches.
 */
static int check_seal(sqlite_index *x, int fd)
{
	unsigned char hdr[100];
	uint32_t crc, magic, want;
	int rc;

	memset(hdr, 0, sizeof(hdr));
	if (pread(fd, hdr, sizeof(hdr), 0) < 0)
		return ckpt_error_errno(CKPT_EIO, errno, "read %s", x->dbpath);
	magic = ckpt_get_be32(hdr + STORE_SEAL_ID_OFF);
	if (memcmp(hdr, "SQLite format 3", 16) != 0 || magic == 0)
		return 0; /* not sqlite (open_db says so), or format 1.0 or not sealed: unchecked */
	if ((rc = index_crc(fd, x->dbpath, &crc, hdr)) < 0)
		return rc;
	magic = ckpt_get_be32(hdr + STORE_SEAL_ID_OFF);
	want = ckpt_get_be32(hdr + STORE_SEAL_CRC_OFF);
	if (magic != STORE_SEAL_MAGIC)
		return ckpt_error_set(CKPT_ECORRUPT,
				      "%s: damaged index: unknown application id 0x%08x in its header",
				      x->dbpath, magic);
	if (crc != want)
		return ckpt_error_set(CKPT_ECORRUPT,
				      "%s: damaged index: CRC32C mismatch (header says 0x%08x, "
				      "the file has 0x%08x)",
				      x->dbpath, want, crc);
	x->index_checked = 1;
	x->index_crc = crc;
	return 0;
}

/* Record the index checksum of the committed, journal-free ckpt.db (mu held). */
static int write_seal(sqlite_index *x)
{
	unsigned char hdr[100], be[4];
	uint32_t crc;
	int fd, rc;

	/* The application id is written by sqlite, in a transaction of its own. */
	if (sqlite3_exec(x->db, "PRAGMA application_id = 1129009201", NULL, NULL, NULL) !=
	    SQLITE_OK)
		return ckpt_store_sqlerr(x, CKPT_EIO, "seal");
	/* The checksum goes where sqlite keeps only the opaque user version. */
	if ((fd = open(x->dbpath, O_RDWR | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return ckpt_error_errno(CKPT_EIO, errno, "seal: open %s", x->dbpath);
	if ((rc = index_crc(fd, x->dbpath, &crc, hdr)) == 0) {
		ckpt_put_be32(be, crc);
		if (ckpt_get_be32(hdr + STORE_SEAL_ID_OFF) != STORE_SEAL_MAGIC)
			rc = ckpt_error_set(CKPT_EIO, "seal: %s: the application id did not stick",
					    x->dbpath);
		else if (pwrite(fd, be, 4, STORE_SEAL_CRC_OFF) != 4 || fsync(fd) != 0)
			rc = ckpt_error_errno(CKPT_EIO, errno ? errno : EIO, "seal: write %s",
					      x->dbpath);
	}
	close(fd);
	if (rc == 0) {
		x->index_checked = 1;
		x->index_crc = crc;
	}
	return rc;
}

static int open_db(sqlite_index *x)
{
	int oflags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_PRIVATECACHE | SQLITE_OPEN_NOFOLLOW, rc;
	char *uri = NULL;
	const char *name = x->dbpath;

	if (x->flags & CKPT_STORE_IMMUTABLE) {
		if ((uri = uri_of(x->dbpath, "?mode=ro&immutable=1")) == NULL)
			return ckpt_error_nomem();
		name = uri;
		oflags |= SQLITE_OPEN_READONLY | SQLITE_OPEN_URI;
	} else if (x->flags & CKPT_STORE_READONLY) {
		oflags |= SQLITE_OPEN_READONLY;
	} else {
		oflags |= SQLITE_OPEN_READWRITE |
			  ((x->flags & CKPT_STORE_CREATE) ? SQLITE_OPEN_CREATE : 0);
	}
	rc = sqlite3_open_v2(name, &x->db, oflags, NULL);
	free(uri);
	if (rc != SQLITE_OK) {
		if (x->db == NULL)
			return ckpt_error_nomem();
		return ckpt_store_sqlerr(x, CKPT_EIO, "open");
	}
	sqlite3_extended_result_codes(x->db, 1);
	sqlite3_db_config(x->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(x->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	sqlite3_db_config(x->db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, NULL);
	sqlite3_db_config(x->db, SQLITE_DBCONFIG_ENABLE_VIEW, 0, NULL);
	sqlite3_db_config(x->db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL);
	sqlite3_busy_timeout(x->db, 10000);
	if (sqlite3_exec(x->db, "PRAGMA trusted_schema = OFF; PRAGMA cell_size_check = ON;", NULL,
			 NULL, NULL) != SQLITE_OK)
		return not_an_index(x);
	if (!(x->flags & (CKPT_STORE_READONLY | CKPT_STORE_IMMUTABLE))) {
		/* Rollback journal: a committed store is just ckpt.db, nothing beside it. */
		if (sqlite3_exec(x->db, "PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL;",
				 NULL, NULL, NULL) != SQLITE_OK)
			return not_an_index(x);
	}
	return check_schema(x);
}


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

static int sqlite_list(ckpt_store_backend *be, const void *prefix, size_t prefixlen, int delimiter,
		       ckpt_store_list_cb cb, void *payload)
{
	sqlite_index *x = (sqlite_index *)be;
	unsigned char *seek = NULL;
	size_t seeklen = prefixlen, cap = prefixlen + 64;
	int rc = 0;

	if ((seek = malloc(cap)) == NULL)
		return ckpt_error_nomem();
	if (prefixlen)
		memcpy(seek, prefix, prefixlen);
	for (;;) {
		const unsigned char *k, *d = NULL;
		size_t klen, namelen;
		int is_prefix = 0;

		pthread_mutex_lock(&x->mu);
		sqlite3_bind_blob(x->st_seek, 1, seek, (int)seeklen, SQLITE_STATIC);
		rc = sqlite3_step(x->st_seek);
		if (rc != SQLITE_ROW) {
			rc = rc == SQLITE_DONE ? 0 : ckpt_store_sqlerr(x, CKPT_ECORRUPT, "listing");
			sqlite3_reset(x->st_seek);
			pthread_mutex_unlock(&x->mu);
			break;
		}
		k = sqlite3_column_blob(x->st_seek, 0);
		klen = (size_t)sqlite3_column_bytes(x->st_seek, 0);
		if (klen < prefixlen || (prefixlen && memcmp(k, prefix, prefixlen) != 0)) {
			sqlite3_reset(x->st_seek);
			pthread_mutex_unlock(&x->mu);
			rc = 0;
			break;
		}
		if (klen == 0)
			k = (const unsigned char *)""; /* sqlite's empty blob is NULL */
		if (delimiter >= 0 && klen > prefixlen)
			d = memchr(k + prefixlen, delimiter, klen - prefixlen);
		namelen = d ? (size_t)(d - k) - prefixlen : klen - prefixlen;
		is_prefix = d != NULL;
		/* Next seek: past this key, or past every key under prefix+name+delimiter. */
		if (klen + 1 > cap) {
			unsigned char *ns = realloc(seek, klen + 64);
			if (ns == NULL) {
				sqlite3_reset(x->st_seek);
				pthread_mutex_unlock(&x->mu);
				rc = ckpt_error_nomem();
				break;
			}
			seek = ns;
			cap = klen + 64;
		}
		memcpy(seek, k, klen);
		sqlite3_reset(x->st_seek);
		pthread_mutex_unlock(&x->mu);
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

static int valid_file_name(const char *n, size_t len)
{
	return strlen(n) == len && ckpt_store_valid_index_name(n);
}

/* The data file with this id, opened (mu held). */
static int file_get(const ckpt_store_file **out, sqlite_index *x, int64_t id)
{
	ckpt_store_file *f = NULL;
	char *path = NULL, what[4096];
	struct stat st;
	const char *name;
	int rc, n;

	for (size_t i = x->nfiles; i-- > 0;)
		if (x->files[i]->id == (uint64_t)id) {
			*out = x->files[i];
			return 0;
		}
	sqlite3_reset(x->st_file);
	sqlite3_bind_int64(x->st_file, 1, id);
	rc = sqlite3_step(x->st_file);
	if (rc == SQLITE_DONE) {
		rc =
		    ckpt_error_set(CKPT_ECORRUPT, "%s: data file id %lld is not in the files table",
				   x->dbpath, (long long)id);
		goto done;
	}
	if (rc != SQLITE_ROW) {
		rc = ckpt_store_sqlerr(x, CKPT_ECORRUPT, "reading the files table");
		goto done;
	}
	name = (const char *)sqlite3_column_text(x->st_file, 0);
	n = sqlite3_column_bytes(x->st_file, 0);
	if (sqlite3_column_type(x->st_file, 0) != SQLITE_TEXT || name == NULL ||
	    !valid_file_name(name, (size_t)n) || strlen(name) != (size_t)n ||
	    sqlite3_column_type(x->st_file, 1) != SQLITE_INTEGER ||
	    sqlite3_column_int64(x->st_file, 1) < 0) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: bad files row for id %lld", x->dbpath,
				    (long long)id);
		goto done;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL || asprintf(&path, "d/%s", name) < 0) {
		path = NULL;
		rc = ckpt_error_nomem();
		goto done;
	}
	f->path = path;
	f->id = (uint64_t)id;
	f->size = (uint64_t)sqlite3_column_int64(x->st_file, 1);
	f->fd = -1;
	if (x->ddirfd < 0) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s/%s: no such file (no d/)", x->dir, path);
		goto done;
	}
	snprintf(what, sizeof(what), "%s/%s", x->dir, path);
	if ((rc = ckpt_open_beneath(&f->fd, x->ddirfd, name, CKPT_OPEN_FILE, what)) < 0) {
		if (rc == CKPT_ENOTFOUND) /* the index names it: a missing file is damage */
			rc = ckpt_error_wrap(CKPT_ECORRUPT, "data file");
		goto done;
	}
	if (fstat(f->fd, &st) < 0) {
		rc = ckpt_error_errno(CKPT_EIO, errno, "stat %s/%s", x->dir, path);
		goto done;
	}
	if ((uint64_t)st.st_size < f->size) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s/%s: truncated (%lld bytes, index says %llu)",
				    x->dir, path, (long long)st.st_size,
				    (unsigned long long)f->size);
		goto done;
	}
	if (x->nfiles == x->capfiles) {
		size_t cap = x->capfiles ? 2 * x->capfiles : 8;
		ckpt_store_file **nf = realloc(x->files, cap * sizeof(*nf));
		if (nf == NULL) {
			rc = ckpt_error_nomem();
			goto done;
		}
		x->files = nf;
		x->capfiles = cap;
	}
	x->files[x->nfiles++] = f;
	*out = f;
	f = NULL;
	path = NULL;
	rc = 0;
done:
	sqlite3_reset(x->st_file);
	if (f && f->fd >= 0)
		close(f->fd);
	free(f);
	free(path);
	return rc;
}

static int int_col(sqlite3_stmt *st, int col, int64_t lo, int64_t hi, int64_t *out)
{
	if (sqlite3_column_type(st, col) != SQLITE_INTEGER)
		return 0;
	*out = sqlite3_column_int64(st, col);
	return *out >= lo && *out <= hi;
}

void ckpt_blocks_encode(unsigned char *out, const uint32_t *crcs, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++, out += 4)
		ckpt_put_le32(out, crcs[i]);
}

/*
 * Chunk i's blocks column (col) into its place in *blocks (allocated on first
 * use); 0, or CKPT_ECORRUPT if it is not ceil(stored / CKPT_CRC_BLOCK) CRCs of
 * a RAW chunk.
 */
static int load_blocks(sqlite3_stmt *st, int col, const ckpt_value_info *in, uint32_t i,
		       ckpt_store_chunk *c, uint32_t **blocks)
{
	const uint32_t bpc = STORE_NBLOCKS(in->chunk_size), n = STORE_NBLOCKS(c->stored);
	const unsigned char *p = sqlite3_column_blob(st, col);

	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return 0;
	if (sqlite3_column_type(st, col) != SQLITE_BLOB || c->codec != CKPT_CODEC_RAW ||
	    (uint64_t)sqlite3_column_bytes(st, col) != 4 * (uint64_t)n)
		return CKPT_ECORRUPT;
	if (*blocks == NULL && (*blocks = malloc((size_t)in->nchunks * bpc * 4)) == NULL)
		return ckpt_error_nomem();
	uint32_t *dst = store_chunk_blocks(*blocks, i, in->chunk_size);
	for (uint32_t k = 0; k < n; k++, p += 4)
		dst[k] = ckpt_get_le32(p);
	c->has_blocks = 1;
	return 0;
}

int ckpt_sqlite_load_chunks(sqlite_index *x, sqlite3_stmt *st, const void *key, size_t keylen,
			    const ckpt_value_info *in, ckpt_store_chunk **out, uint32_t **blocks)
{
	ckpt_store_chunk *chunks;
	char kr[160];
	uint32_t i = 0;
	int rc;

	if ((*out = chunks = calloc(in->nchunks ? in->nchunks : 1, sizeof(*chunks))) == NULL)
		return ckpt_error_nomem();
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ckpt_store_chunk *c = &chunks[i];
		uint64_t want_raw = in->size - (uint64_t)i * in->chunk_size;
		int64_t idx, fid = 0, off = 0, stored = 0, raw = 0, codec = 0, crc = 0;

		if (want_raw > in->chunk_size)
			want_raw = in->chunk_size;
		if (i >= in->nchunks || !int_col(st, 0, i, i, &idx) ||
		    !int_col(st, 1, INT64_MIN, INT64_MAX, &fid) ||
		    !int_col(st, 2, 0, INT64_MAX / 2, &off) ||
		    !int_col(st, 4, (int64_t)want_raw, (int64_t)want_raw, &raw) ||
		    !int_col(st, 5, CKPT_CODEC_RAW, CKPT_CODEC_ZSTD, &codec) ||
		    !int_col(st, 3, codec == CKPT_CODEC_RAW ? raw : 1,
			     codec == CKPT_CODEC_RAW ? raw
						     : (int64_t)ZSTD_compressBound((size_t)raw),
			     &stored) ||
		    !int_col(st, 6, 0, UINT32_MAX, &crc)) {
			rc = ckpt_error_set(
			    CKPT_ECORRUPT, "%s: key '%s': bad chunk row %u", x->dbpath,
			    ckpt_store_key_repr(kr, sizeof(kr), key, keylen), i);
			goto done;
		}
		if ((rc = file_get(&c->file, x, fid)) < 0) {
			ckpt_error_wrap(rc, "key '%s' chunk %u",
					ckpt_store_key_repr(kr, sizeof(kr), key, keylen), i);
			goto done;
		}
		if ((uint64_t)off + (uint64_t)stored > c->file->size) {
			rc = ckpt_error_set(
			    CKPT_ECORRUPT,
			    "%s/%s: key '%s' chunk %u lies past the end of the file", x->dir,
			    c->file->path, ckpt_store_key_repr(kr, sizeof(kr), key, keylen),
			    i);
			goto done;
		}
		c->off = (uint64_t)off;
		c->stored = (uint32_t)stored;
		c->raw = (uint32_t)raw;
		c->codec = (uint8_t)codec;
		c->crc32c = (uint32_t)crc;
		c->has_crc = 1;
		if (blocks && sqlite3_column_count(st) > 7 &&
		    (rc = load_blocks(st, 7, in, i, c, blocks)) < 0) {
			if (rc == CKPT_ECORRUPT)
				rc = ckpt_error_set(
				    CKPT_ECORRUPT, "%s: key '%s': bad block CRCs in chunk row %u",
				    x->dbpath, ckpt_store_key_repr(kr, sizeof(kr), key, keylen), i);
			goto done;
		}
		i++;
	}
	if (rc != SQLITE_DONE) {
		rc = ckpt_store_sqlerr(x, CKPT_ECORRUPT, "reading chunks");
		goto done;
	}
	rc = 0;
	if (i != in->nchunks)
		rc = ckpt_error_set(
		    CKPT_ECORRUPT, "%s: key '%s' has %u chunks, expected %u", x->dbpath,
		    ckpt_store_key_repr(kr, sizeof(kr), key, keylen), i, in->nchunks);
done:
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc < 0) {
		free(chunks);
		*out = NULL;
		if (blocks) {
			free(*blocks);
			*blocks = NULL;
		}
	}
	return rc;
}

/* Load the kv row (and chunks) of key (mu held). */
static int load_value(sqlite_index *x, const void *key, size_t keylen, ckpt_value_source *v)
{
	sqlite3_stmt *st = x->st_kv;
	ckpt_value_info *in = &v->info;
	int64_t gen = 0, size = 0, crc = 0, cs = 0;
	char kr[160];
	int rc, tiled = 0;

	v->has_value_crc = 1;
	sqlite3_bind_blob(st, 1, key, (int)keylen, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		rc = ckpt_error_set(CKPT_ENOTFOUND, "%s: no key '%s'", x->dir,
				    ckpt_store_key_repr(kr, sizeof(kr), key, keylen));
		goto done;
	}
	if (rc != SQLITE_ROW) {
		rc = ckpt_store_sqlerr(x, CKPT_ECORRUPT, "reading kv");
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
		} else if ((v->inline_data = malloc(n ? n : 1)) == NULL) {
			rc = ckpt_error_nomem();
			goto done;
		} else {
			if (n)
				memcpy(v->inline_data, b, n);
			in->stored_size = n;
			if (ckpt_crc32c_update(0, v->inline_data, n) != in->crc32c) {
				rc = ckpt_error_set(
				    CKPT_ECORRUPT, "%s: inline value of key '%s': CRC32C mismatch",
				    x->dbpath,
				    ckpt_store_key_repr(kr, sizeof(kr), key, keylen));
				goto done;
			}
		}
	} else if (rc == 0 && cs == 0) { /* a tiled value (format 2.0) */
		tiled = 1;
	} else if (rc == 0) {
		uint64_t n = (in->size + (uint64_t)cs - 1) / (uint64_t)cs;
		if (n > UINT32_MAX / 2)
			rc = CKPT_ECORRUPT;
		in->nchunks = (uint32_t)n;
	}
	if (rc == CKPT_ECORRUPT) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: bad kv row for key '%s'", x->dbpath,
				    ckpt_store_key_repr(kr, sizeof(kr), key, keylen));
		goto done;
	}
	sqlite3_reset(st);
	if (tiled) {
		store_tiled *t = NULL;
		if ((rc = ckpt_tiles_load(&t, x, key, keylen, 1)) == CKPT_ENOTFOUND)
			rc = ckpt_error_set(CKPT_ECORRUPT, "%s: tiled key '%s' has no tiles",
					    x->dbpath, ckpt_store_key_repr(kr, sizeof(kr), key, keylen));
		if (rc == 0 && (rc = ckpt_tiles_check(t, x->dbpath, key, keylen, CKPT_ECORRUPT)) == 0) {
			uint64_t n = t->itemsize;
			for (unsigned d = 0; d < t->ndim; d++)
				n *= t->global_shape[d];
			if (n != in->size)
				rc = ckpt_error_set(
				    CKPT_ECORRUPT, "%s: tiled key '%s': %llu bytes, its tiles %llu",
				    x->dbpath, ckpt_store_key_repr(kr, sizeof(kr), key, keylen),
				    (unsigned long long)in->size, (unsigned long long)n);
		}
		if (rc < 0) {
			ckpt_tiled_free(t);
			goto done;
		}
		v->reader = &ckpt_tiles_reader;
		v->reader_ctx = t;
		v->has_value_crc = 0;
	} else if (!in->is_inline) {
		sqlite3_bind_blob(x->st_chunks, 1, key, (int)keylen, SQLITE_STATIC);
		rc = ckpt_sqlite_load_chunks(x, x->st_chunks, key, keylen, in, &v->chunks,
					     &v->block_crcs);
	}
done:
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
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

static int sqlite_seal(sqlite_index *x)
{
	static const char *const sidecars[] = {"-journal", "-wal", "-shm"};
	uint64_t gen;
	int rc;

	pthread_mutex_lock(&x->mu);
	if (x->batch) {
		rc = ckpt_error_set(CKPT_EBUSY, "%s: a batch is still open", x->dir);
		goto done;
	}
	/* Leaving WAL mode checkpoints and removes the WAL; reading rolls back a hot journal. */
	if ((rc = exec(x, "PRAGMA journal_mode = DELETE", CKPT_EIO, "seal")) < 0 ||
	    (rc = ckpt_store_read_generation(x, &gen)) < 0)
		goto done;
	for (size_t i = 0; i < sizeof(sidecars) / sizeof(*sidecars); i++) {
		char p[4096];
		snprintf(p, sizeof(p), "%s%s", x->dbpath, sidecars[i]);
		if (access(p, F_OK) == 0) {
			rc = ckpt_error_set(CKPT_EIO, "seal: %s still exists", p);
			goto done;
		}
	}
	if ((rc = write_seal(x)) < 0 || (rc = fsync_path(x->dbpath, 0)) < 0 ||
	    (x->ddirfd >= 0 && fsync(x->ddirfd) < 0 &&
	     (rc = ckpt_error_errno(CKPT_EIO, errno, "fsync %s/d", x->dir)) < 0) ||
	    (rc = fsync_path(x->dir, 1)) < 0)
		goto done;
done:
	pthread_mutex_unlock(&x->mu);
	return rc;
}

/* ---- the vtable ------------------------------------------------------- */

static int sqlite_open_value(ckpt_value_source *out, ckpt_store_backend *be, const void *key,
			     size_t keylen)
{
	sqlite_index *x = (sqlite_index *)be;
	int rc;

	pthread_mutex_lock(&x->mu);
	rc = load_value(x, key, keylen, out);
	pthread_mutex_unlock(&x->mu);
	if (rc < 0) {
		free(out->inline_data);
		free(out->chunks);
		free(out->block_crcs);
		out->inline_data = NULL;
		out->chunks = NULL;
		out->block_crcs = NULL;
	}
	return rc;
}

static uint64_t sqlite_generation(const ckpt_store_backend *be)
{
	return __atomic_load_n(&((const sqlite_index *)be)->generation, __ATOMIC_ACQUIRE);
}

static void sqlite_free(ckpt_store_backend *be)
{
	sqlite_index *x = (sqlite_index *)be;

	ckpt_store_batch_release(x);
	sqlite3_finalize(x->st_kv);
	sqlite3_finalize(x->st_chunks);
	sqlite3_finalize(x->st_file);
	sqlite3_finalize(x->st_seek);
	sqlite3_finalize(x->st_tiles);
	sqlite3_finalize(x->st_tile_chunks);
	sqlite3_close(x->db);
	for (size_t i = 0; i < x->nfiles; i++) {
		close(x->files[i]->fd);
		free((char *)x->files[i]->path);
		free(x->files[i]);
	}
	free(x->files);
	if (x->ddirfd >= 0)
		close(x->ddirfd);
	pthread_mutex_destroy(&x->mu);
	free(x->dir);
	free(x->dbpath);
	free(x->index_name);
	free(x);
}

int ckpt_sqlite_index_open(sqlite_index **out, const char *dir, const char *index_name,
			   unsigned flags)
{
	sqlite_index *x = NULL;
	char *ddir = NULL;
	int dirfd = -1, dbfd = -1, rc;

	*out = NULL;
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return ckpt_error_nomem();
	ckpt_store_backend_init(&x->base, CKPT_STORE_BACKEND_VERSION);
	x->base.open_value = sqlite_open_value;
	x->base.list = sqlite_list;
	x->base.generation = sqlite_generation;
	x->base.free = sqlite_free;
	pthread_mutex_init(&x->mu, NULL);
	x->ddirfd = -1;
	x->flags = flags;
	if ((x->dir = strdup(dir)) == NULL || (x->index_name = strdup(index_name)) == NULL ||
	    asprintf(&x->dbpath, "%s/%s", dir, index_name) < 0 ||
	    asprintf(&ddir, "%s/d", dir) < 0) {
		x->dbpath = NULL;
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
	}
	/* Nothing inside the store is followed if a symlink, or opened if not a file. */
	if ((dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		rc = ckpt_error_errno(errno == ENOENT ? CKPT_ENOTFOUND : CKPT_EIO, errno, "open %s",
				      dir);
		goto done;
	}
	rc = ckpt_open_beneath(&dbfd, dirfd, index_name, CKPT_OPEN_FILE, x->dbpath);
	if (rc == CKPT_ENOTFOUND && !(flags & CKPT_STORE_CREATE)) {
		rc = ckpt_error_set(CKPT_ENOTFOUND, "%s: no store here (no %s)", dir, index_name);
		goto done;
	}
	if (rc == CKPT_ECORRUPT)
		rc = ckpt_error_wrap(CKPT_ECORRUPT, "not a ckpt index");
	if ((rc < 0 && rc != CKPT_ENOTFOUND) || (rc == 0 && (rc = check_seal(x, dbfd)) < 0) ||
	    (rc = open_db(x)) < 0)
		goto done;
	/* d/ may be missing when no value is chunked (some copy tools drop empty dirs). */
	rc = ckpt_open_beneath(&x->ddirfd, dirfd, "d", CKPT_OPEN_DIR, ddir);
	if (rc < 0 && rc != CKPT_ENOTFOUND)
		goto done;
	rc = 0;
	if (flags & CKPT_STORE_CREATE) { /* make the new directory entries durable */
		int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || fsync(fd) < 0 || (x->ddirfd >= 0 && fsync(x->ddirfd) < 0))
			rc = ckpt_error_errno(CKPT_EIO, errno, "fsync %s", dir);
		if (fd >= 0)
			close(fd);
	}
done:
	free(ddir);
	if (dirfd >= 0)
		close(dirfd);
	if (dbfd >= 0)
		close(dbfd);
	if (rc < 0) {
		sqlite_free(&x->base);
		return rc;
	}
	*out = x;
	return 0;
}

int ckpt_store_index_checked(const ckpt_store *s)
{
	return s->idx ? s->idx->index_checked : 0;
}

uint32_t ckpt_store_index_crc(const ckpt_store *s)
{
	return ckpt_store_index_checked(s) ? s->idx->index_crc : 0;
}

int ckpt_store_seal(ckpt_store *s)
{
	if (s->idx == NULL || (s->flags & CKPT_STORE_READONLY))
		return ckpt_error_set(CKPT_EREADONLY, "%s: store is read-only", s->dir);
	return sqlite_seal(s->idx);
}
