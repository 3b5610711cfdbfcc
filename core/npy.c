/*
 * npy.c — the numpy .npy format (see ckpt/npy.h).
 *
 * Design. A .npy file is a magic string, a version, a header length, a
 * Python dict literal (the header) padded with spaces and a newline, then
 * the raw data. numpy reads the dict with ast.literal_eval; here a small
 * recursive-descent parser accepts the same literal syntax numpy (any
 * version) writes: single or double quoted strings with backslash escapes,
 * ints with an optional sign and old Python 2 'L' suffix, True/False/None,
 * tuples, lists and dicts, any whitespace, trailing commas. Only the three
 * keys 'descr', 'fortran_order' and 'shape' are accepted, each exactly once,
 * in any order. Values it does not understand are parsed (skipped) only to
 * tell "malformed" (CKPT_EINVAL) from "well-formed but unsupported"
 * (CKPT_EUNSUPPORTED).
 *
 * Writing mirrors numpy 1.24 lib/format.py _write_array_header: keys sorted,
 * repr() of each value followed by ", ", GROWTH_AXIS_MAX_DIGITS (21) minus
 * the digits of the first dim in spaces, then spaces and '\n' so that the
 * data starts at a multiple of ARRAY_ALIGN (64); a header that is already
 * aligned still gets 64 spaces, as numpy does.
 *
 * Invariants:
 *   1. The parser never reads past the header it was given (every access
 *      goes through peek()/p < end) and recursion is bounded by MAX_DEPTH.
 *   2. A parsed header has 0 < dtype < COUNT, ndim <= CKPT_NPY_MAX_NDIM,
 *      every dim <= INT64_MAX, and nelems * size computed without overflow.
 *   3. header_len <= NPY_MAX_HEADER, so a streaming reader never buffers
 *      more than that to parse a header.
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

#include "ckpt/npy.h"
#include "bytes.h"
#include "error_private.h"
#include "mem.h"
#include "npy_private.h"

#define MAGIC		       "\x93NUMPY"
#define MAGIC_LEN	       6
#define ARRAY_ALIGN	       64
#define GROWTH_AXIS_MAX_DIGITS 21
#define NPY_MAX_HEADER	       (1u << 20)
#define MAX_DEPTH	       32
#define DICT_MAX	       1536 /* a dict we write: descr + 32 dims of 20 digits + growth */

/* The .npy descr we write for each dtype; the ML types are structured. */
static const char *const descr_out[CKPT_DTYPE_COUNT] = {
    [CKPT_DTYPE_BOOL] = "'|b1'",
    [CKPT_DTYPE_INT8] = "'|i1'",
    [CKPT_DTYPE_INT16] = "'<i2'",
    [CKPT_DTYPE_INT32] = "'<i4'",
    [CKPT_DTYPE_INT64] = "'<i8'",
    [CKPT_DTYPE_UINT8] = "'|u1'",
    [CKPT_DTYPE_UINT16] = "'<u2'",
    [CKPT_DTYPE_UINT32] = "'<u4'",
    [CKPT_DTYPE_UINT64] = "'<u8'",
    [CKPT_DTYPE_FLOAT16] = "'<f2'",
    [CKPT_DTYPE_FLOAT32] = "'<f4'",
    [CKPT_DTYPE_FLOAT64] = "'<f8'",
    [CKPT_DTYPE_COMPLEX64] = "'<c8'",
    [CKPT_DTYPE_COMPLEX128] = "'<c16'",
    [CKPT_DTYPE_BFLOAT16] = "[('bfloat16', '<u2')]",
    [CKPT_DTYPE_FLOAT8_E4M3FN] = "[('float8_e4m3fn', '|u1')]",
    [CKPT_DTYPE_FLOAT8_E5M2] = "[('float8_e5m2', '|u1')]",
};

/* The typestr kind letter and size of each plain numpy dtype. */
static const struct {
	char kind;
	unsigned size;
	ckpt_dtype dt;
} plain[] = {
    {'b', 1, CKPT_DTYPE_BOOL},	    {'i', 1, CKPT_DTYPE_INT8},	      {'i', 2, CKPT_DTYPE_INT16},
    {'i', 4, CKPT_DTYPE_INT32},	    {'i', 8, CKPT_DTYPE_INT64},	      {'u', 1, CKPT_DTYPE_UINT8},
    {'u', 2, CKPT_DTYPE_UINT16},    {'u', 4, CKPT_DTYPE_UINT32},      {'u', 8, CKPT_DTYPE_UINT64},
    {'f', 2, CKPT_DTYPE_FLOAT16},   {'f', 4, CKPT_DTYPE_FLOAT32},     {'f', 8, CKPT_DTYPE_FLOAT64},
    {'c', 8, CKPT_DTYPE_COMPLEX64}, {'c', 16, CKPT_DTYPE_COMPLEX128},
};

