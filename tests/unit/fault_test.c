/*
 * fault_test.c — fault injection at every I/O call, as SQLite tests itself:
 * the N-th open/openat/write/pwrite/fsync/fdatasync/rename/renameat/link/
 * linkat/mkdir/unlink/unlinkat/rmdir/ftruncate (and malloc/calloc/realloc
 * where the build allows it) of one operation fails (EIO, ENOSPC for
 * writes, ENOMEM for memory), for N = 1, 2, ... until the operation passes
 * every injection point. Paths: a save of an interchange directory
 * (ckpt_interchange_save, what `ckpt save` does), a finalize of a pending
 * step (ckpt_pending_finalize: `ckpt finalize` and the mount's), a manager
 * save that deletes a step its policy no longer keeps, and a gc
 * (ckpt_root_delete_step + ckpt_root_cleanup, what `ckpt gc` does).
 *
 * After each injected fault: the call failed with a message (or succeeded
 * with a complete result), every visible step opens and verifies (no
 * visible partial step), the earlier steps are intact, and the next save
 * (no fault) succeeds. Under SANITIZER=address LeakSanitizer checks that no
 * failure path leaks. The number of injection points of each path is
 * printed.
 *
 * The switch is fault_inject.h: this program's definitions of the libc
 * calls, armed around the operation.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "ckpt/ckpt.h"

#include "fault_inject.h"

/* ---- fixtures ------------------------------------------------------------ */

static char tmp[64];

static int setup(void **state)
{
	strcpy(tmp, "/tmp/fault_test.XXXXXX");
	if (!mkdtemp(tmp))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	return system(cmd);
}

static int mkdir_p(const char *path)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", path);
	return system(cmd);
}

/* A .npy of n float32 values (i * k) at path. */
static void write_npy(const char *path, size_t n, float k)
{
	char hdr[128];
	int hl = snprintf(hdr + 10, sizeof(hdr) - 10,
			  "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu,), }", n);
	size_t total = 10 + (size_t)hl + 1, pad = (64 - total % 64) % 64;
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	memcpy(hdr, "\x93NUMPY\x01\x00", 8);
	memset(hdr + 10 + hl, ' ', pad);
	hdr[10 + hl + pad] = '\n';
	hdr[8] = (char)((hl + pad + 1) & 0xff);
	hdr[9] = (char)((hl + pad + 1) >> 8);
	assert_int_equal(fwrite(hdr, 1, total + pad, f), total + pad);
	for (size_t i = 0; i < n; i++) {
		float v = (float)i * k;
		assert_int_equal(fwrite(&v, 4, 1, f), 1);
	}
	assert_int_equal(fclose(f), 0);
}

/* dir/state/{w,b}.npy: w chunked (several chunks), b inline. */
static void make_src(const char *dir)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/state", dir);
	assert_int_equal(mkdir_p(p), 0);
	snprintf(p, sizeof(p), "%s/state/w.npy", dir);
	write_npy(p, 200000, 0.5f);
	snprintf(p, sizeof(p), "%s/state/b.npy", dir);
	write_npy(p, 10, 2.0f);
}

/* Open step dir and verify every value; 0 when all is well. */
static int verify_step(const char *dir)
{
	ckpt_step *s = NULL;
	int rc = ckpt_step_open(&s, dir, NULL);
	size_t np = 0;

	if (rc == 0)
		rc = ckpt_step_check_keys(s, NULL, NULL, &np);
	if (rc == 0 && np)
		rc = -1;
	for (size_t i = 0; rc == 0 && i < ckpt_step_item_count(s); i++) {
		const ckpt_tree *t;
		const char *item = ckpt_step_item_name(s, i);
		if ((rc = ckpt_step_item_tree(&t, s, item)) < 0)
			break;
		const char *leaves[] = {"w", "b"};
		for (int j = 0; j < 2 && rc == 0; j++) {
			char key[64];
			ckpt_value *v = NULL;
			snprintf(key, sizeof(key), "%s/%s", item, leaves[j]);
			if ((rc = ckpt_value_open(&v, ckpt_step_store(s), key, strlen(key))) == 0)
				rc = ckpt_value_verify(v);
			ckpt_value_free(v);
		}
	}
	ckpt_step_free(s);
	return rc;
}

/* Every visible step of root verifies; *n receives how many there are. */
static void check_root(const char *root, size_t *n)
{
	uint64_t *steps = NULL;

	assert_int_equal(ckpt_root_steps(&steps, n, root), 0);
	for (size_t i = 0; i < *n; i++) {
		char d[512];
		snprintf(d, sizeof(d), "%s/%llu", root, (unsigned long long)steps[i]);
		if (verify_step(d) != 0)
			fail_msg("visible step %s does not verify: %s", d, ckpt_error_last());
	}
	free(steps);
}

