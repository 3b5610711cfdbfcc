/*
 * ocdbt.c — read-only TensorStore OCDBT reader (design and invariants in ocdbt.h).
 *
 * Decoding is split in two: pure functions over bytes (envelope, data-file
 * table, manifest, B+tree node) that the fuzz targets call, and the db that
 * reads byte ranges of data files and caches decoded nodes.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "bytes.h"
#include "crc32c.h"
#include "error_private.h"
#include "ocdbt.h"
#include "fsutil.h"

#define NO_OFFSET UINT64_MAX

/* ---- a bounds-checked reader ---- */

typedef struct rd {
	const unsigned char *p, *end;
	int bad; /* set once anything ran past the end or overflowed */
} rd;

static uint64_t rd_varint(rd *r)
{
	uint64_t v = 0;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (r->p >= r->end) {
			r->bad = 1;
			return 0;
		}
		unsigned char b = *r->p++;
		if (shift == 63 && (b & 0x7e)) {
			r->bad = 1;
			return 0;
		}
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return v;
	}
	r->bad = 1;
	return 0;
}

static unsigned rd_u8(rd *r)
{
	if (r->p >= r->end) {
		r->bad = 1;
		return 0;
	}
	return *r->p++;
}

static uint64_t rd_u64le(rd *r)
{
	if (r->end - r->p < 8) {
		r->bad = 1;
		r->p = r->end;
		return 0;
	}
	r->p += 8;
	return ckpt_get_le64(r->p - 8);
}

static const unsigned char *rd_bytes(rd *r, uint64_t n)
{
	const unsigned char *q = r->p;

	if ((uint64_t)(r->end - r->p) < n) {
		r->bad = 1;
		r->p = r->end;
		return NULL;
	}
	r->p += n;
	return q;
}

/* A count n of entries each taking at least min_bytes: bounded by what remains (invariant 2). */
static int rd_count(rd *r, uint64_t n, size_t min_bytes, uint64_t max)
{
	return !r->bad && n <= max && n * min_bytes <= (uint64_t)(r->end - r->p);
}

/* ---- envelope ---- */

int ocdbt_envelope_decode(unsigned char **body, size_t *bodylen, const void *buf, size_t len,
			  uint32_t magic, const char *what)
{
	const unsigned char *b = buf;
	unsigned char *out = NULL;
	size_t cap = 0, n = 0;
	ZSTD_DStream *zd = NULL;
	rd r;
	int rc = 0;

	*body = NULL;
	*bodylen = 0;
	if (len < 4 + 8 + 2 + 4)
		return ckpt_error_set(CKPT_ECORRUPT, "%s: %zu bytes is too short", what, len);
	uint32_t m = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
	if (m != magic)
		return ckpt_error_set(CKPT_ECORRUPT, "%s: bad magic 0x%08x (expected 0x%08x)", what,
				      m, magic);
	r = (rd){b + 4, b + len, 0};
	uint64_t total = rd_u64le(&r);
	if (total != len)
		return ckpt_error_set(CKPT_ECORRUPT,
				      "%s: length field says %llu bytes, range has %zu", what,
				      (unsigned long long)total, len);
	uint32_t stored = (uint32_t)b[len - 4] | (uint32_t)b[len - 3] << 8 |
			  (uint32_t)b[len - 2] << 16 | (uint32_t)b[len - 1] << 24;
	uint32_t crc = ckpt_crc32c_update(0, b, len - 4);
	if (crc != stored)
		return ckpt_error_set(CKPT_ECORRUPT,
				      "%s: CRC-32C mismatch (stored %08x, computed %08x)", what,
				      stored, crc);
	r.end = b + len - 4;
	uint64_t version = rd_varint(&r), comp = rd_varint(&r);
	if (r.bad || version != 0)
		return ckpt_error_set(r.bad ? CKPT_ECORRUPT : CKPT_EVERSION,
				      "%s: unsupported format version %llu", what,
				      (unsigned long long)version);
	size_t in_len = (size_t)(r.end - r.p);
	if (comp == 0) {
		out = malloc(in_len ? in_len : 1);
		if (!out)
			return ckpt_error_nomem();
		memcpy(out, r.p, in_len);
		*body = out;
		*bodylen = in_len;
		return 0;
	}
	if (comp != 1)
		return ckpt_error_set(CKPT_EUNSUPPORTED, "%s: unknown compression method %llu",
				      what, (unsigned long long)comp);
	/* One zstd frame, with or without a content size: stream it, bounded. */
	zd = ZSTD_createDStream();
	if (!zd)
		return ckpt_error_nomem();
	ZSTD_inBuffer in = {r.p, in_len, 0};
	size_t zr = 1;
	while (zr != 0) {
		if (n == cap) {
			if (cap >= OCDBT_MAX_NODE_BYTES) {
				rc = ckpt_error_set(CKPT_ECORRUPT,
						    "%s: decompresses to more than %u bytes", what,
						    OCDBT_MAX_NODE_BYTES);
				goto done;
			}
			size_t ncap = cap ? cap * 2 : (in_len < 4096 ? 16384 : in_len * 4);
			if (ncap > OCDBT_MAX_NODE_BYTES)
				ncap = OCDBT_MAX_NODE_BYTES;
			unsigned char *t = realloc(out, ncap);
			if (!t) {
				rc = ckpt_error_nomem();
				goto done;
			}
			out = t;
			cap = ncap;
		}
		ZSTD_outBuffer ob = {out, cap, n};
		zr = ZSTD_decompressStream(zd, &ob, &in);
		if (ZSTD_isError(zr)) {
			rc = ckpt_error_set(CKPT_ECORRUPT, "%s: zstd: %s", what,
					    ZSTD_getErrorName(zr));
			goto done;
		}
		n = ob.pos;
		if (zr != 0 && in.pos == in.size && ob.pos < ob.size) {
			rc = ckpt_error_set(CKPT_ECORRUPT, "%s: truncated zstd frame", what);
			goto done;
		}
	}
	if (in.pos != in.size) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: bytes after the zstd frame", what);
		goto done;
	}
	*body = out;
	*bodylen = n;
	out = NULL;