static int valid_dtype(ckpt_dtype dt)
{
	return dt > CKPT_DTYPE_INVALID && dt < CKPT_DTYPE_COUNT;
}

static int is_complex(ckpt_dtype dt)
{
	return dt == CKPT_DTYPE_COMPLEX64 || dt == CKPT_DTYPE_COMPLEX128;
}

/* ---- header prefix ---- */

int ckpt_npy_header_size(size_t *out, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint64_t hlen;
	size_t prefix;

	if (len < MAGIC_LEN + 2)
		return ckpt_error_set(CKPT_EINVAL, "npy: truncated header (%zu bytes)", len);
	if (memcmp(p, MAGIC, MAGIC_LEN) != 0)
		return ckpt_error_set(CKPT_EINVAL, "npy: bad magic (not a .npy file)");
	if (p[7] != 0 || p[6] < 1 || p[6] > 3)
		return ckpt_error_set(CKPT_EINVAL, "npy: unknown format version %u.%u", p[6], p[7]);
	prefix = p[6] == 1 ? 10 : 12;
	if (len < prefix)
		return ckpt_error_set(CKPT_EINVAL, "npy: truncated header (%zu bytes)", len);
	hlen = prefix == 10 ? ckpt_get_le16(p + 8) : ckpt_get_le32(p + 8);
	if (hlen + prefix > NPY_MAX_HEADER)
		return ckpt_error_set(CKPT_EINVAL, "npy: header length %" PRIu64 " exceeds %u",
				      hlen, NPY_MAX_HEADER);
	*out = (size_t)hlen + prefix;
	return 0;
}

/* ---- the dict parser ---- */

typedef struct parser {
	const char *p, *start, *end;
	size_t base; /* file offset of start, for messages */
} parser;

static int peek(const parser *ps)
{
	return ps->p < ps->end ? (unsigned char)*ps->p : -1;
}

static void skip_ws(parser *ps)
{
	while (ps->p < ps->end && strchr(" \t\n\r\f\v", *ps->p) && *ps->p)
		ps->p++;
}

static int fail(const parser *ps, const char *what)
{
	const int c = peek(ps);

	if (c < 0)
		return ckpt_error_set(CKPT_EINVAL, "npy header: %s, found end of header", what);
	return ckpt_error_set(CKPT_EINVAL, "npy header: %s at offset %zu, found '%c'", what,
			      ps->base + (size_t)(ps->p - ps->start), c >= 32 && c < 127 ? c : '?');
}

/* Skip whitespace and consume c if it is next. */
static int accept(parser *ps, char c)
{
	skip_ws(ps);
	if (peek(ps) == c) {
		ps->p++;
		return 1;
	}
	return 0;
}

/* A quoted string; *s and *n get the raw bytes between the quotes. */
static int parse_str(parser *ps, const char **s, size_t *n)
{
	int q;

	skip_ws(ps);
	q = peek(ps);
	if (q != '\'' && q != '"')
		return fail(ps, "expected a string");
	*s = ++ps->p;
	while (ps->p < ps->end && *ps->p != q) {
		if (*ps->p == '\n')
			return fail(ps, "newline in string");
		if (*ps->p == '\\' && ps->p + 1 < ps->end)
			ps->p++;
		ps->p++;
	}
	if (ps->p >= ps->end)
		return fail(ps, "unterminated string");
	*n = (size_t)(ps->p - *s);
	ps->p++;
	return 0;
}

/* An integer literal; *huge is set if it does not fit int64. */
static int parse_int(parser *ps, uint64_t *out, int *neg, int *huge)
{
	uint64_t v = 0;
	int c;

	skip_ws(ps);
	*neg = *huge = 0;
	if (peek(ps) == '-' || peek(ps) == '+') {
		*neg = *ps->p == '-';
		ps->p++;
		skip_ws(ps);
	}
	if ((c = peek(ps)) < '0' || c > '9')
		return fail(ps, "expected an integer");
	while ((c = peek(ps)) >= '0' && c <= '9') {
		if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, c - '0', &v) ||
		    v > INT64_MAX)
			*huge = 1;
		ps->p++;
	}
	if (peek(ps) == 'L' || peek(ps) == 'l')
		ps->p++;
	*out = v;
	return 0;
}

