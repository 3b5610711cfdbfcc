/*
 * orbax_test.c — an Orbax step through the library (ckpt_step_open, trees,
 * leaves): contents equal what python3-zarr wrote; opening and listing read
 * no array data; a 4 KiB read of a leaf reads at most one chunk; the store
 * refuses writes.
 */
#include <dirent.h>
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

#include "ckpt/error.h"
#include "ckpt/npy.h"
#include "ckpt/checkpointer.h"
#include "ckpt/manager.h"
#include "ckpt/pytree.h"
#include "ckpt/root.h"
#include "ckpt/step.h"

static char tmp[256], root[300], exp_dir[300];

static int setup(void **state)
{
	char cmd[1024];
	snprintf(tmp, sizeof(tmp), "/tmp/orbax_test.%d", (int)getpid());
	snprintf(root, sizeof(root), "%s/root", tmp);
	snprintf(exp_dir, sizeof(exp_dir), "%s/exp", tmp);
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 tests/orbax_make_step.py %s %s 4", root,
		 exp_dir);
	return system(cmd);
}

static int teardown(void **state)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	return system(cmd);
}

static uint64_t fsize(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Bytes of the JSON files and zarr metadata: what opening may read. */
static uint64_t metadata_bytes(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t n = 0;
	char p[1024];

	assert_non_null(d);
	while ((e = readdir(d))) {
		struct stat st;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		assert_int_equal(stat(p, &st), 0);
		if (S_ISDIR(st.st_mode))
			n += metadata_bytes(p);
		else if (e->d_name[0] == '_' || e->d_name[0] == '.')
			n += (uint64_t)st.st_size;
	}
	closedir(d);
	return n;
}

static int count_cb(const void *name, size_t namelen, int is_prefix, void *payload)
{
	(*(int *)payload)++;
	return 0;
}

static void test_lazy_open_list_read(void **state)
{
	char dir[512], path[1024];
	ckpt_step *s;
	const ckpt_tree *t;
	ckpt_tree *kernel;
	ckpt_leaf *l;
	int n = 0;

	snprintf(dir, sizeof(dir), "%s/100", root);
	assert_string_equal(ckpt_step_dir_format(dir), "orbax");
	assert_int_equal(ckpt_step_open(&s, dir, NULL), 0);
	assert_int_equal(ckpt_step_item_tree(&t, s, "state"), 0);
	ckpt_store *st = ckpt_step_store(s);
	assert_int_equal(ckpt_store_list(st, "", 0, -1, count_cb, &n), 0);
	assert_int_equal(n, 1 + 1 + 7 + 1); /* step meta, _METADATA, 7 leaves, meta/metadata */
	uint64_t opened = ckpt_store_bytes_read(st);
	/* opening, parsing the tree and listing read metadata only, no chunk */
	assert_true(opened > 0);
	assert_true(opened <= metadata_bytes(dir));

	assert_int_equal(ckpt_tree_lookup(&kernel, t, "params/dense/kernel"), 0);
	assert_int_equal(ckpt_tree_nbytes(kernel), 2048ull * 512 * 4);
	assert_int_equal(ckpt_leaf_open(&l, s, "state", kernel), 0);
	/* A read inside one chunk (rows of 2048 bytes, chunks 32 rows x 512 bytes) reads
	 * that chunk's file only; a whole row crosses the 4 chunks of its row, and
	 * reads the 3 not cached yet. */
	uint64_t hdr = ckpt_leaf_file_size(l) - ckpt_tree_nbytes(kernel);
	char buf[2048], want[2048];
	size_t got = 0;
	uint64_t before = ckpt_store_bytes_read(st);
	assert_int_equal(ckpt_leaf_pread(&got, l, buf, 256, hdr + 1000 * 2048 + 100), 0);
	assert_int_equal(got, 256);
	uint64_t one = ckpt_store_bytes_read(st) - before;
	snprintf(path, sizeof(path), "%s/state/params.dense.kernel/31.0", dir);
	assert_int_equal(one, fsize(path));
	before = ckpt_store_bytes_read(st);
	assert_int_equal(ckpt_leaf_pread(&got, l, buf, 2048, hdr + 1001 * 2048), 0);
	uint64_t three = 0;
	for (int c = 1; c < 4; c++) {
		snprintf(path, sizeof(path), "%s/state/params.dense.kernel/31.%d", dir, c);
		three += fsize(path);
	}
	assert_int_equal(ckpt_store_bytes_read(st) - before, three);

	/* the bytes equal numpy's */
	snprintf(path, sizeof(path), "%s/params.dense.kernel.npy", exp_dir);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long flen = ftell(f);
	fseek(f, flen - (long)ckpt_tree_nbytes(kernel) + 1001 * 2048, SEEK_SET);
	assert_int_equal(fread(want, 1, sizeof(want), f), sizeof(want));
	fclose(f);
	assert_memory_equal(buf, want, sizeof(want));
	ckpt_leaf_free(l);

	/* read-only */
	ckpt_batch *b = NULL;
	assert_int_equal(ckpt_batch_begin(&b, st), CKPT_EREADONLY);
	ckpt_step_free(s);
}

static int to_f64(ckpt_leaf_restore_args *out, const char *path, const ckpt_tree *meta,
		  void *payload)
{
	if (ckpt_tree_get_kind(meta) == CKPT_TREE_ARRAY)
		out->dtype = CKPT_DTYPE_FLOAT64;
	return 0;
}

/* A C program restores a subset of the Orbax checkpoint with a cast (PyTree
 * handler through the checkpointer), and a read-only manager lists its steps. */
static void test_pytree_restore_and_manager(void **state)
{
	char dir[512], path[1024];
	ckpt_handler *h;
	const char *paths[] = {"params/dense/bias", "opt_state/0/count"};
	ckpt_pytree_restore_args ra = CKPT_PYTREE_RESTORE_ARGS_INIT;
	void *out = NULL;

	snprintf(dir, sizeof(dir), "%s/100", root);
	ra.paths = paths;
	ra.npaths = 2;
	ra.leaf_args = to_f64;
	assert_int_equal(ckpt_pytree_handler_new(&h), 0);
	ckpt_item_args it = {"state", h, &ra};
	assert_int_equal(ckpt_checkpointer_restore(&out, dir, &it, 1), 0);
	ckpt_tree *t = out, *bias, *count, *kernel = NULL;
	assert_int_equal(ckpt_tree_lookup(&bias, t, "params/dense/bias"), 0);
	assert_int_equal(ckpt_tree_dtype(bias), CKPT_DTYPE_FLOAT64);
	assert_int_equal(ckpt_tree_nelems(bias), 512);
	const double *b = ckpt_tree_data(bias);
	for (int i = 0; i < 512; i++)
		assert_true(b[i] == (double)((float)i / 7.0f)); /* arange(512) / 7 as float32 */
	assert_int_equal(ckpt_tree_lookup(&count, t, "opt_state/0/count"), 0);
	assert_int_equal(ckpt_tree_int(count), 12345);
	assert_int_not_equal(ckpt_tree_lookup(&kernel, t, "params/dense/kernel"), 0);
	ckpt_tree_free(t);
	ckpt_handler_free(h);

	ckpt_manager_options mo = CKPT_MANAGER_OPTIONS_INIT;
	ckpt_manager *m;
	uint64_t latest = 0;
	mo.read_only = 1;
	assert_int_equal(ckpt_manager_open(&m, root, &mo), 0);
	assert_int_equal(ckpt_manager_latest_step(&latest, m), 0);
	assert_int_equal(latest, 100);
	ckpt_manager_free(m);
	/* the unfinished Orbax save is never a step */
	snprintf(path, sizeof(path), "%s/step_200.orbax-checkpoint-tmp", root);
	assert_null(ckpt_step_dir_format(path));
}

/* Orbax step directories named by step_prefix / step_format_fixed_length
 * ("ckpt_0000007", "run_12", "0000003"): listed in every naming, opened by a
 * read-only manager with matching options; an unfinished save is never a step. */
static void test_named_step_dirs(void **state)
{
	char named[300], cmd[4096];
	ckpt_root_step *dirs = NULL;
	uint64_t *steps = NULL, latest = 0, v;
	size_t n = 0;
	ckpt_manager *m;
	ckpt_manager_options mo = CKPT_MANAGER_OPTIONS_INIT;

	(void)state;
	snprintf(named, sizeof(named), "%s/named", tmp);
	snprintf(cmd, sizeof(cmd),
		 "mkdir -p %s && cp -r %s/100 %s/ckpt_0000007 && cp -r %s/100 %s/run_12 && "
		 "cp -r %s/100 %s/0000003 && cp -r %s/100 %s/ckpt_0000009.orbax-checkpoint-tmp-17 && "
		 "cp -r %s/100 %s/_9 && mkdir %s/ckpt_0000010",
		 named, root, named, root, named, root, named, root, named, root, named, named);
	assert_int_equal(system(cmd), 0);

	assert_int_equal(ckpt_root_step_dirs(&dirs, &n, named), 0);
	assert_int_equal(n, 3);
	assert_int_equal(dirs[0].step, 3);
	assert_string_equal(dirs[0].name, "0000003");
	assert_int_equal(dirs[1].step, 7);
	assert_string_equal(dirs[1].name, "ckpt_0000007");
	assert_int_equal(dirs[2].step, 12);
	assert_string_equal(dirs[2].name, "run_12");
	free(dirs);
	assert_int_equal(ckpt_root_steps(&steps, &n, named), 0); /* plain names only */
	assert_int_equal(n, 0);
	free(steps);
	assert_int_equal(ckpt_step_dir_name_any(&v, "ckpt_0000007"), 1);
	assert_int_equal(v, 7);
	assert_int_equal(ckpt_step_dir_name_any(&v, "ckpt_7.orbax-checkpoint-tmp-1"), 0);
	assert_int_equal(ckpt_step_dir_name_any(&v, "7.orbax-checkpoint-tmp"), 0);
	assert_int_equal(ckpt_step_dir_name_any(&v, "ckpt_"), 0);
	assert_int_equal(ckpt_step_dir_name_any(&v, "_7"), 0);
	assert_int_equal(ckpt_step_dir_name_any(&v, "99999999999999999999"), 0);

	struct {
		const char *prefix;
		unsigned width;
		uint64_t step;
	} cases[] = {{"ckpt", 7, 7}, {"run", 0, 12}, {NULL, 7, 3}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mo.read_only = 1;
		mo.step_prefix = cases[i].prefix;
		mo.step_format_fixed_length = cases[i].width;
		assert_int_equal(ckpt_manager_open(&m, named, &mo), 0);
		assert_int_equal(ckpt_manager_all_steps(&steps, &n, m), 0);
		assert_int_equal(n, 1);
		assert_int_equal(steps[0], cases[i].step);
		free(steps);
		assert_int_equal(ckpt_manager_latest_step(&latest, m), 0);
		assert_int_equal(latest, cases[i].step);
		/* restore through the manager: the step's directory by its real name */
		ckpt_handler *h;
		const char *paths[] = {"opt_state/0/count"};
		ckpt_pytree_restore_args ra = CKPT_PYTREE_RESTORE_ARGS_INIT;
		void *out = NULL;
		const ckpt_tree *count;
		ra.paths = paths;
		ra.npaths = 1;
		assert_int_equal(ckpt_pytree_handler_new(&h), 0);
		ckpt_item_args it = {"state", h, &ra};
		assert_int_equal(ckpt_manager_restore(&out, m, -1, &it, 1), 0);
		assert_int_equal(ckpt_tree_lookup((ckpt_tree **)&count, out, "opt_state/0/count"), 0);
		assert_int_equal(ckpt_tree_int(count), 12345);
		ckpt_tree_free(out);
		ckpt_handler_free(h);
		ckpt_manager_free(m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lazy_open_list_read),
	    cmocka_unit_test(test_pytree_restore_and_manager),
	    cmocka_unit_test(test_named_step_dirs),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
