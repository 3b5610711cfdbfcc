/*
 * multiprocess_test.c — several processes saving one step (ckpt/multiprocess.h):
 * option checks, tiles-only batches, 4 writer processes with random
 * shardings (1-D, 2-D, replicated, uneven, active subsets) restored by 1, 2,
 * 3 and 8 reader processes reading random boxes bit-exactly, the failure
 * cases (a non-primary killed mid-save, the primary killed during the merge,
 * two processes claiming one index), handlers (Composite of PyTree + Json)
 * and the manager of a non-primary. Processes are fork()ed and share one
 * root, as hosts share a filesystem.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tools/mp_harness.h"
#include "ckpt/ckpt.h"
#include "error_private.h"
#include "fsutil.h"
#include "multiprocess_private.h"
#include "store_private.h"

#define TIMEOUT_MS 60000 /* a barrier nobody misses: generous (slow, shared machines) */
#define SHORT_MS   1500	 /* a barrier a killed process misses */

static char *mkroot(void)
{
	char tmpl[] = "/tmp/ckpt-mp-test-XXXXXX";
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	return strdup(d);
}

/* Names in root (not "." and ".."), joined by spaces into buf. */
static const char *listing(char *buf, size_t cap, const char *root)
{
	DIR *d = opendir(root);
	struct dirent *e;
	size_t n = 0;
	buf[0] = '\0';
	while (d && (e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%s ", e->d_name);
	if (d)
		closedir(d);
	return buf;
}

static int has_step(const char *root, uint64_t step)
{
	uint64_t *v = NULL;
	size_t n = 0;
	int yes = 0;
	if (ckpt_root_steps(&v, &n, root) == 0)
		for (size_t i = 0; i < n; i++)
			yes |= v[i] == step;
	free(v);
	return yes;
}

/* ---- running processes ---- */

typedef int (*proc_fn)(unsigned me, void *arg);

typedef struct procs {
	pid_t pid[16];
	unsigned n;
	char msgdir[256];
} procs;

/* fork f(me) for each me in who[]; each child's rc and message go to msgdir/<slot>. */
static void spawn(procs *p, const unsigned *who, unsigned n, proc_fn f, void *arg,
		  const char *die_env)
{
	if (!p->msgdir[0]) {
		char tmpl[] = "/tmp/ckpt-mp-msg-XXXXXX";
		assert_non_null(mkdtemp(tmpl));
		snprintf(p->msgdir, sizeof(p->msgdir), "%s", tmpl);
	}
	for (unsigned k = 0; k < n; k++) {
		unsigned slot = p->n++;
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			if (die_env && who[k] == 0)
				setenv("CKPT_TEST_MP_DIE", die_env, 1);
			int rc = f(who[k], arg);
			char path[300];
			snprintf(path, sizeof(path), "%s/%u", p->msgdir, slot);
			FILE *fp = fopen(path, "w");
			if (fp) {
				fprintf(fp, "%d %s", rc, rc ? ckpt_error_last() : "");
				fclose(fp);
			}
			_exit(rc == 0 ? 0 : 1);
		}
		p->pid[slot] = pid;
	}
}

/* Wait for slot; its rc (from its message file), or 1000 + signal if it was killed. */
static int reap(procs *p, unsigned slot, char *msg, size_t cap)
{
	int st = 0, rc = -999;
	char path[300];
	assert_int_equal(waitpid(p->pid[slot], &st, 0), p->pid[slot]);
	msg[0] = '\0';
	if (WIFSIGNALED(st))
		return 1000 + WTERMSIG(st);
	snprintf(path, sizeof(path), "%s/%u", p->msgdir, slot);
	FILE *fp = fopen(path, "r");
	if (fp) {
		if (fscanf(fp, "%d ", &rc) != 1)
			rc = -998;
		size_t n = fread(msg, 1, cap - 1, fp);
		msg[n] = '\0';
		fclose(fp);
	}
	return rc;
}

static void procs_done(procs *p)
{
	ckpt_rmtree(p->msgdir);
	memset(p, 0, sizeof(*p));
}

/* ---- options ---- */

static void test_options(void **state)
{
	ckpt_multiprocess_options o = CKPT_MULTIPROCESS_OPTIONS_INIT;
	unsigned act[] = {0, 2}, dup[] = {1, 1}, out[] = {0, 5};

	assert_int_equal(ckpt_multiprocess_check(NULL), 0);
	assert_int_equal(ckpt_multiprocess_check(&o), 0);
	assert_false(ckpt_multiprocess_is_secondary(&o));
	o.process_count = 4;
	o.process_index = 4;
	assert_int_equal(ckpt_multiprocess_check(&o), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "process_index 4"));
	o.process_index = 1;
	o.primary_host = 4;
	assert_int_equal(ckpt_multiprocess_check(&o), CKPT_EINVAL);
	o.primary_host = -2;
	assert_int_equal(ckpt_multiprocess_check(&o), CKPT_EINVAL);
	o.primary_host = -1;
	assert_int_equal(ckpt_multiprocess_check(&o), 0);
	assert_false(ckpt_multiprocess_is_secondary(&o)); /* no primary: each alone */
	o.primary_host = 0;
	assert_true(ckpt_multiprocess_is_secondary(&o));
	o.active_processes = act;
	o.nactive = 2;
	assert_int_equal(ckpt_multiprocess_check(&o), CKPT_EINVAL); /* 1 is not active */
	assert_non_null(strstr(ckpt_error_last(), "process 1 is not in active_processes"));
	o.process_index = 2;
	assert_int_equal(ckpt_multiprocess_check(&o), 0);
	o.primary_host = 1; /* the primary must be active */
	assert_int_equal(ckpt_multiprocess_check(&o), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "primary (process 1)"));
	o.primary_host = 0;
	o.active_processes = dup;
	assert_int_equal(ckpt_multiprocess_check(&o), CKPT_EINVAL);
	o.active_processes = out;
	assert_int_equal(ckpt_multiprocess_check(&o), CKPT_EINVAL);
	o.active_processes = NULL;
	o.barrier_sync_key_prefix = "a/b";
	assert_int_equal(ckpt_multiprocess_check(&o), CKPT_EINVAL);
	o.barrier_sync_key_prefix = "run-1_x";
	assert_int_equal(ckpt_multiprocess_check(&o), 0);
	o.version = 99;
	assert_int_equal(ckpt_multiprocess_check(&o), CKPT_EINVAL);
	o.version = CKPT_MULTIPROCESS_OPTIONS_VERSION;

	/* the step writer checks them, before touching the root */
	char *root = mkroot();
	ckpt_step_writer_options wo = CKPT_STEP_WRITER_OPTIONS_INIT;
	ckpt_step_writer *w = NULL;
	o.process_index = 1;
	o.active_processes = act;
	wo.multiprocess = &o;
	assert_int_equal(ckpt_step_writer_open(&w, root, 1, &wo), CKPT_EINVAL);
	assert_null(w);
	/* version 1 writer options ignore the member */
	wo.version = 1;
	assert_int_equal(ckpt_step_writer_open(&w, root, 1, &wo), 0);
	assert_int_equal(ckpt_step_writer_finalize(w), 0);
	assert_true(has_step(root, 1));
	/* no primary: a process saves its own step alone */
	wo.version = CKPT_STEP_WRITER_OPTIONS_VERSION;
	o.active_processes = NULL;
	o.primary_host = -1;
	assert_int_equal(ckpt_step_writer_open(&w, root, 2, &wo), 0);
	assert_int_equal(ckpt_batch_put(ckpt_step_writer_batch(w), "k", 1, "v", 1, NULL), 0);
	assert_int_equal(ckpt_step_writer_finalize(w), 0);
	assert_true(has_step(root, 2));
	ckpt_rmtree(root);
	free(root);
}