static int match_word(parser *ps, const char *w)
{
	const size_t n = strlen(w);

	skip_ws(ps);
	if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, w, n) == 0) {
		const char *after = ps->p + n;

		if (after == ps->end ||
		    !(*after == '_' || (*after >= 'a' && *after <= 'z') ||
		      (*after >= 'A' && *after <= 'Z') || (*after >= '0' && *after <= '9'))) {
			ps->p = after;
			return 1;
		}
	}
	return 0;
}

/* Skip any literal value, checking its syntax (invariant 1: bounded depth). */
static int skip_value(parser *ps, int depth)
{
	const char *s;
	size_t n;
	uint64_t u;
	int neg, huge, c, close, rc;

	if (depth > MAX_DEPTH)
		return fail(ps, "nesting too deep");
	skip_ws(ps);
	c = peek(ps);
	if (c == '\'' || c == '"')
		return parse_str(ps, &s, &n);
	if (c == '-' || c == '+' || (c >= '0' && c <= '9'))
		return parse_int(ps, &u, &neg, &huge);
	if (match_word(ps, "True") || match_word(ps, "False") || match_word(ps, "None"))
		return 0;
	if (c != '(' && c != '[' && c != '{')
		return fail(ps, "expected a value");
	close = c == '(' ? ')' : c == '[' ? ']' : '}';
	ps->p++;
	while (!accept(ps, (char)close)) {
		if ((rc = skip_value(ps, depth + 1)) < 0)
			return rc;
		if (close == '}') {
			if (!accept(ps, ':'))
				return fail(ps, "expected ':'");
			if ((rc = skip_value(ps, depth + 1)) < 0)
				return rc;
		}
		if (!accept(ps, ',') && (skip_ws(ps), peek(ps) != close))
			return fail(ps, "expected ',' or a closing bracket");
	}
	return 0;
}

/* A plain typestr such as '<f4', '>i8', '|b1', 'u1' or 'float32'. */
static int typestr(ckpt_dtype *dt, int *big, const char *s, size_t n)
{
	char kind;
	unsigned size = 0;

	*big = 0;
	for (int t = CKPT_DTYPE_BOOL; t <= CKPT_DTYPE_COMPLEX128; t++) {
		const char *name = ckpt_dtype_name((ckpt_dtype)t);

		if (strlen(name) == n && memcmp(name, s, n) == 0) {
			*dt = (ckpt_dtype)t;
			return 0;
		}
	}
	if (n > 0 && s[0] && strchr("<>=|", s[0])) {
		*big = s[0] == '>';
		s++, n--;
	}
	if (n == 0)
		goto unknown;
	kind = s[0];
	if (n == 1 && kind == '?') {
		*dt = CKPT_DTYPE_BOOL;
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if (s[i] < '0' || s[i] > '9' || size > 1000)
			goto unknown;
		size = size * 10 + (unsigned)(s[i] - '0');
	}
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		if (plain[i].kind == kind && plain[i].size == size) {
			*dt = plain[i].dt;
			if (size == 1)
				*big = 0;
			return 0;
		}
	}
unknown: /* the caller, who has the text, sets the message */
	return CKPT_EUNSUPPORTED;
}

static const char *typestr_why(const char *s, size_t n)
{
	const char k = n > 1 && s[0] && strchr("<>=|", s[0]) ? s[1] : n ? s[0] : 0;

	switch (k) {
	case 'O': return "object arrays";
	case 'U': return "unicode strings";
	case 'S':
	case 'a': return "byte strings";
	case 'V': return "void (raw bytes)";
	case 'M': return "datetime";
	case 'm': return "timedelta";
	case 'f':
	case 'c': return "unsupported float size";
	case 'i':
	case 'u':
	case 'b': return "unsupported integer size";
	}
	return "unknown dtype";
}

/* The ML dtypes: [('bfloat16', '<u2')] and the float8 ones (see ckpt/npy.h). */
static int structured(parser *ps, ckpt_dtype *dt, int *big)
{
	static const struct {
		const char *name;
		ckpt_dtype dt, storage;
	} ml[] = {
	    {"bfloat16", CKPT_DTYPE_BFLOAT16, CKPT_DTYPE_UINT16},
	    {"float8_e4m3fn", CKPT_DTYPE_FLOAT8_E4M3FN, CKPT_DTYPE_UINT8},
	    {"float8_e5m2", CKPT_DTYPE_FLOAT8_E5M2, CKPT_DTYPE_UINT8},
	};
	const char *start = ps->p, *name, *ts;
	size_t nname, nts;
	ckpt_dtype storage;
	int rc;

	if (!accept(ps, '[') || !accept(ps, '(') || parse_str(ps, &name, &nname) < 0 ||
	    !accept(ps, ',') || parse_str(ps, &ts, &nts) < 0)
		goto other;
	accept(ps, ',');
	if (!accept(ps, ')'))
		goto other;
	accept(ps, ',');
	if (!accept(ps, ']') || typestr(&storage, big, ts, nts) < 0)
		goto other;
	for (size_t i = 0; i < sizeof(ml) / sizeof(ml[0]); i++) {
		if (strlen(ml[i].name) == nname && memcmp(ml[i].name, name, nname) == 0 &&
		    storage == ml[i].storage) {
			*dt = ml[i].dt;
			return 0;
		}
	}
other:
	ps->p = start;
	if ((rc = skip_value(ps, 0)) < 0)
		return rc;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "npy: unsupported structured dtype %.*s",
			      (int)((ps->p - start) > 80 ? 80 : ps->p - start), start);
}

