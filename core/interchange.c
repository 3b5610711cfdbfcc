/*
 * interchange.c — steps to and from plain directories (docs/api.md,
 * "Interchange directories").
 *
 * Reading an item directory: with <item>/_METADATA the structure and kinds
 * come from it and every leaf file must agree (dtype and shape from the .npy
 * header; scalars parse as their kind); files it does not name are refused.
 * Without it: directories are dicts, "*.npy" files arrays, other files
 * scalars when ckpt_scalar_parse() guesses one, else strings; names are
 * unescaped (ckpt_key_unescape); names starting with '_' are reserved and
 * skipped, and so are hidden files ('.').
 *
 * Saving (ckpt_interchange_save): every item is read and validated first
 * with its arrays metadata-only (only .npy headers and file sizes are read);
 * then the step is written, each .npy streamed from its file in slices
 * (big-endian data converted slice by slice; Fortran-order data needs the
 * whole array in memory). Items whose handler is not a PyTree/Standard
 * handler are stored file by file as raw values "<item>/<relative path>".
 *
 * Finalizing a pending step (ckpt_interchange_save_pending, ckpt/pending.h)
 * reads files/ leniently (scan_lenient): the files say what exists,
 * _METADATA only hints container kinds, scalar kinds, custom metadata, None
 * leaves and empty containers; list children are renumbered. Clone stubs
 * become leaves copied from their source step's metadata and stored with
 * ckpt_batch_put_clone; little-endian C-order .npy files are offered to the
 * store whole (ckpt_batch_put_file); a clone stub of an <item>.safetensors
 * (empty path) is imported through its source step. The rules are in
 * docs/format.md, "Pending steps".
 *
 * Restoring is in interchange_restore.c.
 *
 * Invariants:
 *   1. ckpt_interchange_save opens the step writer only after every file of
 *      every item passed validation; later failures abort the writer, so no
 *      step or temporary directory is left behind.
 *   2. A streamed .npy file is re-checked while read: a file that shrank
 *      since validation is an error, never short data.
 *   3. In the lenient reading every leaf of the tree has exactly one source:
 *      its value in the tree (scalars, strings), or an entry of ictx.src (a
 *      .npy file, or a clone: source step and key), found by node address.
 */
#include <assert.h>
#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/interchange.h"
#include "ckpt/npy.h"
#include "ckpt/clone.h"
#include "ckpt/root.h"
#include "error_private.h"
#include "handler_files.h"
#include "handler_types.h"
#include "item_format.h"
#include "pytree_private.h"
#include "safetensors_private.h"
#include "step_private.h"
#include "interchange_private.h"
#include "npy_private.h"
#include "root_private.h"
#include "fsutil.h"

#define MAX_TEXT_FILE (256u << 20) /* scalar/string/metadata files read whole */
#define COPY_BUF      (1u << 20)

/* A metadata-only array leaf and the .npy file holding its data; or (ckey set)
 * a leaf whose value is cloned from key ckey of the finalized step cs. */
struct npy_src {
	const ckpt_tree *leaf;
	char *file;
	ckpt_npy_header h;
	ckpt_step *cs; /* borrowed from struct clone_steps */
	char *ckey;
};

/* Finalized steps of the root that clone stubs point at, opened once. */
struct clone_steps {
	const char *root;
	struct {
		uint64_t step;
		ckpt_step *s;
	} * v;
	size_t n;
};

struct ictx {
	int lazy;		    /* arrays metadata-only, data streamed at save */
	struct clone_steps *clones; /* lenient reading of a pending step (else NULL) */
	int by_addr;		    /* src sorted by leaf address (find_src) */
	const char *dir;	    /* item directory */
	struct npy_src *src;	    /* lazy arrays in tree order */
	size_t n, cap, cur;
	int fd;		      /* open file of src[cur], or -1 */
	unsigned char *whole; /* Fortran-order data of src[cur], converted */
	size_t open_idx;      /* which src fd and whole belong to */
	unsigned char *scratch;
	size_t scratch_len;
};

static void ictx_reset(struct ictx *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->src[i].file);
		free(c->src[i].ckey);
	}
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
	int fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	int rc;

	if (fd < 0)
		return ckpt_error_errno(errno == ENOENT ? CKPT_EINVAL : CKPT_EIO, errno, "open %s",
					file);
	rc = ckpt_npy_check_fd(h, fd, file);
	close(fd);
	return rc;
}

/* Record where the data of leaf comes from (lazy arrays, clones). */
static int add_src(struct ictx *c, const ckpt_tree *leaf, const char *file,
		   const ckpt_npy_header *h, ckpt_step *cs, const char *ckey)
{
	struct npy_src *e;

	if (c->n == c->cap) {
		size_t ncap = c->cap ? 2 * c->cap : 16;
		struct npy_src *ns = realloc(c->src, ncap * sizeof(*ns));
		if (!ns)
			return ckpt_error_nomem();
		c->src = ns;
		c->cap = ncap;
	}
	e = &c->src[c->n];
	memset(e, 0, sizeof(*e));
	e->leaf = leaf;
	e->cs = cs;
	if (h)
		e->h = *h;
	e->file = strdup(file);
	e->ckey = ckey ? strdup(ckey) : NULL;
	c->n++;
	if (!e->file || (ckey && !e->ckey))
		return ckpt_error_nomem();
	return 0;
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
	return add_src(c, *out, file, &h, NULL, NULL);
}

