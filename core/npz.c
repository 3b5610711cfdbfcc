/*
 * npz.c — numpy .npz archives: a zip reader and writer for stored and
 * deflated entries, export and import of PyTree items (ckpt/npz.h;
 * decisions in docs/convert.md).
 *
 * Reading goes through struct zsrc (a file or a buffer, so the fuzz target
 * runs the same code) and never trusts a local header beyond its name and
 * lengths: sizes, CRCs and methods come from the central directory.
 * An entry's bytes are read through struct estream, which inflates if
 * needed, reads strictly forward and checks the CRC-32 at the end.
 *
 * Invariants:
 *   1. After ckpt_npz_open, every entry's [local header, data end) lies
 *      within [0, central directory offset) and no two entries' ranges
 *      overlap (checked in check_ranges()).
 *   2. An estream delivers exactly usize bytes; a stream that ends early,
 *      runs long or disagrees with the CRC-32 is an error, never short or
 *      wrong data.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "ckpt/npz.h"
#include "ckpt/pytree.h"
#include "bytes.h"
#include "error_private.h"
#include "pytree_private.h"
#include "safetensors_private.h"
#include "fsutil.h"
#include "root_private.h"
#include "step_private.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u
#define U32MAX 0xFFFFFFFFu
#define IN_BUF (64u << 10)
#define MAX_NPY_HEADER (1u << 20)
#define COPY_BUF (4u << 20)

/* ---- sources ---- */

struct zsrc {
	int fd; /* or -1: mem */
	const unsigned char *mem;
	uint64_t size;
	const char *what;
};

static int zread(const struct zsrc *s, void *buf, size_t n, uint64_t off)
{
	if (off > s->size || n > s->size - off)
		return ckpt_error_set(CKPT_EINVAL, "%s: truncated zip archive", s->what);
	if (s->fd < 0) {
		memcpy(buf, s->mem + off, n);
		return 0;
	}
	return ckpt_pread_full(s->fd, buf, n, off, s->what);
}

/* ---- the directory ---- */

/* A name that is a plain relative path ending in ".npy". */
static int name_ok(const char *n, size_t len)
{
	if (len <= 4 || memcmp(n + len - 4, ".npy", 4) || n[0] == '/' || memchr(n, '\\', len) ||
	    memchr(n, 0, len))
		return 0;
	for (const char *c = n; c < n + len;) {
		const char *e = memchr(c, '/', (size_t)(n + len - c));
		size_t k = e ? (size_t)(e - c) : (size_t)(n + len - c);
		if (k == 0 || (k == 1 && c[0] == '.') || (k == 2 && c[0] == '.' && c[1] == '.'))
			return 0;
		c += k + 1;
	}
	return 1;
}

/* The zip64 extra field of a central entry: the fields that are 0xFFFFFFFF. */
static int zip64_extra(ckpt_npz_entry *e, uint64_t *off, const unsigned char *x, size_t xlen,
		       int need_u, int need_c, int need_o)
{
	while (xlen >= 4) {
		uint16_t id = ckpt_get_le16(x), sz = ckpt_get_le16(x + 2);
		if ((size_t)sz + 4 > xlen)
			return 0;
		if (id == 1) {
			size_t want = 8u * (unsigned)(need_u + need_c + need_o), at = 4;
			if (sz < want)
				return 0;
			if (need_u)
				e->usize = ckpt_get_le64(x + at), at += 8;
			if (need_c)
				e->csize = ckpt_get_le64(x + at), at += 8;
			if (need_o)
				*off = ckpt_get_le64(x + at);
			return 1;
		}
		x += 4 + sz;
		xlen -= 4 + (size_t)sz;
	}
	return !(need_u || need_c || need_o);
}

struct cd {
	uint64_t n, size, off; /* entries, central directory size and offset */
	uint64_t end;	       /* where the central directory must end */
};

