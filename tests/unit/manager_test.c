/*
 * manager_test.c — preservation policies against independently computed
 * expectations, and the CheckpointManager on a real root: garbage
 * collection, should_save, prefixed names, read_only, cleanup on open,
 * root metadata, restore, waiting for steps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit/treecmp.h"
#include "manager_private.h"
#include "root_private.h"
#include "fsutil.h"

/* ---- preservation on 100 simulated steps ---- */

#define NSIM 100
#define SEC  1000000000LL

static uint32_t lcg(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return *s >> 8;
}

/*
 * Steps 10, 20, ... 1000 in a shuffled order; commit times increase by
 * 1..40 s (some steps share a time); the loss is quantized so that ties
 * occur; every 7th step has no loss, every 11th has another metric only.
 */
static void simulate(ckpt_step_summary *s)
{
	uint32_t seed = 12345;
	int64_t t = 1700000000LL * SEC;

	for (size_t i = 0; i < NSIM; i++) {
		uint32_t r = lcg(&seed);
		t += (r % 5 == 0) ? 0 : (int64_t)(1 + r % 40) * SEC;
		s[i].step = 10 * (i + 1);
		s[i].commit_time_ns = t;
		s[i].has_metric = (i % 7) != 3;
		s[i].metric = (double)(lcg(&seed) % 50) / 8.0;
	}
	for (size_t i = NSIM - 1; i > 0; i--) { /* Fisher-Yates */
		size_t j = lcg(&seed) % (i + 1);
		ckpt_step_summary x = s[i];
		s[i] = s[j];
		s[j] = x;
	}
}

/* Brute force, one step at a time: the definitions of docs/manager.md. */
static int exp_latest(const ckpt_step_summary *s, size_t i, unsigned n)
{
	unsigned newer = 0;
	for (size_t j = 0; j < NSIM; j++)
		newer += s[j].step > s[i].step;
	return newer < n;
}

static int exp_every_steps(const ckpt_step_summary *s, size_t i, uint64_t n)
{
	return s[i].step % n == 0;
}

/* Greedy in (time, step) order: kept iff first, or >= secs after the previous kept one. */
static int exp_every_secs(const ckpt_step_summary *s, size_t i, int64_t secs)
{
	int done[NSIM] = {0};
	int64_t last = 0;
	for (size_t k = 0; k < NSIM; k++) {
		size_t m = NSIM;
		for (size_t j = 0; j < NSIM; j++)
			if (!done[j] && (m == NSIM || s[j].commit_time_ns < s[m].commit_time_ns ||
					 (s[j].commit_time_ns == s[m].commit_time_ns &&
					  s[j].step < s[m].step)))
				m = j;
		done[m] = 1;
		int kept = k == 0 || s[m].commit_time_ns - last >= secs * SEC;
		if (kept)
			last = s[m].commit_time_ns;
		if (m == i)
			return kept;
	}
	return 0;
}

static int exp_best(const ckpt_step_summary *s, size_t i, unsigned n, int max, int keep_without)
{
	unsigned better = 0;
	if (!s[i].has_metric)
		return keep_without;
	for (size_t j = 0; j < NSIM; j++) {
		if (!s[j].has_metric || j == i)
			continue;
		int b = max ? s[j].metric > s[i].metric : s[j].metric < s[i].metric;
		better += b || (s[j].metric == s[i].metric && s[j].step > s[i].step);
	}
	return better < n;
}

static int count(const int *k)
{
	int c = 0;
	for (size_t i = 0; i < NSIM; i++)
		c += k[i];
	return c;
}