/* A scalar (kind, or 0 to guess, falling back to a string) or string leaf. */
static int read_text(ckpt_tree **out, const char *file, ckpt_tree_kind kind)
{
	char *text = NULL;
	size_t len = 0;
	int rc = ckpt_read_file(&text, &len, file, MAX_TEXT_FILE);

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
	file = ckpt_asprintf("%s/%s%s", c->dir, path, is_array ? ".npy" : "");
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

/* Reserved names ('_') and hidden files ('.': .DS_Store, editors' swap files; no
 * escaped key starts with '.') are not part of an item. */
static int skip_name(const char *n)
{
	return n[0] == '.' || n[0] == '_';
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
		path = ckpt_asprintf("%s/%s", dir, name);
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
	char *mfile = ckpt_asprintf("%s/%s", item_dir, CKPT_ITEM_METADATA_NAME);
	ckpt_tree *meta = NULL, *t = NULL;
	char *json = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	c->dir = item_dir;
	if (!mfile)
		return CKPT_ENOMEM;
	rc = ckpt_read_file(&json, &len, mfile, MAX_TEXT_FILE);
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

/* ---- lenient reading: a pending step's files/ (ckpt/pending.h) ---- */

static int clone_step(ckpt_step **out, struct clone_steps *cs, uint64_t step)
{
	char *dir;
	void *nv;
	int rc;

	for (size_t i = 0; i < cs->n; i++) {
		if (cs->v[i].step == step) {
			*out = cs->v[i].s;
			return 0;
		}
	}
	if (!(nv = realloc(cs->v, (cs->n + 1) * sizeof(*cs->v))))
		return ckpt_error_nomem();
	cs->v = nv;
	if (!(dir = ckpt_asprintf("%s/%" PRIu64, cs->root, step)))
		return CKPT_ENOMEM;
	rc = ckpt_step_open(out, dir, NULL);
	free(dir);
	if (rc)
		return rc;
	cs->v[cs->n].step = step;
	cs->v[cs->n++].s = *out;
	return 0;
}

static void clone_steps_free(struct clone_steps *cs)
{
	for (size_t i = 0; i < cs->n; i++)
		ckpt_step_free(cs->v[i].s);
	free(cs->v);
}

/*
 * Resolve the clone stub ref of `file`: the source step *src, the source key
 * *ckey (malloc'd) and, if out is not NULL (a PyTree item), a copy of the
 * source leaf's metadata node, which gives the kind, dtype and shape.
 */
static int resolve_clone(ckpt_tree **out, ckpt_step **src, char **ckey, struct clone_steps *cs,
			 const ckpt_clone_ref *ref, const char *file, int is_npy)
{
	const ckpt_tree *meta = NULL;
	ckpt_tree *node = NULL;
	char *path = NULL;
	int rc;

	*ckey = NULL;
	if (!ref->path[0]) /* (ckpt/clone.h) */
		return item_stub_error(file, ref);
	rc = clone_step(src, cs, ref->step);
	if (rc == 0 && out) {
		rc = ckpt_step_item_tree(&meta, *src, ref->item);
		if (rc == 0)
			rc = ckpt_tree_lookup(&node, meta, ref->path);
		if (rc == 0 &&
		    (ckpt_tree_is_container(node) || ckpt_tree_get_kind(node) == CKPT_TREE_NONE))
			rc = ckpt_error_set(CKPT_EINVAL, "not a leaf with a value");
		else if (rc == 0 && (ckpt_tree_get_kind(node) == CKPT_TREE_ARRAY) != is_npy)
			rc = ckpt_error_set(CKPT_EINVAL, "%s, but the stub's name %s in .npy",
					    is_npy ? "not an array" : "an array",
					    is_npy ? "ends" : "does not end");
		if (rc == 0)
			rc = ckpt_tree_path(&path, node);
		if (rc == 0)
			rc = ckpt_tree_clone(out, node);
	}
	if (rc == 0 && !(*ckey = ckpt_asprintf("%s/%s", ref->item, path ? path : ref->path)))
		rc = CKPT_ENOMEM;
	if (rc == 0 && !out) {
		ckpt_value_info vi;
		rc = ckpt_store_stat(&vi, ckpt_step_store(*src), *ckey, strlen(*ckey));
	}
	if (rc && rc != CKPT_ENOMEM)
		ckpt_error_wrap(rc, "%s: clone of step %" PRIu64 " %s/%s", file, ref->step,
				ref->item, ref->path);
	free(path);
	return rc;
}

/* If file (st its lstat) is a clone stub, set *ref and return 1; 0 if not. */
static int stub_at(ckpt_clone_ref *ref, const char *file, const struct stat *st)
{
	int fd, rc;

	if (!(st->st_mode & S_ISVTX))
		return 0;
	if ((fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0)
		return ckpt_error_errno(CKPT_EIO, errno, "open %s", file);
	rc = ckpt_clone_stub_read(ref, fd);
	close(fd);
	if (rc < 0 && !strstr(ckpt_error_last(), file))
		ckpt_error_wrap(rc, "%s", file);
	return rc;
}

/* A leaf of files/: clone stub, .npy array or text (hint: _METADATA's kind, or 0). */
static int lenient_leaf(ckpt_tree **out, struct ictx *c, const char *file, const struct stat *st,
			int is_npy, ckpt_tree_kind hint)
{
	ckpt_clone_ref ref = {0};
	int rc = stub_at(&ref, file, st);

	if (rc == 1) {
		ckpt_step *src = NULL;
		char *ckey = NULL;
		rc = resolve_clone(out, &src, &ckey, c->clones, &ref, file, is_npy);
		if (rc == 0)
			rc = add_src(c, *out, file, NULL, src, ckey);
		free(ckey);
		ckpt_clone_ref_clear(&ref);
		return rc;
	}
	if (rc < 0)
		return rc;
	if (is_npy)
		return read_array(out, c, file, NULL);
	rc = read_text(out, file, hint);
	if (rc == CKPT_EINVAL && hint && hint != CKPT_TREE_STRING)
		rc = read_text(out, file, 0); /* the file's word */
	return rc;
}

/* A child being collected: its key, node and position among its siblings. */
struct lent {
	char *key;
	ckpt_tree *node;
	uint64_t order;
};

static int cmp_lent(const void *a, const void *b)
{
	const struct lent *x = a, *y = b;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* meta's children sorted by address, to find a child's index. */
struct midx {
	const ckpt_tree *p;
	size_t i;
};

static int cmp_midx(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const struct midx *)a)->p;
	uintptr_t y = (uintptr_t)((const struct midx *)b)->p;
	return x < y ? -1 : x > y;
}

/*
 * Directory dir as a container: the files say what exists; meta (the node
 * of _METADATA for dir, or NULL) gives the container kind, leaf kinds and
 * custom metadata, and adds its None leaves and empty containers. Dict
 * children keep _METADATA's order (new ones after, by name); list and tuple
 * children are ordered by index and renumbered.
 */
static int scan_lenient(ckpt_tree **out, const char *dir, const ckpt_tree *meta, struct ictx *c)
{
	size_t nm = meta ? ckpt_tree_count(meta) : 0, ne = 0;
	ckpt_tree_kind kind = meta ? ckpt_tree_get_kind(meta) : CKPT_TREE_DICT;
	struct dirent **ents = NULL;
	struct lent *e = NULL;
	struct midx *mi = NULL;
	unsigned char *used = NULL;
	ckpt_tree *t = NULL;
	int n = scandir(dir, &ents, NULL, cmp_name), rc = 0;

	*out = NULL;
	if (n < 0)
		return ckpt_error_errno(CKPT_EINVAL, errno, "open directory %s", dir);
	e = calloc((size_t)n + nm + 1, sizeof(*e));
	mi = calloc(nm + 1, sizeof(*mi));
	used = calloc(nm + 1, 1);
	if (!e || !mi || !used) {
		rc = ckpt_error_nomem();
		goto done;
	}
	for (size_t i = 0; i < nm; i++)
		mi[i] = (struct midx){ckpt_tree_child(meta, i), i};
	qsort(mi, nm, sizeof(*mi), cmp_midx);
	for (int i = 0; rc == 0 && i < n; i++) {
		const char *name = ents[i]->d_name;
		size_t nl = strlen(name);
		int is_npy = nl > 4 && !strcmp(name + nl - 4, ".npy");
		const ckpt_tree *mc = meta ? ckpt_tree_find_name(meta, name) : NULL;
		char *path, *stem = NULL;
		struct stat st;

		if (skip_name(name))
			continue;
		if (!(path = ckpt_asprintf("%s/%s", dir, name))) {
			rc = CKPT_ENOMEM;
			break;
		}
		if (lstat(path, &st) != 0) {
			rc = ckpt_error_errno(CKPT_EIO, errno, "stat %s", path);
		} else if (S_ISDIR(st.st_mode)) {
			rc = ckpt_key_unescape(&e[ne].key, name, 0);
			if (rc == 0)
				rc = scan_lenient(&e[ne].node, path,
						  mc && ckpt_tree_is_container(mc) ? mc : NULL, c);
		} else if (S_ISREG(st.st_mode)) {
			ckpt_tree_kind hint = mc ? ckpt_tree_get_kind(mc) : 0;
			if (hint < CKPT_TREE_INT)
				hint = 0; /* containers, None, arrays: no hint for a text file */
			stem = strndup(name, is_npy ? nl - 4 : nl);
			rc =
			    stem ? ckpt_key_unescape(&e[ne].key, stem, is_npy) : ckpt_error_nomem();
			if (rc == 0)
				rc = lenient_leaf(&e[ne].node, c, path, &st, is_npy, hint);
			if (rc == 0 && mc && !ckpt_tree_is_container(mc) &&
			    ckpt_tree_custom_metadata(mc) && !ckpt_tree_custom_metadata(e[ne].node))
				rc = ckpt_tree_set_custom_metadata(e[ne].node,
								   ckpt_tree_custom_metadata(mc));
		} else {
			rc = ckpt_error_set(CKPT_EINVAL, "%s: not a regular file or directory",
					    path);
		}
		if (rc && rc != CKPT_ENOMEM && !strstr(ckpt_error_last(), path))
			ckpt_error_wrap(rc, "%s", path);
		if (rc == 0 && mc) {
			struct midx k = {mc, 0}, *f = bsearch(&k, mi, nm, sizeof(*mi), cmp_midx);
			assert(f);
			used[f->i] = 1;
			e[ne].order = f->i;
		} else {
			e[ne].order = nm + (uint64_t)i;
		}
		if (e[ne].key || e[ne].node)
			ne++;
		free(stem);
		free(path);
	}
	/* None leaves and empty containers exist only in _METADATA, unless a file of that key
	 * (x.npy where x was None, a file where an empty dict was) now says otherwise */
	for (size_t i = 0, nf = ne; rc == 0 && i < nm; i++) {
		const ckpt_tree *mc = ckpt_tree_child(meta, i);
		size_t j = 0;
		if (used[i] || !(ckpt_tree_get_kind(mc) == CKPT_TREE_NONE ||
				 (ckpt_tree_is_container(mc) && ckpt_tree_count(mc) == 0)))
			continue;
		while (j < nf && strcmp(e[j].key, ckpt_tree_key(mc)) != 0)
			j++;
		if (j < nf) {
			e[j].order = i; /* in _METADATA's place */
			continue;
		}
		e[ne].order = i;
		e[ne].key = strdup(ckpt_tree_key(mc));
		rc = e[ne].key ? ckpt_tree_clone(&e[ne].node, mc) : ckpt_error_nomem();
		ne++;
	}
	if (rc == 0 && (kind == CKPT_TREE_LIST || kind == CKPT_TREE_TUPLE)) {
		uint64_t idx;
		for (size_t i = 0; i < ne && kind != CKPT_TREE_DICT; i++)
			if (!ckpt_step_name_parse(&idx, e[i].key))
				kind =
				    CKPT_TREE_DICT; /* a key that is no index: the files say dict */
		for (size_t i = 0; i < ne && kind != CKPT_TREE_DICT; i++)
			ckpt_step_name_parse(&e[i].order, e[i].key);
	}
	if (rc)
		goto done;
	qsort(e, ne, sizeof(*e), cmp_lent);
	rc = kind == CKPT_TREE_NAMEDTUPLE
		 ? ckpt_tree_new_namedtuple(&t, ckpt_tree_namedtuple_type(meta))
		 : ckpt_tree_new(&t, kind);
	if (rc == 0 && meta && ckpt_tree_custom_metadata(meta))
		rc = ckpt_tree_set_custom_metadata(t, ckpt_tree_custom_metadata(meta));
	for (size_t i = 0; rc == 0 && i < ne; i++) {
		int keyed = kind == CKPT_TREE_DICT || kind == CKPT_TREE_NAMEDTUPLE;
		if (!keyed && i && e[i].order == e[i - 1].order) {
			rc = ckpt_error_set(CKPT_EINVAL, "%s: two files for index %s", dir,
					    e[i].key);
			break;
		}
		rc = ckpt_tree_add(t, keyed ? e[i].key : NULL, e[i].node);
		e[i].node = NULL; /* owned by t, also on failure */
		if (rc == CKPT_EEXISTS)
			rc = ckpt_error_set(CKPT_EINVAL, "%s: two files for key '%s'", dir,
					    e[i].key);
	}
	if (rc == 0) {
		*out = t;
		t = NULL;
	}
done:
	for (size_t i = 0; e && i < ne; i++) {
		free(e[i].key);
		ckpt_tree_free(e[i].node);
	}
	ckpt_tree_free(t);
	free(e);
	free(mi);
	free(used);
	free_ents(ents, n);
	return rc;
}

/* Read an item directory of files/ leniently (see ckpt/pending.h). */
static int read_item_lenient(ckpt_tree **out, const char *item_dir, struct ictx *c)
{
	char *mfile = ckpt_asprintf("%s/%s", item_dir, CKPT_ITEM_METADATA_NAME);
	ckpt_tree *meta = NULL;
	char *json = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	c->open_idx = SIZE_MAX;
	c->dir = item_dir;
	if (!mfile)
		return CKPT_ENOMEM;
	rc = ckpt_read_file(&json, &len, mfile, MAX_TEXT_FILE);
	if (rc == 0) {
		rc = ckpt_tree_metadata_from_json(&meta, json, len);
		if (rc)
			ckpt_error_wrap(rc, "%s", mfile);
	} else if (rc == CKPT_ENOTFOUND) {
		rc = 0;
	}
	if (rc == 0)
		rc = scan_lenient(out, item_dir, meta && ckpt_tree_is_container(meta) ? meta : NULL,
				  c);
	ckpt_tree_free(meta);
	free(json);
	free(mfile);
	return rc;
}

/* ---- save ---- */

/* The source of leaf, or NULL. Leaves usually come in the order they were
 * read: search from the last one found. */
static int cmp_src(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const struct npy_src *)a)->leaf;
	uintptr_t y = (uintptr_t)((const struct npy_src *)b)->leaf;
	return x < y ? -1 : x > y;
}