static int parse_descr(parser *ps, ckpt_npy_header *h)
{
	const char *s;
	size_t n;
	int big, rc;

	skip_ws(ps);
	if (peek(ps) == '[')
		rc = structured(ps, &h->dtype, &big);
	else if (peek(ps) == '\'' || peek(ps) == '"') {
		if ((rc = parse_str(ps, &s, &n)) < 0)
			return rc;
		if ((rc = typestr(&h->dtype, &big, s, n)) < 0)
			return ckpt_error_set(rc, "npy: unsupported dtype '%.*s' (%s)",
					      (int)(n > 40 ? 40 : n), s, typestr_why(s, n));
	} else {
		const char *start = ps->p;

		if ((rc = skip_value(ps, 0)) < 0)
			return rc;
		return ckpt_error_set(CKPT_EUNSUPPORTED, "npy: unsupported descr %.*s",
				      (int)((ps->p - start) > 80 ? 80 : ps->p - start), start);
	}
	if (rc == 0)
		h->big_endian = big && ckpt_dtype_size(h->dtype) > 1;
	return rc;
}

static int parse_shape(parser *ps, ckpt_npy_header *h)
{
	unsigned n = 0;
	int neg, huge, rc;
	uint64_t v;

	if (!accept(ps, '('))
		return fail(ps, "shape must be a tuple");
	while (!accept(ps, ')')) {
		if ((rc = parse_int(ps, &v, &neg, &huge)) < 0)
			return rc;
		if (neg && v != 0)
			return ckpt_error_set(
			    CKPT_EINVAL, "npy header: negative dimension -%" PRIu64 " in shape", v);
		if (huge)
			return ckpt_error_set(CKPT_EINVAL, "npy header: dimension %u too large", n);
		if (n == CKPT_NPY_MAX_NDIM)
			return ckpt_error_set(CKPT_EINVAL, "npy header: more than %d dimensions",
					      CKPT_NPY_MAX_NDIM);
		h->shape[n++] = v;
		if (!accept(ps, ',')) {
			if (n == 1)
				return fail(ps, "shape must be a tuple (a 1-tuple needs a comma)");
			if (!accept(ps, ')'))
				return fail(ps, "expected ',' or ')' in shape");
			break;
		}
	}
	h->ndim = n;
	return 0;
}

static int parse_dict(parser *ps, ckpt_npy_header *h)
{
	static const char *const keys[] = {"descr", "fortran_order", "shape"};
	int seen[3] = {0, 0, 0};
	const char *k;
	size_t kn;
	int rc;

	if (!accept(ps, '{'))
		return fail(ps, "expected '{'");
	while (!accept(ps, '}')) {
		int which = -1;

		if ((rc = parse_str(ps, &k, &kn)) < 0)
			return rc;
		for (int i = 0; i < 3; i++) {
			if (strlen(keys[i]) == kn && memcmp(keys[i], k, kn) == 0)
				which = i;
		}
		if (which < 0)
			return ckpt_error_set(CKPT_EINVAL, "npy header: unexpected key '%.*s'",
					      (int)(kn > 40 ? 40 : kn), k);
		if (seen[which]++)
			return ckpt_error_set(CKPT_EINVAL, "npy header: duplicate key '%s'",
					      keys[which]);
		if (!accept(ps, ':'))
			return fail(ps, "expected ':'");
		if (which == 0)
			rc = parse_descr(ps, h);
		else if (which == 2)
			rc = parse_shape(ps, h);
		else if (match_word(ps, "True"))
			h->fortran_order = 1;
		else if (match_word(ps, "False"))
			h->fortran_order = 0;
		else
			rc = fail(ps, "fortran_order must be True or False");
		if (rc < 0)
			return rc;
		if (!accept(ps, ',') && (skip_ws(ps), peek(ps) != '}'))
			return fail(ps, "expected ',' or '}'");
	}
	for (int i = 0; i < 3; i++) {
		if (!seen[i])
			return ckpt_error_set(CKPT_EINVAL, "npy header: missing key '%s'", keys[i]);
	}
	skip_ws(ps);
	if (ps->p != ps->end)
		return fail(ps, "trailing characters after the dict");
	return 0;
}

