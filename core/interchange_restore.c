/*
 * interchange_restore.c — a finalized step (or one item, subtree or leaf of
 * it) written out as an interchange directory (ckpt/interchange.h).
 *
 * Restoring writes _CHECKPOINT_METADATA, each item's _METADATA and every
 * leaf through the leaf view (ckpt_leaf_pread), so files are byte-identical
 * to what the mount serves. Items without _METADATA (other handlers) are
 * written key by key.
 *
 * Leaves are written by up to one thread per CPU (RESTORE_MAX_THREADS): the
 * walk of the tree creates the directories and lists the leaves; the
 * threads then take leaves one at a time from the list, each with its own
 * copy buffer, so decoding (zstd, zarr) uses every core and memory stays
 * bounded by one buffer per thread. The first error stops the others and
 * is the one returned, with its message.
 *
 * Invariants:
 *   1. Every file written is below out_dir: raw keys that are not safe
 *      relative paths (empty, "." or ".." components) are refused.
 *   2. A leaf's file is written only after its directory exists (the walk
 *      creates every directory before any thread starts).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt/interchange.h"
#include "error_private.h"
#include "pytree_private.h"
#include "step_private.h"
#include "root_private.h"
#include "fsutil.h"

#define COPY_BUF (1u << 20)
#define RESTORE_MAX_THREADS 8

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

/* One leaf to write: the tree node and its file (malloc'd). */
typedef struct leaf_job {
	const ckpt_tree *node;
	char *file;
} leaf_job;

struct wctx {
	ckpt_step *s;
	const char *item;
	const char *out;
	size_t skip; /* length of the subtree's own path prefix */
	leaf_job *jobs;
	size_t njobs, cap;
	/* while the threads run */
	pthread_mutex_t mu;
	size_t next; /* the next job to take */
	int rc;      /* the first error */
	char *msg;   /* its message (malloc'd) */
};

static int write_node(ckpt_tree *node, const char *path, void *payload)
{
	struct wctx *c = payload;
	const char *rel = path + c->skip;
	ckpt_tree_kind k = ckpt_tree_get_kind(node);
	char *file;
	int rc = 0;

	if (*rel == '/')
		rel++;
	if (k == CKPT_TREE_NONE)
		return 0;
	file = ckpt_asprintf("%s%s%s%s", c->out, *rel ? "/" : "", rel,
			      k == CKPT_TREE_ARRAY ? ".npy" : "");
	if (!file)
		return CKPT_ENOMEM;
	if (ckpt_tree_is_container(node)) {
		rc = ckpt_mkdir_p(file);
		free(file);
		return rc;
	}
	if (c->njobs == c->cap) {
		size_t ncap = c->cap ? 2 * c->cap : 64;
		leaf_job *nj = realloc(c->jobs, ncap * sizeof(*nj));
		if (!nj) {
			free(file);
			return ckpt_error_nomem();
		}
		c->jobs = nj;
		c->cap = ncap;
	}
	c->jobs[c->njobs++] = (leaf_job){node, file};
	return 0;
}

static void *leaf_worker(void *arg)
{
	struct wctx *c = arg;

	for (;;) {
		pthread_mutex_lock(&c->mu);
		size_t i = c->rc ? c->njobs : c->next++;
		pthread_mutex_unlock(&c->mu);
		if (i >= c->njobs)
			return NULL;
		int rc = write_leaf(c->s, c->item, c->jobs[i].node, c->jobs[i].file);
		if (rc) {
			pthread_mutex_lock(&c->mu);
			if (!c->rc) {
				c->rc = rc;
				c->msg = strdup(ckpt_error_last());
			}
			pthread_mutex_unlock(&c->mu);
		}
	}
}

