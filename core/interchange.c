/*
 * interchange.c — steps to and from plain directories (DESIGN section 4).
 *
 * Reading an item directory: with <item>/_METADATA the structure and kinds
 * come from it and every leaf file must agree (dtype and shape from the .npy
 * header; scalars parse as their kind); files it does not name are refused.
 * Without it: directories are dicts, "*.npy" files arrays, other files
 * scalars when ckpt_scalar_parse() guesses one, else strings; names are
 * unescaped (ckpt_key_unescape); names starting with '_' are reserved and
 * skipped.
 *
 * Saving (ckpt_interchange_save): every item is read and validated first
 * with its arrays metadata-only (only .npy headers and file sizes are read);
 * then the step is written, each .npy streamed from its file in slices
 * (big-endian data converted slice by slice; Fortran-order data needs the
 * whole array in memory). Items whose handler is not a PyTree/Standard
 * handler are stored file by file as raw values "<item>/<relative path>".
 *
 * Restoring writes _CHECKPOINT_METADATA, each item's _METADATA and every
 * leaf through the leaf view (ckpt_leaf_pread), so files are byte-identical
 * to what the mount serves; memory stays bounded by one copy buffer.
 *
 * Invariants:
 *   1. ckpt_interchange_save opens the step writer only after every file of
 *      every item passed validation; later failures abort the writer, so no
 *      step or temporary directory is left behind.
 *   2. A streamed .npy file is re-checked while read: a file that shrank
 *      since validation is an error, never short data.
 */
#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/interchange.h"
#include "ckpt/npy.h"
#include "error_private.h"
#include "pytree_private.h"
#include "step_private.h"

#define MAX_TEXT_FILE (256u << 20) /* scalar/string/metadata files read whole */
#define COPY_BUF      (1u << 20)

/* A metadata-only array leaf and the .npy file holding its data. */
struct npy_src {
	const ckpt_tree *leaf;
	char *file;
	ckpt_npy_header h;
};

struct ictx {
	int lazy;	     /* arrays metadata-only, data streamed at save */
	const char *dir;     /* item directory */
	struct npy_src *src; /* lazy arrays in tree order */
	size_t n, cap, cur;
	int fd;		      /* open file of src[cur], or -1 */
	unsigned char *whole; /* Fortran-order data of src[cur], converted */
	size_t open_idx;      /* which src fd and whole belong to */
	unsigned char *scratch;
	size_t scratch_len;
};

static void ictx_reset(struct ictx *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->src[i].file);
	free(c->src);
	if (c->fd >= 0)
		close(c->fd);
	free(c->whole);
	free(c->scratch);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

