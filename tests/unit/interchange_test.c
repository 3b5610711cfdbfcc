/*
 * interchange_test.c — interchange directories in and out: numpy-written
 * files (little/big-endian, C/Fortran order), structure read from files or
 * from _METADATA, byte-identical round trip, bad input refused with nothing
 * saved.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit/treecmp.h"
#include "fsutil.h"

#define PY "/usr/bin/python3"

static const char *gen_script =
    "import numpy as np, os, sys\n"
    "d = sys.argv[1]\n"
    "os.makedirs(d + '/state/params', exist_ok=True)\n"
    "os.makedirs(d + '/state/sub/emptydir', exist_ok=True)\n"
    "os.makedirs(d + '/extra', exist_ok=True)\n"
    "os.makedirs(d + '/cfg/sub', exist_ok=True)\n"
    "open(d + '/cfg/metadata', 'w').write('{\"lr\": 0.1}')\n"
    "open(d + '/cfg/sub/x.npy', 'w').write('not parsed')\n"
    "np.save(d + '/state/params/w.npy', np.arange(2100, dtype='<f4').reshape(300, 7) / 3)\n"
    "np.save(d + '/state/be.npy', np.arange(15, dtype='>i4').reshape(5, 3) - 7)\n"
    "np.save(d + '/state/fo.npy', np.asfortranarray(np.arange(24.0).reshape(4, 6)))\n"
    "np.save(d + '/state/zero_d.npy', np.float64(2.5))\n"
    "np.save(d + '/state/mask.npy', np.array([True, False, True]))\n"
    "np.save(d + '/extra/big.npy', np.random.default_rng(1).random((256, 1024)))\n"
    "open(d + '/state/step', 'w').write('1000\\n')\n"
    "open(d + '/state/lr', 'w').write('0.5')\n"
    "open(d + '/state/name', 'w').write('hello world')\n"
    "open(d + '/state/a%2Fb', 'w').write('True')\n"
    "open(d + '/_CHECKPOINT_METADATA', 'w').write('{\"item_handlers\": "
    "{\"cfg\": \"my.JsonHandler\", \"extra\": "
    "\"orbax.checkpoint._src.handlers.standard_checkpoint_handler.StandardCheckpointHandler\"}, "
    "\"custom_metadata\": {\"run\": \"r1\"}, \"metrics\": {\"loss\": 0.25}}')\n";

/* An int32 .npy whose v1.0 header is padded to 5056 bytes; numpy must load it. */
static const char *long_header_script =
    "import numpy as np, sys\n"
    "d = \"{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }\"\n"
    "h = (d + ' ' * (5045 - len(d)) + '\\n').encode()\n"
    "open(sys.argv[1], 'wb').write(b'\\x93NUMPY\\x01\\x00' + len(h).to_bytes(2, 'little') + h +\n"
    "                              np.arange(3, dtype='<i4').tobytes())\n"
    "assert (np.load(sys.argv[1]) == [0, 1, 2]).all()\n";

static int have_numpy(void)
{
	return system(PY " -c 'import numpy' 2>/dev/null") == 0;
}

static int gen(const char *dir)
{
	char cmd[4096];
	FILE *f;
	char script[600];

	snprintf(script, sizeof(script), "%s/gen.py", dir);
	f = fopen(script, "w");
	if (!f)
		return -1;
	fputs(gen_script, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), PY " %s %s/in", script, dir);
	return system(cmd);
}

