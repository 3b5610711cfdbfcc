/*
 * jdom.c — a read-only JSON document in one arena. Design and invariants: jdom.h.
 *
 * The grammar follows cJSON 1.7.15's parser step for step (parse_value,
 * parse_string, parse_number, parse_array, parse_object, the white space and
 * BOM skipping of cJSON_ParseWithLengthOpts), so the same inputs pass and
 * fail; what changes is where values live: nodes come from blocks of
 * NODE_BLOCK, and every string is unescaped into one buffer of len + 1 bytes,
 * enough because a string's text (quotes included) is never shorter than its
 * value plus a NUL.
 */
#include "jdom.h"

#include <locale.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/error.h"

#define NODE_BLOCK    4096

struct block {
	struct block *next;
	size_t used;
	jdom_node nodes[NODE_BLOCK];
};

struct jdom {
	struct block *blocks; /* newest first */
	char *strings;	      /* every string value and member name */
	size_t str_used;
	jdom_node *root;
};

struct parser {
	jdom *d;
	const unsigned char *s;
	size_t len, pos, depth;
	int nomem;
};

static jdom_node *new_node(struct parser *p)
{
	struct block *b = p->d->blocks;

	if (!b || b->used == NODE_BLOCK) {
		b = malloc(sizeof(*b));
		if (!b) {
			p->nomem = 1;
			return NULL;
		}
		b->next = p->d->blocks;
		b->used = 0;
		p->d->blocks = b;
	}
	jdom_node *n = &b->nodes[b->used++];
	memset(n, 0, sizeof(*n));
	return n;
}

/* Any byte <= 0x20 is white space to cJSON. At the end, pos stays past the input. */
static void skip_ws(struct parser *p)
{
	while (p->pos < p->len && p->s[p->pos] <= 32)
		p->pos++;
}

static unsigned hex4(const unsigned char *in)
{
	unsigned h = 0;

	for (int i = 0; i < 4; i++) {
		unsigned c = in[i];
		if (c >= '0' && c <= '9')
			h = (h << 4) + c - '0';
		else if (c >= 'A' && c <= 'F')
			h = (h << 4) + 10 + c - 'A';
		else if (c >= 'a' && c <= 'f')
			h = (h << 4) + 10 + c - 'a';
		else
			return 0; /* cJSON's parse_hex4: an invalid digit gives 0 */
	}
	return h;
}

/* A \u escape at in (end: the closing quote) as UTF-8 at *out; its length in the input, 0 if bad. */
static size_t utf16_escape(const unsigned char *in, const unsigned char *end, unsigned char **out)
{
	unsigned long cp;
	size_t seq = 6;
	unsigned first, n;
	unsigned char mark = 0;

	if (end - in < 6)
		return 0;
	first = hex4(in + 2);
	if (first >= 0xDC00 && first <= 0xDFFF)
		return 0;
	if (first >= 0xD800 && first <= 0xDBFF) {
		const unsigned char *second = in + 6;
		unsigned lo;
		if (end - second < 6 || second[0] != '\\' || second[1] != 'u')
			return 0;
		lo = hex4(second + 2);
		if (lo < 0xDC00 || lo > 0xDFFF)
			return 0;
		cp = 0x10000 + (((first & 0x3FFu) << 10) | (lo & 0x3FFu));
		seq = 12;
	} else {
		cp = first;
	}
	if (cp < 0x80) {
		n = 1;
	} else if (cp < 0x800) {
		n = 2;
		mark = 0xC0;
	} else if (cp < 0x10000) {
		n = 3;
		mark = 0xE0;
	} else {
		n = 4; /* at most 0x10FFFF from a surrogate pair */
		mark = 0xF0;
	}
	for (unsigned i = n - 1; i > 0; i--) {
		(*out)[i] = (unsigned char)((cp | 0x80) & 0xBF);
		cp >>= 6;
	}
	(*out)[0] = (unsigned char)(n > 1 ? (cp | mark) & 0xFF : cp & 0x7F);
	*out += n;
	return seq;
}