static void test_preservation_policies(void **state)
{
	ckpt_step_summary s[NSIM];
	int keep[NSIM], want[NSIM];
	ckpt_preservation p;
	size_t best;

	(void)state;
	simulate(s);

	/* none enabled: all kept */
	p = (ckpt_preservation)CKPT_PRESERVATION_INIT;
	assert_int_equal(ckpt_preservation_apply(keep, s, NSIM, &p), 0);
	assert_int_equal(count(keep), NSIM);

	/* latest 5 */
	p.latest_n = 5;
	assert_int_equal(ckpt_preservation_apply(keep, s, NSIM, &p), 0);
	for (size_t i = 0; i < NSIM; i++)
		assert_int_equal(keep[i], exp_latest(s, i, 5));
	assert_int_equal(count(keep), 5);

	/* every 30 steps: 30, 60, ... 990 */
	p = (ckpt_preservation)CKPT_PRESERVATION_INIT;
	p.every_n_steps = 30;
	assert_int_equal(ckpt_preservation_apply(keep, s, NSIM, &p), 0);
	for (size_t i = 0; i < NSIM; i++)
		assert_int_equal(keep[i], exp_every_steps(s, i, 30));
	assert_int_equal(count(keep), 33);

	/* every 120 seconds */
	p = (ckpt_preservation)CKPT_PRESERVATION_INIT;
	p.every_n_seconds = 120;
	assert_int_equal(ckpt_preservation_apply(keep, s, NSIM, &p), 0);
	for (size_t i = 0; i < NSIM; i++)
		assert_int_equal(keep[i], exp_every_secs(s, i, 120));
	assert_true(count(keep) > 5 && count(keep) < NSIM / 2);
	/* kept steps are N seconds apart, as Orbax's EveryNSeconds: 21 s is 2 s after 19 s */
	ckpt_step_summary tri[3] = {{3, 21 * SEC, 0, 0}, {1, 0, 0, 0}, {2, 19 * SEC, 0, 0}};
	p.every_n_seconds = 10;
	assert_int_equal(ckpt_preservation_apply(keep, tri, 3, &p), 0);
	assert_true(keep[0] == 0 && keep[1] == 1 && keep[2] == 1);

	/* best 4 by min loss, steps without it kept */
	p = (ckpt_preservation)CKPT_PRESERVATION_INIT;
	p.best_metric = "loss";
	p.best_n = 4;
	assert_int_equal(ckpt_preservation_apply(keep, s, NSIM, &p), 0);
	for (size_t i = 0; i < NSIM; i++)
		assert_int_equal(keep[i], exp_best(s, i, 4, 0, 1));
	assert_int_equal(count(keep), 4 + 14);
	assert_int_equal(ckpt_preservation_best(&best, s, NSIM, &p), 0);
	assert_true(exp_best(s, best, 1, 0, 0));

	/* best 4 by max, without metric dropped */
	p.best_mode = CKPT_BEST_MAX;
	p.keep_without_metrics = 0;
	assert_int_equal(ckpt_preservation_apply(keep, s, NSIM, &p), 0);
	for (size_t i = 0; i < NSIM; i++)
		assert_int_equal(keep[i], exp_best(s, i, 4, 1, 0));
	assert_int_equal(count(keep), 4);
	assert_int_equal(ckpt_preservation_best(&best, s, NSIM, &p), 0);
	assert_true(exp_best(s, best, 1, 1, 0));

	/* combination: any policy keeps */
	p.latest_n = 3;
	p.every_n_steps = 250;
	p.every_n_seconds = 300;
	p.best_mode = CKPT_BEST_MIN;
	p.best_n = 2;
	assert_int_equal(ckpt_preservation_apply(keep, s, NSIM, &p), 0);
	for (size_t i = 0; i < NSIM; i++) {
		want[i] = exp_latest(s, i, 3) || exp_every_steps(s, i, 250) ||
			  exp_every_secs(s, i, 300) || exp_best(s, i, 2, 0, 0);
		assert_int_equal(keep[i], want[i]);
	}
	assert_true(count(want) > 3 + 4);

	/* no step has the metric */
	p = (ckpt_preservation)CKPT_PRESERVATION_INIT;
	p.best_metric = "acc";
	for (size_t i = 0; i < NSIM; i++)
		s[i].has_metric = 0;
	assert_int_equal(ckpt_preservation_best(&best, s, NSIM, &p), CKPT_ENOTFOUND);
	p.best_mode = 7;
	assert_int_equal(ckpt_preservation_apply(keep, s, NSIM, &p), CKPT_EINVAL);
}

/* ---- a real root ---- */