done:
	ZSTD_freeDStream(zd);
	free(out);
	return rc;
}

/* ---- data-file table ---- */

typedef struct dfile {
	char *full;  /* path of the file relative to the db directory */
	char *trans; /* transitive path for nodes reached through it */
} dfile;

static void dfiles_free(dfile *f, size_t n)
{
	for (size_t i = 0; f && i < n; i++) {
		free(f[i].full);
		free(f[i].trans);
	}
	free(f);
}

static int dfiles_decode(dfile **out, size_t *nout, rd *r, const char *T, const char *what)
{
	uint64_t n = rd_varint(r);
	uint64_t *pre = NULL, *suf = NULL, *base = NULL;
	dfile *f = NULL;
	char *prev = NULL;
	size_t prevlen = 0, tlen = strlen(T);
	int rc = 0;

	*out = NULL;
	*nout = 0;
	if (!rd_count(r, n, 2, OCDBT_MAX_ENTRIES))
		return ckpt_error_set(CKPT_ECORRUPT, "%s: bad data-file table", what);
	pre = calloc(n + 1, sizeof(*pre));
	suf = calloc(n + 1, sizeof(*suf));
	base = calloc(n + 1, sizeof(*base));
	f = calloc(n + 1, sizeof(*f));
	if (!pre || !suf || !base || !f) {
		rc = ckpt_error_nomem();
		goto done;
	}
	for (uint64_t i = 1; i < n; i++)
		pre[i] = rd_varint(r);
	uint64_t sufs = 0; /* a path is at most all the suffix bytes, which must be present */
	for (uint64_t i = 0; i < n; i++) {
		suf[i] = rd_varint(r);
		sufs += suf[i] > OCDBT_MAX_KEY ? OCDBT_MAX_KEY : suf[i];
	}
	for (uint64_t i = 0; i < n; i++)
		base[i] = rd_varint(r);
	if (sufs > OCDBT_MAX_KEY)
		sufs = OCDBT_MAX_KEY;
	prev = malloc(sufs + 1);
	if (!prev) {
		rc = ckpt_error_nomem();
		goto done;
	}
	for (uint64_t i = 0; i < n && !r->bad; i++) {
		if (pre[i] > prevlen || suf[i] > sufs - pre[i]) {
			r->bad = 1;
			break;
		}
		const unsigned char *s = rd_bytes(r, suf[i]);
		if (!s)
			break;
		memcpy(prev + pre[i], s, suf[i]);
		prevlen = pre[i] + suf[i];
		if (base[i] > prevlen || !ckpt_relpath_ok(prev, prevlen)) {
			rc = ckpt_error_set(CKPT_ECORRUPT,
					    "%s: data file path %.*s is not a path inside the db",
					    what, (int)prevlen, prev);
			goto done;
		}
		f[i].full = malloc(tlen + prevlen + 1);
		f[i].trans = malloc(tlen + base[i] + 1);
		if (!f[i].full || !f[i].trans) {
			rc = ckpt_error_nomem();
			goto done;
		}
		memcpy(f[i].full, T, tlen);
		memcpy(f[i].full + tlen, prev, prevlen);
		f[i].full[tlen + prevlen] = '\0';
		memcpy(f[i].trans, T, tlen);
		memcpy(f[i].trans + tlen, prev, base[i]);
		f[i].trans[tlen + base[i]] = '\0';
	}
	if (r->bad) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: bad data-file table", what);
		goto done;
	}
	*out = f;
	*nout = n;
	f = NULL;
done:
	dfiles_free(f, n);
	free(pre);
	free(suf);
	free(base);
	free(prev);
	return rc;
}

/* ---- manifest ---- */

typedef struct vref {
	uint32_t file; /* index into the containing table */
	uint64_t off, len;
} vref;

typedef struct manifest {
	unsigned kind;
	unsigned arity_log2;
	dfile *files;
	size_t nfiles;
	uint64_t generation, num_keys;
	unsigned root_height;
	vref root; /* off == NO_OFFSET: empty tree */
	size_t nvnodes;
	vref *vnodes; /* version-tree nodes referenced by the manifest */
	unsigned *vheights;
} manifest;

static void manifest_clear(manifest *m)
{
	dfiles_free(m->files, m->nfiles);
	free(m->vnodes);
	free(m->vheights);
	memset(m, 0, sizeof(*m));
}

static int refs_decode(vref *v, uint64_t n, rd *r, size_t nfiles)
{
	for (uint64_t i = 0; i < n; i++)
		v[i].file = (uint32_t)rd_varint(r);
	for (uint64_t i = 0; i < n; i++)
		v[i].off = rd_varint(r);
	for (uint64_t i = 0; i < n; i++)
		v[i].len = rd_varint(r);
	for (uint64_t i = 0; i < n; i++)
		if (v[i].off != NO_OFFSET && v[i].file >= nfiles)
			r->bad = 1;
	return r->bad;
}