int ckpt_npy_parse_header(ckpt_npy_header *out, const void *buf, size_t len)
{
	ckpt_npy_header h;
	parser ps;
	size_t size, esize;
	int rc;

	memset(&h, 0, sizeof(h));
	if ((rc = ckpt_npy_header_size(&size, buf, len)) < 0)
		return rc;
	if (size > len)
		return ckpt_error_set(CKPT_EINVAL,
				      "npy: header of %zu bytes is longer than the %zu "
				      "bytes available (truncated)",
				      size, len);
	h.major = ((const unsigned char *)buf)[6];
	h.minor = ((const unsigned char *)buf)[7];
	h.header_len = size;
	ps.base = h.major == 1 ? 10 : 12;
	ps.start = ps.p = (const char *)buf + ps.base;
	ps.end = (const char *)buf + size;
	if ((rc = parse_dict(&ps, &h)) < 0)
		return rc;
	esize = ckpt_dtype_size(h.dtype);
	h.nelems = 1;
	for (unsigned i = 0; i < h.ndim; i++) {
		if (__builtin_mul_overflow(h.nelems, h.shape[i], &h.nelems))
			return ckpt_error_set(CKPT_EINVAL, "npy header: shape overflows (dim %u)",
					      i);
	}
	if (__builtin_mul_overflow(h.nelems, esize, &h.data_len))
		return ckpt_error_set(CKPT_EINVAL,
				      "npy header: %" PRIu64 " elements of %zu bytes "
				      "overflow",
				      h.nelems, esize);
	assert(valid_dtype(h.dtype) && h.ndim <= CKPT_NPY_MAX_NDIM);
	*out = h;
	return 0;
}

/* ---- writing ---- */

/* The dict and its growth padding, as numpy writes it; 0 if invalid. */
static size_t format_dict(char *dict, ckpt_dtype dt, unsigned ndim, const uint64_t *shape)
{
	size_t n;
	int w;

	if (!valid_dtype(dt) || ndim > CKPT_NPY_MAX_NDIM || (ndim > 0 && !shape))
		return 0;
	n = (size_t)snprintf(dict, DICT_MAX, "{'descr': %s, 'fortran_order': False, 'shape': (",
			     descr_out[dt]);
	for (unsigned i = 0; i < ndim; i++) {
		if (shape[i] > INT64_MAX)
			return 0;
		n += (size_t)snprintf(dict + n, DICT_MAX - n, i ? ", %" PRIu64 : "%" PRIu64,
				      shape[i]);
	}
	n += (size_t)snprintf(dict + n, DICT_MAX - n, "%s), }", ndim == 1 ? "," : "");
	if (ndim > 0) {
		w = snprintf(NULL, 0, "%" PRIu64, shape[0]);
		n +=
		    (size_t)snprintf(dict + n, DICT_MAX - n, "%*s", GROWTH_AXIS_MAX_DIGITS - w, "");
	}
	assert(n < DICT_MAX);
	return n;
}

/* Total header length for a dict of n bytes, and the version it needs. */
static size_t wrapped_len(size_t n, unsigned *major)
{
	const size_t hlen = n + 1; /* the final newline */

	*major = 1;
	for (size_t prefix = 10;; prefix = 12, *major = 2) {
		const size_t pad = ARRAY_ALIGN - (prefix + hlen) % ARRAY_ALIGN;

		if (prefix == 12 || hlen + pad < 65536)
			return prefix + hlen + pad;
	}
}

size_t ckpt_npy_header_len(ckpt_dtype dt, unsigned ndim, const uint64_t *shape)
{
	char dict[DICT_MAX];
	const size_t n = format_dict(dict, dt, ndim, shape);
	unsigned major;

	return n ? wrapped_len(n, &major) : 0;
}