typedef struct {
	const char *name;
	long points, mem_points, mem_stride, failed_clean, ok_anyway;
} tally;

static void report(const tally *t)
{
	char mem[96];

	if (t->mem_points < 0)
		snprintf(mem, sizeof(mem), "no memory pass (AddressSanitizer build)");
	else
		snprintf(mem, sizeof(mem), "%ld memory ones (every %ld-th injected)", t->mem_points,
			 t->mem_stride);
	print_message("%s: %ld I/O injection points, %s; %ld faults failed the call with a "
		      "message, %ld were absorbed (call succeeded, result complete)\n",
		      t->name, t->points, mem, t->failed_clean, t->ok_anyway);
}

/*
 * Run op(ctx) with the N-th injection point failing, for N = 1.. until op
 * passes them all. prepare/after run unarmed around each try; after checks
 * the state and returns the try's result to the tally.
 */
typedef struct fault_path {
	const char *name;
	void (*prepare)(struct fault_path *p, long n);
	int (*op)(struct fault_path *p);
	void (*after)(struct fault_path *p, int rc, long n);
	char root[256], src[256];
	char *pending;
	int lock_fd;
	uint64_t step;
} fault_path;

/*
 * One pass: N = 1, 1 + stride, ... until an armed run passes every point.
 * Returns the number of points of the pass.
 */
static long run_pass(fault_path *p, tally *t, long stride)
{
	long limit = getenv("CKPT_FAULT_LIMIT") ? atol(getenv("CKPT_FAULT_LIMIT")) : 1000000;

	for (long n = 1; n <= limit; n += stride) {
		int rc;
		p->prepare(p, n);
		arm(n);
		rc = p->op(p);
		disarm();
		if (!__atomic_load_n(&fired, __ATOMIC_RELAXED)) {
			long points = __atomic_load_n(&calls, __ATOMIC_RELAXED);
			assert_int_equal(rc, 0); /* no fault: the plain call works */
			p->after(p, rc, n);
			return points;
		}
		if (rc < 0) {
			const char *m = ckpt_error_last();
			if (!m || !*m)
				fail_msg("%s: fault %ld: error %d without a message", p->name, n, rc);
			t->failed_clean++;
		} else {
			t->ok_anyway++;
		}
		p->after(p, rc, n);
	}
	fail_msg("%s: more than %ld injection points", p->name, limit);
	return 0;
}

/*
 * Every I/O injection point, then (where the build can) every
 * CKPT_FAULT_MEM_STRIDE-th memory one (default 53; 1 in tests/stress/).
 */
static void run_path(fault_path *p, tally *t)
{
	const char *e = getenv("CKPT_FAULT_MEM_STRIDE");
	long stride = e && atol(e) > 0 ? atol(e) : 53;

	t->name = p->name;
	mem_pass = 0;
	t->points = run_pass(p, t, 1);
	t->mem_points = -1;
	if (MALLOC_POINTS && stride < 1000000) {
		mem_pass = 1;
		t->mem_stride = stride;
		t->mem_points = run_pass(p, t, stride);
		mem_pass = 0;
	}
}

/* ---- save ---------------------------------------------------------------- */

static void save_prepare(fault_path *p, long n)
{
	p->step = 100;
}

static int save_op(fault_path *p)
{
	return ckpt_interchange_save(p->root, p->step, p->src, NULL);
}

/* After a save: the steps that exist verify, the next save works; back to steps {1, 2}. */
static void save_after(fault_path *p, int rc, long n)
{
	char d[512];
	size_t ns;

	check_root(p->root, &ns);
	snprintf(d, sizeof(d), "%s/%llu", p->root, (unsigned long long)p->step);
	if (rc == 0 && access(d, F_OK) != 0)
		fail_msg("%s: fault %ld: success without the step", p->name, n);
	if (access(d, F_OK) == 0)
		assert_int_equal(ckpt_root_delete_step(p->root, p->step), 0);
	assert_int_equal(ckpt_root_cleanup(p->root, NULL), 0);
	assert_int_equal(ckpt_interchange_save(p->root, 3, p->src, NULL), 0);
	assert_int_equal(verify_step(strcat(strcpy(d, p->root), "/3")), 0);
	assert_int_equal(ckpt_root_delete_step(p->root, 3), 0);
	check_root(p->root, &ns);
	assert_int_equal(ns, 2);
}