/* Version-tree leaf entries; keeps the last (latest) one in m. */
static int version_leaves_decode(manifest *m, rd *r, size_t nfiles, const char *what)
{
	uint64_t n = rd_varint(r);
	vref *refs = NULL;
	int rc = 0;

	if (!rd_count(r, n, 13, OCDBT_MAX_ENTRIES))
		return ckpt_error_set(CKPT_ECORRUPT, "%s: bad version entries", what);
	refs = calloc(n + 1, sizeof(*refs));
	if (!refs)
		return ckpt_error_nomem();
	uint64_t prevgen = 0;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t g = rd_varint(r);
		if (g <= prevgen)
			r->bad = 1;
		m->generation = prevgen = g;
	}
	for (uint64_t i = 0; i < n; i++)
		m->root_height = rd_u8(r);
	refs_decode(refs, n, r, nfiles);
	for (uint64_t i = 0; i < n; i++)
		m->num_keys = rd_varint(r);
	for (uint64_t i = 0; i < 2 * n; i++)
		rd_varint(r);
	for (uint64_t i = 0; i < n; i++)
		rd_u64le(r);
	if (r->bad || m->root_height > OCDBT_MAX_HEIGHT)
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: bad version entries", what);
	else if (n)
		m->root = refs[n - 1];
	free(refs);
	return rc;
}

static int manifest_decode(manifest *m, const unsigned char *body, size_t len, const char *what)
{
	rd r = {body, body + len, 0};
	int rc;

	memset(m, 0, sizeof(*m));
	m->root.off = NO_OFFSET;
	rd_bytes(&r, 16);
	m->kind = rd_u8(&r);
	rd_varint(&r); /* max_inline_value_bytes */
	rd_varint(&r); /* max_decoded_node_bytes: not a limit we rely on (ocdbt.h) */
	m->arity_log2 = rd_u8(&r);
	uint64_t comp = rd_varint(&r);
	if (comp == 1)
		rd_bytes(&r, 4);
	if (r.bad || comp > 1 || m->arity_log2 < 1 || m->arity_log2 > 16)
		return ckpt_error_set(CKPT_ECORRUPT, "%s: bad configuration", what);
	if (m->kind != 0)
		return ckpt_error_set(CKPT_EUNSUPPORTED,
				      "%s: numbered manifests (manifest_kind %u) are not supported",
				      what, m->kind);
	rc = dfiles_decode(&m->files, &m->nfiles, &r, "", what);
	if (rc)
		return rc;
	rc = version_leaves_decode(m, &r, m->nfiles, what);
	if (rc)
		return rc;
	uint64_t n = rd_varint(&r);
	if (!rd_count(&r, n, 14, OCDBT_MAX_ENTRIES))
		return ckpt_error_set(CKPT_ECORRUPT, "%s: bad version-node entries", what);
	m->vnodes = calloc(n + 1, sizeof(*m->vnodes));
	m->vheights = calloc(n + 1, sizeof(*m->vheights));
	if (!m->vnodes || !m->vheights)
		return ckpt_error_nomem();
	m->nvnodes = n;
	for (uint64_t i = 0; i < n; i++)
		rd_varint(&r); /* generation */
	refs_decode(m->vnodes, n, &r, m->nfiles);
	for (uint64_t i = 0; i < n; i++)
		rd_varint(&r); /* num_generations */
	for (uint64_t i = 0; i < n; i++)
		rd_u64le(&r);
	for (uint64_t i = 0; i < n; i++)
		m->vheights[i] = rd_u8(&r);
	if (r.bad || r.p != r.end)
		return ckpt_error_set(CKPT_ECORRUPT, "%s: bad version-node entries", what);
	for (uint64_t i = 0; i < n; i++)
		if (m->vnodes[i].off == NO_OFFSET)
			return ckpt_error_set(CKPT_ECORRUPT, "%s: bad version-node entries", what);
	if (m->generation == 0 && n == 0)
		m->root.off = NO_OFFSET;
	return 0;
}

/* ---- B+tree nodes ---- */

typedef struct bentry {
	const unsigned char *key; /* relative to the node's prefix; points into keybuf */
	uint32_t klen;
	uint32_t cpl;  /* interior: subtree common prefix length */
	int indirect;  /* leaf: 1 if the value is in a data file */
	uint32_t file; /* index into the node's files (interior, or indirect leaf) */
	uint64_t off, len;
	const unsigned char *inl; /* leaf, inline: into body */
} bentry;

typedef struct bnode {
	unsigned height;
	size_t n;
	bentry *e;
	dfile *files;
	size_t nfiles;
	unsigned char *body, *keybuf;
	size_t bytes; /* memory held, for the cache budget */
	uint64_t cache_key1, cache_key2;
	int cached;
} bnode;

static void bnode_free(bnode *b)
{
	if (!b)
		return;
	dfiles_free(b->files, b->nfiles);
	free(b->e);
	free(b->body);
	free(b->keybuf);
	free(b);
}