int ckpt_npy_format_header(void *buf, size_t cap, size_t *out_len, ckpt_dtype dt, unsigned ndim,
			   const uint64_t *shape)
{
	char dict[DICT_MAX];
	const size_t n = format_dict(dict, dt, ndim, shape);
	unsigned char *p = buf;
	size_t total, prefix, hl;
	unsigned major;

	if (n == 0)
		return ckpt_error_set(CKPT_EINVAL, "npy: cannot write header for dtype %d, ndim %u",
				      (int)dt, ndim);
	total = wrapped_len(n, &major);
	if (total > cap)
		return ckpt_error_set(CKPT_EINVAL, "npy: header needs %zu bytes, buffer has %zu",
				      total, cap);
	prefix = major == 1 ? 10 : 12;
	hl = total - prefix;
	memcpy(p, MAGIC, MAGIC_LEN);
	p[6] = (unsigned char)major;
	p[7] = 0;
	if (prefix == 10)
		ckpt_put_le16(p + 8, (uint16_t)hl);
	else
		ckpt_put_le32(p + 8, (uint32_t)hl);
	memcpy(p + prefix, dict, n);
	memset(p + prefix + n, ' ', total - prefix - n - 1);
	p[total - 1] = '\n';
	*out_len = total;
	return 0;
}

/* ---- conversion ---- */

/* Copy one element of a compile-time size (always inlined, so the copy is a move). */
static inline __attribute__((always_inline)) void copy_elem(unsigned char *d,
							    const unsigned char *s, size_t esz)
{
	memcpy(d, s, esz);
}

/*
 * Fortran -> C order. dst index (i0, mid, iz) with i0 over d[0], iz over
 * d[n-1] and mid over the middle dims in C order; src offset is i0 +
 * S(mid) + iz * fs[n-1] with Fortran strides fs. For each mid the (i0, iz)
 * plane is a 2-D transpose, done in BLK x BLK tiles for cache locality.
 */
static inline __attribute__((always_inline)) void
transpose(unsigned char *dst, const unsigned char *src, const ckpt_npy_header *h, size_t esz)
{
	enum { BLK = 32 };
	const unsigned n = h->ndim;
	const uint64_t a = h->shape[0], z = h->shape[n - 1];
	uint64_t fs[CKPT_NPY_MAX_NDIM], idx[CKPT_NPY_MAX_NDIM] = {0}, m = 1, smid = 0;

	fs[0] = 1;
	for (unsigned k = 1; k < n; k++)
		fs[k] = fs[k - 1] * h->shape[k - 1];
	for (unsigned k = 1; k + 1 < n; k++)
		m *= h->shape[k];
	for (uint64_t mid = 0; mid < m; mid++) {
		for (uint64_t i0b = 0; i0b < a; i0b += BLK) {
			const uint64_t i0e = i0b + BLK < a ? i0b + BLK : a;

			for (uint64_t izb = 0; izb < z; izb += BLK) {
				const uint64_t ize = izb + BLK < z ? izb + BLK : z;

				for (uint64_t i0 = i0b; i0 < i0e; i0++) {
					unsigned char *d = dst + ((i0 * m + mid) * z + izb) * esz;
					const unsigned char *s =
					    src + (i0 + smid + izb * fs[n - 1]) * esz;

					for (uint64_t iz = izb; iz < ize; iz++) {
						copy_elem(d, s, esz);
						d += esz;
						s += fs[n - 1] * esz;
					}
				}
			}
		}
		/* next mid: odometer over dims n-2 .. 1 (C order), keeping smid */
		for (unsigned k = n - 2; k >= 1; k--) {
			if (++idx[k] < h->shape[k]) {
				smid += fs[k];
				break;
			}
			smid -= (idx[k] - 1) * fs[k];
			idx[k] = 0;
		}
	}
}

static void bswap_all(unsigned char *p, size_t unit, uint64_t count)
{
	for (uint64_t i = 0; i < count; i++, p += unit) {
		if (unit == 2) {
			uint16_t v;

			memcpy(&v, p, 2);
			v = __builtin_bswap16(v);
			memcpy(p, &v, 2);
		} else if (unit == 4) {
			uint32_t v;

			memcpy(&v, p, 4);
			v = __builtin_bswap32(v);
			memcpy(p, &v, 4);
		} else {
			uint64_t v;

			assert(unit == 8);
			memcpy(&v, p, 8);
			v = __builtin_bswap64(v);
			memcpy(p, &v, 8);
		}
	}
}

