/*
 * safetensors.c — the safetensors format: parsing, an item seen as a file,
 * export and import (ckpt/safetensors.h; decisions in docs/convert.md).
 *
 * The file view (struct ckpt_safetensors) is a table of entries sorted by
 * their place in the file; a read finds the first entry it overlaps by
 * binary search and reads each overlapping leaf through its ckpt_leaf (the
 * leaf's .npy view, skipping the .npy header). Leaves are opened on first
 * need under the view's lock; reads themselves take no lock.
 *
 * Invariants:
 *   1. The entries tile [hdr_size, size) in order: e[0].begin == hdr_size,
 *      e[i].end == e[i+1].begin, e[n-1].end == size (checked by assert in
 *      layout()).
 *   2. hdr_size is a multiple of 8 and hdr[8..hdr_size) is the JSON header
 *      followed by spaces, as the reference writer pads it.
 *   3. A parsed header's tensors tile [0, data_len) exactly (parse checks).
 */
#include <assert.h>
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/pytree.h"
#include "ckpt/safetensors.h"
#include "bytes.h"
#include "error_private.h"
#include "pytree_private.h"
#include "safetensors_private.h"
#include "fsutil.h"
#include "root_private.h"
#include "step_private.h"

#define COPY_BUF (4u << 20)
#define LEFT_OUT_KEY "ckpt.left_out"
#define ORIGIN_KEY "safetensors_metadata"

/* Safetensors dtypes in the reference's enum order (the sort rank). */
static const struct {
	ckpt_dtype dt;
	const char *name;
} st_dtypes[] = {
	{CKPT_DTYPE_BOOL, "BOOL"},	    {CKPT_DTYPE_UINT8, "U8"},
	{CKPT_DTYPE_INT8, "I8"},	    {CKPT_DTYPE_FLOAT8_E5M2, "F8_E5M2"},
	{CKPT_DTYPE_FLOAT8_E4M3FN, "F8_E4M3"}, {CKPT_DTYPE_INT16, "I16"},
	{CKPT_DTYPE_UINT16, "U16"},	    {CKPT_DTYPE_FLOAT16, "F16"},
	{CKPT_DTYPE_BFLOAT16, "BF16"},	    {CKPT_DTYPE_INT32, "I32"},
	{CKPT_DTYPE_UINT32, "U32"},	    {CKPT_DTYPE_FLOAT32, "F32"},
	{CKPT_DTYPE_FLOAT64, "F64"},	    {CKPT_DTYPE_INT64, "I64"},
	{CKPT_DTYPE_UINT64, "U64"},
};
#define N_ST_DTYPES (sizeof(st_dtypes) / sizeof(st_dtypes[0]))

/* Valid safetensors dtypes libckpt has no type for. */
static const char *const st_unsupported[] = {"C64", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2"};

const char *ckpt_safetensors_dtype_name(ckpt_dtype dt)
{
	for (size_t i = 0; i < N_ST_DTYPES; i++)
		if (st_dtypes[i].dt == dt)
			return st_dtypes[i].name;
	return NULL;
}

static int dtype_rank(ckpt_dtype dt)
{
	for (size_t i = 0; i < N_ST_DTYPES; i++)
		if (st_dtypes[i].dt == dt)
			return (int)i;
	return -1;
}

static int dtype_parse(ckpt_dtype *out, const char *name, const char *tensor)
{
	for (size_t i = 0; i < N_ST_DTYPES; i++)
		if (!strcmp(st_dtypes[i].name, name)) {
			*out = st_dtypes[i].dt;
			return 0;
		}
	for (size_t i = 0; i < sizeof(st_unsupported) / sizeof(st_unsupported[0]); i++)
		if (!strcmp(st_unsupported[i], name))
			return ckpt_error_set(CKPT_EUNSUPPORTED, "tensor '%s': dtype %s is not supported",
					      tensor, name);
	return ckpt_error_set(CKPT_EINVAL, "tensor '%s': unknown dtype '%.32s'", tensor, name);
}

/* ---- parsing ---- */

int ckpt_safetensors_header_size(uint64_t *out, const void *buf, size_t len)
{
	if (len < 8)
		return ckpt_error_set(CKPT_EINVAL, "safetensors: truncated (%zu bytes)", len);
	uint64_t n = ckpt_get_le64(buf);
	if (n == 0 || n > CKPT_SAFETENSORS_MAX_HEADER)
		return ckpt_error_set(CKPT_EINVAL,
				      "safetensors: header length %" PRIu64
				      " (must be 1 to %u bytes)",
				      n, CKPT_SAFETENSORS_MAX_HEADER);
	*out = 8 + n;
	return 0;
}

/* Valid UTF-8 without NUL (cJSON would stop at a NUL). */
static int utf8_ok(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned c = s[i];
		size_t k = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : 9;
		if (c == 0 || k == 9 || (k == 1 && c < 0xC2) || i + k >= n + (k ? 0 : 1))
			return 0;
		uint32_t cp = k ? c & (0x3Fu >> k) : c;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xC0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + j] & 0x3F);
		}
		if ((k == 2 && (cp < 0x800 || (cp >= 0xD800 && cp < 0xE000))) ||
		    (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
			return 0;
		i += k + 1;
	}
	return 1;
}