typedef struct fixture {
	char *root;
	ckpt_handler *h;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	if (!f || !(f->root = test_tmpdir()) || ckpt_pytree_handler_new(&f->h))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	ckpt_rmtree(f->root);
	ckpt_handler_free(f->h);
	free(f->root);
	free(f);
	return 0;
}

/* Save {"x": v} as item "state" (and {"y": -v} as "aux"). */
static int save_step(ckpt_manager *m, const fixture *f, uint64_t step, const char *metrics)
{
	ckpt_tree *a = NULL, *b = NULL, *leaf = NULL;
	int rc = ckpt_tree_new(&a, CKPT_TREE_DICT);
	rc = rc ? rc : ckpt_tree_new_int(&leaf, (int64_t)step);
	rc = rc ? rc : ckpt_tree_add(a, "x", leaf);
	rc = rc ? rc : ckpt_tree_new(&b, CKPT_TREE_DICT);
	rc = rc ? rc : ckpt_tree_new_int(&leaf, -(int64_t)step);
	rc = rc ? rc : ckpt_tree_add(b, "y", leaf);
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT, sb = CKPT_PYTREE_SAVE_ARGS_INIT;
	sa.item = a;
	sb.item = b;
	ckpt_item_args items[2] = {{"state", f->h, &sa}, {"aux", f->h, &sb}};
	if (rc == 0)
		rc = ckpt_manager_save(m, step, items, 2, metrics, NULL, 0);
	ckpt_tree_free(a);
	ckpt_tree_free(b);
	return rc;
}

/* Names in dir (sorted, comma-joined) for exact comparisons. */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *listing(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char *names[256];
	size_t n = 0;
	static char buf[4096];

	assert_non_null(d);
	while ((e = readdir(d)) != NULL && n < 256)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			names[n++] = strdup(e->d_name);
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_str);
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		strcat(buf, i ? "," : "");
		strcat(buf, names[i]);
		free(names[i]);
	}
	return buf;
}

static double loss_of(uint64_t step)
{
	/* minimal at 4 (0.25) and 9 (0.5); the latest steps are worse */
	return step == 4 ? 0.25 : step == 9 ? 0.5 : 10.0 - (double)step * 0.1;
}

static void run_gc(fixture *f, int async)
{
	ckpt_manager_options o = CKPT_MANAGER_OPTIONS_INIT;
	ckpt_manager *m = NULL;
	uint64_t *steps = NULL, best;
	size_t n;
	char metrics[64], *mt = NULL;
	int rc;

	o.enable_async = async;
	o.preservation.latest_n = 3;
	o.preservation.best_metric = "loss";
	o.preservation.best_n = 2;
	rc = ckpt_manager_open(&m, f->root, &o);
	if (async && rc == CKPT_EUNSUPPORTED) {
		skip(); /* asynchronous saves not built yet */
	}
	assert_int_equal(rc, 0);
	for (uint64_t s = 0; s < 20; s++) {
		snprintf(metrics, sizeof(metrics), "{\"loss\": %.17g}", loss_of(s));
		assert_int_equal(save_step(m, f, s, metrics), 0);
		assert_true(ckpt_manager_check(m)); /* a save maybe in flight, gc behind it */
	}
	assert_int_equal(ckpt_manager_wait_until_finished(m), 0);
	assert_true(ckpt_manager_check(m));
	/* expectation: latest 3 are 17..19, best 2 by min loss 4 and 9 */
	assert_string_equal(listing(f->root), "17,18,19,4,9");
	assert_int_equal(ckpt_manager_all_steps(&steps, &n, m), 0);
	assert_int_equal(n, 5);
	assert_true(steps[0] == 4 && steps[1] == 9 && steps[2] == 17 && steps[4] == 19);
	free(steps);
	assert_int_equal(ckpt_manager_best_step(&best, m), 0);
	assert_int_equal(best, 4);
	assert_int_equal(ckpt_manager_metrics(&mt, m, 9), 0);
	assert_string_equal(mt, "{\"loss\":0.5}");
	free(mt);
	assert_int_equal(ckpt_manager_metrics(&mt, m, 5), CKPT_ENOTFOUND); /* deleted */

	/* restore latest, a subset of the items */
	ckpt_pytree_restore_args ra = CKPT_PYTREE_RESTORE_ARGS_INIT;
	ckpt_item_args it = {"aux", f->h, &ra};
	void *out = NULL;
	assert_int_equal(ckpt_manager_restore(&out, m, -1, &it, 1), 0);
	assert_int_equal(ckpt_tree_int(ckpt_tree_find(out, "y")), -19);
	ckpt_tree_free(out);
	assert_int_equal(ckpt_manager_restore(&out, m, 4, &it, 1), 0);
	assert_int_equal(ckpt_tree_int(ckpt_tree_find(out, "y")), -4);
	ckpt_tree_free(out);
	ckpt_manager_free(m);
}