/* Decode a node body (envelope removed, body owned by the node afterwards). */
static int bnode_decode(bnode **out, unsigned char *body, size_t len, const char *T,
			const char *what)
{
	bnode *b = calloc(1, sizeof(*b));
	rd r = {body, body + len, 0};
	uint64_t *pre = NULL, *suf = NULL;
	int rc = 0;

	*out = NULL;
	if (!b) {
		free(body);
		return ckpt_error_nomem();
	}
	b->body = body;
	b->height = rd_u8(&r);
	rc = dfiles_decode(&b->files, &b->nfiles, &r, T, what);
	if (rc)
		goto done;
	uint64_t n = rd_varint(&r);
	int interior = b->height > 0;
	if (n == 0 || !rd_count(&r, n, interior ? 9 : 3, OCDBT_MAX_ENTRIES)) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: bad entry count", what);
		goto done;
	}
	b->n = n;
	b->e = calloc(n, sizeof(*b->e));
	pre = calloc(n, sizeof(*pre));
	suf = calloc(n, sizeof(*suf));
	if (!b->e || !pre || !suf) {
		rc = ckpt_error_nomem();
		goto done;
	}
	uint64_t total = 0;
	for (uint64_t i = 1; i < n; i++)
		pre[i] = rd_varint(&r);
	for (uint64_t i = 0; i < n; i++) {
		suf[i] = rd_varint(&r);
		if (pre[i] > OCDBT_MAX_KEY || suf[i] > OCDBT_MAX_KEY - pre[i] ||
		    (i > 0 && pre[i] > pre[i - 1] + suf[i - 1]))
			r.bad = 1;
		total += pre[i] + suf[i];
	}
	if (interior)
		for (uint64_t i = 0; i < n; i++)
			b->e[i].cpl = (uint32_t)rd_varint(&r);
	/* Reconstructed keys: bounded by a multiple of the node (invariant 2). */
	if (r.bad || total > (uint64_t)64 * len + 65536) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: bad keys", what);
		goto done;
	}
	b->keybuf = malloc(total ? total : 1);
	if (!b->keybuf) {
		rc = ckpt_error_nomem();
		goto done;
	}
	unsigned char *kp = b->keybuf;
	for (uint64_t i = 0; i < n; i++) {
		const unsigned char *s = rd_bytes(&r, suf[i]);
		if (!s)
			break;
		if (i > 0)
			memcpy(kp, b->e[i - 1].key, pre[i]);
		memcpy(kp + pre[i], s, suf[i]);
		b->e[i].key = kp;
		b->e[i].klen = (uint32_t)(pre[i] + suf[i]);
		kp += b->e[i].klen;
		if (interior && b->e[i].cpl > b->e[i].klen)
			r.bad = 1;
		if (i > 0) { /* keys strictly increase */
			size_t a = b->e[i - 1].klen, c = b->e[i].klen;
			int cmp = memcmp(b->e[i - 1].key, b->e[i].key, a < c ? a : c);
			if (cmp > 0 || (cmp == 0 && a >= c))
				r.bad = 1;
		}
	}
	if (r.bad) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: bad keys", what);
		goto done;
	}
	if (interior) {
		vref *refs = calloc(n, sizeof(*refs));
		if (!refs) {
			rc = ckpt_error_nomem();
			goto done;
		}
		refs_decode(refs, n, &r, b->nfiles);
		for (uint64_t i = 0; i < n; i++) {
			b->e[i].file = refs[i].file;
			b->e[i].off = refs[i].off;
			b->e[i].len = refs[i].len;
			if (refs[i].off == NO_OFFSET)
				r.bad = 1;
		}
		free(refs);
		for (uint64_t i = 0; i < 3 * n; i++)
			rd_varint(&r);
	} else {
		for (uint64_t i = 0; i < n; i++)
			b->e[i].len = rd_varint(&r);
		for (uint64_t i = 0; i < n; i++) {
			unsigned k = rd_u8(&r);
			if (k > 1)
				r.bad = 1;
			b->e[i].indirect = k == 1;
		}
		for (uint64_t i = 0; i < n; i++)
			if (b->e[i].indirect) {
				b->e[i].file = (uint32_t)rd_varint(&r);
				if (b->e[i].file >= b->nfiles)
					r.bad = 1;
			}
		for (uint64_t i = 0; i < n; i++)
			if (b->e[i].indirect)
				b->e[i].off = rd_varint(&r);
		for (uint64_t i = 0; i < n && !r.bad; i++)
			if (!b->e[i].indirect)
				b->e[i].inl = rd_bytes(&r, b->e[i].len);
	}
	if (r.bad || r.p != r.end) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: bad %s entries", what,
				    interior ? "interior" : "leaf");
		goto done;
	}
	b->bytes = sizeof(*b) + len + total + n * sizeof(*b->e);
	*out = b;
	b = NULL;
done:
	free(pre);
	free(suf);
	bnode_free(b);
	return rc;
}

int ocdbt_check_manifest_bytes(const void *buf, size_t len)
{
	unsigned char *body = NULL;
	size_t blen = 0;
	manifest m = {0};
	int rc = ocdbt_envelope_decode(&body, &blen, buf, len, OCDBT_MAGIC_MANIFEST, "manifest");

	if (rc == 0)
		rc = manifest_decode(&m, body, blen, "manifest");
	manifest_clear(&m);
	free(body);
	return rc;
}

int ocdbt_check_node_bytes(const void *buf, size_t len)
{
	unsigned char *body = NULL;
	size_t blen = 0;
	bnode *b = NULL;
	int rc = ocdbt_envelope_decode(&body, &blen, buf, len, OCDBT_MAGIC_BTREE, "node");

	if (rc == 0)
		rc = bnode_decode(&b, body, blen, "", "node");
	bnode_free(b);
	return rc;
}

/* ---- the db ---- */

typedef struct dbfile {
	char *path; /* relative to the db directory */
	int fd;	    /* -1: could not be opened (err set) */
	uint64_t size;
} dbfile;

struct ocdbt_db {
	char *dir;
	int dirfd;
	uint64_t *bytes_read;
	manifest m;
	pthread_mutex_t mu; /* guards files and the node cache */
	dbfile **files;	    /* invariant 3 */
	size_t nfiles, capfiles;
	bnode **cache; /* decoded nodes kept, sorted by nothing (linear probe hash) */
	size_t capcache, ncache;
	uint64_t cache_bytes;
};

const char *ocdbt_dir(const ocdbt_db *db)
{
	return db->dir;
}

uint64_t ocdbt_generation(const ocdbt_db *db)
{
	return db->m.generation;
}

uint64_t ocdbt_num_keys(const ocdbt_db *db)
{
	return db->m.num_keys;
}