int ckpt_npy_to_c_le(void *dst, const void *src, const ckpt_npy_header *h)
{
	const size_t esz = ckpt_dtype_size(h->dtype);
	uint64_t nelems = 1, len;

	if (!valid_dtype(h->dtype) || h->ndim > CKPT_NPY_MAX_NDIM)
		return ckpt_error_set(CKPT_EINVAL, "npy: invalid header (dtype %d, ndim %u)",
				      (int)h->dtype, h->ndim);
	for (unsigned i = 0; i < h->ndim; i++) {
		if (__builtin_mul_overflow(nelems, h->shape[i], &nelems))
			return ckpt_error_set(CKPT_EINVAL, "npy: shape overflows");
	}
	if (__builtin_mul_overflow(nelems, esz, &len) || len != h->data_len)
		return ckpt_error_set(CKPT_EINVAL,
				      "npy: data_len %" PRIu64 " does not match "
				      "the shape",
				      h->data_len);
	if (h->fortran_order && h->ndim >= 2 && nelems > 0) {
		switch (esz) {
		case 1: transpose(dst, src, h, 1); break;
		case 2: transpose(dst, src, h, 2); break;
		case 4: transpose(dst, src, h, 4); break;
		case 8: transpose(dst, src, h, 8); break;
		default: transpose(dst, src, h, 16); break;
		}
	} else if (len > 0) {
		memcpy(dst, src, len);
	}
	if (h->big_endian && esz > 1) {
		const size_t unit = is_complex(h->dtype) ? esz / 2 : esz;

		bswap_all(dst, unit, len / unit);
	}
	return 0;
}

/* ---- files ---- */