static void test_gc_sync(void **state)
{
	run_gc(*state, 0);
}

static void test_gc_async(void **state)
{
	run_gc(*state, 1);
}

static void test_should_save(void **state)
{
	fixture *f = *state;
	const uint64_t on[] = {7, 13};
	ckpt_manager_options o = CKPT_MANAGER_OPTIONS_INIT;
	ckpt_manager *m = NULL;

	o.enable_async = 0;
	o.save_interval_steps = 5;
	o.save_on_steps = on;
	o.n_save_on_steps = 2;
	assert_int_equal(ckpt_manager_open(&m, f->root, &o), 0);
	for (uint64_t s = 0; s <= 20; s++)
		assert_int_equal(ckpt_manager_should_save(m, s), s % 5 == 0 || s == 7 || s == 13);
	/* not due and not forced: nothing saved */
	assert_int_equal(save_step(m, f, 8, NULL), 0);
	assert_string_equal(listing(f->root), "");
	assert_int_equal(save_step(m, f, 10, NULL), 0);
	assert_string_equal(listing(f->root), "10");
	/* only newer steps are due */
	assert_int_equal(ckpt_manager_should_save(m, 5), 0);
	assert_int_equal(ckpt_manager_should_save(m, 7), 0);
	assert_int_equal(ckpt_manager_should_save(m, 10), 0);
	assert_int_equal(ckpt_manager_should_save(m, 13), 1);
	assert_int_equal(ckpt_manager_should_save(m, 15), 1);
	ckpt_manager_free(m);

	/* interval 0: every step */
	o = (ckpt_manager_options)CKPT_MANAGER_OPTIONS_INIT;
	o.enable_async = 0;
	assert_int_equal(ckpt_manager_open(&m, f->root, &o), 0);
	assert_int_equal(ckpt_manager_should_save(m, 11), 1);
	assert_int_equal(ckpt_manager_should_save(m, 9), 0);
	ckpt_manager_free(m);
}

static void test_prefix_names(void **state)
{
	fixture *f = *state;
	ckpt_manager_options o = CKPT_MANAGER_OPTIONS_INIT;
	ckpt_manager *m = NULL;
	uint64_t *steps = NULL, latest;
	size_t n;
	char *p;

	o.enable_async = 0;
	o.step_prefix = "ckpt";
	o.step_format_fixed_length = 8;
	assert_int_equal(ckpt_manager_open(&m, f->root, &o), 0);
	assert_int_equal(save_step(m, f, 12, NULL), 0);
	assert_int_equal(save_step(m, f, 123456789, NULL), 0);
	assert_string_equal(listing(f->root), "ckpt_00000012,ckpt_123456789");
	ckpt_manager_free(m);

	/* non-canonical spellings and plain names are not steps of this manager */
	p = ckpt_asprintf("%s/ckpt_012", f->root);
	assert_int_equal(mkdir(p, 0777), 0);
	free(p);
	p = ckpt_asprintf("%s/ckpt_012/ckpt.db", f->root);
	assert_int_equal(ckpt_write_file(p, "x", 1), 0);
	free(p);
	assert_int_equal(ckpt_manager_open(&m, f->root, &o), 0);
	assert_int_equal(ckpt_manager_all_steps(&steps, &n, m), 0);
	assert_int_equal(n, 2);
	assert_int_equal(steps[0], 12);
	assert_int_equal(steps[1], 123456789);
	free(steps);
	assert_int_equal(ckpt_manager_latest_step(&latest, m), 0);
	assert_int_equal(latest, 123456789);
	assert_int_equal(ckpt_manager_delete(m, 12), 0);
	assert_string_equal(listing(f->root), "ckpt_012,ckpt_123456789");
	ckpt_manager_free(m);

	/* the names round-trip; the plain listing sees none of them */
	uint64_t v;
	char *name = ckpt_step_dir_name(12, "ckpt", 8);
	assert_string_equal(name, "ckpt_00000012");
	assert_int_equal(ckpt_step_dir_name_parse(&v, name, "ckpt", 8), 1);
	assert_int_equal(v, 12);
	free(name);
	assert_int_equal(ckpt_step_dir_name_parse(&v, "ckpt_0000012", "ckpt", 8), 0);
	assert_int_equal(ckpt_step_dir_name_parse(&v, "ckpt00000012", "ckpt", 8), 0);
	assert_int_equal(ckpt_step_dir_name_parse(&v, "00000012", NULL, 8), 1);
	assert_int_equal(ckpt_step_dir_name_parse(&v, "012", NULL, 0), 0);
	assert_int_equal(ckpt_root_steps(&steps, &n, f->root), 0);
	assert_int_equal(n, 0);
	free(steps);
}

