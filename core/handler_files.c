/*
 * handler_files.c — helpers of the file-per-key handlers (handler_files.h).
 *
 * A .npy value is the file np.save writes, byte for byte, so the mount and
 * `ckpt restore` serve it unchanged; reading it back checks its header and
 * its exact length, like ckpt_npy_check_fd does for files.
 *
 * Invariants:
 *   1. npy_value_put writes ckpt_npy_header_len() + nbytes bytes: the
 *      header ckpt_npy_format_header() makes, then the leaf's data.
 *   2. npy_value_get returns a leaf only when the value's size equals the
 *      header length plus the data length the header announces.
 *   3. handler_json_parse accepts only RFC 8259 JSON: cJSON parses, and
 *      strict_scan refuses what cJSON lets through ("01", "1.", raw
 *      control characters in strings), so any JSON reader reads what we
 *      store.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/array.h"
#include "ckpt/npy.h"
#include "error_private.h"
#include "handler_files.h"
#include "item_format.h"
#include "mem.h"
#include "npy_private.h"
#include "tree_private.h"
#include "fsutil.h"

#define WRITE_SLICE (8u << 20)

struct named_handler {
	ckpt_handler base;
	char *name;
};

int named_handler_new(ckpt_handler **out, const char *name, const char *def,
		      const ckpt_handler_vtable *vt, const char *what)
{
	struct named_handler *h;
	int rc;

	*out = NULL;
	if (!name)
		name = def;
	if ((rc = handler_name_check(name, what)) < 0)
		return rc;
	if (!(h = calloc(1, sizeof(*h))) || !(h->name = strdup(name))) {
		free(h);
		return ckpt_error_nomem();
	}
	h->base.vt = vt;
	*out = &h->base;
	return 0;
}

void named_handler_close(ckpt_handler *h)
{
	free(((struct named_handler *)h)->name);
	free(h);
}

int named_handler_no_metadata(void **out, ckpt_handler *h, ckpt_step *s, const char *item)
{
	*out = NULL;
	return 0;
}

const char *named_handler_name(const ckpt_handler *h)
{
	return ((const struct named_handler *)h)->name;
}

int handler_name_check(const char *name, const char *what)
{
	if (!name[0] || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..") ||
	    name[0] == '_')
		return ckpt_error_set(CKPT_EINVAL,
				      "%s '%s' is not a plain file name (non-empty, no '/', "
				      "not '.' or '..', not starting with '_')",
				      what, name);
	return 0;
}

int handler_has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n > m && !strcmp(s + n - m, suffix);
}

char *handler_key(const char *item, const char *name, const char *suffix)
{
	return ckpt_asprintf("%s/%s%s", item, name, suffix);
}

int npy_value_put(ckpt_batch *b, const char *key, const ckpt_tree *arr)
{
	const unsigned char *data = ckpt_tree_data(arr);
	const ckpt_dtype dt = ckpt_tree_dtype(arr);
	const unsigned nd = ckpt_tree_ndim(arr);
	uint64_t left = ckpt_tree_nbytes(arr);
	size_t hl = ckpt_npy_header_len(dt, nd, ckpt_tree_shape(arr));
	ckpt_value_writer *vw = NULL;
	unsigned char *hdr = NULL;
	int rc;

	if (ckpt_tree_get_kind(arr) != CKPT_TREE_ARRAY || !data)
		return ckpt_error_set(CKPT_EINVAL, "%s: not an array with data", key);
	if (!hl)
		return ckpt_error_set(CKPT_EINVAL, "%s: cannot write a .npy header for %s", key,
				      ckpt_dtype_name(dt));
	if (!(hdr = malloc(hl)))
		return ckpt_error_nomem();
	rc = ckpt_npy_format_header(hdr, hl, &hl, dt, nd, ckpt_tree_shape(arr));
	assert(rc != 0 || hl == ckpt_npy_header_len(dt, nd, ckpt_tree_shape(arr)));
	if (rc == 0)
		rc = ckpt_value_writer_open(&vw, b, key, strlen(key), NULL);
	if (rc == 0)
		rc = ckpt_value_writer_write(vw, hdr, hl);
	while (rc == 0 && left) {
		size_t n = left < WRITE_SLICE ? (size_t)left : WRITE_SLICE;
		rc = ckpt_value_writer_write(vw, data, n);
		data += n;
		left -= n;
	}
	if (vw) {
		if (rc == 0)
			rc = ckpt_value_writer_close(vw);
		else
			ckpt_value_writer_abort(vw);
	}
	if (rc)
		ckpt_error_wrap(rc, "save %s", key);
	free(hdr);
	return rc;
}

int handler_array_to_target(ckpt_tree **out, const ckpt_tree *t, ckpt_dtype dt, unsigned ndim,
			    const uint64_t *shape, int strict, const char *what)
{
	const ckpt_dtype st = ckpt_tree_dtype(t);
	const unsigned nd = ckpt_tree_ndim(t), tnd = shape ? ndim : nd;
	const uint64_t *ss = ckpt_tree_shape(t), *ts = shape ? shape : ss;
	const unsigned char *src = ckpt_tree_data(t);
	unsigned char *dst = NULL;
	uint64_t idx[CKPT_TREE_MAX_NDIM] = {0}, tn = 1;
	size_t ssz = ckpt_dtype_size(st), dsz;
	int same = tnd == nd, rc = 0;

	*out = NULL;
	if (dt == CKPT_DTYPE_INVALID)
		dt = st;
	if ((dsz = ckpt_dtype_size(dt)) == 0 || ssz == 0)
		return ckpt_error_set(CKPT_EINVAL, "%s: invalid restore dtype", what);
	if (tnd > CKPT_TREE_MAX_NDIM)
		return ckpt_error_set(CKPT_EINVAL, "%s: target has %u dimensions (at most %d)",
				      what, tnd, CKPT_TREE_MAX_NDIM);
	for (unsigned d = 0; same && d < nd; d++)
		same = ss[d] == ts[d];
	if (same && dt == st)
		return 0;
	if (!same && (strict || tnd != nd)) {
		char a[256], b[256];
		ckpt_tree_shape_str(a, sizeof(a), nd, ss);
		ckpt_tree_shape_str(b, sizeof(b), tnd, ts);
		return ckpt_error_set(CKPT_ESHAPE, "%s: saved shape %s differs from target %s%s",
				      what, a, b,
				      strict ? ""
					     : " (non-strict restore needs the same number of "
					       "dimensions)");
	}
	for (unsigned d = 0; d < tnd; d++) {
		if (ts[d] && tn > UINT64_MAX / ts[d] / dsz)
			return ckpt_error_set(CKPT_EINVAL, "%s: target shape too large", what);
		tn *= ts[d];
	}
	if (!(dst = same ? malloc((size_t)(tn * dsz) + 1) : calloc((size_t)tn + 1, dsz)))
		return ckpt_error_nomem();
	if (same) {
		rc = ckpt_dtype_cast(dst, dt, src, st, (size_t)tn);
		goto made;
	}
	/* pad or truncate: copy the common box row by row (last dimension) */
	for (unsigned d = 0; d < nd; d++)
		if (ss[d] == 0 || ts[d] == 0)
			goto made; /* nothing in common */
	for (uint64_t inner = ss[nd - 1] < ts[nd - 1] ? ss[nd - 1] : ts[nd - 1]; rc == 0;) {
		uint64_t so = 0, to = 0;
		int d;
		for (unsigned k = 0; k + 1 < nd; k++) {
			so = so * ss[k] + idx[k];
			to = to * ts[k] + idx[k];
		}
		rc = ckpt_dtype_cast(dst + to * ts[nd - 1] * dsz, dt, src + so * ss[nd - 1] * ssz,
				     st, (size_t)inner);
		for (d = (int)nd - 2; d >= 0; d--) {
			if (++idx[d] < (ss[d] < ts[d] ? ss[d] : ts[d]))
				break;
			idx[d] = 0;
		}
		if (d < 0)
			break;
	}