static int files_equal(const char *a, const char *b)
{
	char *x = NULL, *y = NULL;
	size_t lx = 0, ly = 0;
	int eq = ckpt_read_file(&x, &lx, a, 1u << 30) == 0 &&
		 ckpt_read_file(&y, &ly, b, 1u << 30) == 0 && lx == ly && !memcmp(x, y, lx);
	free(x);
	free(y);
	return eq;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

static void test_read_item(void **state)
{
	char *base = test_tmpdir();
	char p[600];
	ckpt_tree *t = NULL, *x = NULL;

	(void)state;
	if (!have_numpy()) {
		skip();
	}
	assert_int_equal(gen(base), 0);
	snprintf(p, sizeof(p), "%s/in/state", base);
	assert_int_equal(ckpt_interchange_read_item(&t, p), 0);
	assert_int_equal(ckpt_tree_lookup(&x, t, "params/w"), 0);
	assert_int_equal(ckpt_tree_dtype(x), CKPT_DTYPE_FLOAT32);
	assert_true(((const float *)ckpt_tree_data(x))[8] == 8.0f / 3);
	assert_int_equal(ckpt_tree_lookup(&x, t, "be"), 0);
	assert_int_equal(ckpt_tree_dtype(x), CKPT_DTYPE_INT32);
	assert_int_equal(((const int32_t *)ckpt_tree_data(x))[14], 7);
	assert_int_equal(((const int32_t *)ckpt_tree_data(x))[0], -7);
	assert_int_equal(ckpt_tree_lookup(&x, t, "fo"), 0);
	assert_true(((const double *)ckpt_tree_data(x))[1] == 1.0); /* C order */
	assert_true(((const double *)ckpt_tree_data(x))[6] == 6.0);
	assert_int_equal(ckpt_tree_lookup(&x, t, "zero_d"), 0);
	assert_int_equal(ckpt_tree_ndim(x), 0);
	assert_int_equal(ckpt_tree_int(ckpt_tree_find(t, "step")), 1000);
	assert_true(ckpt_tree_float(ckpt_tree_find(t, "lr")) == 0.5);
	assert_int_equal(ckpt_tree_get_kind(ckpt_tree_find(t, "name")), CKPT_TREE_STRING);
	assert_int_equal(ckpt_tree_get_kind(ckpt_tree_find(t, "a/b")), CKPT_TREE_BOOL);
	assert_int_equal(ckpt_tree_lookup(&x, t, "sub/emptydir"), 0);
	assert_int_equal(ckpt_tree_get_kind(x), CKPT_TREE_DICT);
	assert_int_equal(ckpt_tree_count(x), 0);
	ckpt_tree_free(t);
	ckpt_rmtree(base);
	free(base);
}

static void test_round_trip(void **state)
{
	char *base = test_tmpdir();
	char in[600], out[600], out2[600], root[600], a[700], b[700];
	ckpt_step *s = NULL;
	ckpt_tree *t1 = NULL, *t2 = NULL;

	(void)state;
	if (!have_numpy())
		skip();
	assert_int_equal(gen(base), 0);
	snprintf(in, sizeof(in), "%s/in", base);
	snprintf(out, sizeof(out), "%s/out", base);
	snprintf(out2, sizeof(out2), "%s/out2", base);
	snprintf(root, sizeof(root), "%s/root", base);
	assert_int_equal(ckpt_interchange_save(root, 5, in, NULL), 0);
	snprintf(a, sizeof(a), "%s/5", root);
	assert_int_equal(ckpt_step_open(&s, a, NULL), 0);
	assert_int_equal(ckpt_step_item_count(s), 3);
	assert_string_equal(ckpt_step_item_typestr(s, 0), "my.JsonHandler");
	assert_string_equal(ckpt_step_item_typestr(s, 1), CKPT_STANDARD_TYPESTR);
	assert_string_equal(ckpt_step_item_typestr(s, 2), CKPT_PYTREE_TYPESTR);
	assert_non_null(strstr(ckpt_step_metadata_json(s), "\"run\":\"r1\""));
	assert_non_null(strstr(ckpt_step_metadata_json(s), "\"loss\":0.25"));
	assert_int_equal(ckpt_interchange_restore(s, NULL, NULL, out), 0);
	ckpt_step_free(s);

	/* numpy's C-order little-endian files come back byte-identical */
	snprintf(a, sizeof(a), "%s/state/params/w.npy", in);
	snprintf(b, sizeof(b), "%s/state/params/w.npy", out);
	assert_true(files_equal(a, b));
	snprintf(a, sizeof(a), "%s/extra/big.npy", in);
	snprintf(b, sizeof(b), "%s/extra/big.npy", out);
	assert_true(files_equal(a, b));
	snprintf(a, sizeof(a), "%s/state/name", in);
	snprintf(b, sizeof(b), "%s/state/name", out);
	assert_true(files_equal(a, b));
	/* items of other handlers: their files, as they were */
	snprintf(a, sizeof(a), "%s/cfg/metadata", in);
	snprintf(b, sizeof(b), "%s/cfg/metadata", out);
	assert_true(files_equal(a, b));
	snprintf(a, sizeof(a), "%s/cfg/sub/x.npy", in);
	snprintf(b, sizeof(b), "%s/cfg/sub/x.npy", out);
	assert_true(files_equal(a, b));
	snprintf(b, sizeof(b), "%s/state/_METADATA", out);
	struct stat st;
	assert_int_equal(stat(b, &st), 0);
	snprintf(b, sizeof(b), "%s/_CHECKPOINT_METADATA", out);
	assert_int_equal(stat(b, &st), 0);
	/* numpy reads the converted ones back with the same values */
	char cmd[2000];
	snprintf(
	    cmd, sizeof(cmd),
	    PY " -c 'import numpy as np,sys; i,o=sys.argv[1:]; "
	       "[np.testing.assert_array_equal(np.load(i+f), np.load(o+f)) for f in "
	       "(\"/state/be.npy\",\"/state/fo.npy\",\"/state/mask.npy\",\"/state/zero_d.npy\")]; "
	       "assert np.load(o+\"/state/be.npy\").dtype.str == \"<i4\"' %s %s",
	    in, out);
	assert_int_equal(system(cmd), 0);

	/* again, now structure from _METADATA: same tree */
	assert_int_equal(ckpt_interchange_save(root, 6, out, NULL), 0);
	snprintf(a, sizeof(a), "%s/6", root);
	assert_int_equal(ckpt_step_open(&s, a, NULL), 0);
	assert_int_equal(ckpt_interchange_restore(s, NULL, NULL, out2), 0);
	/* one leaf, one subtree */
	snprintf(b, sizeof(b), "%s/leaf", base);
	assert_int_equal(ckpt_interchange_restore(s, "state", "params/w", b), 0);
	snprintf(a, sizeof(a), "%s/state/params/w.npy", in);
	snprintf(b, sizeof(b), "%s/leaf/w.npy", base);
	assert_true(files_equal(a, b));
	snprintf(b, sizeof(b), "%s/none", base);
	assert_int_equal(ckpt_interchange_restore(s, "nope", NULL, b), CKPT_ENOTFOUND);
	snprintf(b, sizeof(b), "%s/sub", base);
	assert_int_equal(ckpt_interchange_restore(s, "state", "params", b), 0);
	snprintf(b, sizeof(b), "%s/sub/w.npy", base);
	assert_true(files_equal(a, b));
	ckpt_step_free(s);
	snprintf(a, sizeof(a), "%s/state", out);
	snprintf(b, sizeof(b), "%s/state", out2);
	assert_int_equal(ckpt_interchange_read_item(&t1, a), 0);
	assert_int_equal(ckpt_interchange_read_item(&t2, b), 0);
	assert_int_equal(test_tree_cmp(t1, t2, "state"), 0);
	ckpt_tree_free(t1);
	ckpt_tree_free(t2);
	ckpt_rmtree(base);
	free(base);
}

static void test_bad_input(void **state)
{
	char *base = test_tmpdir();
	char in[600], root[600], p[700], cmd[2000];

	(void)state;
	if (!have_numpy())
		skip();
	assert_int_equal(gen(base), 0);
	snprintf(in, sizeof(in), "%s/in", base);
	snprintf(root, sizeof(root), "%s/root", base);
	assert_int_equal(ckpt_interchange_save(root, 1, in, NULL), 0);

	/* a truncated .npy in the last item: refused, nothing saved */
	snprintf(cmd, sizeof(cmd), "head -c 1000 %s/extra/big.npy > %s/state/zz_trunc.npy", in, in);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(ckpt_interchange_save(root, 2, in, NULL), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "zz_trunc.npy"));
	assert_int_equal(count_entries(root), 1);
	/* truncated inside the header: the message says so, with both sizes */
	snprintf(cmd, sizeof(cmd), "head -c 30 %s/extra/big.npy > %s/state/zz_trunc.npy", in, in);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(ckpt_interchange_save(root, 2, in, NULL), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "zz_trunc.npy"));
	assert_non_null(strstr(ckpt_error_last(), "truncated: header needs 128 bytes, file has 30"));
	assert_int_equal(count_entries(root), 1);
	snprintf(p, sizeof(p), "%s/state/zz_trunc.npy", in);
	unlink(p);

	/* a valid header longer than 4096 bytes (padded with spaces) is read whole */
	char root2[700];
	snprintf(root2, sizeof(root2), "%s/root2", base);
	snprintf(p, sizeof(p), "%s/long.py", base);
	assert_int_equal(ckpt_write_file(p, long_header_script, strlen(long_header_script)), 0);
	snprintf(cmd, sizeof(cmd), PY " %s %s/state/zz_long.npy", p, in);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(ckpt_interchange_save(root2, 1, in, NULL), 0);
	snprintf(p, sizeof(p), "%s/state/zz_long.npy", in);
	unlink(p);

	/* garbage .npy */
	snprintf(p, sizeof(p), "%s/state/garbage.npy", in);
	assert_int_equal(ckpt_write_file(p, "not numpy", 9), 0);
	assert_int_equal(ckpt_interchange_save(root, 2, in, NULL), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "garbage.npy"));
	assert_int_equal(count_entries(root), 1);
	unlink(p);

	/* with _METADATA: a file that disagrees with it, and an extra file */
	ckpt_step *s = NULL;
	char out[600];
	snprintf(p, sizeof(p), "%s/1", root);
	snprintf(out, sizeof(out), "%s/out", base);
	assert_int_equal(ckpt_step_open(&s, p, NULL), 0);
	assert_int_equal(ckpt_interchange_restore(s, NULL, NULL, out), 0);
	ckpt_step_free(s);
	snprintf(cmd, sizeof(cmd),
		 PY " -c 'import numpy as np; np.save(\"%s/state/be.npy\", np.zeros(3))'", out);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(ckpt_interchange_save(root, 3, out, NULL), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "be.npy"));
	assert_int_equal(count_entries(root), 1);
	snprintf(cmd, sizeof(cmd),
		 PY
		 " -c 'import numpy as np; np.save(\"%s/state/be.npy\", np.zeros((5,3),\"<i4\"))'",
		 out);
	assert_int_equal(system(cmd), 0);
	snprintf(p, sizeof(p), "%s/state/newfile", out);
	assert_int_equal(ckpt_write_file(p, "1", 1), 0);
	assert_int_equal(ckpt_interchange_save(root, 3, out, NULL), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "newfile"));
	assert_int_equal(count_entries(root), 1);
	unlink(p);
	/* a scalar file that no longer parses as its kind */
	snprintf(p, sizeof(p), "%s/state/step", out);
	assert_int_equal(ckpt_write_file(p, "ten", 3), 0);
	assert_int_equal(ckpt_interchange_save(root, 3, out, NULL), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "step"));
	assert_int_equal(count_entries(root), 1);
	/* fixed: it saves */
	assert_int_equal(ckpt_write_file(p, "10", 2), 0);
	assert_int_equal(ckpt_interchange_save(root, 3, out, NULL), 0);
	assert_int_equal(count_entries(root), 2);
	ckpt_rmtree(base);
	free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_read_item),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