static struct npy_src *find_src(struct ictx *c, const ckpt_tree *leaf)
{
	size_t i = 0;

	if (!c->n) /* no .npy at all (c->src may be NULL: not for bsearch) */
		return NULL;
	if (c->by_addr) {
		struct npy_src k = {.leaf = leaf},
			       *e = bsearch(&k, c->src, c->n, sizeof(k), cmp_src);
		if (e)
			c->cur = (size_t)(e - c->src);
		return e;
	}

	for (; i < c->n && c->src[(c->cur + i) % c->n].leaf != leaf; i++)
		;
	if (i == c->n)
		return NULL;
	c->cur = (c->cur + i) % c->n;
	return &c->src[c->cur];
}

/* ckpt_pytree_source_fn: stream a lazy array's data from its .npy file. */
static int npy_source(void *buf, size_t len, uint64_t off, const ckpt_tree *leaf, const char *path,
		      void *payload)
{
	struct ictx *c = payload;
	struct npy_src *e = find_src(c, leaf);
	int rc = 0;

	if (!e)
		return ckpt_error_set(CKPT_ERROR, "leaf '%s' has no source file", path);
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
	if (c->fd < 0 && (c->fd = open(e->file, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0)
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

/* Copy value skey of store src into key of batch b (a clone that cannot share chunks). */
static int copy_value(ckpt_batch *b, const char *key, ckpt_store *src, const char *skey)
{
	ckpt_value *v = NULL;
	ckpt_value_writer *vw = NULL;
	unsigned char *buf = malloc(COPY_BUF);
	int rc = buf ? ckpt_value_open(&v, src, skey, strlen(skey)) : ckpt_error_nomem();

	if (rc == 0)
		rc = ckpt_value_writer_open(&vw, b, key, strlen(key), NULL);
	for (uint64_t off = 0; rc == 0 && off < ckpt_value_get_info(v)->size;) {
		size_t n = 0;
		rc = ckpt_value_pread(&n, v, buf, COPY_BUF, off);
		if (rc == 0 && n == 0)
			rc = ckpt_error_set(CKPT_ECORRUPT, "%s: value shorter than its size", skey);
		if (rc == 0)
			rc = ckpt_value_writer_write(vw, buf, n);
		off += n;
	}
	if (vw && rc == 0)
		rc = ckpt_value_writer_close(vw);
	else if (vw)
		ckpt_value_writer_abort(vw);
	ckpt_value_free(v);
	free(buf);
	return rc;
}

/* Put key as a clone of e's source, sharing chunks when the store can. */
static int put_clone(ckpt_batch *b, const char *key, const struct npy_src *e)
{
	int rc = ckpt_batch_put_clone(b, key, strlen(key), ckpt_step_store(e->cs), e->ckey,
				      strlen(e->ckey));

	if (rc == CKPT_EUNSUPPORTED)
		rc = copy_value(b, key, ckpt_step_store(e->cs), e->ckey);
	return rc;
}

/* Store the file at path as key, streamed (an Array item's .npy may be large). */
static int stream_file(ckpt_batch *b, const char *key, const char *path)
{
	ckpt_value_writer *vw = NULL;
	char *buf = malloc(COPY_BUF);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK), rc = 0;
	ssize_t n;

	if (!buf)
		rc = ckpt_error_nomem();
	else if (fd < 0)
		rc = ckpt_error_errno(CKPT_EIO, errno, "open %s", path);
	else
		rc = ckpt_value_writer_open(&vw, b, key, strlen(key), NULL);
	while (rc == 0 && (n = read(fd, buf, COPY_BUF)) != 0) {
		if (n < 0 && errno != EINTR)
			rc = ckpt_error_errno(CKPT_EIO, errno, "read %s", path);
		else if (n > 0)
			rc = ckpt_value_writer_write(vw, buf, (size_t)n);
	}
	if (vw && rc == 0)
		rc = ckpt_value_writer_close(vw);
	else
		ckpt_value_writer_abort(vw);
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

/*
 * Store every regular file below dir as "<prefix>/<name>" (items of other
 * handlers). With clones (a pending step), clone stubs stand for the key
 * "<item>/<path>" of their source step.
 */
static int put_raw_dir(ckpt_batch *b, const char *dir, const char *prefix,
		       struct clone_steps *clones)
{
	struct dirent **ents = NULL;
	int n = scandir(dir, &ents, NULL, cmp_name);
	int rc = 0;

	if (n < 0)
		return ckpt_error_errno(CKPT_EINVAL, errno, "open directory %s", dir);
	for (int i = 0; rc == 0 && i < n; i++) {
		const char *name = ents[i]->d_name;
		char *path, *key, *data = NULL;
		ckpt_clone_ref ref = {0};
		struct npy_src e = {0};
		struct stat st;
		size_t len = 0;

		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		path = ckpt_asprintf("%s/%s", dir, name);
		key = ckpt_asprintf("%s/%s", prefix, name);
		if (!path || !key)
			rc = CKPT_ENOMEM;
		else if (lstat(path, &st) != 0)
			rc = ckpt_error_errno(CKPT_EIO, errno, "stat %s", path);
		else if (S_ISDIR(st.st_mode))
			rc = put_raw_dir(b, path, key, clones);
		else if (clones && (rc = stub_at(&ref, path, &st)) == 1) {
			/* A string's file is its value: shared. An array's file has a
			 * header, a scalar's a newline, its stored value lacks: refused. */
			ckpt_tree *node = NULL;
			size_t nl = strlen(name);
			rc = resolve_clone(&node, &e.cs, &e.ckey, clones, &ref, path,
					   nl > 4 && !strcmp(name + nl - 4, ".npy"));
			if (rc == 0 && ckpt_tree_get_kind(node) != CKPT_TREE_STRING)
				rc = item_stub_error(path, &ref);
			else if (rc == 0)
				rc = put_clone(b, key, &e);
			ckpt_tree_free(node);
		} else if (rc == 0 && st.st_size > COPY_BUF) {
			rc = stream_file(b, key, path);
		} else if (rc == 0 &&
			   (rc = ckpt_read_file(&data, &len, path, MAX_TEXT_FILE)) == 0) {
			rc = ckpt_batch_put(b, key, strlen(key), data, len, NULL);
		}
		ckpt_clone_ref_clear(&ref);
		free(e.ckey);
		free(data);
		free(path);
		free(key);
	}
	free_ents(ents, n);
	return rc;
}

/* Stream a lazy array leaf from its .npy file into key (any byte order and layout). */
static int stream_npy(ckpt_batch *b, const char *key, const char *path, const struct npy_src *e,
		      struct ictx *c)
{
	ckpt_value_writer *vw = NULL;
	unsigned char *buf = malloc(COPY_BUF);
	size_t esz = ckpt_dtype_size(e->h.dtype);
	size_t slice = esz ? COPY_BUF / esz * esz : COPY_BUF;
	int rc = buf ? ckpt_value_writer_open(&vw, b, key, strlen(key), NULL) : ckpt_error_nomem();

	for (uint64_t off = 0; rc == 0 && off < e->h.data_len; off += slice) {
		size_t n = e->h.data_len - off < slice ? (size_t)(e->h.data_len - off) : slice;
		rc = npy_source(buf, n, off, e->leaf, path, c);
		if (rc == 0)
			rc = ckpt_value_writer_write(vw, buf, n);
	}
	if (vw && rc == 0)
		rc = ckpt_value_writer_close(vw);
	else if (vw)
		ckpt_value_writer_abort(vw);
	free(buf);
	return rc;
}

struct pput {
	ckpt_batch *b;
	const char *item;
	int standard;
	struct ictx *c;
};

/* ckpt_tree_walk callback: store one leaf of a leniently read item. */
static int pending_leaf(ckpt_tree *node, const char *path, void *payload)
{
	struct pput *p = payload;
	ckpt_tree_kind k = ckpt_tree_get_kind(node);
	struct npy_src *e;
	char *key, txt[64];
	int rc;

	if (ckpt_tree_is_container(node) || k == CKPT_TREE_NONE)
		return 0;
	if (k == CKPT_TREE_STRING && p->standard)
		return ckpt_error_set(CKPT_EUNSUPPORTED,
				      "%s/%s: a string leaf; StandardCheckpointHandler saves only "
				      "arrays, scalars and None",
				      p->c->dir, path);
	if (!(key = ckpt_asprintf("%s/%s", p->item, path)))
		return CKPT_ENOMEM;
	e = find_src(p->c, node);
	if (e && e->ckey) {
		rc = put_clone(p->b, key, e);
	} else if (k == CKPT_TREE_ARRAY) {
		rc = e ? 0 : ckpt_error_set(CKPT_ERROR, "leaf '%s' has no source file", path);
		if (rc == 0 && !e->h.big_endian && !(e->h.fortran_order && e->h.ndim > 1)) {
			rc = ckpt_batch_put_file(p->b, key, strlen(key), AT_FDCWD, e->file,
						 e->h.header_len, e->h.data_len, NULL);
			if (rc == CKPT_EUNSUPPORTED)
				rc = stream_npy(p->b, key, path, e, p->c);
		} else if (rc == 0) {
			rc = stream_npy(p->b, key, path, e, p->c);
		}
	} else if (k == CKPT_TREE_STRING) {
		size_t len = 0;
		const char *s = ckpt_tree_string(node, &len);
		rc = ckpt_batch_put(p->b, key, strlen(key), s, len, NULL);
	} else {
		rc = ckpt_scalar_format(txt, sizeof(txt), node);
		if (rc >= 0)
			rc = ckpt_batch_put(p->b, key, strlen(key), txt, (size_t)rc, NULL);
	}
	if (rc && rc != CKPT_ENOMEM && e && !strstr(ckpt_error_last(), e->file))
		ckpt_error_wrap(rc, "%s", e->file);
	free(key);
	return rc;
}

/* Store a leniently read PyTree item: its leaves, then its _METADATA. */
static int put_pending_item(ckpt_batch *b, const char *item, const ckpt_tree *t, int standard,
			    struct ictx *c)
{
	struct pput p = {b, item, standard, c};
	char *json = NULL, *key = NULL;
	int rc;

	/* the tree's order (_METADATA's) need not be the files' order: look sources up by address
	 */
	if (c->n)
		qsort(c->src, c->n, sizeof(*c->src), cmp_src);
	c->by_addr = 1;
	c->cur = 0;
	c->open_idx = SIZE_MAX;
	rc = ckpt_tree_walk((ckpt_tree *)t, pending_leaf, &p);
	if (rc == 0)
		rc = ckpt_tree_metadata_to_json(&json, t);
	if (rc == 0 && !(key = ckpt_asprintf("%s/%s", item, CKPT_ITEM_METADATA_NAME)))
		rc = CKPT_ENOMEM;
	if (rc == 0)
		rc = ckpt_batch_put(b, key, strlen(key), json, strlen(json), NULL);
	free(key);
	free(json);
	return rc;
}

struct item_in {
	char *name;
	char *dir; /* or, with convert, the <name>.safetensors / <name>.npz file */
	const char *typestr;
	int standard, pytree, convert;
	ckpt_clone_ref view; /* with convert: a clone stub of a step's <item>.safetensors */
	ckpt_step *view_src; /* its step (borrowed from the clones) */
	ckpt_tree *tree;
	struct ictx c;
};

static char *json_field(const cJSON *root, const char *name)
{
	const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, name);
	return cJSON_IsObject(o) ? ckpt_json_print_exact(o) : NULL;
}

/* An item of another handler than PyTree/Standard: its files as its handler
 * stores them (item_format.h), before anything is written. */
static int check_raw_item(const char *typestr, const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

	if (fd < 0)
		return ckpt_error_errno(CKPT_EIO, errno, "open directory %s", dir);
	rc = item_format_check_dir(typestr, fd, dir);
	close(fd);
	return rc;
}

/*
 * A conversion file as an item: a PyTree item of a good name, a file that
 * checks or (a pending step) a clone stub of a step's <item>.safetensors
 * whose source is there (it->view, it->view_src). st: the file's stat.
 */
static int check_convert_item(struct item_in *it, const char *dir, const struct stat *st)
{
	int rc;
	if (!it->pytree)
		return ckpt_error_set(CKPT_EINVAL, "%s: a PyTree item, but %s/%s names handler %s",
				      it->dir, dir, CKPT_STEP_METADATA_KEY, it->typestr);
	if ((rc = ckpt_item_name_check(it->name)))
		return rc;
	if (!it->c.clones || (rc = stub_at(&it->view, it->dir, st)) == 0)
		return ckpt_convert_check_file(it->dir, -1, '.');
	if (rc < 0)
		return rc;
	if (it->view.path[0])
		return ckpt_error_set(CKPT_EINVAL, "%s: a clone stub stands only for a leaf",
				      it->dir);
	if (ckpt_convert_kind(it->dir, NULL) != CKPT_CONVERT_SAFETENSORS)
		return item_stub_error(it->dir, &it->view); /* a .npz */
	if ((rc = clone_step(&it->view_src, it->c.clones, it->view.step)) && rc != CKPT_ENOMEM)
		ckpt_error_wrap(rc, "%s: copy of step %" PRIu64 " %s.safetensors", it->dir,
				it->view.step, it->view.item);
	if (rc)
		return rc;
	return ckpt_convert_save_view(NULL, it->name, it->dir, it->view_src, it->view.item);
}

/*
 * Whether dir holds a directory named by the first stem bytes of name: then
 * the file <item>.safetensors beside the item <item>/ is the view that `cp -r`
 * of a mounted step copies, and the directory is the item (docs/convert.md).
 */
static int beside_dir(const char *dir, const char *name, size_t stem)
{
	struct stat st;
	char *p = ckpt_asprintf("%s/%.*s", dir, (int)stem, name);
	int r = p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
	free(p);
	return r;
}

/* The last of items[0..n) names an item no earlier one does ("m/" and "m.npz"). */
static int item_once(const struct item_in *items, size_t n, const char *dir)
{
	for (size_t i = 0; i + 1 < n; i++)
		if (!strcmp(items[i].name, items[n - 1].name))
			return ckpt_error_set(CKPT_EINVAL, "%s: item %s is given twice (%s and %s)",
					      dir, items[n - 1].name, items[i].dir,
					      items[n - 1].dir);
	return 0;
}

/*
 * Save the interchange directory dir as ROOT/<step>. With pending (the
 * directory of a pending step, dir its files/, lockfd its lock) read
 * leniently, write the store inside pending and keep files/ until the rename.
 */
static int save_dir(const char *root, uint64_t step, const char *dir,
		    const ckpt_step_writer_options *opts, const char *pending, int lockfd)
{
	ckpt_step_writer_options o = CKPT_STEP_WRITER_OPTIONS_INIT;
	struct clone_steps clones = {root, NULL, 0};
	struct dirent **ents = NULL;
	struct item_in *items = NULL;
	ckpt_step_writer *w = NULL;
	cJSON *cm = NULL;
	const cJSON *handlers = NULL;
	char *mfile = NULL, *json = NULL, *custom = NULL, *metrics = NULL;
	int64_t init_ns = 0;
	size_t nitems = 0, jlen = 0;
	int n = -1, rc;

	if (opts)
		o = *opts;
	mfile = ckpt_asprintf("%s/%s", dir, CKPT_STEP_METADATA_KEY);
	if (!mfile)
		return CKPT_ENOMEM;
	rc = ckpt_read_file(&json, &jlen, mfile, MAX_TEXT_FILE);
	if (rc == 0) {
		/* JSON as Python's json reads it (UTF-8, nothing after the value): a flipped
		 * byte that breaks a key's UTF-8 is refused, not read as another key. */
		if ((rc = handler_json_parse(NULL, json, jlen, mfile)) != 0)
			goto done;
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
		if (pending)
			init_ns = ckpt_json_top_int(json, "init_timestamp_nsecs");
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
		it->c.clones = pending ? &clones : NULL;
		it->dir = ckpt_asprintf("%s/%s", dir, name);
		it->name = strdup(name);
		if (!it->dir || !it->name) {
			free(it->dir); /* (not yet counted in nitems) */
			free(it->name);
			rc = ckpt_error_nomem();
			break;
		}
		size_t stem = 0;
		int found = stat(it->dir, &st) == 0, is_dir = found && S_ISDIR(st.st_mode);
		if (found && S_ISREG(st.st_mode) && ckpt_convert_kind(name, &stem) &&
		    !beside_dir(dir, name, stem)) {
			it->name[stem] = '\0'; /* <item>.safetensors / <item>.npz: item <item> */
			it->convert = 1;
		} else if (!is_dir) {
			free(it->dir);
			free(it->name);
			it->dir = it->name = NULL;
			continue; /* only directories and conversion files are items */
		}
		nitems++;
		if ((rc = item_once(items, nitems, dir)))
			break;
		const cJSON *hs = cJSON_GetObjectItemCaseSensitive(handlers, it->name);
		it->typestr = cJSON_IsString(hs) ? hs->valuestring : CKPT_PYTREE_TYPESTR;
		it->standard = !strcmp(it->typestr, CKPT_STANDARD_TYPESTR);
		it->pytree = handler_type_is_tree(it->typestr);
		if (it->convert)
			rc = check_convert_item(it, dir, &st);
		else if ((rc = ckpt_item_name_check(name)) == 0 && it->pytree)
			rc = pending ? read_item_lenient(&it->tree, it->dir, &it->c)
				     : read_item(&it->tree, it->dir, &it->c);
		else if (rc == 0)
			rc = check_raw_item(it->typestr, it->dir);
	}
	if (rc)
		goto done;
	/* 2. write the step */
	if (pending)
		rc = ckpt_step_writer_open_dir(&w, root, step, pending, lockfd, CKPT_PENDING_FILES,
					       &o);
	else
		rc = ckpt_step_writer_open(&w, root, step, &o);
	if (rc == 0 && init_ns > 0)
		ckpt_step_writer_set_init_time(w, init_ns);
	for (size_t i = 0; rc == 0 && i < nitems; i++) {
		struct item_in *it = &items[i];
		ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;

		sa.item = it->tree;
		if (it->convert) {
			rc = it->view_src ? ckpt_convert_save_view(w, it->name, it->dir,
								   it->view_src, it->view.item)
					  : ckpt_convert_save_item(w, it->name, it->dir, '.');
			continue;
		}
		rc = ckpt_step_writer_add_item(w, it->name, it->typestr);
		if (rc == 0 && it->pytree && pending)
			rc = put_pending_item(ckpt_step_writer_batch(w), it->name, it->tree,
					      it->standard, &it->c);
		else if (rc == 0 && it->pytree)
			rc = ckpt_pytree_save_item(w, it->name, &sa, it->standard, npy_source,
						   &it->c);
		else if (rc == 0)
			rc = put_raw_dir(ckpt_step_writer_batch(w), it->dir, it->name,
					 pending ? &clones : NULL);
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
		ckpt_clone_ref_clear(&items[i].view);
		free(items[i].name);
		free(items[i].dir);
	}
	free(items);
	clone_steps_free(&clones);
	free_ents(ents, n);
	cJSON_Delete(cm);
	free(custom);
	free(metrics);
	free(json);
	free(mfile);
	return rc;
}

int ckpt_interchange_save(const char *root, uint64_t step, const char *dir,
			  const ckpt_step_writer_options *opts)
{
	return save_dir(root, step, dir, opts, NULL, -1);
}

int ckpt_interchange_save_pending(const char *root, uint64_t step, const char *dir, int lockfd,
				  const ckpt_step_writer_options *opts)
{
	char *files = ckpt_asprintf("%s/%s", dir, CKPT_PENDING_FILES);
	int rc = files ? save_dir(root, step, files, opts, dir, lockfd) : CKPT_ENOMEM;

	free(files);
	return rc;
}