/* The end of central directory record, and the zip64 one where it is needed. */
static int find_eocd(struct cd *cd, const struct zsrc *s)
{
	unsigned char *tail = NULL, rec[56];
	uint64_t tlen = s->size < 22 + 65535 ? s->size : 22 + 65535, at = 0;
	int rc = 0, found = 0;

	if (s->size < 22)
		return ckpt_error_set(CKPT_EINVAL, "%s: not a zip archive (%" PRIu64 " bytes)",
				      s->what, s->size);
	if (!(tail = malloc((size_t)tlen)))
		return ckpt_error_nomem();
	if ((rc = zread(s, tail, (size_t)tlen, s->size - tlen)))
		goto done;
	for (uint64_t i = tlen - 22 + 1; i-- > 0;) {
		const unsigned char *p = tail + i;
		if (ckpt_get_le32(p) == SIG_EOCD && i + 22 + ckpt_get_le16(p + 20) == tlen) {
			at = s->size - tlen + i;
			found = 1;
			break;
		}
	}
	if (!found) {
		rc = ckpt_error_set(CKPT_EINVAL, "%s: not a zip archive (no end record)", s->what);
		goto done;
	}
	const unsigned char *p = tail + (at - (s->size - tlen));
	uint16_t disk = ckpt_get_le16(p + 4), cdisk = ckpt_get_le16(p + 6),
		 ndisk = ckpt_get_le16(p + 8), ntot = ckpt_get_le16(p + 10);
	uint32_t size = ckpt_get_le32(p + 12), off = ckpt_get_le32(p + 16);
	cd->n = ntot;
	cd->size = size;
	cd->off = off;
	cd->end = at;
	int z64 = ntot == 0xFFFF || ndisk == 0xFFFF || size == U32MAX || off == U32MAX;
	if (!z64 && (disk || cdisk || ndisk != ntot)) {
		rc = ckpt_error_set(CKPT_EINVAL, "%s: a multi-disk zip archive", s->what);
		goto done;
	}
	if (z64) {
		if (at < 20 || (rc = zread(s, rec, 20, at - 20)))
			goto z64bad;
		if (ckpt_get_le32(rec) != SIG_LOC64 || ckpt_get_le32(rec + 4) != 0 ||
		    ckpt_get_le32(rec + 16) != 1)
			goto z64bad;
		uint64_t r64 = ckpt_get_le64(rec + 8);
		if (r64 > at - 20 || at - 20 - r64 < 56 || (rc = zread(s, rec, 56, r64)))
			goto z64bad;
		if (ckpt_get_le32(rec) != SIG_EOCD64 || ckpt_get_le32(rec + 16) ||
		    ckpt_get_le32(rec + 20) || ckpt_get_le64(rec + 24) != ckpt_get_le64(rec + 32))
			goto z64bad;
		if ((ntot != 0xFFFF && ntot != ckpt_get_le64(rec + 32)) ||
		    (size != U32MAX && size != ckpt_get_le64(rec + 40)) ||
		    (off != U32MAX && off != ckpt_get_le64(rec + 48)))
			goto z64bad;
		cd->n = ckpt_get_le64(rec + 32);
		cd->size = ckpt_get_le64(rec + 40);
		cd->off = ckpt_get_le64(rec + 48);
		cd->end = r64;
	}
	if (cd->off > cd->end || cd->size != cd->end - cd->off)
		rc = ckpt_error_set(CKPT_EINVAL,
				    "%s: the central directory (%" PRIu64 " bytes at %" PRIu64
				    ") does not end where the end record starts",
				    s->what, cd->size, cd->off);
	else if (cd->n > cd->size / 46)
		rc = ckpt_error_set(CKPT_EINVAL, "%s: %" PRIu64 " entries cannot fit the directory",
				    s->what, cd->n);
	goto done;
z64bad:
	if (rc == 0 || rc == CKPT_EINVAL)
		rc = ckpt_error_set(CKPT_EINVAL, "%s: inconsistent zip64 end records", s->what);
done:
	free(tail);
	return rc;
}

struct range {
	uint64_t begin, end;
	size_t i;
};