/* Open `path` below the db directory, refusing escapes (invariant 1). */
static int open_below(int dirfd, const char *path, const char *dir)
{
	if (!ckpt_relpath_ok(path, strlen(path)))
		return ckpt_error_set(CKPT_ECORRUPT, "%s: data file path %s escapes the db", dir,
				      path);
	/* No symlink in any component, nothing outside the db, never a FIFO or device. */
	char what[4096];
	int fd, rc;
	snprintf(what, sizeof(what), "%s: open data file %s", dir, path);
	rc = ckpt_open_beneath(&fd, dirfd, path, CKPT_OPEN_FILE, what);
	if (rc == CKPT_ENOTFOUND) /* referenced: must exist */
		rc = ckpt_error_wrap(CKPT_ECORRUPT, "ocdbt");
	return rc < 0 ? rc : fd;
}

/* The db file of `path`, opened on first use (mu held). */
static int db_file(dbfile **out, ocdbt_db *db, const char *path)
{
	for (size_t i = 0; i < db->nfiles; i++)
		if (strcmp(db->files[i]->path, path) == 0) {
			*out = db->files[i];
			return 0;
		}
	if (db->nfiles == db->capfiles) {
		size_t ncap = db->capfiles ? db->capfiles * 2 : 16;
		dbfile **t = realloc(db->files, ncap * sizeof(*t));
		if (!t)
			return ckpt_error_nomem();
		db->files = t;
		db->capfiles = ncap;
	}
	int fd = open_below(db->dirfd, path, db->dir);
	if (fd < 0)
		return fd;
	struct stat st;
	dbfile *f = calloc(1, sizeof(*f));
	if (!f || fstat(fd, &st) != 0 || !(f->path = strdup(path))) {
		int rc =
		    f ? ckpt_error_errno(CKPT_EIO, errno ? errno : ENOMEM, "%s: %s", db->dir, path)
		      : ckpt_error_nomem();
		close(fd);
		free(f);
		return rc;
	}
	f->fd = fd;
	f->size = (uint64_t)st.st_size;
	/* Whole nodes and values are read, never a stream: no kernel read-ahead (it
	 * read other leaves' chunks: a cold cat of a 16 MiB leaf read 2.4x its bytes);
	 * large reads ask for exactly their range at once instead (ocdbt_blob_pread:
	 * without that, random-mode reads of 1 MiB values were 2x slower). */
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
	db->files[db->nfiles++] = f;
	*out = f;
	return 0;
}

static int pread_full(ocdbt_db *db, int fd, const char *name, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return ckpt_error_errno(CKPT_EIO, errno, "%s: read %s", db->dir, name);
		if (n == 0)
			return ckpt_error_set(CKPT_ECORRUPT, "%s: %s ends before offset %llu",
					      db->dir, name, (unsigned long long)(off + len));
		done += (size_t)n;
	}
	if (db->bytes_read)
		__atomic_fetch_add(db->bytes_read, len, __ATOMIC_RELAXED);
	return 0;
}

/* Read and unwrap the envelope at [off, off+len) of file path. */
static int read_envelope(unsigned char **body, size_t *blen, ocdbt_db *db, const char *path,
			 uint64_t off, uint64_t len, uint32_t magic, const char *kind)
{
	dbfile *f;
	unsigned char *buf = NULL;
	char what[512];
	int rc;

	pthread_mutex_lock(&db->mu);
	rc = db_file(&f, db, path);
	pthread_mutex_unlock(&db->mu);
	if (rc)
		return rc;
	snprintf(what, sizeof(what), "%s: %s %s@%llu+%llu", db->dir, kind, path,
		 (unsigned long long)off, (unsigned long long)len);
	if (len > OCDBT_MAX_NODE_BYTES || off > f->size || len > f->size - off)
		return ckpt_error_set(CKPT_ECORRUPT, "%s: outside the data file (%llu bytes)", what,
				      (unsigned long long)f->size);
	buf = malloc(len ? len : 1);
	if (!buf)
		return ckpt_error_nomem();
	rc = pread_full(db, f->fd, path, buf, len, off);
	if (rc == 0)
		rc = ocdbt_envelope_decode(body, blen, buf, len, magic, what);
	free(buf);
	return rc;
}

int ocdbt_open(ocdbt_db **out, const char *dir, uint64_t *bytes_read)
{
	ocdbt_db *db = calloc(1, sizeof(*db));
	char *buf = NULL;
	unsigned char *body = NULL;
	size_t len = 0, blen = 0;
	char *path = NULL;
	int rc;

	*out = NULL;
	if (!db)
		return ckpt_error_nomem();
	pthread_mutex_init(&db->mu, NULL);
	db->dirfd = -1;
	db->bytes_read = bytes_read;
	db->dir = strdup(dir);
	path = ckpt_asprintf("%s/manifest.ocdbt", dir);
	if (!db->dir || !path) {
		rc = ckpt_error_nomem();
		goto fail;
	}
	db->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (db->dirfd < 0) {
		rc = ckpt_error_errno(errno == ENOENT ? CKPT_ENOTFOUND : CKPT_EIO, errno, "open %s",
				      dir);
		goto fail;
	}
	rc = ckpt_read_file(&buf, &len, path, OCDBT_MAX_NODE_BYTES);
	if (rc)
		goto fail;
	if (bytes_read)
		__atomic_fetch_add(bytes_read, len, __ATOMIC_RELAXED);
	rc = ocdbt_envelope_decode(&body, &blen, buf, len, OCDBT_MAGIC_MANIFEST, path);
	if (rc == 0)
		rc = manifest_decode(&db->m, body, blen, path);
	if (rc)
		goto fail;
	free(buf);
	free(body);
	free(path);
	*out = db;
	return 0;
fail:
	free(buf);
	free(body);
	free(path);
	ocdbt_free(db);
	return rc;
}