static void make_dir(const char *root, const char *name, const char *sub)
{
	char *p = ckpt_asprintf("%s/%s", root, name);
	assert_int_equal(ckpt_mkdir_p(p), 0);
	free(p);
	if (sub) {
		p = ckpt_asprintf("%s/%s/%s", root, name, sub);
		assert_int_equal(ckpt_mkdir_p(p), 0);
		free(p);
	}
}

static void test_read_only_and_cleanup(void **state)
{
	fixture *f = *state;
	ckpt_manager_options o = CKPT_MANAGER_OPTIONS_INIT;
	ckpt_manager *m = NULL;
	uint64_t latest;
	char *json = NULL;

	o.enable_async = 0;
	assert_int_equal(ckpt_manager_open(&m, f->root, &o), 0);
	for (uint64_t s = 1; s <= 3; s++)
		assert_int_equal(save_step(m, f, s, NULL), 0);
	/* the file is the caller's text: it must be one JSON object and nothing else */
	assert_int_equal(ckpt_manager_set_root_metadata(m, "{\"a\": 1} tail"), CKPT_EINVAL);
	assert_int_equal(ckpt_manager_set_root_metadata(m, "{\"model\": \"mlp\"}"), 0);
	assert_int_equal(ckpt_manager_set_root_metadata(m, "{\"model\": \"x\"}"), CKPT_EEXISTS);
	assert_int_equal(ckpt_manager_set_root_metadata(m, "[1]"), CKPT_EINVAL);
	ckpt_manager_free(m);

	/* an abandoned save (unlocked) and a pending step of a mount */
	make_dir(f->root, "5.ckpt-tmp-0123456789abcdef", "d");
	make_dir(f->root, "6.ckpt-tmp-fedcba9876543210", CKPT_PENDING_FILES);
	const char *all = "1,2,3,5.ckpt-tmp-0123456789abcdef,6.ckpt-tmp-fedcba9876543210,"
			  "_ROOT_METADATA";

	/* read_only with a policy that would delete: refuses, changes nothing */
	o.read_only = 1;
	o.enable_async = 1;
	o.preservation.latest_n = 1;
	assert_int_equal(ckpt_manager_open(&m, f->root, &o), 0);
	assert_string_equal(listing(f->root), all);
	assert_int_equal(ckpt_manager_should_save(m, 4), 0);
	assert_int_equal(save_step(m, f, 4, NULL), CKPT_EREADONLY);
	assert_int_equal(ckpt_manager_delete(m, 1), CKPT_EREADONLY);
	assert_int_equal(ckpt_manager_set_root_metadata(m, "{}"), CKPT_EREADONLY);
	assert_int_equal(ckpt_manager_reload(m), 0);
	assert_int_equal(ckpt_manager_latest_step(&latest, m), 0);
	assert_int_equal(latest, 3);
	assert_int_equal(ckpt_manager_root_metadata(&json, m), 0);
	assert_string_equal(json, "{\"model\": \"mlp\"}");
	free(json);
	assert_int_equal(ckpt_manager_wait_until_finished(m), 0);
	ckpt_manager_free(m);
	assert_string_equal(listing(f->root), all);

	/* read_only on a missing root: no steps, nothing created */
	char *missing = ckpt_asprintf("%s/none", f->root);
	assert_int_equal(ckpt_manager_open(&m, missing, &o), 0);
	assert_int_equal(ckpt_manager_latest_step(&latest, m), CKPT_ENOTFOUND);
	ckpt_manager_free(m);
	assert_int_equal(access(missing, F_OK), -1);
	free(missing);

	/* a writable open removes the abandoned save, keeps the pending step */
	o.read_only = 0;
	o.enable_async = 0;
	o.preservation.latest_n = 0;
	assert_int_equal(ckpt_manager_open(&m, f->root, &o), 0);
	assert_string_equal(listing(f->root), "1,2,3,6.ckpt-tmp-fedcba9876543210,_ROOT_METADATA");
	assert_int_equal(ckpt_manager_root_metadata(&json, m), 0);
	assert_string_equal(json, "{\"model\": \"mlp\"}");
	free(json);
	ckpt_manager_free(m);
}