static int cmp_range(const void *a, const void *b)
{
	const struct range *x = a, *y = b;
	return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static int cmp_ent_name(const void *a, const void *b)
{
	return strcmp((*(const ckpt_npz_entry *const *)a)->name,
		      (*(const ckpt_npz_entry *const *)b)->name);
}

/* Invariant 1, and names unique. */
static int check_ranges(const ckpt_npz *z, struct range *r, const struct cd *cd, const char *what)
{
	const ckpt_npz_entry **by = malloc((z->n + 1) * sizeof(*by));
	int rc = 0;
	if (!by)
		return ckpt_error_nomem();
	qsort(r, z->n, sizeof(*r), cmp_range);
	for (size_t i = 0; i < z->n && rc == 0; i++) {
		if (r[i].end > cd->off)
			rc = ckpt_error_set(CKPT_EINVAL, "%s: entry %s runs into the central directory",
					    what, z->entries[r[i].i].name);
		else if (i && r[i].begin < r[i - 1].end)
			rc = ckpt_error_set(CKPT_EINVAL, "%s: entries %s and %s overlap", what,
					    z->entries[r[i - 1].i].name, z->entries[r[i].i].name);
	}
	for (size_t i = 0; i < z->n; i++)
		by[i] = &z->entries[i];
	qsort(by, z->n, sizeof(*by), cmp_ent_name);
	for (size_t i = 1; i < z->n && rc == 0; i++)
		if (!strcmp(by[i]->name, by[i - 1]->name))
			rc = ckpt_error_set(CKPT_EINVAL, "%s: entry %s appears twice", what,
					    by[i]->name);
	free(by);
	return rc;
}

/* One central entry at p (len bytes left), its local header checked. */
static int read_entry(ckpt_npz_entry *e, struct range *r, size_t *used, const unsigned char *p,
		      size_t len, const struct zsrc *s)
{
	unsigned char lh[30];
	char *lname = NULL;
	uint64_t off;
	int rc;

	if (len < 46 || ckpt_get_le32(p) != SIG_CENTRAL)
		return ckpt_error_set(CKPT_EINVAL, "%s: bad central directory entry", s->what);
	uint16_t flags = ckpt_get_le16(p + 8), method = ckpt_get_le16(p + 10),
		 nlen = ckpt_get_le16(p + 28), xlen = ckpt_get_le16(p + 30),
		 clen = ckpt_get_le16(p + 32), disk = ckpt_get_le16(p + 34);
	if ((size_t)46 + nlen + xlen + clen > len)
		return ckpt_error_set(CKPT_EINVAL, "%s: bad central directory entry", s->what);
	*used = (size_t)46 + nlen + xlen + clen;
	if (!(e->name = strndup((const char *)p + 46, nlen)))
		return ckpt_error_nomem();
	if (!name_ok((const char *)p + 46, nlen))
		return ckpt_error_set(CKPT_EINVAL,
				      "%s: entry '%s' is not a relative path of a .npy file", s->what,
				      e->name);
	if (flags & 0x41)
		return ckpt_error_set(CKPT_EUNSUPPORTED, "%s: entry %s is encrypted", s->what,
				      e->name);
	if (method != 0 && method != 8)
		return ckpt_error_set(CKPT_EUNSUPPORTED,
				      "%s: entry %s: compression method %u (only stored and deflate)",
				      s->what, e->name, method);
	e->deflated = method == 8;
	e->crc32 = ckpt_get_le32(p + 16);
	e->csize = ckpt_get_le32(p + 20);
	e->usize = ckpt_get_le32(p + 24);
	off = ckpt_get_le32(p + 42);
	if (!zip64_extra(e, &off, p + 46 + nlen, xlen, e->usize == U32MAX, e->csize == U32MAX,
			 off == U32MAX) ||
	    (disk != 0 && disk != 0xFFFF))
		return ckpt_error_set(CKPT_EINVAL, "%s: entry %s: bad zip64 extra field", s->what,
				      e->name);
	if (!e->deflated && e->csize != e->usize)
		return ckpt_error_set(CKPT_EINVAL,
				      "%s: entry %s is stored but its sizes differ (%" PRIu64
				      " and %" PRIu64 ")",
				      s->what, e->name, e->csize, e->usize);
	if ((rc = zread(s, lh, 30, off)))
		return ckpt_error_wrap(rc, "entry %s", e->name);
	if (ckpt_get_le32(lh) != SIG_LOCAL || ckpt_get_le16(lh + 26) != nlen ||
	    ckpt_get_le16(lh + 8) != method)
		return ckpt_error_set(CKPT_EINVAL,
				      "%s: entry %s: the local header disagrees with the directory",
				      s->what, e->name);
	if (!(lname = malloc((size_t)nlen + 1)))
		return ckpt_error_nomem();
	rc = zread(s, lname, nlen, off + 30);
	if (rc == 0 && memcmp(lname, e->name, nlen))
		rc = ckpt_error_set(CKPT_EINVAL, "%s: entry %s: the local header names another file",
				    s->what, e->name);
	free(lname);
	if (rc)
		return rc;
	e->data_off = off + 30 + nlen + ckpt_get_le16(lh + 28);
	r->begin = off;
	r->end = e->data_off + e->csize;
	if (r->end < e->data_off)
		return ckpt_error_set(CKPT_EINVAL, "%s: entry %s: size overflows", s->what, e->name);
	return 0;
}

static int open_src(ckpt_npz **out, const struct zsrc *s)
{
	struct cd cd = {0};
	unsigned char *dir = NULL;
	struct range *r = NULL;
	ckpt_npz *z = NULL;
	int rc;

	*out = NULL;
	if ((rc = find_eocd(&cd, s)))
		return rc;
	if (cd.size > (256u << 20))
		return ckpt_error_set(CKPT_EUNSUPPORTED, "%s: a central directory of %" PRIu64
				      " bytes", s->what, cd.size);
	if (!(dir = malloc((size_t)cd.size + 1)) || !(z = calloc(1, sizeof(*z))) ||
	    !(z->entries = calloc((size_t)cd.n + 1, sizeof(*z->entries))) ||
	    !(r = calloc((size_t)cd.n + 1, sizeof(*r)))) {
		rc = ckpt_error_nomem();
		goto done;
	}
	if ((rc = zread(s, dir, (size_t)cd.size, cd.off)))
		goto done;
	size_t at = 0;
	for (uint64_t i = 0; i < cd.n && rc == 0; i++) {
		size_t used = 0;
		rc = read_entry(&z->entries[i], &r[i], &used, dir + at, (size_t)cd.size - at, s);
		r[i].i = (size_t)i;
		z->n++;
		at += used;
	}
	if (rc == 0 && at != cd.size)
		rc = ckpt_error_set(CKPT_EINVAL, "%s: %zu stray bytes in the central directory",
				    s->what, (size_t)cd.size - at);
	if (rc == 0)
		rc = check_ranges(z, r, &cd, s->what);
	if (rc == 0) {
		*out = z;
		z = NULL;
	}
done:
	free(dir);
	free(r);
	ckpt_npz_free(z);
	return rc;
}

int ckpt_npz_open(ckpt_npz **out, int fd, const char *what)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return ckpt_error_errno(CKPT_EIO, errno, "stat %s", what);
	if (!S_ISREG(st.st_mode))
		return ckpt_error_set(CKPT_EINVAL, "%s: not a regular file", what);
	struct zsrc s = {fd, NULL, (uint64_t)st.st_size, what};
	return open_src(out, &s);
}

int ckpt_npz_parse(ckpt_npz **out, const void *buf, size_t len)
{
	struct zsrc s = {-1, buf, len, "npz"};
	return open_src(out, &s);
}

void ckpt_npz_free(ckpt_npz *z)
{
	if (!z)
		return;
	for (size_t i = 0; i < z->n; i++)
		free(z->entries[i].name);
	free(z->entries);
	free(z);
}

/* ---- entry streams ---- */

struct estream {
	const struct zsrc *s;
	const ckpt_npz_entry *e;
	z_stream z;
	int zinit, zend;
	uint64_t cpos, upos;
	uLong crc;
	unsigned char *in;
};