static void base_root(fault_path *p, const char *name)
{
	snprintf(p->root, sizeof(p->root), "%s/%s", tmp, name);
	snprintf(p->src, sizeof(p->src), "%s/%s-src", tmp, name);
	make_src(p->src);
	assert_int_equal(ckpt_interchange_save(p->root, 1, p->src, NULL), 0);
	assert_int_equal(ckpt_interchange_save(p->root, 2, p->src, NULL), 0);
}

static void test_fault_save(void **state)
{
	fault_path p = {.name = "save (ckpt_interchange_save)", .prepare = save_prepare,
			.op = save_op, .after = save_after};
	tally t = {0};

	base_root(&p, "save");
	run_path(&p, &t);
	report(&t);
	assert_true(t.points > 20);
}

/* ---- finalize ------------------------------------------------------------ */

static void fin_prepare(fault_path *p, long n)
{
	char f[512];

	p->step = 100;
	p->lock_fd = -1;
	assert_int_equal(ckpt_pending_create(&p->pending, &p->lock_fd, p->root, p->step), 0);
	snprintf(f, sizeof(f), "%s/files/state", p->pending);
	assert_int_equal(mkdir_p(f), 0);
	snprintf(f, sizeof(f), "%s/files/state/w.npy", p->pending);
	write_npy(f, 200000, 0.5f);
	snprintf(f, sizeof(f), "%s/files/state/b.npy", p->pending);
	write_npy(f, 10, 2.0f);
}

static int fin_op(fault_path *p)
{
	return ckpt_pending_finalize(p->pending, p->lock_fd, NULL);
}

static void fin_after(fault_path *p, int rc, long n)
{
	size_t ns;
	char d[512];

	check_root(p->root, &ns);
	snprintf(d, sizeof(d), "%s/%llu", p->root, (unsigned long long)p->step);
	if (rc == 0 && access(d, F_OK) != 0)
		fail_msg("%s: fault %ld: success without the step", p->name, n);
	if (access(p->pending, F_OK) == 0) { /* failed: still pending, as the API says */
		if (access(d, F_OK) == 0)
			fail_msg("%s: fault %ld: both pending and finalized", p->name, n);
		assert_int_equal(ckpt_pending_remove(p->pending, p->lock_fd), 0);
	} else {
		assert_int_equal(ckpt_root_delete_step(p->root, p->step), 0);
	}
	if (p->lock_fd >= 0)
		close(p->lock_fd);
	free(p->pending);
	p->pending = NULL;
	assert_int_equal(ckpt_root_cleanup(p->root, NULL), 0);
	check_root(p->root, &ns);
	assert_int_equal(ns, 2);
}

static void test_fault_finalize(void **state)
{
	fault_path p = {.name = "finalize (ckpt_pending_finalize)", .prepare = fin_prepare,
			.op = fin_op, .after = fin_after};
	tally t = {0};

	base_root(&p, "finalize");
	run_path(&p, &t);
	report(&t);
	assert_true(t.points > 20);
}

/* ---- manager save with deletion ------------------------------------------ */

typedef struct {
	fault_path p;
	ckpt_manager *m;
	ckpt_handler *h;
	ckpt_tree *tree;
} mgr_path;

static void mgr_open(mgr_path *mp)
{
	ckpt_manager_options mo = CKPT_MANAGER_OPTIONS_INIT;
	mo.preservation.latest_n = 2;
	mo.enable_async = 0;
	assert_int_equal(ckpt_manager_open(&mp->m, mp->p.root, &mo), 0);
}

static int mgr_save(mgr_path *mp, uint64_t step)
{
	ckpt_pytree_save_args args = CKPT_PYTREE_SAVE_ARGS_INIT;
	const ckpt_item_args item = {"state", mp->h, &args};
	args.item = mp->tree;
	return ckpt_manager_save(mp->m, step, &item, 1, NULL, NULL, 1);
}

static void mgr_prepare(fault_path *p, long n)
{
	mgr_path *mp = (mgr_path *)p;
	mgr_open(mp);
}

static int mgr_op(fault_path *p)
{
	mgr_path *mp = (mgr_path *)p;
	return mgr_save(mp, 3);
}

