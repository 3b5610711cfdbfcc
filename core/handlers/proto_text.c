/*
 * proto_text.c — protobuf text format, rendered from wire bytes and parsed
 * back into wire bytes, both driven by a parsed description (proto_desc.c)
 * instead of compiled-in descriptors: the checkpoint describes itself.
 *
 * Rendering (what `protoc --decode` prints): one `name: value` per line,
 * nested messages as `name {` ... `}` indented by two spaces, fields in
 * number order (repeated fields in wire order), enums by name (the number
 * when not in the enum), strings and bytes double-quoted with C escapes
 * (octal \NNN for bytes outside printable ASCII), floats and doubles in the
 * fewest digits that parse back to the same bits (`inf`, `-inf`, `nan`),
 * 64-bit integers exact. A map field is its repeated entry messages.
 *
 * Parsing accepts what protobuf's TextFormat prints and the usual liberties:
 * `#` comments, `name: value`, `name { ... }`, `name < ... >`, `name: {`,
 * `name: [v, v]` for repeated fields, `,`/`;` after a field, adjacent string
 * literals concatenated, decimal/hex/octal integers, enum names or numbers,
 * true/false/t/f/1/0, a trailing `f` on floats, inf/nan. The wire bytes are
 * written in field-number order; repeated scalars packed when the
 * description says so.
 *
 * Invariants:
 *   1. Every length read from wire bytes is checked against what remains of
 *      the enclosing message before use; varints are at most 10 bytes.
 *   2. Nesting deeper than PROTO_MAX_DEPTH is an error in both directions,
 *      so recursion is bounded whatever the input.
 *   3. Every parse error is CKPT_EINVAL "<what>:<line>:<column>: <message>"
 *      (1-based; the column counts bytes), set once where it is detected.
 *   4. render(parse(text)) parses to the same wire bytes as text does.
 */
#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ckpt/proto.h"
#include "error_private.h"
#include "proto_private.h"

/* ---- growable byte buffer ---- */

struct sbuf {
	char *p;
	size_t n, cap;
	int oom;
};

static void sb_add(struct sbuf *b, const void *data, size_t n)
{
	if (b->oom || n == 0)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap : 64;
		char *np;

		while (nc < b->n + n + 1)
			nc *= 2;
		if (!(np = realloc(b->p, nc))) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->n, data, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	assert(n >= 0 && (size_t)n < sizeof(tmp)); /* only numbers are printed this way */
	sb_add(b, tmp, (size_t)n);
}

static void sb_indent(struct sbuf *b, int indent)
{
	static const char spaces[] = "                                ";

	for (; indent > 0; indent -= 32)
		sb_add(b, spaces, indent < 32 ? (size_t)indent : 32);
}

static void sb_varint(struct sbuf *b, uint64_t v)
{
	unsigned char tmp[10];
	size_t n = 0;

	do {
		tmp[n] = (unsigned char)(v & 0x7f);
		v >>= 7;
		tmp[n++] |= v ? 0x80 : 0;
	} while (v);
	sb_add(b, tmp, n);
}

static void sb_fixed(struct sbuf *b, uint64_t v, size_t n)
{
	unsigned char tmp[8];

	for (size_t i = 0; i < n; i++)
		tmp[i] = (unsigned char)(v >> (8 * i));
	sb_add(b, tmp, n);
}

/* ---- wire format ---- */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

/* The wire type of a non-packed value of type t. */
static int wire_type(enum ptype t)
{
	switch (t) {
	case PT_SFIXED32:
	case PT_FIXED32:
	case PT_FLOAT: return WT_I32;
	case PT_SFIXED64:
	case PT_FIXED64:
	case PT_DOUBLE: return WT_I64;
	case PT_STRING:
	case PT_BYTES:
	case PT_MESSAGE: return WT_LEN;
	default: return WT_VARINT;
	}
}

static int get_varint(uint64_t *v, const unsigned char *p, size_t len, size_t *used)
{
	uint64_t r = 0;

	for (size_t i = 0; i < len && i < 10; i++) {
		if (i == 9 && p[i] > 1)
			return -1;
		r |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			*v = r;
			*used = i + 1;
			return 0;
		}
	}
	return -1;
}