static void es_close(struct estream *es)
{
	if (es->zinit)
		inflateEnd(&es->z);
	free(es->in);
	memset(es, 0, sizeof(*es));
}

static int es_open(struct estream *es, const struct zsrc *s, const ckpt_npz_entry *e)
{
	memset(es, 0, sizeof(*es));
	es->s = s;
	es->e = e;
	es->crc = crc32(0, NULL, 0);
	if (!e->deflated)
		return 0;
	if (!(es->in = malloc(IN_BUF)))
		return ckpt_error_nomem();
	if (inflateInit2(&es->z, -15) != Z_OK) {
		free(es->in);
		es->in = NULL;
		return ckpt_error_nomem();
	}
	es->zinit = 1;
	return 0;
}

static int es_inflate(struct estream *es, unsigned char *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		if (es->z.avail_in == 0 && es->cpos < es->e->csize) {
			size_t k = es->e->csize - es->cpos < IN_BUF ? (size_t)(es->e->csize - es->cpos)
								    : IN_BUF;
			int rc = zread(es->s, es->in, k, es->e->data_off + es->cpos);
			if (rc)
				return rc;
			es->cpos += k;
			es->z.next_in = es->in;
			es->z.avail_in = (uInt)k;
		}
		size_t want = n - got < (1u << 30) ? n - got : (1u << 30);
		es->z.next_out = buf + got;
		es->z.avail_out = (uInt)want;
		int r = es->zend ? Z_STREAM_END : inflate(&es->z, Z_NO_FLUSH);
		got += want - es->z.avail_out;
		if (r == Z_STREAM_END) {
			es->zend = 1;
			if (got < n)
				break;
		} else if (r != Z_OK) {
			return ckpt_error_set(CKPT_EINVAL, "%s: entry %s: bad deflate data (%s)",
					      es->s->what, es->e->name,
					      es->z.msg ? es->z.msg : "truncated");
		}
	}
	if (got < n)
		return ckpt_error_set(CKPT_EINVAL, "%s: entry %s: deflate data ends early",
				      es->s->what, es->e->name);
	return 0;
}

/* Exactly n more bytes of the entry (invariant 2). */
static int es_read(struct estream *es, void *buf, size_t n)
{
	int rc;
	if (n > es->e->usize - es->upos)
		return ckpt_error_set(CKPT_EINVAL, "%s: entry %s: shorter than its .npy header says",
				      es->s->what, es->e->name);
	if (es->e->deflated)
		rc = es_inflate(es, buf, n);
	else
		rc = zread(es->s, buf, n, es->e->data_off + es->upos);
	if (rc)
		return rc;
	for (size_t done = 0; done < n;) {
		uInt k = n - done < (1u << 30) ? (uInt)(n - done) : (1u << 30);
		es->crc = crc32(es->crc, (const Bytef *)buf + done, k);
		done += k;
	}
	es->upos += n;
	if (es->upos < es->e->usize)
		return 0;
	if (es->e->deflated && (!es->zend || es->z.avail_in || es->cpos != es->e->csize)) {
		unsigned char one;
		if (!es->zend && es_inflate(es, &one, 1) == 0)
			return ckpt_error_set(CKPT_EINVAL, "%s: entry %s: longer than its size",
					      es->s->what, es->e->name);
		ckpt_error_clear();
		if (!es->zend || es->z.avail_in || es->cpos != es->e->csize)
			return ckpt_error_set(CKPT_EINVAL,
					      "%s: entry %s: compressed size disagrees with its data",
					      es->s->what, es->e->name);
	}
	if ((uint32_t)es->crc != es->e->crc32)
		return ckpt_error_set(CKPT_EINVAL, "%s: entry %s: CRC-32 mismatch", es->s->what,
				      es->e->name);
	return 0;
}

/* The .npy header at the start of the entry; the stream is left after it. */
static int es_header(ckpt_npy_header *h, struct estream *es)
{
	unsigned char first[12], *buf = NULL;
	size_t hs = 0, have = 8;
	int rc = es->e->usize < 10 ? ckpt_error_set(CKPT_EINVAL, "npy: truncated header")
				   : es_read(es, first, 8);
	/* exactly the bytes that give the header's size: 10 for v1.0, 12 after */
	if (rc == 0 && first[6] != 1)
		have = es->e->usize < 12 ? 0 : 12;
	else if (rc == 0)
		have = 10;
	if (rc == 0 && have == 0)
		rc = ckpt_error_set(CKPT_EINVAL, "npy: truncated header");
	if (rc == 0)
		rc = es_read(es, first + 8, have - 8);
	if (rc == 0)
		rc = ckpt_npy_header_size(&hs, first, have);
	if (rc == 0 && (hs > MAX_NPY_HEADER || hs > es->e->usize || hs < have))
		rc = ckpt_error_set(CKPT_EINVAL, "npy: header of %zu bytes", hs);
	if (rc == 0 && !(buf = malloc(hs)))
		rc = ckpt_error_nomem();
	if (rc == 0) {
		memcpy(buf, first, have);
		rc = es_read(es, buf + have, hs - have);
	}
	if (rc == 0)
		rc = ckpt_npy_parse_header(h, buf, hs);
	if (rc == 0 && h->data_len != es->e->usize - h->header_len)
		rc = ckpt_error_set(CKPT_EINVAL,
				    "npy: %" PRIu64 " bytes of data announced, the entry holds %" PRIu64,
				    h->data_len, es->e->usize - h->header_len);
	free(buf);
	if (rc && rc != CKPT_ENOMEM && !strstr(ckpt_error_last(), es->e->name))
		ckpt_error_wrap(rc, "%s: entry %s", es->s->what, es->e->name);
	return rc;
}