static void mgr_after(fault_path *p, int rc, long n)
{
	mgr_path *mp = (mgr_path *)p;
	uint64_t *steps;
	size_t ns;

	ckpt_manager_free(mp->m);
	mp->m = NULL;
	check_root(p->root, &ns);
	assert_int_equal(ckpt_root_steps(&steps, &ns, p->root), 0);
	/* whatever happened, 2 is kept; 3 exists iff it was finalized (verified above) */
	assert_true(ns >= 2 && ns <= 3);
	free(steps);
	/* back to {1, 2}: the next save (no fault) works and deletes 1 */
	char d[512];
	ckpt_root_delete_step(p->root, 3);
	ckpt_root_cleanup(p->root, NULL);
	snprintf(d, sizeof(d), "%s/1", p->root);
	if (access(d, F_OK) != 0)
		assert_int_equal(ckpt_interchange_save(p->root, 1, p->src, NULL), 0);
	mgr_open(mp);
	assert_int_equal(mgr_save(mp, 3), 0);
	ckpt_manager_free(mp->m);
	mp->m = NULL;
	check_root(p->root, &ns);
	assert_int_equal(ns, 2); /* 2 and 3: 1 was deleted */
	assert_int_equal(ckpt_root_delete_step(p->root, 3), 0);
	assert_int_equal(ckpt_interchange_save(p->root, 1, p->src, NULL), 0);
}

static void test_fault_manager_save(void **state)
{
	mgr_path mp = {.p = {.name = "manager save deleting a step (ckpt_manager_save)",
			     .prepare = mgr_prepare, .op = mgr_op, .after = mgr_after}};
	static float w[50000];
	const uint64_t shape[1] = {50000};
	ckpt_tree *leaf;
	tally t = {0};

	for (size_t i = 0; i < 50000; i++)
		w[i] = (float)i * 0.25f;
	base_root(&mp.p, "manager");
	assert_int_equal(ckpt_pytree_handler_new(&mp.h), 0);
	assert_int_equal(ckpt_tree_new(&mp.tree, CKPT_TREE_DICT), 0);
	assert_int_equal(ckpt_tree_new_array(&leaf, CKPT_DTYPE_FLOAT32, 1, shape, w,
					     CKPT_TREE_BORROW),
			 0);
	assert_int_equal(ckpt_tree_add(mp.tree, "w", leaf), 0);
	assert_int_equal(ckpt_tree_new_array(&leaf, CKPT_DTYPE_FLOAT32, 1, shape, w,
					     CKPT_TREE_BORROW),
			 0);
	assert_int_equal(ckpt_tree_add(mp.tree, "b", leaf), 0);
	run_path(&mp.p, &t);
	report(&t);
	assert_true(t.points > 20);
	ckpt_tree_free(mp.tree);
	ckpt_handler_free(mp.h);
}

/* ---- gc ------------------------------------------------------------------ */

static int gc_op(fault_path *p)
{
	int rc = ckpt_root_delete_step(p->root, 1);
	return rc < 0 ? rc : ckpt_root_cleanup(p->root, NULL);
}

static void gc_prepare(fault_path *p, long n)
{
	char d[512];
	snprintf(d, sizeof(d), "%s/1", p->root);
	if (access(d, F_OK) != 0)
		assert_int_equal(ckpt_interchange_save(p->root, 1, p->src, NULL), 0);
}

static void gc_after(fault_path *p, int rc, long n)
{
	size_t ns;
	char d[512];

	check_root(p->root, &ns); /* step 1 is there whole or not at all */
	snprintf(d, sizeof(d), "%s/1", p->root);
	if (rc == 0 && access(d, F_OK) == 0)
		fail_msg("%s: fault %ld: success but step 1 is still there", p->name, n);
	/* the next gc (of the steps that are there, as `ckpt gc`) finishes the job */
	if (access(d, F_OK) == 0)
		assert_int_equal(ckpt_root_delete_step(p->root, 1), 0);
	assert_int_equal(ckpt_root_cleanup(p->root, NULL), 0);
	check_root(p->root, &ns);
	assert_int_equal(ns, 1);
	assert_int_equal(ckpt_interchange_save(p->root, 3, p->src, NULL), 0);
	assert_int_equal(ckpt_root_delete_step(p->root, 3), 0);
}

static void test_fault_gc(void **state)
{
	fault_path p = {.name = "gc (ckpt_root_delete_step + ckpt_root_cleanup)",
			.prepare = gc_prepare, .op = gc_op, .after = gc_after};
	tally t = {0};

	base_root(&p, "gc");
	run_path(&p, &t);
	report(&t);
	assert_true(t.points > 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fault_save),
	    cmocka_unit_test(test_fault_finalize),
	    cmocka_unit_test(test_fault_manager_save),
	    cmocka_unit_test(test_fault_gc),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