void ocdbt_free(ocdbt_db *db)
{
	if (!db)
		return;
	for (size_t i = 0; i < db->nfiles; i++) {
		close(db->files[i]->fd);
		free(db->files[i]->path);
		free(db->files[i]);
	}
	free(db->files);
	for (size_t i = 0; i < db->capcache; i++)
		bnode_free(db->cache[i]);
	free(db->cache);
	manifest_clear(&db->m);
	if (db->dirfd >= 0)
		close(db->dirfd);
	free(db->dir);
	pthread_mutex_destroy(&db->mu);
	free(db);
}

/* A node reference resolved to a file path, for loading and caching. */
typedef struct nref {
	const char *path;  /* full path of the file holding the node */
	const char *trans; /* transitive path for the node's own table */
	uint64_t off, len;
	unsigned height;
} nref;

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

static void node_release(bnode *b)
{
	if (b && !b->cached)
		bnode_free(b);
}

/* Load (or find in the cache) the node at ref. Release with node_release. */
static int node_load(bnode **out, ocdbt_db *db, const nref *ref)
{
	uint64_t k1 = hash_str(ref->path) ^ ref->len * 0x9e3779b97f4a7c15ull, k2 = ref->off;
	unsigned char *body = NULL;
	size_t blen = 0;
	bnode *b = NULL;
	char what[512];
	int rc;

	*out = NULL;
	pthread_mutex_lock(&db->mu);
	for (size_t i = 0; db->capcache && i < db->capcache; i++) {
		bnode *c = db->cache[(k1 + k2 + i) % db->capcache];
		if (!c)
			break;
		if (c->cache_key1 == k1 && c->cache_key2 == k2) {
			*out = c;
			break;
		}
	}
	pthread_mutex_unlock(&db->mu);
	if (*out)
		return 0;
	rc = read_envelope(&body, &blen, db, ref->path, ref->off, ref->len, OCDBT_MAGIC_BTREE,
			   "B+tree node");
	if (rc)
		return rc;
	snprintf(what, sizeof(what), "%s: B+tree node %s@%llu", db->dir, ref->path,
		 (unsigned long long)ref->off);
	rc = bnode_decode(&b, body, blen, ref->trans, what);
	if (rc)
		return rc;
	if (b->height != ref->height) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: height %u, parent says %u", what, b->height,
				    ref->height);
		bnode_free(b);
		return rc;
	}
	b->cache_key1 = k1;
	b->cache_key2 = k2;
	pthread_mutex_lock(&db->mu);
	if (db->cache_bytes + b->bytes <= OCDBT_NODE_CACHE_BYTES) {
		if (2 * (db->ncache + 1) > db->capcache) { /* grow the open-addressing table */
			size_t ncap = db->capcache ? db->capcache * 2 : 64;
			bnode **t = calloc(ncap, sizeof(*t));
			if (t) {
				for (size_t i = 0; i < db->capcache; i++) {
					bnode *c = db->cache[i];
					if (!c)
						continue;
					size_t j = (c->cache_key1 + c->cache_key2) % ncap;
					while (t[j])
						j = (j + 1) % ncap;
					t[j] = c;
				}
				free(db->cache);
				db->cache = t;
				db->capcache = ncap;
			}
		}
		if (2 * (db->ncache + 1) <= db->capcache) {
			size_t j = (k1 + k2) % db->capcache;
			int dup = 0;
			while (db->cache[j]) {
				if (db->cache[j]->cache_key1 == k1 &&
				    db->cache[j]->cache_key2 == k2)
					dup = 1;
				j = (j + 1) % db->capcache;
			}
			if (!dup) {
				b->cached = 1;
				db->cache[j] = b;
				db->ncache++;
				db->cache_bytes += b->bytes;
			}
		}
	}
	pthread_mutex_unlock(&db->mu);
	*out = b;
	return 0;
}

static int keycmp(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = n ? memcmp(a, b, n) : 0; /* an empty key may come with a NULL pointer */
	return c ? c : (alen > blen) - (alen < blen);
}

static int root_ref(nref *r, ocdbt_db *db)
{
	if (db->m.root.off == NO_OFFSET)
		return CKPT_ENOTFOUND;
	r->path = db->m.files[db->m.root.file].full;
	r->trans = db->m.files[db->m.root.file].trans;
	r->off = db->m.root.off;
	r->len = db->m.root.len;
	r->height = db->m.root_height;
	return 0;
}

static void child_ref(nref *r, const bnode *b, const bentry *e)
{
	r->path = b->files[e->file].full;
	r->trans = b->files[e->file].trans;
	r->off = e->off;
	r->len = e->len;
	r->height = b->height - 1;
}

/* Fill a blob from leaf entry e of node b. */
static int blob_from(ocdbt_db *db, ocdbt_blob *out, const bnode *b, const bentry *e)
{
	memset(out, 0, sizeof(*out));
	out->fd = -1;
	out->len = e->len;
	if (!e->indirect) {
		unsigned char *d = malloc(e->len ? e->len : 1);
		if (!d)
			return ckpt_error_nomem();
		memcpy(d, e->inl, e->len);
		out->data = d;
		return 0;
	}
	dbfile *f;
	pthread_mutex_lock(&db->mu);
	int rc = db_file(&f, db, b->files[e->file].full);
	pthread_mutex_unlock(&db->mu);
	if (rc)
		return rc;
	if (e->off > f->size || e->len > f->size - e->off)
		return ckpt_error_set(
		    CKPT_ECORRUPT,
		    "%s: value at %s@%llu+%llu is outside the data file (%llu bytes)", db->dir,
		    f->path, (unsigned long long)e->off, (unsigned long long)e->len,
		    (unsigned long long)f->size);
	out->fd = f->fd;
	out->file = f->path;
	out->off = e->off;
	return 0;
}