/* Parse the .npy header of `file` and check the file's size against it. */
static int npy_header(ckpt_npy_header *h, const char *file)
{
	unsigned char buf[4096], *hdr = buf;
	struct stat st;
	size_t hl = 0;
	ssize_t r;
	int rc = 0;
	int fd = open(file, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return ckpt_error_errno(errno == ENOENT ? CKPT_EINVAL : CKPT_EIO, errno, "open %s",
					file);
	r = pread(fd, buf, sizeof(buf), 0);
	if (r < 0 || fstat(fd, &st) != 0) {
		rc = ckpt_error_errno(CKPT_EIO, errno, "read %s", file);
		goto done;
	}
	rc = ckpt_npy_header_size(&hl, buf, (size_t)r);
	if (rc == 0 && hl > (uint64_t)st.st_size)
		rc = ckpt_error_set(CKPT_EINVAL, "truncated: header needs %zu bytes, file has %lld",
				    hl, (long long)st.st_size);
	if (rc == 0 && hl > (size_t)r) { /* a long header (up to 1 MiB) */
		if (!(hdr = malloc(hl))) {
			rc = ckpt_error_nomem();
			goto done;
		}
		r = pread(fd, hdr, hl, 0);
		if (r < 0) {
			rc = ckpt_error_errno(CKPT_EIO, errno, "read %s", file);
			goto done;
		}
	}
	if (rc == 0)
		rc = ckpt_npy_parse_header(h, hdr, (size_t)r);
	if (rc) {
		ckpt_error_wrap(rc, "%s", file);
		goto done;
	}
	if ((uint64_t)st.st_size != h->header_len + h->data_len)
		rc = ckpt_error_set(CKPT_EINVAL, "%s: file has %lld bytes, its header says %llu",
				    file, (long long)st.st_size,
				    (unsigned long long)(h->header_len + h->data_len));
done:
	if (hdr != buf)
		free(hdr);
	close(fd);
	return rc;
}

/* An array leaf from file: metadata-only (recorded in c) or with its data. */
static int read_array(ckpt_tree **out, struct ictx *c, const char *file, const ckpt_tree *meta)
{
	ckpt_npy_header h;
	void *data = NULL;
	int rc = c->lazy ? npy_header(&h, file) : ckpt_npy_read_file(&h, &data, file);

	if (rc)
		return rc;
	if (meta) {
		int same = h.dtype == ckpt_tree_dtype(meta) && h.ndim == ckpt_tree_ndim(meta);
		for (unsigned d = 0; same && d < h.ndim; d++)
			same = h.shape[d] == ckpt_tree_shape(meta)[d];
		if (!same) {
			free(data);
			return ckpt_error_set(
			    CKPT_EINVAL,
			    "%s: dtype %s with %u dimensions disagrees with "
			    "_METADATA (dtype %s, shape of %u dimensions%s)",
			    file, ckpt_dtype_name(h.dtype), h.ndim,
			    ckpt_dtype_name(ckpt_tree_dtype(meta)), ckpt_tree_ndim(meta),
			    h.ndim == ckpt_tree_ndim(meta) ? ", sizes differ" : "");
		}
	}
	rc = ckpt_tree_new_array(out, h.dtype, h.ndim, h.shape, data,
				 data ? CKPT_TREE_OWN : CKPT_TREE_COPY);
	if (rc || !c->lazy)
		return rc;
	if (c->n == c->cap) {
		size_t ncap = c->cap ? 2 * c->cap : 16;
		struct npy_src *ns = realloc(c->src, ncap * sizeof(*ns));
		if (!ns)
			return ckpt_error_nomem();
		c->src = ns;
		c->cap = ncap;
	}
	c->src[c->n].file = strdup(file);
	if (!c->src[c->n].file)
		return ckpt_error_nomem();
	c->src[c->n].leaf = *out;
	c->src[c->n++].h = h;
	return 0;
}

/* A scalar (kind, or 0 to guess, falling back to a string) or string leaf. */
static int read_text(ckpt_tree **out, const char *file, ckpt_tree_kind kind)
{
	char *text = NULL;
	size_t len = 0;
	int rc = ckpt_fs_read_file(&text, &len, file, MAX_TEXT_FILE);

	if (rc)
		return rc == CKPT_ENOTFOUND ? CKPT_EINVAL : rc;
	if (kind == CKPT_TREE_STRING) {
		rc = ckpt_tree_new_string(out, text, len);
	} else {
		rc = ckpt_scalar_parse(out, text, len, kind);
		if (rc == CKPT_EINVAL && kind == 0)
			rc = ckpt_tree_new_string(out, text, len);
		else if (rc)
			ckpt_error_wrap(rc, "%s", file);
	}
	free(text);
	return rc;
}

/* ckpt_tree_map callback: a leaf of _METADATA read from its file. */
static int leaf_from_file(ckpt_tree **out, const ckpt_tree *meta, const char *path, void *payload)
{
	struct ictx *c = payload;
	ckpt_tree_kind k = ckpt_tree_get_kind(meta);
	int is_array = k == CKPT_TREE_ARRAY;
	char *file;
	int rc;

	if (ckpt_tree_is_container(meta) || k == CKPT_TREE_NONE)
		return 0;
	file = ckpt_fs_printf("%s/%s%s", c->dir, path, is_array ? ".npy" : "");
	if (!file)
		return CKPT_ENOMEM;
	rc = is_array ? read_array(out, c, file, meta) : read_text(out, file, k);
	free(file);
	return rc;
}

static int cmp_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/* Free what scandir() returned (n entries; n < 0 means nothing). */
static void free_ents(struct dirent **ents, int n)
{
	for (int i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
}

static int skip_name(const char *n)
{
	return !strcmp(n, ".") || !strcmp(n, "..") || n[0] == '_';
}

/*
 * Walk directory `dir` against tree node t: with meta (t from _METADATA)
 * refuse files t does not name; without, build dict t from the files.
 */
static int scan_dir(ckpt_tree *t, const char *dir, struct ictx *c, int meta)
{
	struct dirent **ents = NULL;
	int n = scandir(dir, &ents, NULL, cmp_name);
	int rc = 0;

	if (n < 0)
		return ckpt_error_errno(CKPT_EINVAL, errno, "open directory %s", dir);
	for (int i = 0; rc == 0 && i < n; i++) {
		const char *name = ents[i]->d_name;
		char *path = NULL, *key = NULL;
		ckpt_tree *child = NULL;
		struct stat st;

		if (skip_name(name))
			continue;
		path = ckpt_fs_printf("%s/%s", dir, name);
		if (!path) {
			rc = CKPT_ENOMEM;
			break;
		}
		if (lstat(path, &st) != 0) {
			rc = ckpt_error_errno(CKPT_EIO, errno, "stat %s", path);
		} else if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
			rc = ckpt_error_set(CKPT_EINVAL, "%s: not a regular file or directory",
					    path);
		} else if (meta) {
			child = ckpt_tree_find_name(t, name);
			if (!child)
				rc = ckpt_error_set(
				    CKPT_EINVAL,
				    "%s is not in the item's _METADATA (remove "
				    "_METADATA to read the structure from the files)",
				    path);
			else if (S_ISDIR(st.st_mode) != ckpt_tree_is_container(child))
				rc = ckpt_error_set(CKPT_EINVAL,
						    "%s: %s, but _METADATA says otherwise", path,
						    S_ISDIR(st.st_mode) ? "a directory" : "a file");
			else if (S_ISDIR(st.st_mode))
				rc = scan_dir(child, path, c, 1);
		} else if (S_ISDIR(st.st_mode)) {
			rc = ckpt_key_unescape(&key, name, 0);
			if (rc == 0)
				rc = ckpt_tree_new(&child, CKPT_TREE_DICT);
			if (rc == 0)
				rc = scan_dir(child, path, c, 0);
		} else {
			size_t nl = strlen(name);
			int is_array = nl > 4 && !strcmp(name + nl - 4, ".npy");
			if (is_array) {
				char *stem = strndup(name, nl - 4);
				rc = stem ? ckpt_key_unescape(&key, stem, 1) : ckpt_error_nomem();
				free(stem);
				if (rc == 0)
					rc = read_array(&child, c, path, NULL);
			} else {
				rc = ckpt_key_unescape(&key, name, 0);
				if (rc == 0)
					rc = read_text(&child, path, 0);
			}
		}
		if (rc && rc != CKPT_ENOMEM && !strstr(ckpt_error_last(), dir))
			ckpt_error_wrap(rc, "%s", path);
		if (!meta && child) {
			if (rc == 0)
				rc = ckpt_tree_add(t, key, child);
			else
				ckpt_tree_free(child);
		}
		free(key);
		free(path);
	}
	free_ents(ents, n);
	return rc;
}

static int read_item(ckpt_tree **out, const char *item_dir, struct ictx *c)
{
	c->open_idx = SIZE_MAX;
	char *mfile = ckpt_fs_printf("%s/%s", item_dir, CKPT_ITEM_METADATA_NAME);
	ckpt_tree *meta = NULL, *t = NULL;
	char *json = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	c->dir = item_dir;
	if (!mfile)
		return CKPT_ENOMEM;
	rc = ckpt_fs_read_file(&json, &len, mfile, MAX_TEXT_FILE);
	if (rc == CKPT_ENOTFOUND) {
		rc = ckpt_tree_new(&t, CKPT_TREE_DICT);
		if (rc == 0)
			rc = scan_dir(t, item_dir, c, 0);
	} else if (rc == 0) {
		rc = ckpt_tree_metadata_from_json(&meta, json, len);
		if (rc)
			ckpt_error_wrap(rc, "%s", mfile);
		if (rc == 0)
			rc = ckpt_tree_map(&t, meta, leaf_from_file, c);
		if (rc == 0)
			rc = scan_dir(meta, item_dir, c, 1);
	}
	if (rc == 0) {
		*out = t;
		t = NULL;
	}
	ckpt_tree_free(t);
	ckpt_tree_free(meta);
	free(json);
	free(mfile);
	return rc;
}

int ckpt_interchange_read_item(ckpt_tree **out, const char *item_dir)
{
	struct ictx c = {.fd = -1};
	int rc = read_item(out, item_dir, &c);

	ictx_reset(&c);
	return rc;
}

/* ---- save ---- */

/* ckpt_pytree_source_fn: stream a lazy array's data from its .npy file. */
static int npy_source(void *buf, size_t len, uint64_t off, const ckpt_tree *leaf, const char *path,
		      void *payload)
{
	struct ictx *c = payload;
	struct npy_src *e;
	int rc = 0;

	/* leaves usually arrive in the order they were read: search from the last one */
	size_t i = 0;
	for (; i < c->n && c->src[(c->cur + i) % c->n].leaf != leaf; i++)
		;
	if (i == c->n)
		return ckpt_error_set(CKPT_ERROR, "leaf '%s' has no source file", path);
	c->cur = (c->cur + i) % c->n;
	e = &c->src[c->cur];
	if (c->open_idx != c->cur) {
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
		free(c->whole);
		c->whole = NULL;
		c->open_idx = c->cur;
	}
	if (e->h.fortran_order && e->h.ndim > 1) {
		if (!c->whole) {
			ckpt_npy_header h;
			void *data = NULL;
			if ((rc = ckpt_npy_read_file(&h, &data, e->file)))
				return rc;
			c->whole = data;
			if (h.data_len != e->h.data_len)
				return ckpt_error_set(CKPT_EINVAL, "%s changed while saving",
						      e->file);
		}
		memcpy(buf, c->whole + off, len);
		goto out;
	}
	if (c->fd < 0 && (c->fd = open(e->file, O_RDONLY | O_CLOEXEC)) < 0)
		return ckpt_error_errno(CKPT_EIO, errno, "open %s", e->file);
	void *dst = buf;
	if (e->h.big_endian) {
		if (c->scratch_len < len) {
			free(c->scratch);
			c->scratch_len = 0;
			if (!(c->scratch = malloc(len)))
				return ckpt_error_nomem();
			c->scratch_len = len;
		}
		dst = c->scratch;
	}
	for (size_t got = 0; got < len;) {
		ssize_t r = pread(c->fd, (char *)dst + got, len - got,
				  (off_t)(e->h.header_len + off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? ckpt_error_errno(CKPT_EIO, errno, "read %s", e->file)
				     : ckpt_error_set(CKPT_EINVAL, "%s: truncated", e->file);
		got += (size_t)r;
	}
	if (e->h.big_endian) {
		ckpt_npy_header h = e->h;
		h.ndim = 1;
		h.fortran_order = 0;
		h.nelems = len / ckpt_dtype_size(h.dtype);
		h.shape[0] = h.nelems;
		h.data_len = len;
		rc = ckpt_npy_to_c_le(buf, dst, &h);
	}
out:
	if (off + len >= e->h.data_len) { /* done with this file */
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
		free(c->whole);
		c->whole = NULL;
	}
	return rc;
}

/* Store every regular file below dir as "<prefix>/<name>" (items of other handlers). */
static int put_raw_dir(ckpt_batch *b, const char *dir, const char *prefix)
{
	struct dirent **ents = NULL;
	int n = scandir(dir, &ents, NULL, cmp_name);
	int rc = 0;

	if (n < 0)
		return ckpt_error_errno(CKPT_EINVAL, errno, "open directory %s", dir);
	for (int i = 0; rc == 0 && i < n; i++) {
		const char *name = ents[i]->d_name;
		char *path, *key, *data = NULL;
		struct stat st;
		size_t len = 0;

		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		path = ckpt_fs_printf("%s/%s", dir, name);
		key = ckpt_fs_printf("%s/%s", prefix, name);
		if (!path || !key)
			rc = CKPT_ENOMEM;
		else if (lstat(path, &st) != 0)
			rc = ckpt_error_errno(CKPT_EIO, errno, "stat %s", path);
		else if (S_ISDIR(st.st_mode))
			rc = put_raw_dir(b, path, key);
		else if ((rc = ckpt_fs_read_file(&data, &len, path, MAX_TEXT_FILE)) == 0)
			rc = ckpt_batch_put(b, key, strlen(key), data, len, NULL);
		free(data);
		free(path);
		free(key);
	}
	free_ents(ents, n);
	return rc;
}

struct item_in {
	char *name;
	char *dir;
	const char *typestr;
	int standard, pytree;
	ckpt_tree *tree;
	struct ictx c;
};

static char *json_field(const cJSON *root, const char *name)
{
	const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, name);
	return cJSON_IsObject(o) ? cJSON_PrintUnformatted(o) : NULL;
}

int ckpt_interchange_save(const char *root, uint64_t step, const char *dir,
			  const ckpt_step_writer_options *opts)
{
	ckpt_step_writer_options o = CKPT_STEP_WRITER_OPTIONS_INIT;
	struct dirent **ents = NULL;
	struct item_in *items = NULL;
	ckpt_step_writer *w = NULL;
	cJSON *cm = NULL;
	const cJSON *handlers = NULL;
	char *mfile = NULL, *json = NULL, *custom = NULL, *metrics = NULL;
	size_t nitems = 0;
	int n = -1, rc;

	if (opts)
		o = *opts;
	mfile = ckpt_fs_printf("%s/%s", dir, CKPT_STEP_METADATA_KEY);
	if (!mfile)
		return CKPT_ENOMEM;
	rc = ckpt_fs_read_file(&json, NULL, mfile, MAX_TEXT_FILE);
	if (rc == 0) {
		cm = cJSON_Parse(json);
		if (!cJSON_IsObject(cm)) {
			rc = ckpt_error_set(CKPT_EINVAL, "%s: not a JSON object", mfile);
			goto done;
		}
		handlers = cJSON_GetObjectItemCaseSensitive(cm, "item_handlers");
		if (!o.custom_metadata)
			o.custom_metadata = custom = json_field(cm, "custom_metadata");
		if (!o.metrics)
			o.metrics = metrics = json_field(cm, "metrics");
	} else if (rc != CKPT_ENOTFOUND) {
		goto done;
	}
	rc = 0;
	n = scandir(dir, &ents, NULL, cmp_name);
	if (n < 0) {
		rc = ckpt_error_errno(CKPT_EINVAL, errno, "open directory %s", dir);
		goto done;
	}
	items = calloc((size_t)n + 1, sizeof(*items));
	if (!items) {
		rc = ckpt_error_nomem();
		goto done;
	}
	/* 1. read and validate everything */
	for (int i = 0; rc == 0 && i < n; i++) {
		struct item_in *it = &items[nitems];
		const char *name = ents[i]->d_name;
		struct stat st;

		if (name[0] == '.' || name[0] == '_')
			continue;
		it->c.fd = -1;
		it->c.lazy = 1;
		it->dir = ckpt_fs_printf("%s/%s", dir, name);
		it->name = strdup(name);
		if (!it->dir || !it->name) {
			rc = ckpt_error_nomem();
			break;
		}
		if (stat(it->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
			free(it->dir);
			free(it->name);
			it->dir = it->name = NULL;
			continue; /* only directories are items */
		}
		nitems++;
		const cJSON *hs = cJSON_GetObjectItemCaseSensitive(handlers, name);
		it->typestr = cJSON_IsString(hs) ? hs->valuestring : CKPT_PYTREE_TYPESTR;
		it->standard = !strcmp(it->typestr, CKPT_STANDARD_TYPESTR);
		it->pytree = it->standard || !strcmp(it->typestr, CKPT_PYTREE_TYPESTR);
		if ((rc = ckpt_item_name_check(name)) == 0 && it->pytree)
			rc = read_item(&it->tree, it->dir, &it->c);
	}
	if (rc)
		goto done;
	/* 2. write the step */
	rc = ckpt_step_writer_open(&w, root, step, &o);
	for (size_t i = 0; rc == 0 && i < nitems; i++) {
		struct item_in *it = &items[i];
		ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;

		sa.item = it->tree;
		rc = ckpt_step_writer_add_item(w, it->name, it->typestr);
		if (rc == 0 && it->pytree)
			rc = ckpt_pytree_save_item(w, it->name, &sa, it->standard, npy_source,
						   &it->c);
		else if (rc == 0)
			rc = put_raw_dir(ckpt_step_writer_batch(w), it->dir, it->name);
	}
	if (rc == 0) {
		rc = ckpt_step_writer_finalize(w);
		w = NULL;
	}
done:
	ckpt_step_writer_abort(w);
	for (size_t i = 0; items && i < nitems; i++) {
		ckpt_tree_free(items[i].tree);
		ictx_reset(&items[i].c);
		free(items[i].name);
		free(items[i].dir);
	}
	free(items);
	free_ents(ents, n);
	cJSON_Delete(cm);
	free(custom);
	free(metrics);
	free(json);
	free(mfile);
	return rc;
}

/* ---- restore ---- */

/* Stream a leaf of the step into `file` through the leaf view. */
static int write_leaf(ckpt_step *s, const char *item, const ckpt_tree *node, const char *file)
{
	ckpt_leaf *l = NULL;
	unsigned char *buf = NULL;
	int fd = -1, rc = ckpt_leaf_open(&l, s, item, node);

	if (rc)
		return rc;
	buf = malloc(COPY_BUF);
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (!buf || fd < 0) {
		rc =
		    buf ? ckpt_error_errno(CKPT_EIO, errno, "create %s", file) : ckpt_error_nomem();
		goto done;
	}
	for (uint64_t off = 0; off < ckpt_leaf_file_size(l);) {
		size_t n = 0;
		if ((rc = ckpt_leaf_pread(&n, l, buf, COPY_BUF, off)))
			goto done;
		for (size_t w = 0; w < n;) {
			ssize_t r = write(fd, buf + w, n - w);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				rc = ckpt_error_errno(CKPT_EIO, errno, "write %s", file);
				goto done;
			}
			w += (size_t)r;
		}
		off += n;
	}
done:
	if (fd >= 0 && close(fd) != 0 && rc == 0)
		rc = ckpt_error_errno(CKPT_EIO, errno, "close %s", file);
	free(buf);
	ckpt_leaf_free(l);
	return rc;
}

struct wctx {
	ckpt_step *s;
	const char *item;
	const char *out;
	size_t skip; /* length of the subtree's own path prefix */
};

static int write_node(ckpt_tree *node, const char *path, void *payload)
{
	struct wctx *c = payload;
	const char *rel = path + c->skip;
	ckpt_tree_kind k = ckpt_tree_get_kind(node);
	char *file;
	int rc;

	if (*rel == '/')
		rel++;
	if (k == CKPT_TREE_NONE)
		return 0;
	file = ckpt_fs_printf("%s%s%s%s", c->out, *rel ? "/" : "", rel,
			      k == CKPT_TREE_ARRAY ? ".npy" : "");
	if (!file)
		return CKPT_ENOMEM;
	rc = ckpt_tree_is_container(node) ? ckpt_fs_mkdir_p(file)
					  : write_leaf(c->s, c->item, node, file);
	free(file);
	return rc;
}

/* Items without _METADATA: every key under "<item>/" becomes a file. */
struct raw_ctx {
	ckpt_step *s;
	const char *item;
	const char *out;
};

/* A relative path of non-empty components other than "." and "..". */
static int safe_relpath(const char *p, size_t len)
{
	size_t start = 0;

	if (memchr(p, '\0', len))
		return 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && p[i] != '/')
			continue;
		size_t n = i - start;
		if (n == 0 || (n == 1 && p[start] == '.') ||
		    (n == 2 && p[start] == '.' && p[start + 1] == '.'))
			return 0;
		start = i + 1;
	}
	return 1;
}