/* The parsers of the rendezvous files refuse what they do not expect. */
static void test_parsers(void **state)
{
	const char *a = "0123456789abcdef", *n1 = "fedcba9876543210";
	char out[17], *dir = NULL, text[256];
	const char *msg;
	int code;

	snprintf(text, sizeof(text), "ckpt-mp 1 %s 7.ckpt-tmp-mp--%s\n1 %s\n2 %s\n", a, a, n1, a);
	assert_int_equal(ckpt_mp_parse_attempt(text, 1, n1, out, &dir), 1);
	assert_string_equal(out, a);
	assert_non_null(strstr(dir, "7.ckpt-tmp-mp-"));
	free(dir);
	assert_int_equal(ckpt_mp_parse_attempt(text, 2, n1, out, &dir), 0); /* not its nonce */
	assert_int_equal(ckpt_mp_parse_attempt(text, 3, n1, out, &dir), 0);
	snprintf(text, sizeof(text), "ckpt-mp 1 %s ../x\n1 %s\n", a, n1);
	assert_int_equal(ckpt_mp_parse_attempt(text, 1, n1, out, &dir), 0);
	snprintf(text, sizeof(text), "ckpt-mp 1 %s a/b\n1 %s\n", a, n1);
	assert_int_equal(ckpt_mp_parse_attempt(text, 1, n1, out, &dir), 0);
	snprintf(text, sizeof(text), "ckpt-mp 1 %s d\n-1 %s\n", a, n1);
	assert_int_equal(ckpt_mp_parse_attempt(text, 1, n1, out, &dir), 0);
	assert_int_equal(ckpt_mp_parse_attempt("ckpt-mp 1 ", 1, n1, out, &dir), 0);
	snprintf(text, sizeof(text), "%s -7\nbad things", a);
	assert_int_equal(ckpt_mp_parse_outcome(&code, &msg, text, a), 1);
	assert_int_equal(code, -7);
	assert_string_equal(msg, "bad things");
	assert_int_equal(ckpt_mp_parse_outcome(&code, &msg, text, n1), 0);
	snprintf(text, sizeof(text), "%s 5\n", a);
	assert_int_equal(ckpt_mp_parse_outcome(&code, &msg, text, a), 0);
}