int ocdbt_get(ocdbt_db *db, const void *key, size_t keylen, ocdbt_blob *out)
{
	const unsigned char *k = key;
	size_t klen = keylen;
	bnode *b = NULL, *child = NULL;
	nref ref;
	int rc;

	memset(out, 0, sizeof(*out));
	out->fd = -1;
	if (root_ref(&ref, db))
		goto absent;
	rc = node_load(&b, db, &ref);
	while (rc == 0) {
		/* the last entry whose key is <= the remaining key */
		size_t lo = 0, hi = b->n;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (keycmp(b->e[mid].key, b->e[mid].klen, k, klen) <= 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo == 0)
			break;
		const bentry *e = &b->e[lo - 1];
		if (b->height == 0) {
			if (keycmp(e->key, e->klen, k, klen) != 0)
				break;
			rc = blob_from(db, out, b, e);
			node_release(b);
			return rc;
		}
		if (klen < e->cpl || memcmp(k, e->key, e->cpl) != 0)
			break;
		k += e->cpl;
		klen -= e->cpl;
		child_ref(&ref, b, e);
		rc = node_load(&child, db, &ref); /* copies what it needs of ref */
		node_release(b);
		b = child;
	}
	if (rc)
		return rc;
absent:
	node_release(b);
	return ckpt_error_set(CKPT_ENOTFOUND, "%s: no key %.*s", db->dir, (int)keylen,
			      (const char *)key);
}

void ocdbt_blob_clear(ocdbt_blob *b)
{
	if (!b)
		return;
	free((void *)b->data);
	memset(b, 0, sizeof(*b));
	b->fd = -1;
}

int ocdbt_blob_pread(ocdbt_db *db, const ocdbt_blob *b, void *buf, size_t len, uint64_t off)
{
	if (off > b->len || len > b->len - off)
		return ckpt_error_set(CKPT_EINVAL, "read past the end of a %llu-byte value",
				      (unsigned long long)b->len);
	if (b->data) {
		memcpy(buf, b->data + off, len);
		return 0;
	}
	/* one request for the whole range, all in flight at once (no read-ahead here) */
	if (len >= (64u << 10))
		(void)posix_fadvise(b->fd, (off_t)(b->off + off), (off_t)len, POSIX_FADV_WILLNEED);
	return pread_full(db, b->fd, b->file, buf, len, b->off + off);
}

/* ---- listing and verification: depth-first walks ---- */

typedef struct walk {
	ocdbt_db *db;
	const unsigned char *q; /* prefix wanted (NULL: verify walks everything) */
	size_t qlen;
	ocdbt_list_cb cb;
	void *payload;
	unsigned char *path; /* accumulated absolute prefix (malloc'd, grows) */
	size_t plen, cap;
	uint64_t nodes;
	int verify;
} walk;

static int has_prefix(const unsigned char *k, size_t klen, const unsigned char *p, size_t plen)
{
	return klen >= plen && (plen == 0 || memcmp(k, p, plen) == 0);
}

/* Could a key in [lo, hi) start with q? lo/hi absolute; hi NULL = unbounded. */
static int range_meets(const walk *w, const unsigned char *lo, size_t lolen,
		       const unsigned char *hi, size_t hilen)
{
	int lo_ok = keycmp(lo, lolen, w->q, w->qlen) < 0 || has_prefix(lo, lolen, w->q, w->qlen);
	int hi_ok = !hi || keycmp(hi, hilen, w->q, w->qlen) > 0;
	return lo_ok && hi_ok;
}

static int walk_node(walk *w, const nref *ref);

/* Set w->path to path[:base] + add[:addlen]; returns the old length to restore. */
static int path_push(walk *w, const unsigned char *add, size_t addlen)
{
	if (w->plen + addlen > 16 * OCDBT_MAX_KEY)
		return ckpt_error_set(CKPT_ECORRUPT, "%s: keys longer than %u bytes", w->db->dir,
				      16 * OCDBT_MAX_KEY);
	if (addlen == 0)
		return 0;
	if (w->plen + addlen > w->cap) {
		size_t ncap = w->cap ? w->cap : 256;
		while (ncap < w->plen + addlen)
			ncap *= 2;
		unsigned char *t = realloc(w->path, ncap);
		if (!t)
			return ckpt_error_nomem();
		w->path = t;
		w->cap = ncap;
	}
	memcpy(w->path + w->plen, add, addlen);
	w->plen += addlen;
	return 0;
}