made:
	if (rc == 0) {
		rc = ckpt_tree_new_array(out, dt, tnd, ts, dst, CKPT_TREE_OWN);
		dst = NULL; /* the tree's, also on failure */
	}
	free(dst);
	return rc ? ckpt_error_wrap(rc, "%s", what) : 0;
}

/* Read exactly len bytes at off of v; CKPT_ECORRUPT if the value is shorter. */
static int read_exact(ckpt_value *v, void *buf, size_t len, uint64_t off, const char *key)
{
	size_t n = 0;
	int rc = ckpt_value_pread(&n, v, buf, len, off);

	if (rc == 0 && n != len)
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: short value (%zu of %zu bytes at %llu)",
				    key, n, len, (unsigned long long)off);
	return rc;
}

int ckpt_array_value_header(ckpt_npy_header *out, ckpt_value *v, const char *what)
{
	unsigned char head[4096], *hdr = head;
	const ckpt_value_info *vi = ckpt_value_get_info(v);
	size_t n = vi->size < sizeof(head) ? (size_t)vi->size : sizeof(head), hl = 0;
	int rc = read_exact(v, head, n, 0, what);

	if (rc == 0 && (rc = ckpt_npy_header_size(&hl, head, n)) != 0)
		ckpt_error_wrap(rc, "%s", what);
	else if (rc == 0 && hl > vi->size)
		rc = ckpt_error_set(CKPT_EINVAL,
				    "%s: truncated: header needs %zu bytes, value has %llu", what, hl,
				    (unsigned long long)vi->size);
	if (rc == 0 && hl > n) { /* a long header */
		if (!(hdr = malloc(hl)))
			return ckpt_error_nomem();
		rc = read_exact(v, hdr, hl, 0, what);
		n = hl;
	}
	if (rc == 0 && (rc = ckpt_npy_parse_header(out, hdr, n)) != 0)
		ckpt_error_wrap(rc, "%s", what);
	if (rc == 0 && vi->size != out->header_len + out->data_len)
		rc = ckpt_error_set(CKPT_EINVAL,
				    "%s: header says %s with %llu data bytes but the value has %llu",
				    what, ckpt_dtype_name(out->dtype),
				    (unsigned long long)out->data_len,
				    (unsigned long long)(vi->size - out->header_len));
	if (hdr != head)
		free(hdr);
	return rc;
}

