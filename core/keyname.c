/*
 * keyname.c — pytree keys as file names, and scalars as text.
 *
 * Escaping (docs/format-pytree.md, "Names"): a key byte is written as %XX
 * (uppercase hex) when it is
 *   - '%', '/', or a control byte (0x01..0x1F, 0x7F), anywhere;
 *   - '_' or '.' as the first byte (reserved names, ".", "..", dot files);
 *   - the '.' of a final ".npy" of a non-array key (names ending in ".npy"
 *     are arrays);
 * every other byte is kept. The empty key is written "%00". The stem never
 * includes the ".npy" that arrays add to their names.
 *
 * Invariants:
 *  1. unescape(escape(k, a), a) == k for every NUL-free byte string k.
 *  2. unescape accepts only canonical names: escape(unescape(n, a), a) == n,
 *     so the key <-> name mapping is a bijection and names never collide.
 *  3. An escaped stem is never empty, ".", "..", never contains '/', and
 *     never starts with '_' or '.'.
 *
 * Scalars: ints decimal int64; floats Python repr() (shortest round-trip
 * digits, Python's choice between fixed and exponent notation); bools
 * "True"/"False".
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/tree.h"
#include "error_private.h"
#include "tree_private.h"

static const char hexdig[] = "0123456789ABCDEF";

static int must_encode(const char *key, size_t len, size_t i, int is_array)
{
	unsigned char c = (unsigned char)key[i];

	if (c == '%' || c == '/' || c < 0x20 || c == 0x7F)
		return 1;
	if (i == 0 && (c == '_' || c == '.'))
		return 1;
	return !is_array && len >= 4 && i == len - 4 && memcmp(key + i, ".npy", 4) == 0;
}

size_t ckpt_key_escape_into(char *buf, const char *key, size_t len, int is_array)
{
	size_t n = 0;

	if (len == 0) {
		if (buf)
			memcpy(buf, "%00", 3);
		return 3;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)key[i];

		if (!must_encode(key, len, i, is_array)) {
			if (buf)
				buf[n] = (char)c;
			n++;
			continue;
		}
		if (buf) {
			buf[n] = '%';
			buf[n + 1] = hexdig[c >> 4];
			buf[n + 2] = hexdig[c & 15];
		}
		n += 3;
	}
	return n;
}

int ckpt_key_escape(char **out, const char *key, int is_array)
{
	size_t len, n;
	char *s;

	*out = NULL;
	if (!key)
		return ckpt_error_set(CKPT_EINVAL, "escape: NULL key");
	len = strlen(key);
	n = ckpt_key_escape_into(NULL, key, len, is_array);
	s = malloc(n + 1);
	if (!s)
		return ckpt_error_nomem();
	ckpt_key_escape_into(s, key, len, is_array);
	s[n] = '\0';
	*out = s;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1; /* lowercase is not canonical */
}

int ckpt_key_unescape(char **out, const char *name, int is_array)
{
	char *key = NULL, *check = NULL, *w;
	int rc = 0;

	*out = NULL;
	if (!name)
		return ckpt_error_set(CKPT_EINVAL, "unescape: NULL name");
	if (strcmp(name, "%00") == 0) {
		*out = strdup("");
		return *out ? 0 : ckpt_error_nomem();
	}
	key = malloc(strlen(name) + 1);
	if (!key)
		return ckpt_error_nomem();
	w = key;
	for (const char *p = name; *p; p++) {
		if (*p == '%') {
			int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);

			if (hi < 0 || lo < 0 || (hi | lo) == 0) {
				rc =
				    ckpt_error_set(CKPT_EINVAL, "name '%s': bad escape at byte %zu",
						   name, (size_t)(p - name));
				goto done;
			}
			*w++ = (char)(hi << 4 | lo);
			p += 2;
		} else {
			*w++ = *p;
		}
	}
	*w = '\0';
	rc = ckpt_key_escape(&check, key, is_array);
	if (rc < 0)
		goto done;
	if (strcmp(check, name) != 0) {
		rc = ckpt_error_set(CKPT_EINVAL,
				    "name '%s' is not canonically escaped (expected "
				    "'%s')",
				    name, check);
		goto done;
	}
	*out = key;
	key = NULL;