/* A JSON number that is a non-negative integer a double holds exactly. */
static int json_u64(uint64_t *out, const cJSON *v)
{
	if (!cJSON_IsNumber(v))
		return 0;
	double d = v->valuedouble;
	if (!(d >= 0 && d <= 9007199254740992.0) || floor(d) != d)
		return 0;
	*out = (uint64_t)d;
	return 1;
}

static int parse_tensor(ckpt_safetensors_tensor *t, const cJSON *o)
{
	const char *name = o->string;
	const cJSON *dt = cJSON_GetObjectItemCaseSensitive(o, "dtype");
	const cJSON *sh = cJSON_GetObjectItemCaseSensitive(o, "shape");
	const cJSON *off = cJSON_GetObjectItemCaseSensitive(o, "data_offsets");
	uint64_t nel = 1, v;
	int rc;

	if (!cJSON_IsObject(o) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off))
		return ckpt_error_set(CKPT_EINVAL,
				      "tensor '%s': not an object with dtype, shape and data_offsets",
				      name);
	if ((rc = dtype_parse(&t->dtype, dt->valuestring, name)))
		return rc;
	int nd = cJSON_GetArraySize(sh);
	if (nd > CKPT_TREE_MAX_NDIM)
		return ckpt_error_set(CKPT_EINVAL, "tensor '%s': %d dimensions (at most %d)", name,
				      nd, CKPT_TREE_MAX_NDIM);
	t->ndim = (unsigned)nd;
	for (int i = 0; i < nd; i++) {
		if (!json_u64(&v, cJSON_GetArrayItem(sh, i)))
			return ckpt_error_set(CKPT_EINVAL, "tensor '%s': shape[%d] is not a size",
					      name, i);
		t->shape[i] = v;
		if (v && nel > UINT64_MAX / v)
			return ckpt_error_set(CKPT_EINVAL, "tensor '%s': shape overflows", name);
		nel *= v;
	}
	size_t esz = ckpt_dtype_size(t->dtype);
	if (nel > UINT64_MAX / esz)
		return ckpt_error_set(CKPT_EINVAL, "tensor '%s': shape overflows", name);
	if (cJSON_GetArraySize(off) != 2 || !json_u64(&t->begin, cJSON_GetArrayItem(off, 0)) ||
	    !json_u64(&t->end, cJSON_GetArrayItem(off, 1)) || t->begin > t->end)
		return ckpt_error_set(CKPT_EINVAL,
				      "tensor '%s': data_offsets is not [begin, end] with begin <= end",
				      name);
	if (t->end - t->begin != nel * esz)
		return ckpt_error_set(CKPT_EINVAL,
				      "tensor '%s': data_offsets span %" PRIu64
				      " bytes but dtype and shape need %" PRIu64,
				      name, t->end - t->begin, nel * esz);
	if (!(t->name = strdup(name)))
		return ckpt_error_nomem();
	return 0;
}

static int metadata_ok(const cJSON *m)
{
	if (!cJSON_IsObject(m))
		return 0;
	for (const cJSON *c = m->child; c; c = c->next)
		if (!cJSON_IsString(c))
			return 0;
	return 1;
}

static int cmp_name_idx(const void *a, const void *b, void *ts)
{
	const ckpt_safetensors_tensor *t = ts;
	return strcmp(t[*(const size_t *)a].name, t[*(const size_t *)b].name);
}

static int cmp_off_idx(const void *a, const void *b, void *ts)
{
	const ckpt_safetensors_tensor *x = (const ckpt_safetensors_tensor *)ts + *(const size_t *)a;
	const ckpt_safetensors_tensor *y = (const ckpt_safetensors_tensor *)ts + *(const size_t *)b;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	return x->end < y->end ? -1 : x->end > y->end;
}

/* Names unique, tensors tiling [0, data_len) (invariant 3). */
static int check_layout(const ckpt_safetensors_header *h)
{
	size_t *ix = malloc((h->ntensors + 1) * sizeof(*ix));
	uint64_t at = 0;
	int rc = 0;

	if (!ix)
		return ckpt_error_nomem();
	for (size_t i = 0; i < h->ntensors; i++)
		ix[i] = i;
	qsort_r(ix, h->ntensors, sizeof(*ix), cmp_name_idx, h->tensors);
	for (size_t i = 1; i < h->ntensors && rc == 0; i++)
		if (!strcmp(h->tensors[ix[i]].name, h->tensors[ix[i - 1]].name))
			rc = ckpt_error_set(CKPT_EINVAL, "tensor '%s' is named twice",
					    h->tensors[ix[i]].name);
	qsort_r(ix, h->ntensors, sizeof(*ix), cmp_off_idx, h->tensors);
	for (size_t i = 0; i < h->ntensors && rc == 0; i++) {
		const ckpt_safetensors_tensor *t = &h->tensors[ix[i]];
		if (t->begin < at)
			rc = ckpt_error_set(CKPT_EINVAL, "tensor '%s': data overlaps tensor '%s'",
					    t->name, h->tensors[ix[i - 1]].name);
		else if (t->begin > at)
			rc = ckpt_error_set(CKPT_EINVAL,
					    "tensor '%s': a gap of %" PRIu64 " bytes before its data",
					    t->name, t->begin - at);
		at = t->end;
	}
	if (rc == 0 && at != h->data_len)
		rc = ckpt_error_set(CKPT_EINVAL,
				    "safetensors: the tensors cover %" PRIu64
				    " bytes of data but the file holds %" PRIu64,
				    at, h->data_len);
	free(ix);
	return rc;
}