int npy_value_get(ckpt_tree **out, ckpt_store *s, const char *key, int meta_only)
{
	ckpt_value *v = NULL;
	ckpt_npy_header h;
	void *data = NULL, *conv = NULL;
	int rc;

	*out = NULL;
	if ((rc = ckpt_value_open(&v, s, key, strlen(key))) < 0)
		return rc;
	if ((rc = ckpt_array_value_header(&h, v, key)) != 0) {
		if (rc == CKPT_EINVAL) /* a stored value: damaged, not bad input */
			rc = CKPT_ECORRUPT;
		goto done;
	}
	if (meta_only) {
		rc = ckpt_tree_new_array(out, h.dtype, h.ndim, h.shape, NULL, CKPT_TREE_COPY);
		goto done;
	}
	if (h.data_len > SIZE_MAX - 1 || !(data = ckpt_mem_malloc_large((size_t)h.data_len + 1))) {
		rc = ckpt_error_nomem();
		goto done;
	}
	if ((rc = read_exact(v, data, (size_t)h.data_len, h.header_len, key)) < 0)
		goto done;
	if (h.big_endian || h.fortran_order) {
		if (!(conv = ckpt_mem_malloc_large((size_t)h.data_len + 1))) {
			rc = ckpt_error_nomem();
			goto done;
		}
		if ((rc = ckpt_npy_to_c_le(conv, data, &h)) < 0)
			goto done;
		free(data);
		data = conv;
		conv = NULL;
	}
	rc = ckpt_tree_new_array(out, h.dtype, h.ndim, h.shape, data, CKPT_TREE_OWN);
	data = NULL; /* the tree owns it, or freed it on failure */
done:
	free(data);
	free(conv);
	ckpt_value_free(v);
	return rc;
}

int store_get_text(char **out, size_t *len, ckpt_store *s, const char *key)
{
	void *buf = NULL;
	char *txt;
	size_t n = 0;
	int rc;

	*out = NULL;
	if (len)
		*len = 0;
	if ((rc = ckpt_store_get(&buf, &n, s, key, strlen(key))) < 0)
		return rc;
	if (!(txt = realloc(buf, n + 1))) {
		free(buf);
		return ckpt_error_nomem();
	}
	txt[n] = '\0';
	*out = txt;
	if (len)
		*len = n;
	return 0;
}