/* Write every listed leaf, on up to one thread per CPU; the first error wins. */
static int write_leaves(struct wctx *c)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t n = cpus < 1 ? 1 : (size_t)cpus, started = 0;
	pthread_t th[RESTORE_MAX_THREADS];

	if (n > RESTORE_MAX_THREADS)
		n = RESTORE_MAX_THREADS;
	if (n > c->njobs)
		n = c->njobs;
	pthread_mutex_init(&c->mu, NULL);
	for (size_t i = 1; i < n; i++) /* this thread is the first worker */
		if (pthread_create(&th[started], NULL, leaf_worker, c) == 0)
			started++;
	leaf_worker(c);
	for (size_t i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&c->mu);
	assert(c->rc || c->next >= c->njobs); /* every leaf taken unless one failed */
	if (c->rc)
		return c->msg ? ckpt_error_set(c->rc, "%s", c->msg) : c->rc;
	return 0;
}

/* Items without _METADATA: every key under "<item>/" becomes a file. */
struct raw_ctx {
	ckpt_step *s;
	const char *item;
	const char *out;
};

static int write_raw_key(const void *name, size_t len, int is_prefix, void *payload)
{
	struct raw_ctx *c = payload;
	char *key = ckpt_asprintf("%s/%.*s", c->item, (int)len, (const char *)name);
	char *file = ckpt_asprintf("%s/%.*s", c->out, (int)len, (const char *)name);
	void *val = NULL;
	size_t vlen = 0;
	int rc;

	(void)is_prefix;
	if (!key || !file) {
		rc = CKPT_ENOMEM;
		goto done;
	}
	if (!ckpt_relpath_ok(name, len)) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "key %s cannot be a file name", key);
		goto done;
	}
	char *slash = strrchr(file, '/');
	*slash = '\0';
	rc = ckpt_mkdir_p(file);
	*slash = '/';
	if (rc == 0)
		rc = ckpt_store_get(&val, &vlen, ckpt_step_store(c->s), key, strlen(key));
	if (rc == 0)
		rc = ckpt_write_file(file, val, vlen);
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
		prefix = ckpt_asprintf("%s/", item);
		if (!prefix)
			return CKPT_ENOMEM;
		rc = ckpt_mkdir_p(out);
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
		mfile = ckpt_asprintf("%s/%s", out, ckpt_tree_name(node));
		rc = mfile ? ckpt_mkdir_p(out) : CKPT_ENOMEM;
		if (rc == 0)
			rc = write_leaf(s, item, node, mfile);
		free(mfile);
		return rc;
	}
	char *own = NULL;
	rc = ckpt_tree_path(&own, node);
	if (rc)
		return rc;
	struct wctx wc = {.s = s, .item = item, .out = out, .skip = strlen(own)};
	free(own);
	rc = ckpt_mkdir_p(out);
	if (rc == 0 && node == meta) {
		mfile = ckpt_asprintf("%s/%s", out, CKPT_ITEM_METADATA_NAME);
		rc = mfile ? ckpt_write_file(mfile, json, strlen(json)) : CKPT_ENOMEM;
		free(mfile);
	}
	if (rc == 0)
		rc = ckpt_tree_walk(node, write_node, &wc);
	if (rc == 0 && wc.njobs)
		rc = write_leaves(&wc);
	for (size_t i = 0; i < wc.njobs; i++)
		free(wc.jobs[i].file);
	free(wc.jobs);
	free(wc.msg);
	return rc;
}

int ckpt_interchange_restore(ckpt_step *s, const char *item, const char *path, const char *out_dir)
{
	char *file;
	int rc = ckpt_step_load_index(s);

	if (rc)
		return rc;
	if (item)
		return restore_item(s, item, path, out_dir);
	rc = ckpt_mkdir_p(out_dir);
	if (rc)
		return rc;
	file = ckpt_asprintf("%s/%s", out_dir, CKPT_STEP_METADATA_KEY);
	rc = file ? ckpt_write_file(file, ckpt_step_metadata_json(s),
				       strlen(ckpt_step_metadata_json(s)))
		  : CKPT_ENOMEM;
	free(file);
	for (size_t i = 0; rc == 0 && i < ckpt_step_item_count(s); i++) {
		const char *name = ckpt_step_item_name(s, i);
		char *sub;
		if (ckpt_item_name_check(name) != 0)
			return ckpt_error_wrap(CKPT_ECORRUPT, "step %s", ckpt_step_dir(s));
		sub = ckpt_asprintf("%s/%s", out_dir, name);
		rc = sub ? restore_item(s, name, NULL, sub) : CKPT_ENOMEM;
		free(sub);
	}
	return rc;
}