int ckpt_npz_read_entry(ckpt_npy_header *out_h, void **out_data, const ckpt_npz *z, size_t i,
			int fd, const void *buf, size_t len, uint64_t max)
{
	struct zsrc s = {fd, buf, len, "npz"};
	struct estream es;
	void *raw = NULL, *data = NULL;
	struct stat st;
	int rc;

	*out_data = NULL;
	if (i >= z->n)
		return ckpt_error_set(CKPT_ENOTFOUND, "npz: no entry %zu", i);
	if (fd >= 0) {
		if (fstat(fd, &st) != 0)
			return ckpt_error_errno(CKPT_EIO, errno, "stat npz");
		s.size = (uint64_t)st.st_size;
	}
	if ((rc = es_open(&es, &s, &z->entries[i])))
		return rc;
	if ((rc = es_header(out_h, &es)))
		goto done;
	if (out_h->data_len > max) {
		rc = ckpt_error_set(CKPT_EINVAL, "npz: entry %s holds more than %" PRIu64 " bytes",
				    z->entries[i].name, max);
		goto done;
	}
	raw = malloc(out_h->data_len + 1);
	data = malloc(out_h->data_len + 1);
	if (!raw || !data) {
		rc = ckpt_error_nomem();
		goto done;
	}
	if ((rc = es_read(&es, raw, (size_t)out_h->data_len)) ||
	    (rc = ckpt_npy_to_c_le(data, raw, out_h)))
		goto done;
	out_h->big_endian = out_h->fortran_order = 0;
	*out_data = data;
	data = NULL;
done:
	es_close(&es);
	free(raw);
	free(data);
	return rc;
}

/* ---- export ---- */

struct zent {
	char *name;
	const ckpt_tree *leaf;
	uint64_t off, size;
	uint32_t crc;
};

struct zout {
	ckpt_step *s;
	const char *item;
	char sep;
	struct zent *e;
	size_t n, cap, left;
};

static int zcollect(ckpt_tree *node, const char *path, void *payload)
{
	struct zout *zo = payload;
	int rc;
	if (ckpt_tree_is_container(node) || ckpt_tree_get_kind(node) == CKPT_TREE_NONE)
		return 0;
	if (ckpt_tree_get_kind(node) != CKPT_TREE_ARRAY) {
		zo->left++;
		return 0;
	}
	if (zo->n == zo->cap) {
		size_t c = zo->cap ? zo->cap * 2 : 16;
		struct zent *q = realloc(zo->e, c * sizeof(*q));
		if (!q)
			return ckpt_error_nomem();
		zo->e = q;
		zo->cap = c;
	}
	struct zent *e = &zo->e[zo->n];
	char *k = NULL;
	memset(e, 0, sizeof(*e));
	if ((rc = ckpt_convert_join_keys(&k, node, zo->sep)))
		return rc;
	e->name = ckpt_asprintf("%s.npy", k);
	free(k);
	if (!e->name)
		return CKPT_ENOMEM;
	if (!name_ok(e->name, strlen(e->name))) {
		rc = ckpt_error_set(CKPT_EINVAL,
				    "leaf %s: '%s' is not a plain relative path for an .npz entry",
				    path, e->name);
		free(e->name);
		return rc;
	}
	e->leaf = node;
	zo->n++;
	return 0;
}

#define DOS_DATE 0x21 /* 1980-01-01: reproducible archives */

/*
 * The fields a local header (at h + 4) and a central directory entry (at
 * h + 6) share, from "version needed" to "extra field length": stored, no
 * flags, 1980-01-01 00:00:00, e's CRC and sizes (0xFFFFFFFF from 4 GiB on:
 * the zip64 extra field has them), nlen and xlen; version 4.5 with an extra
 * field. A zeroed h is assumed.
 */
static void put_entry_fields(unsigned char *p, const struct zent *e, size_t nlen, size_t xlen)
{
	int zs = e->size >= U32MAX;
	ckpt_put_le16(p, xlen ? 45 : 20);
	ckpt_put_le16(p + 8, DOS_DATE); /* time (p + 6) stays 00:00:00 */
	ckpt_put_le32(p + 10, e->crc);
	ckpt_put_le32(p + 14, zs ? U32MAX : (uint32_t)e->size);
	ckpt_put_le32(p + 18, zs ? U32MAX : (uint32_t)e->size);
	ckpt_put_le16(p + 22, (uint16_t)nlen);
	ckpt_put_le16(p + 24, (uint16_t)xlen);
}

/* Local header of e (zip64 when the entry is 4 GiB or more); returns its length. */
static size_t local_header(unsigned char *h, const struct zent *e, size_t nlen)
{
	int z64 = e->size >= U32MAX;
	memset(h, 0, 30);
	ckpt_put_le32(h, SIG_LOCAL);
	put_entry_fields(h + 4, e, nlen, z64 ? 20 : 0);
	if (z64) {
		unsigned char *x = h + 30 + nlen;
		ckpt_put_le16(x, 1);
		ckpt_put_le16(x + 2, 16);
		ckpt_put_le64(x + 4, e->size);
		ckpt_put_le64(x + 12, e->size);
	}
	return 30 + nlen + (z64 ? 20 : 0);
}