int ckpt_safetensors_parse(ckpt_safetensors_header **out, const void *buf, size_t len,
			   uint64_t file_size)
{
	const unsigned char *p = buf;
	ckpt_safetensors_header *h = NULL;
	cJSON *doc = NULL;
	const char *end = NULL;
	uint64_t hsz = 0;
	int rc;

	*out = NULL;
	if ((rc = ckpt_safetensors_header_size(&hsz, buf, len)))
		return rc;
	if (hsz > file_size)
		return ckpt_error_set(CKPT_EINVAL,
				      "safetensors: header of %" PRIu64 " bytes in a file of %" PRIu64,
				      hsz - 8, file_size);
	if (hsz > len)
		return ckpt_error_set(CKPT_EINVAL, "safetensors: header truncated");
	const char *js = (const char *)p + 8;
	size_t jlen = (size_t)(hsz - 8);
	if (!utf8_ok((const unsigned char *)js, jlen))
		return ckpt_error_set(CKPT_EINVAL, "safetensors: header is not UTF-8 text");
	if (js[0] != '{')
		return ckpt_error_set(CKPT_EINVAL, "safetensors: header does not start with '{'");
	doc = cJSON_ParseWithLengthOpts(js, jlen, &end, 0);
	if (!doc || !cJSON_IsObject(doc)) {
		rc = ckpt_error_set(CKPT_EINVAL, "safetensors: header is not a JSON object");
		goto done;
	}
	for (const char *q = end; q < js + jlen; q++)
		if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
			rc = ckpt_error_set(CKPT_EINVAL,
					    "safetensors: bytes after the header's JSON object");
			goto done;
		}
	if (!(h = calloc(1, sizeof(*h)))) {
		rc = ckpt_error_nomem();
		goto done;
	}
	h->data_start = hsz;
	h->data_len = file_size - hsz;
	size_t n = (size_t)cJSON_GetArraySize(doc);
	if (!(h->tensors = calloc(n + 1, sizeof(*h->tensors)))) {
		rc = ckpt_error_nomem();
		goto done;
	}
	for (const cJSON *c = doc->child; c && rc == 0; c = c->next) {
		if (strcmp(c->string, "__metadata__") == 0) {
			if (h->metadata || !metadata_ok(c))
				rc = ckpt_error_set(CKPT_EINVAL,
						    "safetensors: __metadata__ is not one object "
						    "of strings");
			else if (!(h->metadata = cJSON_PrintUnformatted(c)))
				rc = ckpt_error_nomem();
			continue;
		}
		rc = parse_tensor(&h->tensors[h->ntensors], c);
		if (h->tensors[h->ntensors].name)
			h->ntensors++;
	}
	if (rc == 0)
		rc = check_layout(h);
	if (rc == 0) {
		*out = h;
		h = NULL;
	}
done:
	cJSON_Delete(doc);
	ckpt_safetensors_header_free(h);
	return rc;
}

void ckpt_safetensors_header_free(ckpt_safetensors_header *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->ntensors; i++)
		free(h->tensors[i].name);
	free(h->tensors);
	cJSON_free(h->metadata);
	free(h);
}

int ckpt_safetensors_read_header(ckpt_safetensors_header **out, int fd, const char *what)
{
	unsigned char first[8];
	struct stat st;
	uint64_t hsz = 0;
	char *buf = NULL;
	int rc;

	*out = NULL;
	if (fstat(fd, &st) != 0)
		return ckpt_error_errno(CKPT_EIO, errno, "stat %s", what);
	if (!S_ISREG(st.st_mode))
		return ckpt_error_set(CKPT_EINVAL, "%s: not a regular file", what);
	if ((rc = ckpt_pread_full(fd, first, st.st_size < 8 ? (size_t)st.st_size : 8, 0,
				     what)) ||
	    (rc = ckpt_safetensors_header_size(&hsz, first, (size_t)st.st_size < 8 ? (size_t)st.st_size : 8)))
		goto done;
	if (hsz > (uint64_t)st.st_size) {
		rc = ckpt_error_set(CKPT_EINVAL, "safetensors: header of %" PRIu64
				    " bytes in a file of %" PRIu64, hsz - 8, (uint64_t)st.st_size);
		goto done;
	}
	if (!(buf = malloc((size_t)hsz))) {
		rc = ckpt_error_nomem();
		goto done;
	}
	if ((rc = ckpt_pread_full(fd, buf, (size_t)hsz, 0, what)) == 0)
		rc = ckpt_safetensors_parse(out, buf, (size_t)hsz, (uint64_t)st.st_size);
done:
	free(buf);
	return rc && rc != CKPT_ENOMEM && !strstr(ckpt_error_last(), what)
		       ? ckpt_error_wrap(rc, "%s", what)
		       : rc;
}