/* ckpt_manager_reserve goes to the asynchronous checkpointer, and only there. */
static void test_reserve(void **state)
{
	fixture *f = *state;
	ckpt_manager_options o = CKPT_MANAGER_OPTIONS_INIT;
	ckpt_manager *m = NULL;
	ckpt_pytree_save_args none = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_item_args bad = {"state", f->h, &none}; /* no tree: the handler refuses */

	assert_int_equal(ckpt_manager_open(&m, f->root, &o), 0);
	assert_int_equal(ckpt_manager_reserve(m, &bad, 1), CKPT_EINVAL);
	assert_int_equal(save_step(m, f, 1, NULL), 0);
	ckpt_manager_free(m);
	o.enable_async = 0; /* synchronous saves copy nothing */
	assert_int_equal(ckpt_manager_open(&m, f->root, &o), 0);
	assert_int_equal(ckpt_manager_reserve(m, &bad, 1), 0);
	ckpt_manager_free(m);
	o.enable_async = 1;
	o.read_only = 1; /* saves nothing */
	assert_int_equal(ckpt_manager_open(&m, f->root, &o), 0);
	assert_int_equal(ckpt_manager_reserve(m, &bad, 1), 0);
	ckpt_manager_free(m);
}

static void test_newest_kept_and_errors(void **state)
{
	fixture *f = *state;
	ckpt_manager_options o = CKPT_MANAGER_OPTIONS_INIT;
	ckpt_manager *m = NULL;
	char *meta = NULL, metrics[32];
	int rc;

	/* only "best 1 by min loss" and losses rising: the newest is worst, yet kept */
	o.preservation.best_metric = "loss";
	o.preservation.best_n = 1;
	o.preservation.keep_without_metrics = 0;
	o.step_prefix = "s";
	rc = ckpt_manager_open(&m, f->root, &o);
	if (rc == CKPT_EUNSUPPORTED)
		skip();
	assert_int_equal(rc, 0);
	for (uint64_t s = 1; s <= 3; s++) {
		snprintf(metrics, sizeof(metrics), "{\"loss\": %d}", (int)s);
		assert_int_equal(save_step(m, f, s, metrics), 0);
		assert_int_equal(ckpt_manager_wait_until_finished(m), 0);
	}
	assert_string_equal(listing(f->root), "s_1,s_3");
	assert_int_equal(ckpt_manager_metadata(&meta, m, 3), 0);
	assert_non_null(strstr(meta, "\"commit_timestamp_nsecs\""));
	assert_non_null(strstr(meta, "\"loss\":3"));
	free(meta);

	/* a background failure (the step exists) is reported once */
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_tree *t = NULL;
	assert_int_equal(ckpt_tree_new(&t, CKPT_TREE_DICT), 0);
	sa.item = t;
	ckpt_item_args it = {"state", f->h, &sa};
	rc = ckpt_manager_save(m, 3, &it, 1, NULL, NULL, 1);
	if (rc == 0)
		rc = ckpt_manager_wait_until_finished(m);
	assert_int_equal(rc, CKPT_EEXISTS);
	assert_int_equal(ckpt_manager_check_for_errors(m), 0);
	/* ... and, when not waited for, by the next save, which then saves nothing */
	rc = ckpt_manager_save(m, 3, &it, 1, NULL, NULL, 1);
	if (rc == 0)
		rc = ckpt_manager_save(m, 4, &it, 1, NULL, NULL, 0);
	assert_int_equal(rc, CKPT_EEXISTS);
	assert_int_equal(ckpt_manager_wait_until_finished(m), 0);
	assert_string_equal(listing(f->root), "s_1,s_3");
	assert_int_equal(ckpt_manager_save(m, 4, &it, 1, NULL, NULL, 0), 0);
	ckpt_manager_free(m); /* waits for the save, then collects: s_3 has lost "newest" */
	ckpt_tree_free(t);
	assert_string_equal(listing(f->root), "s_1,s_4");
}