/* A string at pos (a '"'): its value, NUL-terminated, in the string buffer; NULL if bad. */
static const char *parse_string(struct parser *p)
{
	const unsigned char *start = p->s + p->pos + 1, *end = start, *in = start;
	const unsigned char *limit = p->s + p->len;
	char *value = p->d->strings + p->d->str_used;
	unsigned char *out = (unsigned char *)value;

	/* The common case: no escape before the next quote, which closes the string. */
	const unsigned char *q = memchr(start, '"', (size_t)(limit - start));
	if (q && !memchr(start, '\\', (size_t)(q - start))) {
		memcpy(out, start, (size_t)(q - start));
		out += q - start;
		end = q;
		goto done;
	}
	while (end < limit && *end != '"') { /* cJSON's scan for the closing quote */
		if (*end == '\\') {
			if (end + 1 >= limit)
				return NULL;
			end++;
		}
		end++;
	}
	if (end >= limit)
		return NULL;
	while (in < end) {
		if (*in != '\\') {
			*out++ = *in++;
			continue;
		}
		size_t seq = 2;
		switch (in[1]) {
		case 'b': *out++ = '\b'; break;
		case 'f': *out++ = '\f'; break;
		case 'n': *out++ = '\n'; break;
		case 'r': *out++ = '\r'; break;
		case 't': *out++ = '\t'; break;
		case '"':
		case '\\':
		case '/': *out++ = in[1]; break;
		case 'u':
			if (!(seq = utf16_escape(in, end, &out)))
				return NULL;
			break;
		default: return NULL;
		}
		in += seq;
	}
done:
	*out++ = '\0';
	p->d->str_used = (size_t)(out - (unsigned char *)p->d->strings);
	p->pos = (size_t)(end - p->s) + 1;
	return value;
}

/* cJSON's parse_number: the run of [0-9+-.eE] at pos read by strtod. 0 if none of it reads. */
static int parse_number(struct parser *p, double *out)
{
	char small[64], *buf = small;
	size_t n = 0, digits = 0;
	int neg, rc = 0;

	for (; p->pos + n < p->len; n++) {
		unsigned char c = p->s[p->pos + n];
		if (c >= '0' && c <= '9')
			digits++;
		else if (c != '+' && c != '-' && c != 'e' && c != 'E' && c != '.')
			break;
	}
	const char *run = (const char *)p->s + p->pos;
	neg = n > 0 && run[0] == '-';
	if (digits && digits == n - (size_t)neg && digits <= 15) {
		/* [-]digits: exact in a double, as strtod gives it, without strtod */
		uint64_t v = 0;
		for (size_t i = (size_t)neg; i < n; i++)
			v = v * 10 + (uint64_t)(run[i] - '0');
		*out = neg ? -(double)v : (double)v;
		p->pos += n;
		return 1;
	}
	if (n >= sizeof(small) && !(buf = malloc(n + 1))) {
		p->nomem = 1;
		return 0;
	}
	char point = localeconv()->decimal_point[0]; /* cJSON reads with the locale's strtod */
	for (size_t i = 0; i < n; i++)
		buf[i] = run[i] == '.' ? point : run[i];
	buf[n] = '\0';
	char *after = NULL;
	*out = strtod(buf, &after);
	if (after != buf) {
		p->pos += (size_t)(after - buf);
		rc = 1;
	}
	if (buf != small)
		free(buf);
	return rc;
}

static int parse_value(struct parser *p, jdom_node *n);