/* ---- names to trees ---- */

int ckpt_safetensors_tree_map(ckpt_tree **out, const ckpt_tree ***leaf_of,
			      const ckpt_safetensors_header *h, char sep, int origin)
{
	ckpt_tree *root = NULL, *leaf = NULL;
	const ckpt_tree **map = calloc(h->ntensors + 1, sizeof(*map));
	char *cm = NULL, *comp = NULL;
	int rc = map ? ckpt_tree_new(&root, CKPT_TREE_DICT) : ckpt_error_nomem();

	for (size_t i = 0; i < h->ntensors && rc == 0; i++) {
		const ckpt_safetensors_tensor *t = &h->tensors[i];
		ckpt_tree *cur = root;
		const char *s = t->name;
		for (;;) {
			const char *e = sep ? strchr(s, sep) : NULL;
			size_t n = e ? (size_t)(e - s) : strlen(s);
			free(comp);
			if (!(comp = strndup(s, n))) {
				rc = ckpt_error_nomem();
				break;
			}
			if (sep && n == 0) {
				rc = ckpt_error_set(CKPT_EINVAL,
						    "tensor '%s': an empty name component (import "
						    "with another separator, or none)",
						    t->name);
				break;
			}
			ckpt_tree *c = ckpt_tree_find(cur, comp);
			if (!e) {
				if (c) {
					rc = ckpt_error_set(CKPT_EINVAL,
							    "tensor '%s' is also a prefix of another "
							    "tensor's name",
							    t->name);
					break;
				}
				if ((rc = ckpt_tree_new_array(&leaf, t->dtype, t->ndim, t->shape,
							      NULL, CKPT_TREE_COPY)) ||
				    (rc = ckpt_tree_add(cur, comp, leaf)))
					break;
				map[i] = leaf;
				break;
			}
			if (c && ckpt_tree_get_kind(c) != CKPT_TREE_DICT) {
				rc = ckpt_error_set(CKPT_EINVAL,
						    "tensor '%s': '%.*s' is also a tensor", t->name,
						    (int)(e - t->name), t->name);
				break;
			}
			if (!c) {
				if ((rc = ckpt_tree_new(&c, CKPT_TREE_DICT)) ||
				    (rc = ckpt_tree_add(cur, comp, c)))
					break;
			}
			cur = c;
			s = e + 1;
		}
	}
	if (rc == 0 && origin && !(cm = ckpt_asprintf("{\"" ORIGIN_KEY "\":%s}",
					     h->metadata ? h->metadata : "null")))
		rc = CKPT_ENOMEM;
	if (rc == 0 && origin)
		rc = ckpt_tree_set_custom_metadata(root, cm);
	free(cm);
	free(comp);
	if (rc) {
		ckpt_tree_free(root);
		free(map);
		return rc;
	}
	*out = root;
	if (leaf_of)
		*leaf_of = map;
	else
		free(map);
	return 0;
}

int ckpt_safetensors_tree(ckpt_tree **out, const ckpt_safetensors_header *h, char sep)
{
	return ckpt_safetensors_tree_map(out, NULL, h, sep, 1);
}

/* ---- writing JSON as serde_json does ---- */

struct sbuf {
	char *p;
	size_t n, cap;
	int err;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
	if (b->err)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->n + n + 1)
			cap *= 2;
		char *q = realloc(b->p, cap);
		if (!q) {
			b->err = 1;
			return;
		}
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = 0;
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

static void sb_u64(struct sbuf *b, uint64_t v)
{
	char t[24];
	sb_put(b, t, (size_t)snprintf(t, sizeof(t), "%" PRIu64, v));
}

static void sb_json(struct sbuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	sb_put(b, "\"", 1);
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		const char *esc = *c == '"' ? "\\\"" : *c == '\\' ? "\\\\" : *c == '\n' ? "\\n"
				: *c == '\t' ? "\\t" : *c == '\r' ? "\\r" : *c == '\b' ? "\\b"
				: *c == '\f' ? "\\f" : NULL;
		if (esc) {
			sb_str(b, esc);
		} else if (*c < 0x20) {
			char u[7] = {'\\', 'u', '0', '0', hex[*c >> 4], hex[*c & 15], 0};
			sb_str(b, u);
		} else {
			sb_put(b, (const char *)c, 1);
		}
	}
	sb_put(b, "\"", 1);
}

/* ---- an item as a file ---- */

struct entry {
	char *name;
	const ckpt_tree *leaf;
	int rank;
	uint64_t begin, end; /* in the file */
	ckpt_leaf *l;	     /* opened on first read: set under lock, read atomically */
	uint64_t npy_off;    /* where the data starts in the leaf's .npy view */
};

struct ckpt_safetensors {
	ckpt_step *s;
	char *item;
	char sep;
	unsigned char *hdr; /* 8-byte length, JSON, spaces (invariant 2) */
	uint64_t hdr_size, size;
	struct entry *e;
	size_t n, cap;
	char **left; /* tree paths of the leaves left out */
	size_t nleft, capleft;
	pthread_mutex_t lock;
};