static int write_entry(int fd, const char *tmp, struct zout *zo, struct zent *e, uint64_t *at,
		       unsigned char *buf)
{
	ckpt_leaf *l = NULL;
	size_t nlen = strlen(e->name);
	int rc;

	if (nlen > 0xFFFF)
		return ckpt_error_set(CKPT_EUNSUPPORTED, "entry name of %zu bytes", nlen);
	if ((rc = ckpt_leaf_open(&l, zo->s, zo->item, e->leaf)))
		return rc;
	e->off = *at;
	e->size = ckpt_leaf_file_size(l);
	size_t hl = local_header(buf, e, nlen);
	memcpy(buf + 30, e->name, nlen);
	uLong crc = crc32(0, NULL, 0);
	rc = ckpt_write_full(fd, buf, hl, tmp);
	for (uint64_t off = 0; rc == 0 && off < e->size;) {
		size_t got = 0, want = e->size - off < COPY_BUF ? (size_t)(e->size - off) : COPY_BUF;
		if ((rc = ckpt_leaf_pread(&got, l, buf, want, off)))
			break;
		if (got != want) {
			rc = ckpt_error_set(CKPT_ECORRUPT, "%s: short read", ckpt_leaf_key(l));
			break;
		}
		crc = crc32(crc, buf, (uInt)got);
		rc = ckpt_write_full(fd, buf, got, tmp);
		off += got;
	}
	e->crc = (uint32_t)crc;
	if (rc == 0) {
		unsigned char c[4];
		ckpt_put_le32(c, e->crc);
		if (pwrite(fd, c, 4, (off_t)(e->off + 14)) != 4)
			rc = ckpt_error_errno(CKPT_EIO, errno, "write %s", tmp);
	}
	*at += hl + e->size;
	ckpt_leaf_free(l);
	return rc;
}

static int write_central(int fd, const char *tmp, const struct zout *zo, uint64_t at)
{
	unsigned char h[46 + 28];
	uint64_t cd_off = at;
	int rc = 0;

	for (size_t i = 0; i < zo->n && rc == 0; i++) {
		const struct zent *e = &zo->e[i];
		size_t nlen = strlen(e->name);
		int zs = e->size >= U32MAX, zo64 = e->off >= U32MAX;
		size_t xl = (zs || zo64) ? 4 + 16u * (unsigned)zs + 8u * (unsigned)zo64 : 0;
		memset(h, 0, sizeof(h));
		ckpt_put_le32(h, SIG_CENTRAL);
		ckpt_put_le16(h + 4, 0x0300 | 45);
		put_entry_fields(h + 6, e, nlen, xl);
		ckpt_put_le32(h + 38, 0100644u << 16);
		ckpt_put_le32(h + 42, zo64 ? U32MAX : (uint32_t)e->off);
		rc = ckpt_write_full(fd, h, 46, tmp);
		if (rc == 0)
			rc = ckpt_write_full(fd, e->name, nlen, tmp);
		if (rc == 0 && xl) {
			unsigned char *x = h + 46, *q = x + 4;
			ckpt_put_le16(x, 1);
			ckpt_put_le16(x + 2, (uint16_t)(xl - 4));
			if (zs) {
				ckpt_put_le64(q, e->size);
				ckpt_put_le64(q + 8, e->size);
				q += 16;
			}
			if (zo64)
				ckpt_put_le64(q, e->off);
			rc = ckpt_write_full(fd, x, xl, tmp);
		}
		at += 46 + nlen + xl;
	}
	if (rc)
		return rc;
	uint64_t cd_size = at - cd_off;
	int z64 = zo->n >= 0xFFFF || cd_off >= U32MAX || cd_size >= U32MAX;
	unsigned char end[56 + 20 + 22];
	size_t el = 0;
	memset(end, 0, sizeof(end));
	if (z64) {
		ckpt_put_le32(end, SIG_EOCD64);
		ckpt_put_le64(end + 4, 44);
		ckpt_put_le16(end + 12, 45);
		ckpt_put_le16(end + 14, 45);
		ckpt_put_le64(end + 24, zo->n);
		ckpt_put_le64(end + 32, zo->n);
		ckpt_put_le64(end + 40, cd_size);
		ckpt_put_le64(end + 48, cd_off);
		ckpt_put_le32(end + 56, SIG_LOC64);
		ckpt_put_le64(end + 64, at);
		ckpt_put_le32(end + 72, 1);
		el = 76;
	}
	ckpt_put_le32(end + el, SIG_EOCD);
	ckpt_put_le16(end + el + 8, zo->n >= 0xFFFF ? 0xFFFF : (uint16_t)zo->n);
	ckpt_put_le16(end + el + 10, zo->n >= 0xFFFF ? 0xFFFF : (uint16_t)zo->n);
	ckpt_put_le32(end + el + 12, cd_size >= U32MAX ? U32MAX : (uint32_t)cd_size);
	ckpt_put_le32(end + el + 16, cd_off >= U32MAX ? U32MAX : (uint32_t)cd_off);
	return ckpt_write_full(fd, end, el + 22, tmp);
}