done:
	free(key);
	free(check);
	return rc;
}

/* ---- scalars ------------------------------------------------------------- */

/* Python repr() of a finite or non-finite double into buf (>= 32 bytes). */
static int format_float(char *buf, size_t cap, double v)
{
	char tmp[40], digits[24], out[40], *w = out;
	int nd = 0, exp10, decpt, len;
	const char *e;

	if (isnan(v))
		return snprintf(buf, cap, "nan");
	if (isinf(v))
		return snprintf(buf, cap, v < 0 ? "-inf" : "inf");
	/* Shortest precision whose %e form reads back as v. */
	for (int p = 1; p <= 17; p++) {
		snprintf(tmp, sizeof(tmp), "%.*e", p - 1, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	/* tmp is [-]d[.ddd]e[+-]XX: collect the digits and the exponent. */
	for (const char *p = tmp; *p && *p != 'e'; p++)
		if (*p >= '0' && *p <= '9')
			digits[nd++] = *p;
	e = strchr(tmp, 'e');
	assert(e && nd > 0 && nd <= 17);
	exp10 = atoi(e + 1);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	digits[nd] = '\0';
	decpt = exp10 + 1; /* v = 0.DIGITS * 10^decpt */
	if (signbit(v))
		*w++ = '-';
	if (decpt <= -4 || decpt > 16) {
		*w++ = digits[0];
		if (nd > 1) {
			*w++ = '.';
			memcpy(w, digits + 1, (size_t)nd - 1);
			w += nd - 1;
		}
		w += sprintf(w, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
	} else if (decpt <= 0) {
		*w++ = '0';
		*w++ = '.';
		for (int i = 0; i < -decpt; i++)
			*w++ = '0';
		memcpy(w, digits, (size_t)nd);
		w += nd;
	} else if (decpt >= nd) {
		memcpy(w, digits, (size_t)nd);
		w += nd;
		for (int i = nd; i < decpt; i++)
			*w++ = '0';
		*w++ = '.';
		*w++ = '0';
	} else {
		memcpy(w, digits, (size_t)decpt);
		w += decpt;
		*w++ = '.';
		memcpy(w, digits + decpt, (size_t)(nd - decpt));
		w += nd - decpt;
	}
	*w = '\0';
	len = (int)(w - out);
	if ((size_t)len >= cap)
		return ckpt_error_set(CKPT_EINVAL, "scalar format: buffer of %zu too small", cap);
	memcpy(buf, out, (size_t)len + 1);
	return len;
}

int ckpt_scalar_format(char *buf, size_t cap, const ckpt_tree *leaf)
{
	int n;

	if (!buf || cap == 0)
		return ckpt_error_set(CKPT_EINVAL, "scalar format: no buffer");
	switch (ckpt_tree_get_kind(leaf)) {
	case CKPT_TREE_INT: n = snprintf(buf, cap, "%" PRId64, ckpt_tree_int(leaf)); break;
	case CKPT_TREE_FLOAT: return format_float(buf, cap, ckpt_tree_float(leaf));
	case CKPT_TREE_BOOL:
		n = snprintf(buf, cap, "%s", ckpt_tree_bool(leaf) ? "True" : "False");
		break;
	default: return ckpt_error_set(CKPT_EINVAL, "scalar format: not an int, float or bool");
	}
	if (n < 0 || (size_t)n >= cap)
		return ckpt_error_set(CKPT_EINVAL, "scalar format: buffer of %zu too small", cap);
	return n;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* [+-]digits, all of s; 1 and *v if it fits int64, 0 if not an int, -1 overflow. */
static int parse_int(int64_t *v, const char *s, size_t n)
{
	size_t i = (n && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
	int neg = n && s[0] == '-';
	uint64_t acc = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;

	if (i == n)
		return 0;
	for (size_t j = i; j < n; j++)
		if (!is_digit(s[j]))
			return 0;
	for (; i < n; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (acc > (lim - d) / 10)
			return -1;
		acc = acc * 10 + d;
	}
	*v = neg ? (int64_t)(0 - acc) : (int64_t)acc;
	return 1;
}

static int ieq(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

/* Python float() syntax without '_': 1 and *v if s parses, else 0. */
static int parse_float(double *v, const char *s, size_t n)
{
	size_t i = 0, digits = 0;
	char tmp[512];
	int neg = 0;

	if (i < n && (s[i] == '+' || s[i] == '-'))
		neg = s[i++] == '-';
	if (ieq(s + i, n - i, "inf") || ieq(s + i, n - i, "infinity")) {
		*v = neg ? -INFINITY : INFINITY;
		return 1;
	}
	if (ieq(s + i, n - i, "nan")) {
		*v = neg ? -NAN : NAN;
		return 1;
	}
	for (; i < n && is_digit(s[i]); i++)
		digits++;
	if (i < n && s[i] == '.')
		for (i++; i < n && is_digit(s[i]); i++)
			digits++;
	if (!digits)
		return 0;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		size_t ed = 0;

		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		for (; i < n && is_digit(s[i]); i++)
			ed++;
		if (!ed)
			return 0;
	}
	if (i != n || n >= sizeof(tmp))
		return 0;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	*v = strtod(tmp, NULL); /* ERANGE gives +-inf or 0, as Python */
	return 1;
}

static int parse_bool(int *v, const char *s, size_t n)
{
	if ((n == 4 && (memcmp(s, "True", 4) == 0 || memcmp(s, "true", 4) == 0))) {
		*v = 1;
		return 1;
	}
	if ((n == 5 && (memcmp(s, "False", 5) == 0 || memcmp(s, "false", 5) == 0))) {
		*v = 0;
		return 1;
	}
	return 0;
}

int ckpt_scalar_parse(ckpt_tree **out, const char *text, size_t len, ckpt_tree_kind kind)
{
	int64_t iv;
	double fv;
	int bv, r;

	*out = NULL;
	if (!text && len)
		return ckpt_error_set(CKPT_EINVAL, "scalar parse: NULL text");
	if (!text)
		text = "";
	while (len && is_space(text[0])) {
		text++;
		len--;
	}
	while (len && is_space(text[len - 1]))
		len--;
	if (kind == 0 || kind == CKPT_TREE_INT) {
		r = parse_int(&iv, text, len);
		if (r > 0)
			return ckpt_tree_new_int(out, iv);
		if (r < 0 && kind == CKPT_TREE_INT)
			return ckpt_error_set(CKPT_EINVAL, "'%.*s' does not fit in int64",
					      (int)(len > 64 ? 64 : len), text);
		if (r < 0) /* an integer too big: keep it exact, as a string */
			goto bad;
	}
	if ((kind == 0 || kind == CKPT_TREE_FLOAT) && parse_float(&fv, text, len))
		return ckpt_tree_new_float(out, fv);
	if ((kind == 0 || kind == CKPT_TREE_BOOL) && parse_bool(&bv, text, len))
		return ckpt_tree_new_bool(out, bv);
	if (kind != 0 && kind != CKPT_TREE_INT && kind != CKPT_TREE_FLOAT && kind != CKPT_TREE_BOOL)
		return ckpt_error_set(CKPT_EINVAL, "scalar parse: kind %d is not a scalar",
				      (int)kind);
bad:
	return ckpt_error_set(CKPT_EINVAL, "'%.*s' is not %s", (int)(len > 64 ? 64 : len), text,
			      kind == CKPT_TREE_INT	? "an int"
			      : kind == CKPT_TREE_FLOAT ? "a float"
			      : kind == CKPT_TREE_BOOL	? "a bool"
							: "an int, float or bool");
}