static int write_raw_key(const void *name, size_t len, int is_prefix, void *payload)
{
	struct raw_ctx *c = payload;
	char *key = ckpt_fs_printf("%s/%.*s", c->item, (int)len, (const char *)name);
	char *file = ckpt_fs_printf("%s/%.*s", c->out, (int)len, (const char *)name);
	void *val = NULL;
	size_t vlen = 0;
	int rc;

	(void)is_prefix;
	if (!key || !file) {
		rc = CKPT_ENOMEM;
		goto done;
	}
	if (!safe_relpath(name, len)) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "key %s cannot be a file name", key);
		goto done;
	}
	char *slash = strrchr(file, '/');
	*slash = '\0';
	rc = ckpt_fs_mkdir_p(file);
	*slash = '/';
	if (rc == 0)
		rc = ckpt_store_get(&val, &vlen, ckpt_step_store(c->s), key, strlen(key));
	if (rc == 0)
		rc = ckpt_fs_write_file(file, val, vlen);
done:
	free(val);
	free(key);
	free(file);
	return rc;
}

static int restore_item(ckpt_step *s, const char *item, const char *path, const char *out)
{
	const char *json = NULL;
	const ckpt_tree *meta = NULL;
	ckpt_tree *node = NULL;
	char *mfile = NULL, *prefix = NULL;
	size_t idx;
	int rc = ckpt_step_item_find(&idx, s, item);

	if (rc)
		return rc;
	rc = ckpt_step_item_metadata_json(&json, s, item);

	if (rc == CKPT_ENOTFOUND && !path) {
		struct raw_ctx rc_ = {s, item, out};
		prefix = ckpt_fs_printf("%s/", item);
		if (!prefix)
			return CKPT_ENOMEM;
		rc = ckpt_fs_mkdir_p(out);
		if (rc == 0)
			rc = ckpt_store_list(ckpt_step_store(s), prefix, strlen(prefix), -1,
					     write_raw_key, &rc_);
		free(prefix);
		return rc;
	}
	if (rc == 0)
		rc = ckpt_step_item_tree(&meta, s, item);
	if (rc == 0)
		rc = ckpt_tree_lookup(&node, meta, path ? path : "");
	if (rc)
		return rc;
	if (!ckpt_tree_is_container(node)) { /* one leaf: out/<name> */
		if (ckpt_tree_get_kind(node) == CKPT_TREE_NONE)
			return ckpt_error_set(
			    CKPT_EINVAL, "%s/%s is None: there is no file to write", item, path);
		mfile = ckpt_fs_printf("%s/%s", out, ckpt_tree_name(node));
		rc = mfile ? ckpt_fs_mkdir_p(out) : CKPT_ENOMEM;
		if (rc == 0)
			rc = write_leaf(s, item, node, mfile);
		free(mfile);
		return rc;
	}
	char *own = NULL;
	rc = ckpt_tree_path(&own, node);
	if (rc)
		return rc;
	struct wctx wc = {s, item, out, strlen(own)};
	free(own);
	rc = ckpt_fs_mkdir_p(out);
	if (rc == 0 && node == meta) {
		mfile = ckpt_fs_printf("%s/%s", out, CKPT_ITEM_METADATA_NAME);
		rc = mfile ? ckpt_fs_write_file(mfile, json, strlen(json)) : CKPT_ENOMEM;
		free(mfile);
	}
	if (rc == 0)
		rc = ckpt_tree_walk(node, write_node, &wc);
	return rc;
}

int ckpt_interchange_restore(ckpt_step *s, const char *item, const char *path, const char *out_dir)
{
	char *file;
	int rc;

	if (item)
		return restore_item(s, item, path, out_dir);
	rc = ckpt_fs_mkdir_p(out_dir);
	if (rc)
		return rc;
	file = ckpt_fs_printf("%s/%s", out_dir, CKPT_STEP_METADATA_KEY);
	rc = file ? ckpt_fs_write_file(file, ckpt_step_metadata_json(s),
				       strlen(ckpt_step_metadata_json(s)))
		  : CKPT_ENOMEM;
	free(file);
	for (size_t i = 0; rc == 0 && i < ckpt_step_item_count(s); i++) {
		const char *name = ckpt_step_item_name(s, i);
		char *sub;
		if (ckpt_item_name_check(name) != 0)
			return ckpt_error_wrap(CKPT_ECORRUPT, "step %s", ckpt_step_dir(s));
		sub = ckpt_fs_printf("%s/%s", out_dir, name);
		rc = sub ? restore_item(s, name, NULL, sub) : CKPT_ENOMEM;
		free(sub);
	}
	return rc;
}