static int fill_npz(int fd, const char *tmp, void *p)
{
	struct zout *zo = p;
	unsigned char *buf = malloc(COPY_BUF > 30 + 0xFFFF + 20 ? COPY_BUF : 30 + 0xFFFF + 20);
	uint64_t at = 0;
	int rc = buf ? 0 : ckpt_error_nomem();

	for (size_t i = 0; i < zo->n && rc == 0; i++)
		rc = write_entry(fd, tmp, zo, &zo->e[i], &at, buf);
	if (rc == 0)
		rc = write_central(fd, tmp, zo, at);
	free(buf);
	return rc;
}

static int cmp_zent(const void *a, const void *b)
{
	return strcmp(((const struct zent *)a)->name, ((const struct zent *)b)->name);
}

int ckpt_npz_export(ckpt_step *s, const char *item, const char *path,
		    const ckpt_safetensors_options *opts, size_t *left_out)
{
	struct zout zo = {s, item, opts ? opts->sep : '.', NULL, 0, 0, 0};
	const ckpt_tree *t = NULL;
	struct zent *sorted = NULL;
	int rc = ckpt_step_load_index(s);

	if (rc == 0)
		rc = ckpt_step_item_tree(&t, s, item);
	if (rc == 0)
		rc = ckpt_tree_walk((ckpt_tree *)t, zcollect, &zo);
	if (rc == 0 && !(sorted = malloc((zo.n + 1) * sizeof(*sorted))))
		rc = ckpt_error_nomem();
	if (rc == 0) {
		memcpy(sorted, zo.e, zo.n * sizeof(*sorted));
		qsort(sorted, zo.n, sizeof(*sorted), cmp_zent);
		for (size_t i = 1; i < zo.n && rc == 0; i++)
			if (!strcmp(sorted[i].name, sorted[i - 1].name))
				rc = ckpt_error_set(CKPT_EINVAL,
						    "item %s: two leaves are both named '%s' in the "
						    ".npz (choose another separator)",
						    item, sorted[i].name);
	}
	if (rc == 0)
		rc = ckpt_convert_write_atomic(path, fill_npz, &zo);
	if (rc == 0 && left_out)
		*left_out = zo.left;
	for (size_t i = 0; i < zo.n; i++)
		free(zo.e[i].name);
	free(zo.e);
	free(sorted);
	return rc;
}

/* ---- import ---- */

struct isrc {
	const ckpt_tree *leaf;
	size_t entry;
	ckpt_npy_header h;
};

static int cmp_isrc(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const struct isrc *)a)->leaf;
	uintptr_t y = (uintptr_t)((const struct isrc *)b)->leaf;
	return x < y ? -1 : x > y;
}

struct importer {
	struct zsrc src;
	ckpt_npz *z;
	ckpt_tree *tree;
	struct isrc *is;
	size_t n;
	struct estream es; /* of cur */
	const struct isrc *cur;
	unsigned char *whole; /* Fortran-order data of cur, converted */
	unsigned char *scratch;
	size_t scratch_len;
};

static void importer_drop(struct importer *im)
{
	es_close(&im->es);
	free(im->whole);
	im->whole = NULL;
	im->cur = NULL;
}

static int npz_source(void *buf, size_t len, uint64_t off, const ckpt_tree *leaf, const char *path,
		      void *payload)
{
	struct importer *im = payload;
	struct isrc k = {.leaf = leaf}, *e = bsearch(&k, im->is, im->n, sizeof(k), cmp_isrc);
	ckpt_npy_header h;
	int rc;

	if (!e)
		return ckpt_error_set(CKPT_ERROR, "leaf '%s' has no entry", path);
	if (im->cur != e) {
		importer_drop(im);
		if ((rc = es_open(&im->es, &im->src, &im->z->entries[e->entry])) ||
		    (rc = es_header(&h, &im->es)))
			return rc;
		im->cur = e;
		if (e->h.fortran_order && e->h.ndim > 1) {
			unsigned char *raw = malloc(e->h.data_len + 1);
			im->whole = malloc(e->h.data_len + 1);
			rc = raw && im->whole ? es_read(&im->es, raw, (size_t)e->h.data_len)
					      : ckpt_error_nomem();
			if (rc == 0)
				rc = ckpt_npy_to_c_le(im->whole, raw, &e->h);
			free(raw);
			if (rc)
				return rc;
		}
	}
	if (im->whole) {
		memcpy(buf, im->whole + off, len);
		return 0;
	}
	size_t esz = ckpt_dtype_size(e->h.dtype);
	if (!e->h.big_endian || esz < 2)
		return es_read(&im->es, buf, len);
	if (len % esz)
		return ckpt_error_set(CKPT_ERROR, "leaf '%s': a slice of part of an element", path);
	if (im->scratch_len < len) {
		free(im->scratch);
		im->scratch_len = 0;
		if (!(im->scratch = malloc(len)))
			return ckpt_error_nomem();
		im->scratch_len = len;
	}
	if ((rc = es_read(&im->es, im->scratch, len)))
		return rc;
	h = e->h;
	h.ndim = 1;
	h.fortran_order = 0;
	h.nelems = len / esz;
	h.shape[0] = h.nelems;
	h.data_len = len;
	return ckpt_npy_to_c_le(buf, im->scratch, &h);
}