static int json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * What cJSON lets through but JSON (and Python's json) refuses: numbers
 * like "01", "1.", "1.e3", raw control characters inside strings, and
 * control characters other than JSON's four whitespaces between tokens
 * (cJSON skips every byte <= 0x20). The text already parsed, so only these
 * need a look. Returns 0, or 1 with *off the first such byte and *why.
 */
static int strict_scan(size_t *off, const char *t, size_t len, const char **why)
{
	size_t i = 0;

	while (i < len) {
		if (t[i] == '"') {
			for (i++; i < len && t[i] != '"'; i++) {
				if ((unsigned char)t[i] < 0x20) {
					*why = "invalid JSON (a control character in a string)";
					goto bad;
				}
				if (t[i] == '\\')
					i++;
			}
			i++;
			continue;
		}
		if ((unsigned char)t[i] < 0x20 && !json_space(t[i])) {
			*why = "invalid JSON (a control character)";
			goto bad;
		}
		if (t[i] != '-' && !is_digit(t[i])) {
			i++;
			continue;
		}
		*why = "invalid JSON number";
		if (t[i] == '-')
			i++;
		if (i < len && t[i] == '0')
			i++;
		else if (i < len && is_digit(t[i]))
			while (i < len && is_digit(t[i]))
				i++;
		else
			goto bad;
		if (i < len && t[i] == '.') {
			if (++i >= len || !is_digit(t[i]))
				goto bad;
			while (i < len && is_digit(t[i]))
				i++;
		}
		if (i < len && (t[i] == 'e' || t[i] == 'E')) {
			if (++i < len && (t[i] == '+' || t[i] == '-'))
				i++;
			if (i >= len || !is_digit(t[i]))
				goto bad;
			while (i < len && is_digit(t[i]))
				i++;
		}
		if (i < len && is_digit(t[i])) /* "01" */
			goto bad;
	}
	return 0;
bad:
	*off = i;
	return 1;
}

/* The offset of the first byte that is not part of valid UTF-8, or len. */
static size_t utf8_scan(const char *text, size_t len)
{
	const unsigned char *t = (const unsigned char *)text;

	for (size_t i = 0; i < len;) {
		unsigned c = t[i], n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2
						 : (c >> 3) == 30 ? 3 : 4;
		uint32_t cp = n == 0 ? c : n == 1 ? c & 0x1f : n == 2 ? c & 0x0f : c & 0x07;
		if (n == 4 || i + n >= len + (n == 0))
			return i;
		for (unsigned k = 1; k <= n; k++) {
			if ((t[i + k] & 0xc0) != 0x80)
				return i;
			cp = cp << 6 | (t[i + k] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return i; /* overlong, out of range, or a surrogate */
		i += n + 1;
	}
	return len;
}

/*
 * Python's json writes NaN, Infinity and -Infinity, which cJSON refuses: a
 * copy of text with each of them, standing alone as a value outside strings,
 * blanked to a number of the same length ("0  "), so that offsets in
 * messages stay the text's. *out is NULL when there is nothing to blank;
 * *first is the offset of the first one blanked.
 */
static int blank_nonfinite(char **out, size_t *first, const char *t, size_t len)
{
	static const char *const words[] = {"-Infinity", "Infinity", "NaN"};
	char *c = NULL;

	*out = NULL;
	for (size_t i = 0; i < len; i++) {
		if (t[i] == '"') {
			for (i++; i < len && t[i] != '"'; i++)
				i += t[i] == '\\';
			continue;
		}
		/* a value starts after '[', ',', ':' or whitespace (or at the start) */
		if (i > 0 && !strchr("[,:", t[i - 1]) && !json_space(t[i - 1]))
			continue;
		for (size_t w = 0; w < 3; w++) {
			size_t n = strlen(words[w]);
			if (len - i < n || memcmp(t + i, words[w], n) ||
			    (i + n < len && !strchr(",]}", t[i + n]) && !json_space(t[i + n])))
				continue;
			if (!c && !(c = malloc(len)))
				return ckpt_error_nomem();
			if (!*out) {
				memcpy(c, t, len);
				*first = i;
			}
			*out = c;
			memset(c + i, ' ', n);
			c[i + (w == 0)] = '0';
			if (w == 0)
				c[i] = '-';
			i += n - 1;
			break;
		}
	}
	return 0;
}

int handler_json_parse(cJSON **out, const char *text, size_t len, const char *what)
{
	const char *nul = memchr(text, 0, len), *end = NULL, *why = "invalid JSON";
	char *blanked = NULL;
	cJSON *j = NULL;
	size_t off = 0, line = 1, col = 1;
	int rc;

	if (out)
		*out = NULL;
	if (!nul && (off = utf8_scan(text, len)) < len) {
		why = "invalid JSON (not UTF-8)";
		goto bad;
	}
	if (!nul && (rc = blank_nonfinite(&blanked, &off, text, len)) < 0)
		return rc;
	if (blanked && out) { /* the caller reads values: no stand-in zeros */
		why = "NaN and Infinity are not allowed here";
		goto bad;
	}
	if (blanked)
		text = blanked; /* same length, same offsets */
	if (nul) {
		off = (size_t)(nul - text);
		why = "invalid JSON (a NUL byte)";
	} else if (!(j = cJSON_ParseWithLengthOpts(text, len, &end, 0))) {
		off = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
		if (off >= len)
			why = "invalid JSON (unexpected end)";
	} else {
		for (off = (size_t)(end - text); off < len && json_space(text[off]); off++)
			;
		if (off < len)
			why = "invalid JSON (text after the value)";
		else if (strict_scan(&off, text, len, &why) == 0)
			off = len;
		else
			off = off < len ? off : len - 1; /* cut short: point at the end */
		if (off == len) {
			if (out)
				*out = j;
			else
				cJSON_Delete(j);
			free(blanked);
			return 0;
		}
		cJSON_Delete(j);
	}
bad:
	for (size_t i = 0; i < off && i < len; i++) {
		if (text[i] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	free(blanked);
	return ckpt_error_set(CKPT_EINVAL, "%s:%zu:%zu: %s", what, line, col, why);
}

void handler_names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(names[i]);
		names[i] = NULL;
	}
}

int item_dir_list(char **names, size_t max, size_t *n, int dirfd, const char *what)
{
	struct dirent *e;
	DIR *d;
	int rc = item_opendir(&d, dirfd, what);

	*n = 0;
	if (rc)
		return rc;
	while (rc == 0 && (e = readdir(d))) {
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			rc = ckpt_error_errno(CKPT_EIO, errno, "stat %s/%s", what, e->d_name);
		else if (!S_ISREG(st.st_mode))
			rc = ckpt_error_set(
			    CKPT_EINVAL, "%s/%s: not a regular file (this item holds files only)",
			    what, e->d_name);
		else if (*n < max && !(names[*n] = strdup(e->d_name)))
			rc = ckpt_error_nomem();
		if (rc == 0)
			(*n)++;
	}
	closedir(d);
	if (rc) {
		handler_names_free(names, *n < max ? *n : max);
		*n = 0;
	}
	return rc;
}

int item_dir_one_file(int dirfd, const char *what, const char *kind)
{
	char *names[2] = {NULL, NULL};
	size_t n = 0;
	int rc = item_dir_list(names, 2, &n, dirfd, what);

	if (rc == 0 && n != 1)
		rc = ckpt_error_set(CKPT_EINVAL, "%s: %s holds one file; found %zu%s%s%s%s%s", what,
				    kind, n, n ? " (" : "", n ? names[0] : "", n > 1 ? ", " : "",
				    n > 1 ? names[1] : "",
				    n > 2 ? ", ...)"
				    : n	  ? ")"
					  : "");
	handler_names_free(names, n < 2 ? n : 2);
	return rc;
}

int item_flat_check(const char *name, const char *what)
{
	if (strchr(name, '/'))
		return ckpt_error_set(CKPT_EINVAL,
				      "%s: this item holds files only, not directories", what);
	return 0;
}