/* Read up to n bytes; *got receives how many (short only at end of file). */
static int read_full(int fd, void *buf, size_t n, size_t *got, const char *path)
{
	size_t off = 0;

	while (off < n) {
		const ssize_t r = read(fd, (char *)buf + off, n - off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return ckpt_error_errno(CKPT_EIO, errno, "read %s", path);
		if (r == 0)
			break;
		off += (size_t)r;
	}
	*got = off;
	return 0;
}

int ckpt_npy_read_file(ckpt_npy_header *out_h, void **out_data, const char *path)
{
	unsigned char pre[12], *hdr = NULL, *data = NULL, *conv = NULL, probe[4096];
	ckpt_npy_header h;
	size_t hsize, got, more;
	uint64_t extra = 0;
	struct stat stbuf;
	int fd, rc;

	*out_data = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO: never wait */
	if (fd < 0)
		return ckpt_error_errno(errno == ENOENT ? CKPT_ENOTFOUND : CKPT_EIO, errno,
					"open %s", path);
	/* Read exactly the prefix (10 bytes for v1, 12 otherwise), never into the data. */
	if ((rc = read_full(fd, pre, 10, &got, path)) < 0)
		goto done;
	if (got == 10 && pre[6] != 1 && (rc = read_full(fd, pre + 10, 2, &more, path)) == 0)
		got += more;
	if (rc < 0)
		goto done;
	if ((rc = ckpt_npy_header_size(&hsize, pre, got)) < 0)
		goto wrap;
	if (!(hdr = malloc(hsize))) {
		rc = ckpt_error_nomem();
		goto done;
	}
	memcpy(hdr, pre, got);
	if ((rc = read_full(fd, hdr + got, hsize - got, &more, path)) < 0)
		goto done;
	if ((rc = ckpt_npy_parse_header(&h, hdr, got + more)) < 0)
		goto wrap;
	/* Check a regular file's size before allocating what its header claims. */
	if (fstat(fd, &stbuf) == 0 && S_ISREG(stbuf.st_mode) &&
	    (uint64_t)stbuf.st_size != h.header_len + h.data_len) {
		const uint64_t have = (uint64_t)stbuf.st_size > h.header_len
					  ? (uint64_t)stbuf.st_size - h.header_len
					  : 0;

		rc = ckpt_error_set(
		    CKPT_EINVAL,
		    "%s: header says %" PRIu64 " data bytes, file has %" PRIu64 " (%s)", path,
		    h.data_len, have, have < h.data_len ? "truncated" : "trailing bytes");
		goto done;
	}
	if (h.data_len > SIZE_MAX || !(data = ckpt_mem_malloc_large((size_t)h.data_len))) {
		rc = ckpt_error_set(CKPT_ENOMEM, "%s: out of memory for %" PRIu64 " bytes", path,
				    h.data_len);
		goto done;
	}
	if ((rc = read_full(fd, data, (size_t)h.data_len, &got, path)) < 0)
		goto done;
	do { /* anything after the data is an error too (pipes, growing files) */
		if ((rc = read_full(fd, probe, sizeof(probe), &more, path)) < 0)
			goto done;
		extra += more;
	} while (more == sizeof(probe));
	if (got != h.data_len || extra) {
		rc = ckpt_error_set(
		    CKPT_EINVAL,
		    "%s: header says %" PRIu64 " data bytes, file has %" PRIu64 " (%s)", path,
		    h.data_len, (uint64_t)got + extra, extra ? "trailing bytes" : "truncated");
		goto done;
	}
	if (h.big_endian || (h.fortran_order && h.ndim >= 2)) {
		if (!(conv = ckpt_mem_malloc_large((size_t)h.data_len))) {
			rc = ckpt_error_nomem();
			goto done;
		}
		if ((rc = ckpt_npy_to_c_le(conv, data, &h)) < 0)
			goto wrap;
		free(data);
		data = conv;
		conv = NULL;
	}
	h.big_endian = h.fortran_order = 0;
	*out_h = h;
	*out_data = data;
	data = NULL;
	goto done;
wrap:
	rc = ckpt_error_wrap(rc, "%s", path);
done:
	close(fd);
	free(hdr);
	free(data);
	free(conv);
	return rc;
}

static int write_full(int fd, const void *buf, size_t n, const char *path)
{
	size_t off = 0;

	while (off < n) {
		const ssize_t w = write(fd, (const char *)buf + off, n - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return ckpt_error_errno(CKPT_EIO, errno, "write %s", path);
		off += (size_t)w;
	}
	return 0;
}

int ckpt_npy_write_file(const char *path, ckpt_dtype dt, unsigned ndim, const uint64_t *shape,
			const void *data)
{
	unsigned char hdr[DICT_MAX + 128];
	size_t hlen;
	uint64_t nelems = 1, len;
	int fd, rc;

	if ((rc = ckpt_npy_format_header(hdr, sizeof(hdr), &hlen, dt, ndim, shape)) < 0)
		return ckpt_error_wrap(rc, "%s", path);
	for (unsigned i = 0; i < ndim; i++) {
		if (__builtin_mul_overflow(nelems, shape[i], &nelems))
			return ckpt_error_set(CKPT_EINVAL, "%s: shape overflows", path);
	}
	if (__builtin_mul_overflow(nelems, ckpt_dtype_size(dt), &len) || len > SIZE_MAX)
		return ckpt_error_set(CKPT_EINVAL, "%s: shape overflows", path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return ckpt_error_errno(CKPT_EIO, errno, "open %s", path);
	rc = write_full(fd, hdr, hlen, path);
	if (rc == 0 && len > 0)
		rc = write_full(fd, data, (size_t)len, path);
	if (close(fd) < 0 && rc == 0)
		rc = ckpt_error_errno(CKPT_EIO, errno, "close %s", path);
	return rc;
}

/* ---- a .npy file on disk (npy_private.h) ---- */

/* "(3, 4)", "(3,)", "()" */
static void fmt_shape(char *buf, size_t cap, const ckpt_npy_header *h)
{
	size_t n = (size_t)snprintf(buf, cap, "(");

	for (unsigned d = 0; d < h->ndim && n < cap; d++)
		n += (size_t)snprintf(buf + n, cap - n, "%s%llu", d ? ", " : "",
				      (unsigned long long)h->shape[d]);
	if (n < cap)
		snprintf(buf + n, cap - n, "%s)", h->ndim == 1 ? "," : "");
}

int ckpt_npy_check_fd(ckpt_npy_header *h, int fd, const char *name)
{
	unsigned char buf[4096], *hdr = buf;
	char shape[1024];
	struct stat st;
	size_t hl = 0;
	ssize_t r;
	int rc = 0;

	r = pread(fd, buf, sizeof(buf), 0);
	if (r < 0 || fstat(fd, &st) != 0)
		return ckpt_error_errno(CKPT_EIO, errno, "read %s", name);
	rc = ckpt_npy_header_size(&hl, buf, (size_t)r);
	if (rc == 0 && hl > (uint64_t)st.st_size)
		rc = ckpt_error_set(CKPT_EINVAL, "truncated: header needs %zu bytes, file has %lld",
				    hl, (long long)st.st_size);
	if (rc == 0 && hl > (size_t)r) { /* a long header (up to 1 MiB) */
		if (!(hdr = malloc(hl)))
			return ckpt_error_nomem();
		r = pread(fd, hdr, hl, 0);
		if (r < 0) {
			rc = ckpt_error_errno(CKPT_EIO, errno, "read %s", name);
			goto done;
		}
	}
	if (rc == 0)
		rc = ckpt_npy_parse_header(h, hdr, (size_t)r);
	if (rc) {
		ckpt_error_wrap(rc, "%s", name);
		goto done;
	}
	if ((uint64_t)st.st_size != h->header_len + h->data_len) {
		fmt_shape(shape, sizeof(shape), h);
		rc = ckpt_error_set(
		    CKPT_EINVAL, "%s: header says %s %s = %llu data bytes but the file has %llu",
		    name, ckpt_dtype_name(h->dtype), shape, (unsigned long long)h->data_len,
		    (unsigned long long)((uint64_t)st.st_size - h->header_len));
	}
done:
	if (hdr != buf)
		free(hdr);
	return rc;
}