static int grow(void **p, size_t *cap, size_t n, size_t esz)
{
	if (n < *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : 16;
	void *q = realloc(*p, c * esz);
	if (!q)
		return ckpt_error_nomem();
	*p = q;
	*cap = c;
	return 0;
}

int ckpt_convert_join_keys(char **out, const ckpt_tree *node, char sep)
{
	struct sbuf b = {0};
	const ckpt_tree *chain[256];
	size_t n = 0;
	for (const ckpt_tree *t = node; ckpt_tree_parent(t); t = ckpt_tree_parent(t)) {
		if (n == 256)
			return ckpt_error_set(CKPT_EUNSUPPORTED, "a leaf more than 256 levels deep");
		chain[n++] = t;
	}
	sb_put(&b, "", 0);
	while (n--) {
		sb_str(&b, ckpt_tree_key(chain[n]));
		if (n && sep)
			sb_put(&b, &sep, 1);
	}
	if (b.err) {
		free(b.p);
		return ckpt_error_nomem();
	}
	*out = b.p;
	return 0;
}

static int add_left(ckpt_safetensors *f, const char *path)
{
	int rc = grow((void **)&f->left, &f->capleft, f->nleft, sizeof(*f->left));
	if (rc == 0 && !(f->left[f->nleft] = strdup(path)))
		rc = ckpt_error_nomem();
	if (rc == 0)
		f->nleft++;
	return rc;
}

static int collect(ckpt_tree *node, const char *path, void *payload)
{
	ckpt_safetensors *f = payload;
	ckpt_tree_kind k = ckpt_tree_get_kind(node);
	int rc;

	if (ckpt_tree_is_container(node) || k == CKPT_TREE_NONE)
		return 0;
	if (k != CKPT_TREE_ARRAY || dtype_rank(ckpt_tree_dtype(node)) < 0)
		return add_left(f, path);
	if ((rc = grow((void **)&f->e, &f->cap, f->n, sizeof(*f->e))))
		return rc;
	struct entry *e = &f->e[f->n];
	memset(e, 0, sizeof(*e));
	if ((rc = ckpt_convert_join_keys(&e->name, node, f->sep)))
		return rc;
	e->leaf = node;
	e->rank = dtype_rank(ckpt_tree_dtype(node));
	f->n++;
	return 0;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	if (x->rank != y->rank)
		return y->rank - x->rank;
	return strcmp(x->name, y->name);
}

/* "__metadata__": the imported file's own, else the step and item. */
static void put_metadata(struct sbuf *b, const ckpt_safetensors *f, const ckpt_tree *root)
{
	cJSON *cm = NULL, *left = NULL;
	const cJSON *orig = NULL;
	const char *c = ckpt_tree_custom_metadata(root);
	int imported = 0, any = 0;

	if (c && (cm = cJSON_Parse(c)) && cJSON_IsObject(cm)) {
		orig = cJSON_GetObjectItemCaseSensitive(cm, ORIGIN_KEY);
		imported = cJSON_IsNull(orig) || metadata_ok(orig);
	}
	if (!imported || cJSON_IsObject(orig) || f->nleft) {
		sb_str(b, "\"__metadata__\":{");
		if (imported && cJSON_IsObject(orig)) {
			for (const cJSON *m = orig->child; m; m = m->next, any = 1) {
				sb_str(b, any ? "," : "");
				sb_json(b, m->string);
				sb_put(b, ":", 1);
				sb_json(b, m->valuestring);
			}
		} else if (!imported) {
			const char *dir = ckpt_step_dir(f->s), *sl = strrchr(dir, '/');
			sb_str(b, "\"ckpt.item\":");
			sb_json(b, f->item);
			sb_str(b, ",\"ckpt.step\":");
			sb_json(b, sl ? sl + 1 : dir);
			any = 1;
		}
		if (f->nleft && (left = cJSON_CreateArray())) {
			for (size_t i = 0; i < f->nleft; i++)
				cJSON_AddItemToArray(left, cJSON_CreateString(f->left[i]));
			char *s = cJSON_PrintUnformatted(left);
			sb_str(b, any ? "," : "");
			sb_json(b, LEFT_OUT_KEY);
			sb_put(b, ":", 1);
			if (s)
				sb_json(b, s);
			else
				b->err = 1;
			cJSON_free(s);
			cJSON_Delete(left);
		} else if (f->nleft) {
			b->err = 1;
		}
		sb_str(b, "},");
	}
	cJSON_Delete(cm);
}

/* Build the header and place the entries (invariants 1 and 2). */
static int layout(ckpt_safetensors *f, const ckpt_tree *root)
{
	struct sbuf b = {0};
	uint64_t at = 0;

	if (f->n) /* an item without arrays has no entries, and e may be NULL */
		qsort(f->e, f->n, sizeof(*f->e), cmp_entry);
	sb_put(&b, "\0\0\0\0\0\0\0\0{", 9);
	put_metadata(&b, f, root);
	for (size_t i = 0; i < f->n; i++) {
		struct entry *e = &f->e[i];
		const ckpt_tree *t = e->leaf;
		if (i && !strcmp(e->name, f->e[i - 1].name)) {
			free(b.p);
			return ckpt_error_set(CKPT_EINVAL,
					      "item %s: two leaves are both named '%s' in safetensors "
					      "(choose another separator)",
					      f->item, e->name);
		}
		sb_str(&b, i ? "," : "");
		sb_json(&b, e->name);
		sb_str(&b, ":{\"dtype\":\"");
		sb_str(&b, st_dtypes[e->rank].name);
		sb_str(&b, "\",\"shape\":[");
		for (unsigned d = 0; d < ckpt_tree_ndim(t); d++) {
			sb_str(&b, d ? "," : "");
			sb_u64(&b, ckpt_tree_shape(t)[d]);
		}
		sb_str(&b, "],\"data_offsets\":[");
		sb_u64(&b, at);
		sb_put(&b, ",", 1);
		e->begin = at;
		at += ckpt_tree_nbytes(t);
		e->end = at;
		sb_u64(&b, at);
		sb_str(&b, "]}");
	}
	if (b.n > 9 && b.p[b.n - 1] == ',') /* metadata only */
		b.n--;
	sb_put(&b, "}", 1);
	while (!b.err && b.n % 8)
		sb_put(&b, " ", 1);
	if (b.err) {
		free(b.p);
		return ckpt_error_nomem();
	}
	uint64_t jl = b.n - 8;
	for (int i = 0; i < 8; i++)
		b.p[i] = (char)(jl >> (8 * i));
	f->hdr = (unsigned char *)b.p;
	f->hdr_size = b.n;
	for (size_t i = 0; i < f->n; i++) {
		f->e[i].begin += f->hdr_size;
		f->e[i].end += f->hdr_size;
		assert(f->e[i].begin == (i ? f->e[i - 1].end : f->hdr_size)); /* invariant 1 */
	}
	f->size = f->hdr_size + at;
	return 0;
}

int ckpt_safetensors_open(ckpt_safetensors **out, ckpt_step *s, const char *item,
			  const ckpt_safetensors_options *opts)
{
	const ckpt_tree *t = NULL;
	ckpt_safetensors *f = NULL;
	int rc = ckpt_step_load_index(s);

	*out = NULL;
	if (rc) /* a step opened listed reads its index now */
		return rc;
	if (!(f = calloc(1, sizeof(*f))))
		return ckpt_error_nomem();
	pthread_mutex_init(&f->lock, NULL);
	f->s = s;
	f->sep = opts ? opts->sep : '.';
	if (!(f->item = strdup(item))) {
		rc = ckpt_error_nomem();
		goto done;
	}
	if ((rc = ckpt_step_item_tree(&t, s, item)))
		goto done;
	if ((rc = ckpt_tree_walk((ckpt_tree *)t, collect, f)) || (rc = layout(f, t)))
		goto done;
	*out = f;
	f = NULL;
done:
	ckpt_safetensors_free(f);
	return rc;
}

uint64_t ckpt_safetensors_size(const ckpt_safetensors *f)
{
	return f->size;
}

size_t ckpt_safetensors_tensor_count(const ckpt_safetensors *f)
{
	return f->n;
}

size_t ckpt_safetensors_left_out_count(const ckpt_safetensors *f)
{
	return f->nleft;
}

const char *ckpt_safetensors_header_json(const ckpt_safetensors *f)
{
	return (const char *)f->hdr + 8;
}

static int entry_open(ckpt_safetensors *f, struct entry *e)
{
	int rc = 0;
	pthread_mutex_lock(&f->lock);
	if (!e->l) {
		ckpt_leaf *l = NULL;
		rc = ckpt_leaf_open(&l, f->s, f->item, e->leaf);
		uint64_t nb = ckpt_tree_nbytes(e->leaf);
		if (rc == 0 && ckpt_leaf_file_size(l) < nb) {
			rc = ckpt_error_set(CKPT_ECORRUPT, "%s: shorter than its dtype and shape",
					    ckpt_leaf_key(l));
			ckpt_leaf_free(l);
		} else if (rc == 0) {
			e->npy_off = ckpt_leaf_file_size(l) - nb;
			__atomic_store_n(&e->l, l, __ATOMIC_RELEASE); /* after npy_off */
		}
	}
	pthread_mutex_unlock(&f->lock);
	return rc;
}

int ckpt_safetensors_pread(size_t *out_n, ckpt_safetensors *f, void *buf, size_t len, uint64_t off)
{
	unsigned char *p = buf;
	size_t done = 0;
	int rc = 0;

	*out_n = 0;
	if (off >= f->size)
		return 0;
	if (len > f->size - off)
		len = (size_t)(f->size - off);
	if (off < f->hdr_size) {
		size_t n = f->hdr_size - off < len ? (size_t)(f->hdr_size - off) : len;
		memcpy(p, f->hdr + off, n);
		done = n;
	}
	/* the first entry ending after the read position */
	size_t lo = 0, hi = f->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (f->e[mid].end <= off + done)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < f->n && done < len && rc == 0; i++) {
		struct entry *e = &f->e[i];
		uint64_t at = off + done;
		size_t n = e->end - at < len - done ? (size_t)(e->end - at) : len - done;
		size_t got = 0;
		if (n == 0)
			continue;
		if (!__atomic_load_n(&e->l, __ATOMIC_ACQUIRE) && (rc = entry_open(f, e)))
			break;
		rc = ckpt_leaf_pread(&got, e->l, p + done, n, e->npy_off + (at - e->begin));
		if (rc == 0 && got != n)
			rc = ckpt_error_set(CKPT_ECORRUPT, "%s: short read", ckpt_leaf_key(e->l));
		done += n;
	}
	if (rc == 0)
		*out_n = done;
	return rc;
}