/* A forced save of an older step is not collected by its own save (Orbax keeps its last save). */
static void test_forced_older_step_kept(void **state)
{
	fixture *f = *state;
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_tree *t = NULL;

	assert_int_equal(ckpt_tree_new(&t, CKPT_TREE_DICT), 0);
	sa.item = t;
	ckpt_item_args it = {"state", f->h, &sa};
	for (int async = 0; async <= 1; async++) {
		ckpt_manager_options o = CKPT_MANAGER_OPTIONS_INIT;
		ckpt_manager *m = NULL;

		o.enable_async = async;
		o.preservation.latest_n = 1;
		assert_int_equal(ckpt_manager_open(&m, f->root, &o), 0);
		assert_int_equal(ckpt_manager_save(m, 10, &it, 1, NULL, NULL, 0), 0);
		assert_int_equal(ckpt_manager_save(m, 5, &it, 1, NULL, NULL, 1), 0);
		assert_int_equal(ckpt_manager_wait_until_finished(m), 0);
		assert_string_equal(listing(f->root), "10,5");
		assert_int_equal(ckpt_manager_save(m, 11, &it, 1, NULL, NULL, 0), 0);
		assert_int_equal(ckpt_manager_wait_until_finished(m), 0);
		assert_string_equal(listing(f->root), "11");
		assert_int_equal(ckpt_manager_delete(m, 11), 0);
		ckpt_manager_free(m);
	}
	ckpt_tree_free(t);
}

/* Child: save 16 MiB steps asynchronously, forever, until killed. */
static void save_forever(fixture *f)
{
	ckpt_manager_options o = CKPT_MANAGER_OPTIONS_INIT;
	ckpt_manager *m = NULL;
	uint64_t shape[1] = {4u << 20};
	ckpt_tree *t = NULL;

	o.preservation.latest_n = 2;
	if (ckpt_manager_open(&m, f->root, &o) || ckpt_tree_new(&t, CKPT_TREE_DICT) ||
	    test_add_array(t, "w", CKPT_DTYPE_FLOAT32, 1, shape, 1))
		_exit(1);
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	sa.item = t;
	ckpt_item_args it = {"state", f->h, &sa};
	for (uint64_t s = 0;; s++)
		if (ckpt_manager_save(m, s, &it, 1, NULL, NULL, 0))
			_exit(1);
}