/* First entry whose key is >= k (relative keys of one node). */
static size_t lower_bound(const bnode *b, const unsigned char *k, size_t klen)
{
	size_t lo = 0, hi = b->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (keycmp(b->e[mid].key, b->e[mid].klen, k, klen) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int walk_entries(walk *w, bnode *b)
{
	int rc = 0;
	size_t base = w->plen, first = 0;
	const unsigned char *rel = NULL; /* the wanted prefix relative to this node, if longer */
	size_t rlen = 0;

	if (!w->verify) { /* listing: skip straight to the entries that can match */
		if (w->qlen >= base && (base == 0 || memcmp(w->q, w->path, base) == 0)) {
			rel = w->q + base;
			rlen = w->qlen - base;
			first = lower_bound(b, rel, rlen);
			if (b->height > 0 && first > 0)
				first--; /* the child before may hold keys starting with rel */
		} else if (!has_prefix(w->path, base, w->q, w->qlen)) {
			return 0; /* neither prefix of the other: nothing here */
		}
	}
	for (size_t i = first; i < b->n && rc == 0; i++) {
		const bentry *e = &b->e[i];
		/* past every key starting with rel: done (keys are sorted) */
		if (rel && keycmp(e->key, e->klen, rel, rlen) > 0 && !has_prefix(e->key, e->klen, rel, rlen))
			break;
		if (b->height == 0) {
			rc = path_push(w, e->key, e->klen);
			if (rc)
				break;
			if (w->verify && e->indirect) {
				ocdbt_blob bl;
				rc = blob_from(w->db, &bl, b, e);
				if (rc)
					ckpt_error_wrap(rc, "key %.*s", (int)w->plen, w->path);
			} else if (!w->verify && has_prefix(w->path, w->plen, w->q, w->qlen)) {
				rc = w->cb(w->path, w->plen, e->len, w->payload);
			}
			w->plen = base;
			continue;
		}
		if (!w->verify) {
			/* child i holds keys in [P+K_i, P+K_{i+1}) */
			unsigned char *lo;
			size_t lolen;
			if ((rc = path_push(w, e->key, e->klen)))
				break;
			lo = w->path; /* after the push: it may have moved the buffer */
			lolen = w->plen;
			w->plen = base;
			int meets;
			if (i + 1 < b->n) {
				unsigned char *hi = malloc(base + b->e[i + 1].klen + 1);
				if (!hi)
					return ckpt_error_nomem();
				memcpy(hi, w->path, base);
				memcpy(hi + base, b->e[i + 1].key, b->e[i + 1].klen);
				/* w->path still holds P+K_i beyond base (not yet overwritten) */
				meets = range_meets(w, lo, lolen, hi, base + b->e[i + 1].klen);
				free(hi);
			} else {
				meets = range_meets(w, lo, lolen, NULL, 0);
			}
			if (!meets)
				continue;
		}
		if ((rc = path_push(w, e->key, e->cpl)))
			break;
		nref ref;
		child_ref(&ref, b, e);
		rc = walk_node(w, &ref);
		w->plen = base;
	}
	return rc;
}

static int walk_node(walk *w, const nref *ref)
{
	bnode *b = NULL;
	int rc = node_load(&b, w->db, ref);

	if (rc)
		return rc;
	w->nodes++;
	rc = walk_entries(w, b);
	node_release(b);
	return rc;
}

int ocdbt_list(ocdbt_db *db, const void *prefix, size_t prefixlen, ocdbt_list_cb cb, void *payload)
{
	walk w = {db, prefix, prefixlen, cb, payload, NULL, 0, 0, 0, 0};
	nref ref;
	int rc;

	if (root_ref(&ref, db))
		return 0;
	rc = walk_node(&w, &ref);
	free(w.path);
	return rc;
}

/* Check a version-tree node and everything below it. */
static int verify_version_node(ocdbt_db *db, const char *path, const char *trans, uint64_t off,
			       uint64_t len, unsigned depth, uint64_t *nodes)
{
	unsigned char *body = NULL;
	size_t blen = 0;
	dfile *files = NULL;
	size_t nfiles = 0;
	vref *refs = NULL;
	int rc;

	if (depth > OCDBT_MAX_HEIGHT)
		return ckpt_error_set(CKPT_ECORRUPT, "%s: version tree too deep", db->dir);
	rc = read_envelope(&body, &blen, db, path, off, len, OCDBT_MAGIC_VERSION, "version node");
	if (rc)
		return rc;
	(*nodes)++;
	rd r = {body, body + blen, 0};
	unsigned arity = rd_u8(&r), height = rd_u8(&r);
	if (r.bad || arity != db->m.arity_log2) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: version node %s@%llu: bad header", db->dir,
				    path, (unsigned long long)off);
		goto done;
	}
	rc = dfiles_decode(&files, &nfiles, &r, trans, path);
	if (rc)
		goto done;
	uint64_t n = rd_varint(&r);
	if (!rd_count(&r, n, 13, OCDBT_MAX_ENTRIES) || !(refs = calloc(n + 1, sizeof(*refs)))) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: version node %s@%llu: bad entries", db->dir,
				    path, (unsigned long long)off);
		goto done;
	}
	for (uint64_t i = 0; i < n; i++)
		rd_varint(&r);
	if (height == 0)
		for (uint64_t i = 0; i < n; i++)
			rd_u8(&r);
	refs_decode(refs, n, &r, nfiles);
	for (uint64_t i = 0; i < (height == 0 ? 3 * n : n); i++)
		rd_varint(&r);
	for (uint64_t i = 0; i < n; i++)
		rd_u64le(&r);
	if (r.bad || r.p != r.end) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: version node %s@%llu: bad entries", db->dir,
				    path, (unsigned long long)off);
		goto done;
	}
	for (uint64_t i = 0; i < n && height > 0 && rc == 0; i++)
		rc = verify_version_node(db, files[refs[i].file].full, files[refs[i].file].trans,
					 refs[i].off, refs[i].len, depth + 1, nodes);
done:
	free(refs);
	dfiles_free(files, nfiles);
	free(body);
	return rc;
}

int ocdbt_verify(ocdbt_db *db, uint64_t *nodes)
{
	walk w = {db, NULL, 0, NULL, NULL, NULL, 0, 0, 0, 1};
	uint64_t vn = 0;
	nref ref;
	int rc = 0;

	for (size_t i = 0; i < db->m.nvnodes && rc == 0; i++) {
		const dfile *f = &db->m.files[db->m.vnodes[i].file];
		rc = verify_version_node(db, f->full, f->trans, db->m.vnodes[i].off,
					 db->m.vnodes[i].len, 0, &vn);
	}
	if (rc == 0 && root_ref(&ref, db) == 0) {
		rc = walk_node(&w, &ref);
		free(w.path);
	}
	if (nodes)
		*nodes = w.nodes + vn;
	return rc;
}