/* A tiles-only batch accepts every plain put and stages none of them. */
static void test_tiles_only_batch(void **state)
{
	char *root = mkroot();
	ckpt_store *s = NULL;
	ckpt_batch *b = NULL;
	ckpt_value_writer *vw = NULL;
	ckpt_value_info info;
	char big[100000];

	memset(big, 7, sizeof(big));
	assert_int_equal(ckpt_store_open(&s, root, CKPT_STORE_CREATE, NULL), 0);
	assert_int_equal(ckpt_batch_begin(&b, s), 0);
	ckpt_batch_set_tiles_only(b, 1);
	assert_int_equal(ckpt_batch_put(b, "a", 1, "x", 1, NULL), 0);
	assert_int_equal(ckpt_batch_put(b, "b", 1, big, sizeof(big), NULL), 0);
	assert_int_equal(ckpt_value_writer_open(&vw, b, "c", 1, NULL), 0);
	assert_int_equal(ckpt_value_writer_write(vw, big, sizeof(big)), 0);
	assert_int_equal(ckpt_value_writer_close(vw), 0);
	assert_int_equal(ckpt_batch_delete(b, "a", 1), 0);
	uint64_t gs[1] = {10}, st[1] = {0}, sh[1] = {10};
	ckpt_tile t = {4, 1, gs, st, sh};
	assert_int_equal(ckpt_value_writer_open_tile(&vw, b, "t", 1, &t, NULL), 0);
	assert_int_equal(ckpt_value_writer_write(vw, big, 40), 0);
	assert_int_equal(ckpt_value_writer_close(vw), 0);
	assert_int_equal(ckpt_batch_commit(b, NULL), 0);
	assert_int_equal(ckpt_store_stat(&info, s, "a", 1), CKPT_ENOTFOUND);
	assert_int_equal(ckpt_store_stat(&info, s, "b", 1), CKPT_ENOTFOUND);
	assert_int_equal(ckpt_store_stat(&info, s, "c", 1), CKPT_ENOTFOUND);
	assert_int_equal(ckpt_store_close_tiles(s), 0); /* the tile is there */
	assert_int_equal(ckpt_store_stat(&info, s, "t", 1), 0);
	assert_int_equal(info.size, 40);
	ckpt_store_free(s);
	ckpt_rmtree(root);
	free(root);
}