static void test_killed_during_async_save(void **state)
{
	fixture *f = *state;
	ckpt_manager_options o = CKPT_MANAGER_OPTIONS_INIT;
	ckpt_manager *m = NULL;
	uint64_t got = 0, *steps = NULL, *listed = NULL;
	size_t n = 0, nlisted = 0;
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		save_forever(f);
	int rc = ckpt_root_wait_for_step(&got, f->root, 2, 60000);
	/* kill it while a save is in progress: its temporary directory exists */
	for (int i = 0; rc == 0 && i < 100000 && !strstr(listing(f->root), CKPT_TMP_INFIX); i++)
		usleep(100);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(rc, 0);
	assert_true(WIFSIGNALED(status));
	assert_non_null(strstr(listing(f->root), CKPT_TMP_INFIX));

	o.enable_async = 0;
	assert_int_equal(ckpt_manager_open(&m, f->root, &o), 0);
	assert_null(strstr(listing(f->root), CKPT_TMP_INFIX)); /* leftovers removed */
	assert_int_equal(ckpt_manager_all_steps(&steps, &n, m), 0);
	assert_int_equal(ckpt_root_steps(&listed, &nlisted, f->root), 0);
	assert_int_equal(n, nlisted);
	assert_true(n >= 1 && steps[n - 1] >= got);
	for (size_t i = 0; i < n; i++) {
		void *out = NULL;
		ckpt_item_args it = {"state", f->h, NULL};
		assert_int_equal(steps[i], listed[i]);
		assert_int_equal(ckpt_manager_restore(&out, m, (int64_t)steps[i], &it, 1), 0);
		const ckpt_tree *w = ckpt_tree_find(out, "w");
		assert_non_null(w);
		assert_true(((const float *)ckpt_tree_data(w))[1000] == 1000 * 0.25f + 1);
		ckpt_tree_free(out);
	}
	free(steps);
	free(listed);
	ckpt_manager_free(m);
}

typedef struct saver {
	fixture *f;
	const char *root;
	uint64_t step;
	int rc;
} saver;

static void *save_later(void *arg)
{
	saver *s = arg;
	ckpt_manager_options o = CKPT_MANAGER_OPTIONS_INIT;
	ckpt_manager *m = NULL;

	usleep(300 * 1000);
	o.enable_async = 0;
	s->rc = ckpt_manager_open(&m, s->root, &o);
	if (s->rc == 0)
		s->rc = save_step(m, s->f, s->step, NULL);
	ckpt_manager_free(m);
	return NULL;
}

static void test_wait_for_step(void **state)
{
	fixture *f = *state;
	ckpt_manager_options o = CKPT_MANAGER_OPTIONS_INIT;
	ckpt_manager *m = NULL;
	pthread_t th;
	uint64_t got = 0;

	/* nothing yet: times out */
	assert_int_equal(ckpt_root_wait_for_step(&got, f->root, -1, 100), CKPT_EBUSY);
	o.enable_async = 0;
	assert_int_equal(ckpt_manager_open(&m, f->root, &o), 0);
	assert_int_equal(save_step(m, f, 2, NULL), 0);
	ckpt_manager_free(m);
	assert_int_equal(ckpt_root_wait_for_step(&got, f->root, -1, 0), 0);
	assert_int_equal(got, 2);
	assert_int_equal(ckpt_root_wait_for_step(&got, f->root, 2, 200), CKPT_EBUSY);

	/* another thread saves step 5 (inotify on the root) */
	saver s = {f, f->root, 5, -1};
	assert_int_equal(pthread_create(&th, NULL, save_later, &s), 0);
	assert_int_equal(ckpt_root_wait_for_step(&got, f->root, 2, 60000), 0);
	assert_int_equal(got, 5);
	pthread_join(th, NULL);
	assert_int_equal(s.rc, 0);

	/* a root that does not exist yet (polling until it does) */
	char *later = ckpt_asprintf("%s/later", f->root);
	saver s2 = {f, later, 7, -1};
	assert_int_equal(pthread_create(&th, NULL, save_later, &s2), 0);
	assert_int_equal(ckpt_root_wait_for_step(&got, later, -1, 60000), 0);
	assert_int_equal(got, 7);
	pthread_join(th, NULL);
	assert_int_equal(s2.rc, 0);
	free(later);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_preservation_policies),
	    cmocka_unit_test_setup_teardown(test_gc_sync, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gc_async, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_should_save, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_prefix_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_only_and_cleanup, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reserve, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_newest_kept_and_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_forced_older_step_kept, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_killed_during_async_save, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wait_for_step, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