/* ---- restore with transforms ---- */

/* A copy of the mapped tree and the saved node its data comes from. */
struct origin {
	const ckpt_tree *copy, *orig;
};

struct mctx {
	ckpt_step *s;
	const char *item;
	const char *out;
	struct origin *o;
	size_t n, cap;
};

static int cmp_origin(const void *a, const void *b)
{
	const ckpt_tree *x = ((const struct origin *)a)->copy, *y = ((const struct origin *)b)->copy;

	return x < y ? -1 : x > y;
}

static int note_origin(const ckpt_tree *orig, const ckpt_tree *copy, void *payload)
{
	struct mctx *c = payload;

	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		struct origin *o = realloc(c->o, cap * sizeof(*o));
		if (!o)
			return ckpt_error_nomem();
		c->o = o;
		c->cap = cap;
	}
	c->o[c->n++] = (struct origin){copy, orig};
	return 0;
}

/* ckpt_tree_walk callback on the mapped tree: directories, and each leaf's bytes
 * from the saved leaf it came from. */
static int write_mapped(ckpt_tree *node, const char *path, void *payload)
{
	struct mctx *c = payload;
	ckpt_tree_kind k = ckpt_tree_get_kind(node);
	const struct origin key = {node, NULL}, *f;
	char *file;
	int rc;

	if (k == CKPT_TREE_NONE)
		return 0;
	file = ckpt_asprintf("%s%s%s%s", c->out, *path ? "/" : "", path,
			      k == CKPT_TREE_ARRAY ? ".npy" : "");
	if (!file)
		return CKPT_ENOMEM;
	if (ckpt_tree_is_container(node)) {
		rc = ckpt_mkdir_p(file);
	} else {
		f = bsearch(&key, c->o, c->n, sizeof(key), cmp_origin);
		assert(f); /* every leaf of the mapped tree is a copy noted by note_origin */
		rc = f ? write_leaf(c->s, c->item, f->orig, file) : CKPT_ERROR;
	}
	free(file);
	return rc;
}

int ckpt_interchange_restore_mapped(ckpt_step *s, const char *item,
				    const ckpt_restore_transform *t, size_t n,
				    int default_to_original, const char *out_dir)
{
	const ckpt_tree *meta = NULL;
	ckpt_tree *mapped = NULL;
	struct mctx c = {s, item, out_dir, NULL, 0, 0};
	char *json = NULL, *mfile = NULL;
	size_t idx;
	int rc = item ? ckpt_step_item_find(&idx, s, item)
		      : ckpt_error_set(CKPT_EINVAL, "transforms need an item");

	if (rc == 0)
		rc = ckpt_step_load_index(s);
	if (rc == 0 && (rc = ckpt_step_item_tree(&meta, s, item)) != 0)
		ckpt_error_wrap(rc, "item %s (transforms apply to PyTree items)", item);
	if (rc == 0)
		rc = ckpt_pytree_transform_meta(&mapped, meta, t, n, default_to_original,
						note_origin, &c);
	if (rc == 0 && c.n > 1)
		qsort(c.o, c.n, sizeof(*c.o), cmp_origin);
	if (rc == 0)
		rc = ckpt_tree_metadata_to_json(&json, mapped);
	if (rc == 0)
		rc = ckpt_mkdir_p(out_dir);
	if (rc == 0 && !(mfile = ckpt_asprintf("%s/%s", out_dir, CKPT_ITEM_METADATA_NAME)))
		rc = ckpt_error_nomem();
	if (rc == 0)
		rc = ckpt_write_file(mfile, json, strlen(json));
	if (rc == 0)
		rc = ckpt_tree_walk(mapped, write_mapped, &c);
	free(mfile);
	free(json);
	free(c.o);
	ckpt_tree_free(mapped);
	return rc;
}