/* ---- 4 writers, N readers ---- */

typedef struct save_arg {
	const char *root;
	uint64_t step;
	const mp_case *c;
	uint64_t timeout_ms;
	unsigned die; /* a process index that kills itself mid-save, or ~0u */
} save_arg;

static int save_proc(unsigned me, void *arg)
{
	const save_arg *a = arg;
	ckpt_multiprocess_options o;
	ckpt_step_writer_options wo = CKPT_STEP_WRITER_OPTIONS_INIT;
	ckpt_step_writer *w = NULL;
	int rc;

	if (a->die != me)
		return mp_save(a->root, a->step, a->c, me, a->timeout_ms);
	mp_options(&o, a->c, me, a->timeout_ms, "t");
	wo.multiprocess = &o;
	rc = ckpt_step_writer_open(&w, a->root, a->step, &wo);
	if (rc == 0)
		rc = mp_write_boxes(w, a->c, me);
	if (rc == 0)
		raise(SIGKILL); /* mid-save: its index written, never finalized */
	return rc;
}

typedef struct check_arg {
	const char *dir;
	const mp_case *c;
} check_arg;

static int check_proc(unsigned me, void *arg)
{
	const check_arg *a = arg;
	return mp_check(a->dir, a->c, 1000 + me, 12);
}

/* Save case c as `step` with its active processes; assert every process returned want. */
static void run_save(const char *root, uint64_t step, const mp_case *c, int want)
{
	save_arg sa = {root, step, c, TIMEOUT_MS, ~0u};
	procs p = {0};
	char msg[4096];

	spawn(&p, c->active, c->nactive, save_proc, &sa, NULL);
	for (unsigned k = 0; k < c->nactive; k++) {
		int rc = reap(&p, k, msg, sizeof(msg));
		if (rc != want)
			fail_msg("process %u: %d %s", c->active[k], rc, msg);
	}
	procs_done(&p);
}

static void run_readers(const char *dir, const mp_case *c, unsigned n)
{
	check_arg ca = {dir, c};
	unsigned who[8];
	procs p = {0};
	char msg[4096];

	for (unsigned i = 0; i < n; i++)
		who[i] = i;
	spawn(&p, who, n, check_proc, &ca, NULL);
	for (unsigned k = 0; k < n; k++) {
		int rc = reap(&p, k, msg, sizeof(msg));
		if (rc != 0)
			fail_msg("reader %u of %u: %d %s", k, n, rc, msg);
	}
	procs_done(&p);
}

static void test_writers_readers(void **state)
{
	static const unsigned readers[] = {1, 2, 3, 8};
	char *root = mkroot(), buf[4096];

	for (unsigned t = 0; t < 4; t++) {
		mp_case c;
		uint64_t step = 10 + t;
		mp_case_make(&c, 0x5eed + t * 977, 4, t >= 2 /* active subsets */);
		run_save(root, step, &c, 0);
		assert_true(has_step(root, step));
		char *dir = ckpt_asprintf("%s/%" PRIu64, root, step);
		run_readers(dir, &c, readers[t]);
		/* only the primary's plain key is kept */
		ckpt_step *s = NULL;
		void *who = NULL;
		size_t len = 0;
		assert_int_equal(ckpt_step_open(&s, dir, NULL), 0);
		assert_int_equal(ckpt_store_get(&who, &len, ckpt_step_store(s), "who", 3), 0);
		assert_memory_equal(who, "process 0", 9);
		free(who);
		ckpt_step_free(s);
		free(dir);
	}
	/* nothing but the steps is left: no rendezvous, no attempt directory */
	assert_null(strstr(listing(buf, sizeof(buf), root), CKPT_TMP_INFIX));
	ckpt_rmtree(root);
	free(root);
}

/* ---- failures ---- */