static void importer_clear(struct importer *im)
{
	importer_drop(im);
	free(im->scratch);
	ckpt_tree_free(im->tree);
	free(im->is);
	ckpt_npz_free(im->z);
	if (im->src.fd >= 0)
		close(im->src.fd);
	memset(im, 0, sizeof(*im));
	im->src.fd = -1;
}

/* Open and check file: the directory, every .npy header, the names as a tree. */
/* Read the rest of an entry (CRC, lengths: invariant 2), discarding it. */
static int es_drain(struct estream *es)
{
	unsigned char *buf = malloc(IN_BUF);
	int rc = buf ? 0 : ckpt_error_nomem();
	while (rc == 0 && es->upos < es->e->usize) {
		size_t n = es->e->usize - es->upos < IN_BUF ? (size_t)(es->e->usize - es->upos) : IN_BUF;
		rc = es_read(es, buf, n);
	}
	free(buf);
	return rc;
}

/* Open (or dup fd) and check file: the directory, every .npy header (with
 * verify, every entry's data and CRC-32 too), the names as a tree. */
static int importer_prepare(struct importer *im, const char *file, int fd, char sep, int verify)
{
	ckpt_safetensors_header fake = {0};
	const ckpt_tree **map = NULL;
	struct stat st;
	int rc;

	memset(im, 0, sizeof(*im));
	im->src.what = file;
	im->src.fd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : open(file, O_RDONLY | O_CLOEXEC);
	if (im->src.fd < 0)
		return ckpt_error_errno(errno == ENOENT ? CKPT_ENOTFOUND : CKPT_EIO, errno,
					"open %s", file);
	if (fstat(im->src.fd, &st) != 0) {
		rc = ckpt_error_errno(CKPT_EIO, errno, "stat %s", file);
		goto done;
	}
	im->src.size = (uint64_t)st.st_size;
	if ((rc = ckpt_npz_open(&im->z, im->src.fd, file)))
		goto done;
	if (!(im->is = calloc(im->z->n + 1, sizeof(*im->is))) ||
	    !(fake.tensors = calloc(im->z->n + 1, sizeof(*fake.tensors)))) {
		rc = ckpt_error_nomem();
		goto done;
	}
	for (size_t i = 0; i < im->z->n && rc == 0; i++) {
		struct estream es;
		ckpt_safetensors_tensor *t = &fake.tensors[i];
		const char *name = im->z->entries[i].name;
		if ((rc = es_open(&es, &im->src, &im->z->entries[i])) == 0)
			rc = es_header(&im->is[i].h, &es);
		if (rc == 0 && verify)
			rc = es_drain(&es);
		es_close(&es);
		if (rc == 0 && !(t->name = strndup(name, strlen(name) - 4)))
			rc = ckpt_error_nomem();
		if (rc)
			break;
		fake.ntensors++;
		t->dtype = im->is[i].h.dtype;
		t->ndim = im->is[i].h.ndim;
		memcpy(t->shape, im->is[i].h.shape, sizeof(t->shape));
		im->is[i].entry = i;
	}
	if (rc || (rc = ckpt_safetensors_tree_map(&im->tree, &map, &fake, sep, 0))) {
		if (rc != CKPT_ENOMEM && !strstr(ckpt_error_last(), file))
			ckpt_error_wrap(rc, "%s", file);
		goto done;
	}
	for (size_t i = 0; i < im->z->n; i++)
		im->is[i].leaf = map[i];
	im->n = im->z->n;
	qsort(im->is, im->n, sizeof(*im->is), cmp_isrc);
done:
	free(map);
	for (size_t i = 0; i < fake.ntensors; i++)
		free(fake.tensors[i].name);
	free(fake.tensors);
	if (rc)
		importer_clear(im);
	return rc;
}

static int importer_save(ckpt_step_writer *w, const char *item, struct importer *im)
{
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	int rc;
	sa.item = im->tree;
	if ((rc = ckpt_step_writer_add_item(w, item, CKPT_PYTREE_TYPESTR)) == 0)
		rc = ckpt_pytree_save_item(w, item, &sa, 0, npz_source, im);
	return rc;
}

int ckpt_npz_import(const char *root, uint64_t step, const char *item, const char *file,
		    const ckpt_safetensors_options *opts, const ckpt_step_writer_options *wopts)
{
	struct importer im;
	ckpt_step_writer *w = NULL;
	int rc;

	if ((rc = ckpt_item_name_check(item)) ||
	    (rc = importer_prepare(&im, file, -1, opts ? opts->sep : '.', 0)))
		return rc;
	if ((rc = ckpt_step_writer_open(&w, root, step, wopts)) ||
	    (rc = importer_save(w, item, &im)))
		goto done;
	rc = ckpt_step_writer_finalize(w);
	w = NULL;
done:
	ckpt_step_writer_abort(w);
	importer_clear(&im);
	return rc;
}

int ckpt_npz_check_file(const char *file, int fd, char sep)
{
	struct importer im;
	int rc = importer_prepare(&im, file, fd, sep, 1);
	if (rc == 0)
		importer_clear(&im);
	return rc;
}

int ckpt_npz_save_item(ckpt_step_writer *w, const char *item, const char *file, char sep)
{
	struct importer im;
	int rc = importer_prepare(&im, file, -1, sep, 0);
	if (rc == 0)
		rc = importer_save(w, item, &im);
	importer_clear(&im);
	return rc;
}