void ckpt_safetensors_free(ckpt_safetensors *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++) {
		free(f->e[i].name);
		ckpt_leaf_free(f->e[i].l);
	}
	for (size_t i = 0; i < f->nleft; i++)
		free(f->left[i]);
	free(f->left);
	free(f->e);
	free(f->hdr);
	free(f->item);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

/* ---- export ---- */

int ckpt_convert_write_atomic(const char *path, int (*fill)(int fd, const char *tmp, void *p), void *p)
{
	char *tmp = NULL;
	char nonce[17];
	int fd = -1, rc;

	ckpt_nonce(nonce);
	if (!(tmp = ckpt_asprintf("%s.tmp-%s", path, nonce)))
		return CKPT_ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = ckpt_error_errno(CKPT_EIO, errno, "create %s", tmp);
		goto done;
	}
	if ((rc = fill(fd, tmp, p)))
		goto done;
	if (fsync(fd) != 0) {
		rc = ckpt_error_errno(CKPT_EIO, errno, "fsync %s", tmp);
		goto done;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = ckpt_error_errno(CKPT_EIO, errno, "close %s", tmp);
		goto done;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		rc = ckpt_error_errno(CKPT_EIO, errno, "rename %s to %s", tmp, path);
done:
	if (fd >= 0)
		close(fd);
	if (rc)
		unlink(tmp);
	free(tmp);
	return rc;
}