static void test_kill_secondary(void **state)
{
	char *root = mkroot(), msg[4096], buf[4096];
	mp_case c;
	save_arg sa;
	procs p = {0};

	mp_case_make(&c, 4242, 4, 0);
	sa = (save_arg){root, 7, &c, SHORT_MS, 2};
	spawn(&p, c.active, c.nactive, save_proc, &sa, NULL);
	for (unsigned k = 0; k < c.nactive; k++) {
		int rc = reap(&p, k, msg, sizeof(msg));
		if (c.active[k] == 2) {
			assert_int_equal(rc, 1000 + SIGKILL);
			continue;
		}
		assert_int_equal(rc, CKPT_EBUSY);
		/* the primary names the missing process; the others relay it */
		if (!strstr(msg, "process 2 did not reach barrier 'saved' within 1500 ms"))
			fail_msg("process %u: %s", c.active[k], msg);
		assert_non_null(strstr(msg, "step 7"));
	}
	procs_done(&p);
	assert_false(has_step(root, 7));
	/* a new attempt of the same step succeeds */
	run_save(root, 7, &c, 0);
	assert_true(has_step(root, 7));
	char *dir = ckpt_asprintf("%s/7", root);
	assert_int_equal(mp_check(dir, &c, 1, 8), 0);
	free(dir);
	assert_null(strstr(listing(buf, sizeof(buf), root), CKPT_TMP_INFIX));
	ckpt_rmtree(root);
	free(root);
}

static void test_kill_primary_in_merge(void **state)
{
#ifdef NDEBUG
	skip(); /* the test hook exists in debug builds only */
#endif
	char *root = mkroot(), msg[4096], buf[4096];
	mp_case c;
	save_arg sa;
	procs p = {0};

	mp_case_make(&c, 777, 4, 0);
	sa = (save_arg){root, 3, &c, SHORT_MS, ~0u};
	spawn(&p, c.active, c.nactive, save_proc, &sa, "merge");
	for (unsigned k = 0; k < c.nactive; k++) {
		int rc = reap(&p, k, msg, sizeof(msg));
		if (c.active[k] == 0) {
			assert_int_equal(rc, 1000 + SIGKILL);
			continue;
		}
		assert_int_equal(rc, CKPT_EBUSY);
		if (!strstr(msg, "the primary, process 0 did not reach barrier 'result'"))
			fail_msg("process %u: %s", c.active[k], msg);
	}
	procs_done(&p);
	assert_false(has_step(root, 3));
	run_save(root, 3, &c, 0); /* the rerun removes the dead attempt and succeeds */
	assert_true(has_step(root, 3));
	char *dir = ckpt_asprintf("%s/3", root);
	assert_int_equal(mp_check(dir, &c, 2, 8), 0);
	free(dir);
	assert_null(strstr(listing(buf, sizeof(buf), root), CKPT_TMP_INFIX));
	ckpt_rmtree(root);
	free(root);
}

static void test_same_index_twice(void **state)
{
	char *root = mkroot(), msg[4096];
	mp_case c;
	save_arg sa;
	procs p = {0};
	unsigned who[] = {0, 1, 1};
	int claimed = 0;

	mp_case_make(&c, 99, 2, 0);
	sa = (save_arg){root, 5, &c, SHORT_MS, ~0u};
	spawn(&p, who, 3, save_proc, &sa, NULL);
	for (unsigned k = 0; k < 3; k++) {
		int rc = reap(&p, k, msg, sizeof(msg));
		if (rc == CKPT_EEXISTS && strstr(msg, "process index 1 is claimed by two processes"))
			claimed++;
	}
	procs_done(&p);
	assert_true(claimed >= 1);
	ckpt_rmtree(root);
	free(root);
}

/* ---- handlers and the manager ---- */