static uint64_t get_fixed(const unsigned char *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* ---- rendering ---- */

struct entry {
	const struct pfield *f;
	size_t seq; /* wire order, to keep repeated fields in order */
	size_t off; /* byte offset of the value in the whole wire buffer */
	int wt;
	uint64_t v;		/* varint or fixed value */
	const unsigned char *p; /* WT_LEN: the bytes */
	size_t n;
};

static int cmp_entry(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	if (x->f->number != y->f->number)
		return x->f->number < y->f->number ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void fmt_float(struct sbuf *b, double v, int is_float)
{
	char tmp[40];

	if (isnan(v)) {
		sb_str(b, "nan");
		return;
	}
	if (isinf(v)) {
		sb_str(b, v < 0 ? "-inf" : "inf");
		return;
	}
	for (int prec = 1; prec <= (is_float ? 9 : 17); prec++) { /* shortest exact */
		snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
		if (is_float ? strtof(tmp, NULL) == (float)v : strtod(tmp, NULL) == v)
			break;
	}
	sb_str(b, tmp);
}

static void quote(struct sbuf *b, const unsigned char *p, size_t n)
{
	sb_add(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		char esc[5];

		switch (c) {
		case '\n': sb_add(b, "\\n", 2); break;
		case '\r': sb_add(b, "\\r", 2); break;
		case '\t': sb_add(b, "\\t", 2); break;
		case '"': sb_add(b, "\\\"", 2); break;
		case '\'': sb_add(b, "\\'", 2); break;
		case '\\': sb_add(b, "\\\\", 2); break;
		default:
			if (c >= 0x20 && c < 0x7f) {
				sb_add(b, &c, 1);
			} else {
				snprintf(esc, sizeof(esc), "\\%03o", c);
				sb_add(b, esc, 4);
			}
		}
	}
	sb_add(b, "\"", 1);
}

/* A scalar value (varint or fixed) of field f. */
static void render_scalar(struct sbuf *b, const struct pfield *f, uint64_t v)
{
	switch (f->type) {
	case PT_INT32:
	case PT_SFIXED32: sb_printf(b, "%" PRId32, (int32_t)(uint32_t)v); break;
	case PT_INT64:
	case PT_SFIXED64: sb_printf(b, "%" PRId64, (int64_t)v); break;
	case PT_UINT32:
	case PT_FIXED32: sb_printf(b, "%" PRIu32, (uint32_t)v); break;
	case PT_UINT64:
	case PT_FIXED64: sb_printf(b, "%" PRIu64, v); break;
	case PT_SINT32:
		sb_printf(b, "%" PRId32, (int32_t)(((uint32_t)v >> 1) ^ (0u - ((uint32_t)v & 1))));
		break;
	case PT_SINT64: sb_printf(b, "%" PRId64, (int64_t)((v >> 1) ^ (0 - (v & 1)))); break;
	case PT_BOOL: sb_str(b, v ? "true" : "false"); break;
	case PT_FLOAT: {
		uint32_t u = (uint32_t)v;
		float x;
		memcpy(&x, &u, sizeof(x));
		fmt_float(b, x, 1);
		break;
	}
	case PT_DOUBLE: {
		double x;
		memcpy(&x, &v, sizeof(x));
		fmt_float(b, x, 0);
		break;
	}
	case PT_ENUM: {
		int32_t n = (int32_t)(uint32_t)v;
		for (size_t i = 0; i < f->en->nvalues; i++)
			if (f->en->values[i].number == n) {
				sb_str(b, f->en->values[i].name);
				return;
			}
		sb_printf(b, "%" PRId32, n);
		break;
	}
	default: assert(0 && "not a scalar");
	}
}

/* m: the message being read; f: its field, or NULL for an unknown number. */
static int mismatch(size_t off, const char *why, const struct pmsg *m, const struct pfield *f,
		    uint32_t number)
{
	if (f)
		return ckpt_error_set(CKPT_EINVAL,
				      "message does not match the description: field %s.%s (number "
				      "%u) at byte offset %zu: %s",
				      m->name, f->name, f->number, off, why);
	return ckpt_error_set(CKPT_EINVAL,
			      "message does not match the description: field number %u at byte "
			      "offset %zu: %s %s",
			      number, off, why, m->name);
}

static int render_msg(struct sbuf *b, const struct pmsg *m, const unsigned char *base, size_t start,
		      size_t len, int depth);

static int render_entry(struct sbuf *b, const struct pmsg *m, const struct entry *e,
			const unsigned char *base, int depth)
{
	const struct pfield *f = e->f;
	int wt = wire_type(f->type), rc = 0;

	if (e->wt == WT_LEN && wt != WT_LEN) { /* packed */
		size_t i = 0, step = wt == WT_I32 ? 4 : 8;

		while (i < e->n) {
			uint64_t v;
			size_t used = step;

			if (wt == WT_VARINT && get_varint(&v, e->p + i, e->n - i, &used) != 0)
				return mismatch(e->off + i, "bad varint in packed field", m, f, 0);
			if (wt != WT_VARINT) {
				if (e->n - i < step)
					return mismatch(e->off + i, "truncated packed field", m, f,
							0);
				v = get_fixed(e->p + i, step);
			}
			sb_indent(b, 2 * depth);
			sb_str(b, f->name);
			sb_str(b, ": ");
			render_scalar(b, f, v);
			sb_str(b, "\n");
			i += used;
		}
		return 0;
	}
	sb_indent(b, 2 * depth);
	sb_str(b, f->name);
	if (f->type == PT_MESSAGE) {
		sb_str(b, " {\n");
		rc = render_msg(b, f->msg, base, e->off, e->n, depth + 1);
		sb_indent(b, 2 * depth);
		sb_str(b, "}\n");
		return rc;
	}
	sb_str(b, ": ");
	if (f->type == PT_STRING || f->type == PT_BYTES)
		quote(b, e->p, e->n);
	else
		render_scalar(b, f, e->v);
	sb_str(b, "\n");
	return 0;
}

/*
 * Whether entry e is shown: every value of a repeated field; of a field
 * given more than once, or of several fields of one oneof, only the last
 * one on the wire counts (as when protobuf parses it). last[i]: 1 + the
 * wire index of field i's last value, 0 if none.
 */
static int is_last(const struct pmsg *m, const struct entry *e, const size_t *last)
{
	const struct pfield *f = e->f;

	if (f->label == PL_REPEATED)
		return 1;
	if (last[f - m->fields] != e->seq + 1)
		return 0;
	for (size_t i = 0; f->oneof && i < m->nfields; i++)
		if (last[i] > e->seq + 1 && m->fields[i].oneof &&
		    !strcmp(m->fields[i].oneof, f->oneof))
			return 0;
	return 1;
}

/* Render the message m held in base[start, start + len). */
static int render_msg(struct sbuf *b, const struct pmsg *m, const unsigned char *base, size_t start,
		      size_t len, int depth)
{
	struct entry *es = NULL;
	size_t n = 0, cap = 0, i = 0, *last = NULL;
	const unsigned char *p = base + start;
	int rc = 0;

	if (depth > PROTO_MAX_DEPTH)
		return ckpt_error_set(CKPT_EINVAL,
				      "wire bytes: messages nested deeper than %d at "
				      "byte offset %zu",
				      PROTO_MAX_DEPTH, start);
	while (rc == 0 && i < len) {
		struct entry e = {.seq = n};
		uint64_t key;
		size_t used, off = start + i;

		if (get_varint(&key, p + i, len - i, &used) != 0) {
			rc = ckpt_error_set(CKPT_EINVAL,
					    "wire bytes: bad field key at byte offset %zu", off);
			break;
		}
		i += used;
		e.wt = (int)(key & 7);
		if ((key >> 3) == 0 || (key >> 3) > PROTO_MAX_FIELD_NUMBER ||
		    !(e.f = proto_field_by_number(m, (uint32_t)(key >> 3)))) {
			rc = mismatch(off, "not a field of", m, NULL, (uint32_t)(key >> 3));
			break;
		}
		if (e.wt != wire_type(e.f->type) &&
		    !(e.wt == WT_LEN && e.f->label == PL_REPEATED && e.f->type != PT_STRING &&
		      e.f->type != PT_BYTES && e.f->type != PT_MESSAGE)) {
			rc = mismatch(off, "wrong wire type", m, e.f, 0);
			break;
		}
		if (e.wt == WT_VARINT) {
			if (get_varint(&e.v, p + i, len - i, &used) != 0)
				rc = mismatch(off, "bad varint", m, e.f, 0);
		} else if (e.wt == WT_I32 || e.wt == WT_I64) {
			used = e.wt == WT_I32 ? 4 : 8;
			if (len - i < used)
				rc = mismatch(off, "truncated", m, e.f, 0);
			else
				e.v = get_fixed(p + i, used);
		} else {
			uint64_t l;
			if (get_varint(&l, p + i, len - i, &used) != 0 || l > len - i - used)
				rc = mismatch(off, "bad length", m, e.f, 0);
			i += used;
			used = (size_t)l;
			e.p = p + i;
			e.n = (size_t)l;
		}
		if (rc)
			break;
		e.off = start + i;
		i += used;
		if (n == cap) {
			struct entry *ne = realloc(es, (cap = cap ? 2 * cap : 16) * sizeof(*es));
			if (!ne) {
				rc = ckpt_error_nomem();
				break;
			}
			es = ne;
		}
		es[n++] = e;
	}
	if (rc == 0 && m->nfields && !(last = calloc(m->nfields, sizeof(*last))))
		rc = ckpt_error_nomem();
	for (size_t k = 0; rc == 0 && k < n; k++)
		last[es[k].f - m->fields] = es[k].seq + 1;
	for (size_t k = 0; rc == 0 && k < m->nfields; k++)
		if (m->fields[k].label == PL_REQUIRED && !last[k])
			rc =
			    ckpt_error_set(CKPT_EINVAL,
					   "message does not match the description: required field "
					   "%s.%s is missing",
					   m->name, m->fields[k].name);
	if (rc == 0 && n > 1)
		qsort(es, n, sizeof(*es), cmp_entry);
	for (size_t k = 0; rc == 0 && k < n; k++)
		if (is_last(m, &es[k], last))
			rc = render_entry(b, m, &es[k], base, depth);
	free(last);
	free(es);
	return rc;
}

int proto_text_render(char **out, const struct pdesc *d, const void *wire, size_t len)
{
	struct sbuf b = {0};
	int rc;

	*out = NULL;
	rc = render_msg(&b, d->root, wire, 0, len, 0);
	if (rc == 0 && !b.p && !(b.p = calloc(1, 1)))
		b.oom = 1;
	if (rc == 0 && b.oom)
		rc = ckpt_error_nomem();
	if (rc) {
		free(b.p);
		return rc;
	}
	*out = b.p;
	return 0;
}

int ckpt_proto_to_text(char **out, const char *desc, size_t desclen, const void *wire, size_t len)
{
	struct pdesc *d = NULL;
	int rc;

	*out = NULL;
	rc = proto_desc_parse(&d, desc, desclen);
	if (rc == 0)
		rc = proto_text_render(out, d, wire ? wire : "", wire ? len : 0);
	proto_desc_free(d);
	return rc;
}

/* ---- parsing ---- */

enum tok_kind { T_END, T_WORD, T_STRING, T_PUNCT };

struct tok {
	enum tok_kind kind;
	size_t pos, len; /* raw span in the text */
};

struct parser {
	const char *s;
	size_t len, pos;
	const char *what;
	struct sbuf str; /* scratch: decoded string literals */
};

static unsigned line_of(const struct parser *p, size_t pos)
{
	unsigned line = 1;

	for (size_t i = 0; i < pos && i < p->len; i++)
		line += p->s[i] == '\n';
	return line;
}

__attribute__((format(printf, 3, 4))) static int perr(const struct parser *p, size_t pos,
						      const char *fmt, ...)
{
	unsigned line = 1, col = 1;
	char msg[512];
	va_list ap;

	for (size_t i = 0; i < pos && i < p->len; i++) {
		if (p->s[i] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return ckpt_error_set(CKPT_EINVAL, "%s:%u:%u: %s", p->what, line, col, msg);
}

static int word_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '.';
}

/* The next token, from p->pos on; p->pos moves past it. */
static int next(struct parser *p, struct tok *t)
{
	const char *s = p->s;

	for (;;) {
		while (p->pos < p->len && isspace((unsigned char)s[p->pos]))
			p->pos++;
		if (p->pos < p->len && s[p->pos] == '#') {
			while (p->pos < p->len && s[p->pos] != '\n')
				p->pos++;
			continue;
		}
		break;
	}
	t->pos = p->pos;
	if (p->pos == p->len) {
		t->kind = T_END;
		t->len = 0;
		return 0;
	}
	char c = s[p->pos];
	if (c == '"' || c == '\'') {
		size_t i = p->pos + 1;
		while (i < p->len && s[i] != c && s[i] != '\n')
			i += s[i] == '\\' && i + 1 < p->len ? 2 : 1;
		if (i >= p->len || s[i] != c)
			return perr(p, p->pos, "unterminated string");
		t->kind = T_STRING;
		t->len = i + 1 - p->pos;
	} else if (word_char(c) || c == '-') {
		size_t i = p->pos + 1;
		int numeric = isdigit((unsigned char)c) || c == '.' || c == '-';
		while (i < p->len && (word_char(s[i]) || (numeric && (s[i] == '-' || s[i] == '+') &&
							  (s[i - 1] == 'e' || s[i - 1] == 'E'))))
			i++;
		t->kind = T_WORD;
		t->len = i - p->pos;
	} else if (strchr(":{}<>[],;", c)) {
		t->kind = T_PUNCT;
		t->len = 1;
	} else {
		return isprint((unsigned char)c)
			   ? perr(p, p->pos, "unexpected character '%c'", c)
			   : perr(p, p->pos, "unexpected byte 0x%02x", (unsigned char)c);
	}
	p->pos += t->len;
	return 0;
}

static int peek(struct parser *p, struct tok *t)
{
	size_t pos = p->pos;
	int rc = next(p, t);

	p->pos = pos;
	return rc;
}

static int is_punct(const struct parser *p, const struct tok *t, char c)
{
	return t->kind == T_PUNCT && p->s[t->pos] == c;
}

static int tok_is(const struct parser *p, const struct tok *t, const char *w)
{
	return t->kind == T_WORD && t->len == strlen(w) && !memcmp(p->s + t->pos, w, t->len);
}

static int hexval(char c)
{
	return isdigit((unsigned char)c)    ? c - '0'
	       : isxdigit((unsigned char)c) ? (tolower(c) - 'a' + 10)
					    : -1;
}

static void put_utf8(struct sbuf *b, uint32_t cp)
{
	static const unsigned char lead[] = {0, 0, 0xc0, 0xe0, 0xf0};
	size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
	unsigned char u[4];

	for (size_t i = n - 1; i > 0; i--, cp >>= 6)
		u[i] = (unsigned char)(0x80 | (cp & 0x3f));
	u[0] = (unsigned char)(lead[n] | cp);
	sb_add(b, u, n);
}

/* Append the decoded bytes of string token t to p->str. */
static int unescape(struct parser *p, const struct tok *t)
{
	static const char pairs[] = "n\nt\tr\ra\ab\bf\fv\v\\\\''\"\"??"; /* escape, its byte */
	const char *s = p->s, *e;
	size_t i = t->pos + 1, end = t->pos + t->len - 1;

	while (i < end) {
		size_t at = i;
		char c = s[i++];
		unsigned v = 0;
		int k, nd;

		if (c != '\\') {
			sb_add(&p->str, &c, 1);
			continue;
		}
		c = s[i++];
		if (c && (e = strchr(pairs, c)) && (e - pairs) % 2 == 0) {
			sb_add(&p->str, e + 1, 1);
			continue;
		}
		if (c >= '0' && c <= '7') {
			v = (unsigned)(c - '0');
			for (k = 1; k < 3 && i < end && s[i] >= '0' && s[i] <= '7'; k++)
				v = v * 8 + (unsigned)(s[i++] - '0');
			if (v > 255)
				return perr(p, at, "octal escape out of range");
		} else if (c == 'x') {
			for (k = 0; k < 2 && i < end && hexval(s[i]) >= 0; k++)
				v = v * 16 + (unsigned)hexval(s[i++]);
			if (k == 0)
				return perr(p, at, "\\x needs hex digits");
		} else if (c == 'u' || c == 'U') {
			for (k = 0, nd = c == 'u' ? 4 : 8; k < nd; k++) {
				if (i >= end || hexval(s[i]) < 0)
					return perr(p, at, "\\%c needs %d hex digits", c, nd);
				v = v * 16 + (unsigned)hexval(s[i++]);
			}
			if (v > 0x10ffff || (v >= 0xd800 && v < 0xe000))
				return perr(p, at, "invalid Unicode code point");
			put_utf8(&p->str, v);
			continue;
		} else {
			return perr(p, at, "invalid escape sequence");
		}
		c = (char)v;
		sb_add(&p->str, &c, 1);
	}
	return 0;
}

/* Parse an integer word: *neg and magnitude *mag. -1 if not an integer. */
static int parse_int(const char *w, size_t n, int *neg, uint64_t *mag)
{
	unsigned base = 10;
	uint64_t v = 0;
	size_t i = 0;

	*neg = n > 0 && w[0] == '-';
	i = (size_t)*neg;
	if (i == n)
		return -1;
	if (n - i > 2 && w[i] == '0' && (w[i + 1] == 'x' || w[i + 1] == 'X')) {
		base = 16;
		i += 2;
	} else if (n - i > 1 && w[i] == '0') {
		base = 8;
		i++;
	}
	for (; i < n; i++) {
		int d = hexval(w[i]);
		if (d < 0 || (unsigned)d >= base)
			return -1;
		if (v > (UINT64_MAX - (unsigned)d) / base)
			return -2;
		v = v * base + (unsigned)d;
	}
	*mag = v;
	return 0;
}

/* The wire value (before zigzag/sign extension) of an integer field. */
static int int_value(struct parser *p, const struct tok *t, const struct pfield *f, uint64_t *out)
{
	int neg, r = t->kind == T_WORD ? parse_int(p->s + t->pos, t->len, &neg, out) : -1;
	int is64 = f->type == PT_INT64 || f->type == PT_SINT64 || f->type == PT_SFIXED64 ||
		   f->type == PT_UINT64 || f->type == PT_FIXED64;
	int is_unsigned = f->type == PT_UINT32 || f->type == PT_FIXED32 || f->type == PT_UINT64 ||
			  f->type == PT_FIXED64;
	uint64_t max = is_unsigned ? (is64 ? UINT64_MAX : UINT32_MAX)
				   : (is64 ? (uint64_t)INT64_MAX : (uint64_t)INT32_MAX);
	const char *tn = f->type == PT_ENUM ? "int32" : proto_type_names[f->type];

	if (r == -1 && f->type == PT_ENUM)
		return perr(p, t->pos, "expected a value of enum %s for %s", f->en->name, f->name);
	if (r == -1)
		return perr(p, t->pos, "expected integer for %s", f->name);
	if (r == -2 || (neg && is_unsigned && *out) || (!neg && *out > max) ||
	    (neg && *out > max + 1))
		return perr(p, t->pos, "value out of range for %s", tn);
	if (neg)
		*out = 0 - *out; /* two's complement, 64-bit: int32 sign-extends */
	return 0;
}

static int float_value(struct parser *p, const struct tok *t, const struct pfield *f, double *out)
{
	char buf[64], *end;
	size_t n = t->len;

	if (t->kind != T_WORD || n >= sizeof(buf))
		return perr(p, t->pos, "expected number for %s", f->name);
	memcpy(buf, p->s + t->pos, n);
	buf[n] = '\0';
	const char *w = buf + (buf[0] == '-');
	if (!strcasecmp(w, "inf") || !strcasecmp(w, "infinity") || !strcasecmp(w, "nan")) {
		*out = tolower((unsigned char)w[0]) == 'n' ? NAN : INFINITY;
		if (buf[0] == '-')
			*out = -*out;
		return 0;
	}
	if (n > 1 && (buf[n - 1] == 'f' || buf[n - 1] == 'F') && w[0] && w[1] != 'x' && w[1] != 'X')
		buf[--n] = '\0';
	if (!(isdigit((unsigned char)*w) || *w == '.'))
		return perr(p, t->pos, "expected number for %s", f->name);
	*out = strtod(buf, &end);
	if (*end)
		return perr(p, t->pos, "expected number for %s", f->name);
	return 0;
}

/* Encode one scalar value of f (token t) into b: tag unless packed, value. */
static int scalar_value(struct parser *p, const struct tok *t, const struct pfield *f,
			struct sbuf *b)
{
	uint64_t v = 0;
	double x = 0;
	int rc = 0;

	if (!f->packed)
		sb_varint(b, (uint64_t)f->number << 3 | (unsigned)wire_type(f->type));
	switch (f->type) {
	case PT_FLOAT:
	case PT_DOUBLE:
		if ((rc = float_value(p, t, f, &x)) != 0)
			return rc;
		if (f->type == PT_FLOAT) {
			float y = (float)x;
			uint32_t u;
			memcpy(&u, &y, 4);
			sb_fixed(b, u, 4);
		} else {
			memcpy(&v, &x, 8);
			sb_fixed(b, v, 8);
		}
		return 0;
	case PT_BOOL:
		if (tok_is(p, t, "true") || tok_is(p, t, "True") || tok_is(p, t, "t") ||
		    tok_is(p, t, "1"))
			v = 1;
		else if (!(tok_is(p, t, "false") || tok_is(p, t, "False") || tok_is(p, t, "f") ||
			   tok_is(p, t, "0")))
			return perr(p, t->pos, "expected true or false for %s", f->name);
		sb_varint(b, v);
		return 0;
	case PT_ENUM:
		if (t->kind == T_WORD &&
		    (isalpha((unsigned char)p->s[t->pos]) || p->s[t->pos] == '_')) {
			size_t i;
			for (i = 0; i < f->en->nvalues; i++)
				if (strlen(f->en->values[i].name) == t->len &&
				    !memcmp(f->en->values[i].name, p->s + t->pos, t->len))
					break;
			if (i == f->en->nvalues)
				return perr(p, t->pos, "unknown value \"%.*s\" for enum %s",
					    (int)(t->len > 100 ? 100 : t->len), p->s + t->pos,
					    f->en->name);
			sb_varint(b, (uint64_t)(int64_t)f->en->values[i].number);
			return 0;
		}
		break;
	default: break;
	}
	if ((rc = int_value(p, t, f, &v)) != 0)
		return rc;
	switch (f->type) {
	case PT_SINT32:
		v = (uint32_t)((uint32_t)v << 1) ^ (uint32_t)(0u - ((uint32_t)v >> 31));
		sb_varint(b, v);
		break;
	case PT_SINT64:
		v = (v << 1) ^ (0 - (v >> 63));
		sb_varint(b, v);
		break;
	case PT_SFIXED32:
	case PT_FIXED32: sb_fixed(b, v, 4); break;
	case PT_SFIXED64:
	case PT_FIXED64: sb_fixed(b, v, 8); break;
	default: sb_varint(b, v);
	}
	return 0;
}

struct fstate {
	struct sbuf buf;
	size_t count;
	size_t pos; /* where it was last given, for messages */
};

static int parse_msg(struct parser *p, const struct pmsg *m, char close, size_t open_pos,
		     struct sbuf *out, int depth);

/* One value of field f at the parser's position (after ':' or the name). */
static int parse_value(struct parser *p, const struct pmsg *m, const struct pfield *f,
		       struct sbuf *b, int depth)
{
	struct tok t;
	int rc = next(p, &t);

	if (rc)
		return rc;
	if (f->type == PT_MESSAGE) {
		struct sbuf sub = {0};
		if (!is_punct(p, &t, '{') && !is_punct(p, &t, '<'))
			return perr(p, t.pos, "expected '{' after %s", f->name);
		if (depth + 1 > PROTO_MAX_DEPTH)
			return perr(p, t.pos, "messages nested deeper than %d", PROTO_MAX_DEPTH);
		rc = parse_msg(p, f->msg, p->s[t.pos] == '{' ? '}' : '>', t.pos, &sub, depth + 1);
		if (rc == 0) {
			sb_varint(b, (uint64_t)f->number << 3 | WT_LEN);
			sb_varint(b, sub.n);
			sb_add(b, sub.p, sub.n);
			b->oom |= sub.oom;
		}
		free(sub.p);
		return rc;
	}
	if (f->type == PT_STRING || f->type == PT_BYTES) {
		if (t.kind != T_STRING)
			return perr(p, t.pos, "expected a quoted string for %s", f->name);
		p->str.n = 0;
		for (;;) {
			if ((rc = unescape(p, &t)) != 0 || (rc = peek(p, &t)) != 0)
				return rc;
			if (t.kind != T_STRING)
				break;
			next(p, &t);
		}
		if (p->str.oom)
			return ckpt_error_nomem();
		sb_varint(b, (uint64_t)f->number << 3 | WT_LEN);
		sb_varint(b, p->str.n);
		sb_add(b, p->str.p, p->str.n);
		return 0;
	}
	return scalar_value(p, &t, f, b);
}

/* The fields of message m until `close` (0: the end of the text). */
static int parse_msg(struct parser *p, const struct pmsg *m, char close, size_t open_pos,
		     struct sbuf *out, int depth)
{
	struct fstate *fs = m->nfields ? calloc(m->nfields, sizeof(*fs)) : NULL;
	struct tok t;
	int rc = 0;

	if (m->nfields && !fs)
		return ckpt_error_nomem();
	for (;;) {
		const struct pfield *f;
		struct fstate *st;

		if ((rc = next(p, &t)) != 0)
			break;
		if (t.kind == T_END) {
			if (close)
				rc = perr(p, t.pos,
					  "expected '%c': the '%c' at line %u is not closed", close,
					  close == '}' ? '{' : '<', line_of(p, open_pos));
			break;
		}
		if (close && is_punct(p, &t, close))
			break;
		if (is_punct(p, &t, '[')) {
			rc = perr(p, t.pos, "extensions and Any are not supported");
			break;
		}
		if (t.kind != T_WORD ||
		    !(isalpha((unsigned char)p->s[t.pos]) || p->s[t.pos] == '_')) {
			rc = perr(p, t.pos, "expected a field name");
			break;
		}
		if (!(f = proto_field_by_name(m, p->s + t.pos, t.len))) {
			rc = perr(p, t.pos, "unknown field \"%.*s\" in %s",
				  (int)(t.len > 100 ? 100 : t.len), p->s + t.pos, m->name);
			break;
		}
		st = &fs[f - m->fields];
		if (f->label != PL_REPEATED && st->count) {
			rc = perr(p, t.pos, "non-repeated field \"%s\" given twice", f->name);
			break;
		}
		if (f->oneof)
			for (size_t i = 0; i < m->nfields; i++)
				if (fs[i].count && m->fields[i].oneof && &m->fields[i] != f &&
				    !strcmp(m->fields[i].oneof, f->oneof)) {
					rc = perr(p, t.pos,
						  "fields \"%s\" and \"%s\" are in the same oneof",
						  m->fields[i].name, f->name);
					break;
				}
		if (rc || (rc = peek(p, &t)) != 0)
			break;
		if (is_punct(p, &t, ':')) {
			next(p, &t);
			if ((rc = peek(p, &t)) != 0)
				break;
		} else if (f->type != PT_MESSAGE) {
			rc = perr(p, t.pos, "expected ':' after %s", f->name);
			break;
		}
		if (is_punct(p, &t, '[')) {
			if (f->label != PL_REPEATED) {
				rc =
				    perr(p, t.pos, "a list for non-repeated field \"%s\"", f->name);
				break;
			}
			next(p, &t);
			if ((rc = peek(p, &t)) != 0)
				break;
			if (is_punct(p, &t, ']')) {
				next(p, &t);
			} else {
				do {
					if ((rc = parse_value(p, m, f, &st->buf, depth)) != 0 ||
					    (rc = next(p, &t)) != 0)
						break;
					st->count++;
					if (!is_punct(p, &t, ',') && !is_punct(p, &t, ']'))
						rc = perr(p, t.pos, "expected ',' or ']'");
				} while (rc == 0 && !is_punct(p, &t, ']'));
			}
		} else {
			rc = parse_value(p, m, f, &st->buf, depth);
			st->count++;
		}
		if (rc || (rc = peek(p, &t)) != 0)
			break;
		if (is_punct(p, &t, ',') || is_punct(p, &t, ';'))
			next(p, &t);
	}
	for (size_t i = 0; rc == 0 && i < m->nfields; i++) {
		const struct pfield *f = &m->fields[i];

		if (f->label == PL_REQUIRED && !fs[i].count) {
			rc = perr(p, t.pos, "required field \"%s\" of %s is missing", f->name,
				  m->name);
		} else if (f->packed && fs[i].buf.n) {
			sb_varint(out, (uint64_t)f->number << 3 | WT_LEN);
			sb_varint(out, fs[i].buf.n);
		}
		sb_add(out, fs[i].buf.p, fs[i].buf.n);
		out->oom |= fs[i].buf.oom;
	}
	for (size_t i = 0; i < m->nfields; i++)
		free(fs[i].buf.p);
	free(fs);
	return rc == 0 && out->oom ? ckpt_error_nomem() : rc;
}

int proto_text_parse(void **out, size_t *out_len, const struct pdesc *d, const char *text,
		     size_t len, const char *what)
{
	struct parser p = {text, len, 0, what ? what : "text", {0}};
	struct sbuf b = {0};
	int rc;

	*out = NULL;
	*out_len = 0;
	if (len > PROTO_MAX_TEXT_SIZE)
		return ckpt_error_set(CKPT_EINVAL, "%s: %zu bytes; at most %u allowed", p.what, len,
				      PROTO_MAX_TEXT_SIZE);
	rc = parse_msg(&p, d->root, 0, 0, &b, 0);
	free(p.str.p);
	if (rc == 0 && !b.p && !(b.p = malloc(1)))
		rc = ckpt_error_nomem();
	if (rc) {
		free(b.p);
		return rc;
	}
	*out = b.p;
	*out_len = b.n;
	return 0;
}

int ckpt_proto_from_text(void **out, size_t *out_len, const char *desc, size_t desclen,
			 const char *text, size_t len, const char *what)
{
	struct pdesc *d = NULL;
	int rc;

	*out = NULL;
	*out_len = 0;
	rc = proto_desc_parse(&d, desc, desclen);
	if (rc == 0)
		rc = proto_text_parse(out, out_len, d, text ? text : "", text ? len : 0, what);
	proto_desc_free(d);
	return rc;
}