static int fill_st(int fd, const char *tmp, void *p)
{
	ckpt_safetensors *f = p;
	unsigned char *buf = malloc(COPY_BUF);
	int rc = buf ? 0 : ckpt_error_nomem();

	for (uint64_t off = 0; rc == 0 && off < f->size;) {
		size_t got = 0;
		if ((rc = ckpt_safetensors_pread(&got, f, buf, COPY_BUF, off)) == 0)
			rc = ckpt_write_full(fd, buf, got, tmp);
		off += got;
	}
	free(buf);
	return rc;
}

int ckpt_safetensors_export(ckpt_step *s, const char *item, const char *path,
			    const ckpt_safetensors_options *opts)
{
	ckpt_safetensors *f = NULL;
	int rc = ckpt_safetensors_open(&f, s, item, opts);
	if (rc == 0)
		rc = ckpt_convert_write_atomic(path, fill_st, f);
	ckpt_safetensors_free(f);
	return rc;
}

/* ---- import ---- */

struct src_ent {
	const ckpt_tree *leaf;
	uint64_t off; /* of the data in the file */
};

static int cmp_src_ent(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const struct src_ent *)a)->leaf;
	uintptr_t y = (uintptr_t)((const struct src_ent *)b)->leaf;
	return x < y ? -1 : x > y;
}

/* The bytes of a safetensors file being imported: the file (fd), or a
 * step's <item>.safetensors as the mount shows it (view, owned). */
struct import_src {
	int fd;
	ckpt_safetensors *view;
	const char *file;
	ckpt_safetensors_header *h;
	ckpt_tree *tree;
	struct src_ent *e;
	size_t n;
};

static int import_source(void *buf, size_t len, uint64_t off, const ckpt_tree *leaf,
			 const char *path, void *payload)
{
	struct import_src *is = payload;
	struct src_ent k = {.leaf = leaf}, *e = bsearch(&k, is->e, is->n, sizeof(k), cmp_src_ent);
	size_t got = 0;
	int rc;
	if (!e)
		return ckpt_error_set(CKPT_ERROR, "leaf '%s' has no tensor", path);
	if (!is->view)
		return ckpt_pread_full(is->fd, buf, len, e->off + off, is->file);
	if ((rc = ckpt_safetensors_pread(&got, is->view, buf, len, e->off + off)) == 0 &&
	    got != len)
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: short read", is->file);
	return rc;
}

static void import_clear(struct import_src *is)
{
	ckpt_tree_free(is->tree);
	free(is->e);
	ckpt_safetensors_header_free(is->h);
	ckpt_safetensors_free(is->view);
	if (is->fd >= 0)
		close(is->fd);
	memset(is, 0, sizeof(*is));
	is->fd = -1;
}

/* With is->h read: build the tree and the map from leaves to file offsets. */
static int import_index(struct import_src *is, char sep)
{
	const ckpt_tree **map = NULL;
	int rc = ckpt_safetensors_tree_map(&is->tree, &map, is->h, sep, 1);

	if (rc == 0 && !(is->e = calloc(is->h->ntensors + 1, sizeof(*is->e))))
		rc = ckpt_error_nomem();
	for (size_t i = 0; rc == 0 && i < is->h->ntensors; i++)
		is->e[is->n++] =
		    (struct src_ent){map[i], is->h->data_start + is->h->tensors[i].begin};
	if (rc == 0)
		qsort(is->e, is->n, sizeof(*is->e), cmp_src_ent);
	free(map);
	return rc;
}