static int composite_proc(unsigned me, void *arg)
{
	const char *root = arg;
	ckpt_multiprocess_options o = CKPT_MULTIPROCESS_OPTIONS_INIT;
	ckpt_manager_options mo = CKPT_MANAGER_OPTIONS_INIT;
	ckpt_manager *m = NULL;
	ckpt_registry *r = NULL;
	ckpt_tree *tree = NULL, *leaf = NULL;
	static float w[4] = {1, 2, 3, 4};
	uint64_t shape[1] = {4}, *steps = NULL, latest = 0;
	size_t nsteps = 0;
	int rc;

	o.process_index = me;
	o.process_count = 3;
	o.primary_host = 0;
	o.barrier_timeout_ms = TIMEOUT_MS;
	mo.async.writer.multiprocess = &o;
	mo.preservation.latest_n = 2;
	mo.enable_async = me == 1; /* asynchronous and synchronous processes meet alike */
	rc = ckpt_manager_open(&m, root, &mo);
	if (rc == 0)
		rc = ckpt_registry_new(&r);
	if (rc == 0)
		rc = ckpt_tree_new(&tree, CKPT_TREE_DICT);
	if (rc == 0)
		rc = ckpt_tree_new_array(&leaf, CKPT_DTYPE_FLOAT32, 1, shape, w, CKPT_TREE_BORROW);
	if (rc == 0)
		rc = ckpt_tree_add(tree, "w", leaf);
	for (uint64_t step = 1; rc == 0 && step <= 4; step++) {
		char json[64];
		ckpt_pytree_save_args pa = CKPT_PYTREE_SAVE_ARGS_INIT;
		ckpt_item_args ia[2];
		snprintf(json, sizeof(json), "{\"step\": %" PRIu64 "}", step);
		pa.item = tree;
		ckpt_composite_arg items[] = {{"state", CKPT_PYTREE_TYPESTR, &pa},
					      {"meta", CKPT_JSON_TYPESTR, json}};
		rc = ckpt_composite_item_args(ia, r, items, 2);
		if (rc == 0)
			rc = ckpt_manager_save(m, step, ia, 2, NULL, NULL, 0);
		if (rc == 0)
			rc = ckpt_manager_wait_until_finished(m);
	}
	if (rc == 0)
		rc = ckpt_manager_latest_step(&latest, m);
	if (rc == 0)
		rc = ckpt_manager_all_steps(&steps, &nsteps, m);
	if (rc == 0 && (latest != 4 || nsteps != 2))
		rc = ckpt_error_set(CKPT_ERROR, "process %u sees %zu steps, the latest %" PRIu64,
				    me, nsteps, latest);
	free(steps);
	ckpt_tree_free(tree);
	ckpt_registry_free(r);
	ckpt_manager_free(m);
	return rc;
}

static void test_composite_manager(void **state)
{
	char *root = mkroot(), msg[4096];
	unsigned who[] = {0, 1, 2};
	procs p = {0};

	spawn(&p, who, 3, composite_proc, root, NULL);
	for (unsigned k = 0; k < 3; k++) {
		int rc = reap(&p, k, msg, sizeof(msg));
		if (rc != 0)
			fail_msg("process %u: %d %s", k, rc, msg);
	}
	procs_done(&p);
	uint64_t *v = NULL;
	size_t n = 0;
	assert_int_equal(ckpt_root_steps(&v, &n, root), 0);
	assert_int_equal(n, 2); /* the primary deleted steps 1 and 2 */
	assert_int_equal(v[0], 3);
	assert_int_equal(v[1], 4);
	free(v);
	/* the step holds both items, written by the primary alone */
	char *dir = ckpt_asprintf("%s/4", root);
	ckpt_step *s = NULL;
	ckpt_composite_result *res = NULL;
	ckpt_registry *r = NULL;
	assert_int_equal(ckpt_step_open(&s, dir, NULL), 0);
	assert_int_equal(ckpt_step_item_count(s), 2);
	assert_int_equal(ckpt_registry_new(&r), 0);
	assert_int_equal(ckpt_composite_restore(&res, r, s, NULL, 0), 0);
	assert_string_equal(ckpt_composite_result_get(res, "meta"), "{\"step\": 4}");
	const ckpt_tree *t = ckpt_composite_result_get(res, "state");
	assert_non_null(t);
	ckpt_composite_result_free(res);
	ckpt_registry_free(r);
	ckpt_step_free(s);
	free(dir);
	ckpt_rmtree(root);
	free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_options),
	    cmocka_unit_test(test_parsers),
	    cmocka_unit_test(test_tiles_only_batch),
	    cmocka_unit_test(test_writers_readers),
	    cmocka_unit_test(test_kill_secondary),
	    cmocka_unit_test(test_kill_primary_in_merge),
	    cmocka_unit_test(test_same_index_twice),
	    cmocka_unit_test(test_composite_manager),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
