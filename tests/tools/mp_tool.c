/*
 * mp_tool.c — several processes saving one PyTree step and others restoring
 * slices of it, for tests/e2e/multiprocess.sh (public headers only). The
 * arrays and shardings are mp_harness.h's; each writer gives its boxes as
 * the shards of sharded leaves (a replicated box with replica ids 0 and 1),
 * so the PyTree handler, the checkpointer and the step writer do the rest.
 *
 *   mp_tool save ROOT STEP SEED [SUBSET]  4 writer processes (SUBSET 1: a
 *                                         random active subset) save item
 *                                         "state" {arr0, arr1, arr2} and a
 *                                         Json item "meta"
 *   mp_tool restore STEPDIR SEED N        N reader processes restore random
 *                                         boxes of every array (restore
 *                                         args has_box), bit-exactly
 *   mp_tool ref SEED A FILE               array A's bytes (C order) to FILE
 * Exit 0 when every process succeeded; messages on stderr.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ckpt/ckpt.h"
#include "mp_harness.h"

static int fail(const char *who, unsigned me, const char *what)
{
	fprintf(stderr, "%s %u: %s: %s\n", who, me, what, ckpt_error_last());
	return 1;
}

/* Item "state": a sharded leaf per array holding this process's boxes (data in bufs). */
static int make_state(ckpt_tree **out, const mp_case *c, unsigned me, uint32_t **bufs,
		      size_t *nbufs)
{
	ckpt_tree *t = NULL;
	int rc = ckpt_tree_new(&t, CKPT_TREE_DICT);

	for (unsigned a = 0; rc == 0 && a < MP_ARRAYS; a++) {
		const mp_array *x = &c->arrays[a];
		ckpt_tree *leaf = NULL;
		char key[8];
		snprintf(key, sizeof(key), "arr%u", a);
		rc = ckpt_tree_new_sharded_array(&leaf, CKPT_DTYPE_UINT32, x->ndim, x->shape);
		for (unsigned i = 0; rc == 0 && i < x->nboxes; i++) {
			const mp_box *b = &x->boxes[i];
			for (unsigned r = 0; rc == 0 && r < b->nowners; r++) {
				if (b->owner[r] != me)
					continue;
				uint64_t n = mp_nelem(x->ndim, b->shape);
				uint32_t *buf = malloc(n * 4);
				if (!buf)
					return CKPT_ENOMEM;
				bufs[(*nbufs)++] = buf;
				mp_fill_box(buf, c, a, b->start, b->shape);
				rc = ckpt_tree_add_shard(leaf, b->start, b->shape, r, buf);
			}
		}
		if (rc == 0 && (rc = ckpt_tree_add(t, key, leaf)) == 0)
			leaf = NULL;
		ckpt_tree_free(leaf);
	}
	if (rc) {
		ckpt_tree_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

static int writer(const char *root, uint64_t step, const mp_case *c, unsigned me)
{
	ckpt_multiprocess_options o;
	ckpt_step_writer_options wo = CKPT_STEP_WRITER_OPTIONS_INIT;
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_registry *r = NULL;
	ckpt_tree *state = NULL;
	uint32_t *bufs[MP_ARRAYS * MP_MAX_BOXES * 2];
	size_t nbufs = 0;
	char meta[64];
	int rc;

	mp_options(&o, c, me, 60000, "e2e");
	wo.multiprocess = &o;
	wo.store.chunk_size = 16384;
	snprintf(meta, sizeof(meta), "{\"seed\": %" PRIu64 "}", c->seed);
	rc = make_state(&state, c, me, bufs, &nbufs);
	if (rc == 0)
		rc = ckpt_registry_new(&r);
	sa.item = state;
	ckpt_composite_arg items[] = {{"state", CKPT_PYTREE_TYPESTR, &sa},
				      {"meta", CKPT_JSON_TYPESTR, meta}};
	if (rc == 0)
		rc = ckpt_composite_save_step(root, step, r, items, 2, &wo);
	if (rc)
		fail("writer", me, "save");
	for (size_t i = 0; i < nbufs; i++)
		free(bufs[i]);
	ckpt_tree_free(state);
	ckpt_registry_free(r);
	return rc ? 1 : 0;
}

typedef struct box_req {
	uint64_t start[2], shape[2];
	unsigned ndim;
} box_req;

static int box_args(ckpt_leaf_restore_args *out, const char *path, const ckpt_tree *meta,
		    void *payload)
{
	const box_req *b = payload;
	out->has_box = 1;
	for (unsigned d = 0; d < b->ndim; d++) {
		out->box_start[d] = b->start[d];
		out->box_shape[d] = b->shape[d];
	}
	return 0;
}

/* Reader me: restore random boxes of every array through the PyTree handler. */
static int reader(const char *dir, const mp_case *c, unsigned me)
{
	ckpt_handler *h = NULL;
	ckpt_step *s = NULL;
	uint64_t st = c->seed * 31 + me;
	int rc = ckpt_pytree_handler_new(&h);

	if (rc == 0)
		rc = ckpt_step_open(&s, dir, NULL);
	for (unsigned a = 0; rc == 0 && a < MP_ARRAYS; a++) {
		const mp_array *x = &c->arrays[a];
		char path[8];
		snprintf(path, sizeof(path), "arr%u", a);
		for (unsigned k = 0; rc == 0 && k < 6; k++) {
			box_req b = {{0, 0}, {1, 1}, x->ndim};
			for (unsigned d = 0; d < x->ndim; d++) {
				b.start[d] = mp_next(&st) % x->shape[d];
				b.shape[d] = 1 + mp_next(&st) % (x->shape[d] - b.start[d]);
			}
			const char *paths[] = {path};
			ckpt_pytree_restore_args ra = CKPT_PYTREE_RESTORE_ARGS_INIT;
			ra.paths = paths;
			ra.npaths = 1;
			ra.leaf_args = box_args;
			ra.payload = &b;
			ckpt_tree *t = NULL;
			rc = ckpt_handler_restore((void **)&t, h, s, "state", &ra);
			if (rc) {
				fail("reader", me, "restore");
				break;
			}
			const ckpt_tree *leaf = ckpt_tree_find(t, path);
			uint64_t n = mp_nelem(x->ndim, b.shape);
			uint32_t *want = malloc(n * 4);
			if (!want)
				rc = CKPT_ENOMEM;
			else
				mp_fill_box(want, c, a, b.start, b.shape);
			if (rc == 0 && (!leaf || ckpt_tree_nbytes(leaf) != n * 4 ||
					memcmp(ckpt_tree_data(leaf), want, n * 4) != 0)) {
				fprintf(stderr, "reader %u: %s box [%" PRIu64 ", %" PRIu64 "] differs\n",
					me, path, b.start[0], b.start[1]);
				rc = 1;
			}
			free(want);
			ckpt_tree_free(t);
		}
	}
	ckpt_step_free(s);
	ckpt_handler_free(h);
	return rc ? 1 : 0;
}

/* fork n processes running f(me); 0 if all exited 0. */
static int run_all(unsigned n, const unsigned *who, int (*f)(const void *, unsigned), const void *arg)
{
	pid_t pids[16];
	int bad = 0;

	fflush(stdout);
	for (unsigned i = 0; i < n; i++) {
		if ((pids[i] = fork()) < 0)
			return 1;
		if (pids[i] == 0)
			_exit(f(arg, who[i]));
	}
	for (unsigned i = 0; i < n; i++) {
		int st = 0;
		waitpid(pids[i], &st, 0);
		bad |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	}
	return bad;
}

typedef struct job {
	const char *path;
	uint64_t step;
	mp_case c;
} job;

static int do_write(const void *arg, unsigned me)
{
	const job *j = arg;
	return writer(j->path, j->step, &j->c, me);
}

static int do_read(const void *arg, unsigned me)
{
	const job *j = arg;
	return reader(j->path, &j->c, me);
}

int main(int argc, char **argv)
{
	static job j;
	unsigned who[16];

	if (argc >= 5 && !strcmp(argv[1], "save")) {
		j.path = argv[2];
		j.step = strtoull(argv[3], NULL, 10);
		mp_case_make(&j.c, strtoull(argv[4], NULL, 10), 4, argc > 5 && atoi(argv[5]));
		return run_all(j.c.nactive, j.c.active, do_write, &j);
	}
	if (argc == 5 && !strcmp(argv[1], "restore")) {
		unsigned n = (unsigned)atoi(argv[4]);
		j.path = argv[2];
		mp_case_make(&j.c, strtoull(argv[3], NULL, 10), 4, 0);
		if (n == 0 || n > 16)
			return 2;
		for (unsigned i = 0; i < n; i++)
			who[i] = i;
		return run_all(n, who, do_read, &j);
	}
	if (argc == 5 && !strcmp(argv[1], "ref")) {
		mp_case c;
		unsigned a = (unsigned)atoi(argv[3]);
		mp_case_make(&c, strtoull(argv[2], NULL, 10), 4, 0);
		if (a >= MP_ARRAYS)
			return 2;
		const mp_array *x = &c.arrays[a];
		uint64_t n = mp_nelem(x->ndim, x->shape), zero[2] = {0, 0};
		uint32_t *buf = malloc(n * 4);
		FILE *f = fopen(argv[4], "wb");
		if (!buf || !f)
			return 1;
		mp_fill_box(buf, &c, a, zero, x->shape);
		int bad = fwrite(buf, 4, n, f) != n;
		bad |= fclose(f) != 0;
		free(buf);
		printf("%u %" PRIu64 " %" PRIu64 "\n", x->ndim, x->shape[0], x->shape[1]);
		return bad;
	}
	fprintf(stderr, "usage: mp_tool save ROOT STEP SEED [SUBSET] | restore STEPDIR SEED N | "
			"ref SEED A FILE\n");
	return 2;
}