/* Open (or, with fd >= 0, dup fd) and check file, then import_index. */
static int import_prepare(struct import_src *is, const char *file, int fd, char sep)
{
	int rc;

	memset(is, 0, sizeof(*is));
	is->file = file;
	is->fd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : open(file, O_RDONLY | O_CLOEXEC);
	if (is->fd < 0)
		return ckpt_error_errno(errno == ENOENT ? CKPT_ENOTFOUND : CKPT_EIO, errno,
					"open %s", file);
	if ((rc = ckpt_safetensors_read_header(&is->h, is->fd, file)) ||
	    (rc = import_index(is, sep))) {
		if (rc != CKPT_ENOMEM && !strstr(ckpt_error_last(), file))
			ckpt_error_wrap(rc, "%s", file);
		import_clear(is);
	}
	return rc;
}

/* import_prepare for the bytes of src_item's .safetensors in step s (file: for messages). */
static int import_prepare_view(struct import_src *is, const char *file, ckpt_step *s,
			       const char *src_item)
{
	int rc;

	memset(is, 0, sizeof(*is));
	is->fd = -1;
	is->file = file;
	if ((rc = ckpt_safetensors_open(&is->view, s, src_item, NULL)) ||
	    (rc = ckpt_safetensors_parse(&is->h, is->view->hdr, (size_t)is->view->hdr_size,
					 is->view->size)) ||
	    (rc = import_index(is, '.'))) {
		if (rc != CKPT_ENOMEM)
			ckpt_error_wrap(rc, "%s: copy of %s.safetensors", file, src_item);
		import_clear(is);
	}
	return rc;
}

static int import_save(ckpt_step_writer *w, const char *item, struct import_src *is)
{
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	int rc;
	sa.item = is->tree;
	if ((rc = ckpt_step_writer_add_item(w, item, CKPT_PYTREE_TYPESTR)) == 0)
		rc = ckpt_pytree_save_item(w, item, &sa, 0, import_source, is);
	return rc;
}

int ckpt_safetensors_import(const char *root, uint64_t step, const char *item, const char *file,
			    const ckpt_safetensors_options *opts,
			    const ckpt_step_writer_options *wopts)
{
	struct import_src is = {.fd = -1};
	ckpt_step_writer *w = NULL;
	int rc;

	if ((rc = ckpt_item_name_check(item)) ||
	    (rc = import_prepare(&is, file, -1, opts ? opts->sep : '.')))
		return rc;
	if ((rc = ckpt_step_writer_open(&w, root, step, wopts)) || (rc = import_save(w, item, &is)))
		goto done;
	rc = ckpt_step_writer_finalize(w);
	w = NULL;
done:
	ckpt_step_writer_abort(w);
	import_clear(&is);
	return rc;
}

/* ---- conversion sources inside steps (safetensors_private.h) ---- */

int ckpt_convert_kind(const char *name, size_t *stem_len)
{
	size_t n = strlen(name);
	static const struct {
		const char *suf;
		int kind;
	} k[] = {{".safetensors", CKPT_CONVERT_SAFETENSORS}, {".npz", CKPT_CONVERT_NPZ}};
	for (size_t i = 0; i < 2; i++) {
		size_t sl = strlen(k[i].suf);
		if (n > sl && !strcmp(name + n - sl, k[i].suf)) {
			if (stem_len)
				*stem_len = n - sl;
			return k[i].kind;
		}
	}
	return 0;
}

int ckpt_convert_check_file(const char *file, int fd, char sep)
{
	struct import_src is;
	int rc;
	switch (ckpt_convert_kind(file, NULL)) {
	case CKPT_CONVERT_SAFETENSORS:
		if ((rc = import_prepare(&is, file, fd, sep)) == 0)
			import_clear(&is);
		return rc;
	case CKPT_CONVERT_NPZ:
		return ckpt_npz_check_file(file, fd, sep);
	default:
		return ckpt_error_set(CKPT_EINVAL, "%s: neither .safetensors nor .npz", file);
	}
}

int ckpt_convert_save_view(ckpt_step_writer *w, const char *item, const char *file, ckpt_step *s,
			   const char *src_item)
{
	struct import_src is;
	int rc = import_prepare_view(&is, file, s, src_item);
	if (rc)
		return rc;
	if (w)
		rc = import_save(w, item, &is);
	import_clear(&is);
	return rc;
}

int ckpt_convert_save_item(ckpt_step_writer *w, const char *item, const char *file, char sep)
{
	struct import_src is;
	int rc;
	switch (ckpt_convert_kind(file, NULL)) {
	case CKPT_CONVERT_SAFETENSORS:
		if ((rc = import_prepare(&is, file, -1, sep)) == 0)
			rc = import_save(w, item, &is);
		import_clear(&is);
		return rc;
	case CKPT_CONVERT_NPZ:
		return ckpt_npz_save_item(w, item, file, sep);
	default:
		return ckpt_error_set(CKPT_EINVAL, "%s: neither .safetensors nor .npz", file);
	}
}