/* An array or object at pos; members have names when obj. */
static int parse_container(struct parser *p, jdom_node *n, int obj)
{
	jdom_node *tail = NULL;

	if (p->depth >= JDOM_MAX_NESTING)
		return 0;
	p->depth++;
	n->type = obj ? JDOM_OBJECT : JDOM_ARRAY;
	p->pos++;
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == (obj ? '}' : ']'))
		goto done;
	if (p->pos >= p->len)
		return 0;
	p->pos--; /* before the first element, as after a ',' */
	do {
		jdom_node *c = new_node(p);
		if (!c)
			return 0;
		if (tail)
			tail->next = c;
		else
			n->child = c;
		tail = c;
		n->count++;
		p->pos++;
		skip_ws(p);
		if (obj) {
			if (p->pos >= p->len || p->s[p->pos] != '"' || !(c->key = parse_string(p)))
				return 0;
			skip_ws(p);
			if (p->pos >= p->len || p->s[p->pos] != ':')
				return 0;
			p->pos++;
			skip_ws(p);
		}
		if (!parse_value(p, c))
			return 0;
		skip_ws(p);
	} while (p->pos < p->len && p->s[p->pos] == ',');
	if (p->pos >= p->len || p->s[p->pos] != (obj ? '}' : ']'))
		return 0;
done:
	p->depth--;
	p->pos++;
	return 1;
}

/* Literals are matched only where their first letter is: the same verdicts as cJSON's order. */
static int literal(struct parser *p, jdom_node *n, const char *word, size_t len, jdom_type type)
{
	if (p->len - p->pos < len || memcmp(p->s + p->pos, word, len) != 0)
		return 0;
	n->type = type;
	p->pos += len;
	return 1;
}

static int parse_value(struct parser *p, jdom_node *n)
{
	const char *at = (const char *)p->s + p->pos;
	int ok = 0;

	n->src = at;
	if (p->pos < p->len) {
		switch (*at) {
		case 'n': ok = literal(p, n, "null", 4, JDOM_NULL); break;
		case 'f': ok = literal(p, n, "false", 5, JDOM_FALSE); break;
		case 't': ok = literal(p, n, "true", 4, JDOM_TRUE); break;
		case '"':
			n->type = JDOM_STRING;
			ok = (n->str = parse_string(p)) != NULL;
			break;
		case '[':
		case '{': ok = parse_container(p, n, *at == '{'); break;
		default:
			if (*at == '-' || (*at >= '0' && *at <= '9')) {
				n->type = JDOM_NUMBER;
				ok = parse_number(p, &n->num);
			}
			break;
		}
	}
	n->src_len = (size_t)((const char *)p->s + p->pos - at);
	return ok;
}

int jdom_parse(jdom **out, const char *json, size_t len)
{
	struct parser p = {0};
	jdom *d = calloc(1, sizeof(*d));
	int rc = CKPT_EINVAL;

	*out = NULL;
	if (!d || !(d->strings = malloc(len + 1))) {
		rc = CKPT_ENOMEM;
		goto fail;
	}
	if (!json || len == 0)
		goto fail;
	p.d = d;
	p.s = (const unsigned char *)json;
	p.len = len;
	if (len > 4 && memcmp(json, "\xEF\xBB\xBF", 3) == 0) /* cJSON's skip_utf8_bom */
		p.pos = 3;
	skip_ws(&p);
	if (!(d->root = new_node(&p)) || !parse_value(&p, d->root)) {
		rc = p.nomem ? CKPT_ENOMEM : CKPT_EINVAL;
		goto fail;
	}
	*out = d; /* what follows the value is not looked at (cJSON_ParseWithLength) */
	return 0;
fail:
	jdom_free(d);
	return rc;
}

const jdom_node *jdom_root(const jdom *d)
{
	return d->root;
}

void jdom_free(jdom *d)
{
	if (!d)
		return;
	for (struct block *b = d->blocks, *next; b; b = next) {
		next = b->next;
		free(b);
	}
	free(d->strings);
	free(d);
}

const jdom_node *jdom_member(const jdom_node *obj, const char *name)
{
	if (!obj || obj->type != JDOM_OBJECT)
		return NULL;
	for (const jdom_node *c = obj->child; c; c = c->next)
		if (c->key[0] == name[0] && strcmp(c->key, name) == 0)
			return c;
	return NULL;
}
