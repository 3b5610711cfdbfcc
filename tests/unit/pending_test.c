/*
 * pending_test.c — pending steps: create/list/lock/remove, cleanup keeps
 * them, path and file checks, clone stubs, and finalize of hand-built
 * files/ trees (hints from _METADATA, clones of an earlier step, big-endian
 * and large .npy files, lenient reading, failures that leave files/ intact).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/pending.h"
#include "unit/treecmp.h"
#include "fsutil.h"

static char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	assert_true(vasprintf(&s, fmt, ap) >= 0);
	va_end(ap);
	return s;
}

/* Write dir/rel (parents created). */
static void put(const char *dir, const char *rel, const void *data, size_t len)
{
	char *p = xprintf("%s/%s", dir, rel);
	char *slash = strrchr(p, '/');

	*slash = '\0';
	assert_int_equal(ckpt_mkdir_p(p), 0);
	*slash = '/';
	assert_int_equal(ckpt_write_file(p, data, len), 0);
	free(p);
}

static void put_str(const char *dir, const char *rel, const char *s)
{
	put(dir, rel, s, strlen(s));
}

/* A .npy file with any descr: header padded as numpy pads it, then len bytes. */
static void put_npy_raw(const char *dir, const char *rel, const char *descr, const char *shape,
			const void *data, size_t len)
{
	char dict[256], *buf;
	int n = snprintf(dict, sizeof(dict),
			 "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
	size_t pad = (64 - (10 + (size_t)n + 1) % 64) % 64, hl = (size_t)n + pad + 1;

	buf = malloc(10 + hl + len);
	memcpy(buf, "\x93NUMPY\x01\x00", 8);
	buf[8] = (char)(hl & 0xff);
	buf[9] = (char)(hl >> 8);
	memcpy(buf + 10, dict, (size_t)n);
	memset(buf + 10 + n, ' ', pad);
	buf[10 + hl - 1] = '\n';
	if (len)
		memcpy(buf + 10 + hl, data, len);
	put(dir, rel, buf, 10 + hl + len);
	free(buf);
}

static void put_npy(const char *dir, const char *rel, const ckpt_tree *leaf)
{
	char *p = xprintf("%s/%s", dir, rel), *slash = strrchr(p, '/');

	*slash = '\0';
	assert_int_equal(ckpt_mkdir_p(p), 0);
	*slash = '/';
	assert_int_equal(ckpt_npy_write_file(p, ckpt_tree_dtype(leaf), ckpt_tree_ndim(leaf),
					     ckpt_tree_shape(leaf), ckpt_tree_data(leaf)),
			 0);
	free(p);
}

static void put_stub(const char *dir, const char *rel, uint64_t step, const char *item,
		     const char *path)
{
	ckpt_clone_ref ref = {step, (char *)item, (char *)path};
	char *buf = NULL, *p = xprintf("%s/%s", dir, rel);
	size_t len = 0;

	assert_int_equal(ckpt_clone_stub_format(&buf, &len, &ref), 0);
	put(dir, rel, buf, len);
	assert_int_equal(chmod(p, 01644), 0);
	free(buf);
	free(p);
}

static int exists(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int exists(const char *fmt, ...)
{
	struct stat st;
	va_list ap;
	char *p = NULL;
	int r;

	va_start(ap, fmt);
	assert_true(vasprintf(&p, fmt, ap) >= 0);
	va_end(ap);
	r = lstat(p, &st) == 0;
	free(p);
	return r;
}

static int check_at(const char *dir, const char *rel)
{
	char *p = xprintf("%s/%s", dir, rel);
	int fd = open(p, O_RDONLY);
	int rc;

	assert_true(fd >= 0);
	rc = ckpt_pending_check_file(-1, fd, rel);
	close(fd);
	free(p);
	return rc;
}

static void test_create_list_lock(void **state)
{
	char *root = test_tmpdir(), *dir = NULL, *dir2 = NULL, *junk;
	ckpt_pending_info *list = NULL;
	size_t n = 0, removed = 0;
	int fd = -1, fd2 = -1;

	(void)state;
	assert_int_equal(ckpt_pending_create(&dir, &fd, root, 5), 0);
	assert_true(fd >= 0);
	assert_true(exists("%s/files", dir));
	assert_int_equal(ckpt_pending_create(&dir2, &fd2, root, 5), CKPT_EEXISTS);
	assert_null(dir2);
	assert_int_equal(ckpt_pending_list(&list, &n, root), 0);
	assert_int_equal(n, 1);
	assert_int_equal(list[0].step, 5);
	assert_string_equal(list[0].dir, dir);
	ckpt_pending_list_free(list, n);
	/* held: a second lock fails, and so do finalize and remove without the lock */
	assert_int_equal(ckpt_pending_lock(&fd2, dir), CKPT_EBUSY);
	assert_int_equal(fd2, -1);
	assert_int_equal(ckpt_pending_finalize(dir, -1, NULL), CKPT_EBUSY);
	assert_int_equal(ckpt_pending_remove(dir, -1), CKPT_EBUSY);
	close(fd);
	/* unlocked, it survives cleanup; an abandoned save does not */
	junk = xprintf("%s/7%sdeadbeef", root, CKPT_TMP_INFIX);
	assert_int_equal(mkdir(junk, 0777), 0);
	assert_int_equal(ckpt_root_cleanup(root, &removed), 0);
	assert_int_equal(removed, 1);
	assert_false(exists("%s", junk));
	assert_true(exists("%s/files", dir));
	assert_int_equal(ckpt_pending_lock(&fd, dir), 0);
	assert_int_equal(ckpt_pending_lock(&fd2, dir), CKPT_EBUSY);
	close(fd);
	assert_int_equal(ckpt_pending_lock(&fd2, junk), CKPT_ENOTFOUND);
	/* an empty pending step finalizes into an empty step */
	assert_int_equal(ckpt_pending_create(&dir2, &fd2, root, 6), 0);
	assert_int_equal(ckpt_pending_finalize(dir2, fd2, NULL), 0);
	close(fd2);
	assert_true(exists("%s/6/ckpt.db", root));
	assert_false(exists("%s/6/files", root));
	free(dir2);
	assert_int_equal(ckpt_pending_create(&dir2, &fd2, root, 6), CKPT_EEXISTS);
	assert_null(dir2);
	assert_int_equal(ckpt_pending_remove(dir, -1), 0);
	assert_false(exists("%s", dir));
	assert_int_equal(ckpt_pending_list(&list, &n, root), 0);
	assert_int_equal(n, 0);
	ckpt_pending_list_free(list, n);
	ckpt_rmtree(root);
	free(junk);
	free(dir);
	free(root);
}

static void test_check_path(void **state)
{
	static const char *ok[][2] = {
	    {"_CHECKPOINT_METADATA", "f"}, {"state", "d"},
	    {"state/_METADATA", "f"},	   {"state/params", "d"},
	    {"state/params/w.npy", "f"},   {"state/a%2Fb", "f"},
	    {"state/%5Fx.npy", "f"},	   {"state/x%2Enpy", "f"},
	    {"cfg/proto.pbtxt", "f"},
	};
	static const char *bad[][2] = {
	    {"state/_x", "f"},
	    {"state/a%2fb", "f"},
	    {"_state", "d"},
	    {".hidden", "d"},
	    {"notes.txt", "f"},
	    {"state/../x", "f"},
	    {"", "d"},
	    {"/state", "d"},
	    {"state/%ZZ", "f"},
	    {"state//x", "f"},
	    {"_CHECKPOINT_METADATA", "d"},
	    {"state/sub/_METADATA", "f"},
	    {"state/_METADATA", "d"},
	    {"state/x.npy", "d"},
	    {"state/.x", "f"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		assert_int_equal(ckpt_pending_check_path(ok[i][0], ok[i][1][0] == 'd'), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (ckpt_pending_check_path(bad[i][0], bad[i][1][0] == 'd') != CKPT_EINVAL)
			fail_msg("accepted %s", bad[i][0]);
		if (bad[i][0][0])
			assert_non_null(strstr(ckpt_error_last(), bad[i][0]));
	}
	assert_int_equal(ckpt_pending_check_path("state/_x", 0), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "reserved"));
	/* what finalize can read: 128 names below the item (tree_json.c), a path that fits
	 * in PATH_MAX under ROOT/<step>.ckpt-tmp-<nonce>/files/ */
	char deep[600] = "state";
	for (int i = 0; i < 127; i++)
		strcat(deep, "/a");
	assert_int_equal(ckpt_pending_check_path(deep, 1), 0);
	strcat(deep, "/x.npy");
	assert_int_equal(ckpt_pending_check_path(deep, 0), 0);
	deep[strlen(deep) - 6] = '\0';
	strcat(deep, "/a/x");
	assert_int_equal(ckpt_pending_check_path(deep, 0), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "deeper than 128"));
	char *longp =
	    xprintf("state/%0250d/%0250d/%0250d/%0250d/%0250d/%0250d/%0250d/%0250d/%0250d/"
		    "%0250d/%0250d/%0250d/%0250d",
		    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13);
	assert_int_equal(ckpt_pending_check_path(longp, 0), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "longer than"));
	free(longp);
}

static void test_check_file(void **state)
{
	char *d = test_tmpdir();
	uint64_t shape[2] = {3, 4};
	float data[12] = {0};
	ckpt_tree *t = test_tree_every_kind(1), *a = NULL;
	char *json = NULL, *p;

	(void)state;
	assert_int_equal(
	    ckpt_tree_new_array(&a, CKPT_DTYPE_FLOAT32, 2, shape, data, CKPT_TREE_COPY), 0);
	put_npy(d, "good.npy", a);
	assert_int_equal(ckpt_mkdir_p(p = xprintf("%s/state", d)), 0);
	free(p);
	put_npy(d, "state/good.npy", a);
	assert_int_equal(check_at(d, "state/good.npy"), 0);
	/* truncated by 8 bytes */
	put_npy(d, "state/short.npy", a);
	p = xprintf("%s/state/short.npy", d);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(truncate(p, st.st_size - 8), 0);
	free(p);
	assert_int_equal(check_at(d, "state/short.npy"), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(),
			       "state/short.npy: header says float32 (3, 4) = 48 "
			       "data bytes but the file has 40"));
	/* a header that says more than there is, one that says less */
	put_npy_raw(d, "state/lie.npy", "<f4", "(3, 5)", data, sizeof(data));
	assert_int_equal(check_at(d, "state/lie.npy"), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "(3, 5) = 60 data bytes but the file has 48"));
	put_npy_raw(d, "state/lie2.npy", "<f4", "(2,)", data, sizeof(data));
	assert_int_equal(check_at(d, "state/lie2.npy"), CKPT_EINVAL);
	put_npy_raw(d, "state/u.npy", "<U4", "(3,)", data, sizeof(data));
	assert_int_equal(check_at(d, "state/u.npy"), CKPT_EINVAL);
	put_str(d, "state/garbage.npy", "not a numpy file at all");
	assert_int_equal(check_at(d, "state/garbage.npy"), CKPT_EINVAL);
	put_str(d, "state/empty.npy", "");
	assert_int_equal(check_at(d, "state/empty.npy"), CKPT_EINVAL);
	/* scalars and strings are valid up to what finalize reads whole (256 MiB) */
	put_str(d, "state/step", "what ever");
	assert_int_equal(check_at(d, "state/step"), 0);
	assert_int_equal(truncate(p = xprintf("%s/state/step", d), (256 << 20) + 1), 0);
	free(p);
	assert_int_equal(check_at(d, "state/step"), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "state/step: 268435457 bytes"));
	/* _METADATA */
	assert_int_equal(ckpt_tree_metadata_to_json(&json, t), 0);
	put_str(d, "state/_METADATA", json);
	assert_int_equal(check_at(d, "state/_METADATA"), 0);
	put_str(d, "state/_METADATA", "{\"tree_metadata\": ");
	assert_int_equal(check_at(d, "state/_METADATA"), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "state/_METADATA"));
	/* _CHECKPOINT_METADATA */
	put_str(d, "_CHECKPOINT_METADATA", "{\"item_handlers\": {\"state\": \"x.Y\"}}");
	assert_int_equal(check_at(d, "_CHECKPOINT_METADATA"), 0);
	put_str(d, "_CHECKPOINT_METADATA", "{\"item_handlers\": {\"state\": 1}}");
	assert_int_equal(check_at(d, "_CHECKPOINT_METADATA"), CKPT_EINVAL);
	put_str(d, "_CHECKPOINT_METADATA", "[1]");
	assert_int_equal(check_at(d, "_CHECKPOINT_METADATA"), CKPT_EINVAL);
	/* clone stubs: a good one passes; a broken one (S_ISVTX and the magic) does not */
	put_stub(d, "state/c.npy", 3, "state", "params/w");
	assert_int_equal(check_at(d, "state/c.npy"), 0);
	/* a stub stands for a leaf, never for metadata (finalize reads those as JSON) */
	put_stub(d, "state/_METADATA", 3, "state", "name");
	assert_int_equal(check_at(d, "state/_METADATA"), CKPT_EINVAL);
	put_stub(d, "_CHECKPOINT_METADATA", 3, "state", "name");
	assert_int_equal(check_at(d, "_CHECKPOINT_METADATA"), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "stands only for a leaf"));
	/* a stub of an <item>.safetensors: only as a <name>.safetensors on top */
	put_stub(d, "m.safetensors", 3, "state", "");
	assert_int_equal(check_at(d, "m.safetensors"), 0);
	static const char *not_there[] = {"state/m.safetensors", "m.npz", "m", "_m.safetensors",
					  "state/w.npy"};
	for (size_t i = 0; i < sizeof(not_there) / sizeof(not_there[0]); i++) {
		put_stub(d, not_there[i], 3, "state", "");
		if (check_at(d, not_there[i]) != CKPT_EINVAL ||
		    !strstr(ckpt_error_last(), "stands only for a <name>.safetensors"))
			fail_msg("a copy of state.safetensors as %s: %s", not_there[i],
				 ckpt_error_last());
	}
	/* and a leaf's stub is not one on top */
	put_stub(d, "n.safetensors", 3, "state", "params/w");
	assert_int_equal(check_at(d, "n.safetensors"), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "stands only for a leaf"));
	put_str(d, "state/c2.npy", CKPT_CLONE_MAGIC "3\nstate\n");
	p = xprintf("%s/state/c2.npy", d);
	assert_int_equal(chmod(p, 01644), 0);
	free(p);
	assert_int_equal(check_at(d, "state/c2.npy"), CKPT_EINVAL);
	free(json);
	ckpt_tree_free(a);
	ckpt_tree_free(t);
	ckpt_rmtree(d);
	free(d);
}

static void test_clone_stub(void **state)
{
	ckpt_clone_ref ref = {12345, "state", "opt/0/mu/w"}, back = {0};
	static const char *bad[] = {
	    "\x93"
	    "CKPTCLONE2\n1\nstate\nx\n",
	    CKPT_CLONE_MAGIC "1\nstate\nx",
	    CKPT_CLONE_MAGIC "1\nstate\nx\ny\n",
	    CKPT_CLONE_MAGIC "01\nstate\nx\n",
	    CKPT_CLONE_MAGIC "\nstate\nx\n",
	    CKPT_CLONE_MAGIC "1a\nstate\nx\n",
	    CKPT_CLONE_MAGIC "99999999999999999999999\nstate\nx\n",
	    CKPT_CLONE_MAGIC "1\n_s\nx\n",
	    CKPT_CLONE_MAGIC "1\n\nx\n",
	    CKPT_CLONE_MAGIC "1\nstate\na//b\n",
	    CKPT_CLONE_MAGIC "1\nstate\n../x\n",
	    CKPT_CLONE_MAGIC "1\nstate\n\n\n",
	    CKPT_CLONE_MAGIC "1\nstate\n/\n",
	    CKPT_CLONE_MAGIC "1\na/b\nx\n",
	    CKPT_CLONE_MAGIC "-1\nstate\nx\n",
	};
	char *buf = NULL, *d = test_tmpdir(), *p;
	size_t len = 0;
	int fd;

	(void)state;
	assert_int_equal(ckpt_clone_stub_format(&buf, &len, &ref), 0);
	assert_int_equal(len, strlen(buf));
	assert_int_equal(ckpt_clone_stub_parse(&back, buf, len), 0);
	assert_int_equal(back.step, 12345);
	assert_string_equal(back.item, "state");
	assert_string_equal(back.path, "opt/0/mu/w");
	ckpt_clone_ref_clear(&back);
	/* every proper prefix is refused (and parsing never reads past len) */
	for (size_t i = 0; i < len; i++) {
		char *cut = malloc(i + 1);
		memcpy(cut, buf, i);
		assert_int_equal(ckpt_clone_stub_parse(&back, cut, i), CKPT_EINVAL);
		free(cut);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (ckpt_clone_stub_parse(&back, bad[i], strlen(bad[i])) != CKPT_EINVAL)
			fail_msg("accepted stub %zu", i);
	/* an empty path: the item's .safetensors; it formats back the same */
	static const char whole[] = CKPT_CLONE_MAGIC "7\nstate\n\n";
	assert_int_equal(ckpt_clone_stub_parse(&back, whole, strlen(whole)), 0);
	assert_string_equal(back.path, "");
	char *wbuf = NULL;
	assert_int_equal(ckpt_clone_stub_format(&wbuf, &len, &back), 0);
	assert_string_equal(wbuf, whole);
	free(wbuf);
	ckpt_clone_ref_clear(&back);
	char nul[] = CKPT_CLONE_MAGIC "1\nst\0te\nx\n";
	assert_int_equal(ckpt_clone_stub_parse(&back, nul, sizeof(nul) - 1), CKPT_EINVAL);
	ckpt_clone_ref bad_ref = {1, "_x", "a"};
	assert_int_equal(ckpt_clone_stub_format(&p, &len, &bad_ref), CKPT_EINVAL);
	/* read: needs S_ISVTX and the magic */
	put(d, "s", buf, strlen(buf));
	p = xprintf("%s/s", d);
	fd = open(p, O_RDONLY);
	assert_int_equal(ckpt_clone_stub_read(&back, fd), 0);
	close(fd);
	assert_int_equal(chmod(p, 01644), 0);
	fd = open(p, O_RDONLY);
	assert_int_equal(ckpt_clone_stub_read(&back, fd), 1);
	assert_string_equal(back.path, "opt/0/mu/w");
	ckpt_clone_ref_clear(&back);
	ckpt_clone_ref_clear(&back); /* twice is fine */
	close(fd);
	put_str(d, "s", "1000\n");
	fd = open(p, O_RDONLY); /* sticky but not a stub: an ordinary file */
	assert_int_equal(ckpt_clone_stub_read(&back, fd), 0);
	close(fd);
	free(p);
	free(buf);
	ckpt_rmtree(d);
	free(d);
}

/* Restore item of the step dir with the PyTree handler. */
static ckpt_tree *restore(const char *dir, const char *item)
{
	ckpt_handler *h = NULL;
	void *out = NULL;

	assert_int_equal(ckpt_pytree_handler_new(&h), 0);
	ckpt_item_args it = {item, h, NULL};
	if (ckpt_checkpointer_restore(&out, dir, &it, 1) != 0)
		fail_msg("restore %s %s: %s", dir, item, ckpt_error_last());
	ckpt_handler_free(h);
	return out;
}

static ckpt_tree *leaf_copy(const ckpt_tree *t, const char *path)
{
	ckpt_tree *n = NULL, *c = NULL;

	assert_int_equal(ckpt_tree_lookup(&n, t, path), 0);
	assert_int_equal(ckpt_tree_clone(&c, n), 0);
	return c;
}

static void add(ckpt_tree *parent, const char *key, ckpt_tree *child)
{
	assert_non_null(child);
	assert_int_equal(ckpt_tree_add(parent, key, child), 0);
}

static ckpt_tree *node(ckpt_tree_kind k)
{
	ckpt_tree *t = NULL;
	assert_int_equal(ckpt_tree_new(&t, k), 0);
	return t;
}

static void test_finalize(void **state)
{
	char *root = test_tmpdir(), *dir = NULL, *files, *json = NULL, *p;
	ckpt_tree *src = test_tree_every_kind(1), *exp = node(CKPT_TREE_DICT), *x = NULL, *got;
	ckpt_handler *h = NULL;
	uint64_t s3[1] = {3}, s2[1] = {2}, sbe[2] = {5, 3}, sbig[1] = {512 * 1024};
	int fd = -1;

	(void)state;
	/* step 1: a source for clones */
	assert_int_equal(ckpt_pytree_handler_new(&h), 0);
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	sa.item = src;
	ckpt_item_args it = {"state", h, &sa};
	assert_int_equal(ckpt_checkpointer_save(root, 1, &it, 1, NULL), 0);
	ckpt_handler_free(h);

	/* the expected tree of step 2 */
	ckpt_tree *dd = node(CKPT_TREE_DICT), *l = node(CKPT_TREE_LIST);
	assert_int_equal(test_add_array(dd, "a", CKPT_DTYPE_FLOAT32, 1, s3, 9), 0);
	add(exp, "d", dd);
	assert_int_equal(test_add_array(l, NULL, CKPT_DTYPE_INT32, 1, s2, 4), 0);
	add(l, NULL, node(CKPT_TREE_NONE));
	assert_int_equal(ckpt_tree_new_bool(&x, 1), 0);
	add(l, NULL, x);
	add(exp, "l", l);
	add(exp, "none", node(CKPT_TREE_NONE));
	add(exp, "empty", node(CKPT_TREE_TUPLE));
	assert_int_equal(ckpt_tree_new_int(&x, 7), 0);
	add(exp, "n", x);
	assert_int_equal(ckpt_tree_new_float(&x, 0.5), 0);
	add(exp, "x", x);
	assert_int_equal(ckpt_tree_new_string(&x, "hello", 5), 0);
	add(exp, "s", x);
	assert_int_equal(ckpt_tree_new_string(&x, "123", 3), 0);
	add(exp, "s2", x); /* a string by _METADATA's word, though it parses as an int */
	assert_int_equal(test_add_array(exp, "be", CKPT_DTYPE_INT32, 2, sbe, 5), 0);
	assert_int_equal(test_add_array(exp, "big", CKPT_DTYPE_FLOAT32, 1, sbig, 1), 0);
	add(exp, "k", leaf_copy(src, "params/dense/kernel"));
	add(exp, "cstep", leaf_copy(src, "step"));
	add(exp, "_x", leaf_copy(src, "%5Fx"));
	assert_int_equal(
	    ckpt_tree_set_custom_metadata(ckpt_tree_find(exp, "n"), "{\"unit\":\"s\"}"), 0);
	assert_int_equal(ckpt_tree_set_custom_metadata(dd, "{\"layer\":1}"), 0);

	/* files/ by hand */
	assert_int_equal(ckpt_pending_create(&dir, &fd, root, 2), 0);
	files = xprintf("%s/files", dir);
	put_str(files, "_CHECKPOINT_METADATA",
		"{\"item_handlers\": {\"cfg\": \"my.JsonHandler\"}, \"custom_metadata\": {\"run\": "
		"\"r2\"}, \"metrics\": {\"loss\": 0.5}, \"init_timestamp_nsecs\": "
		"1700000000123456789}");
	assert_int_equal(ckpt_tree_metadata_to_json(&json, exp), 0);
	put_str(files, "state/_METADATA", json);
	put_npy(files, "state/d/a.npy", ckpt_tree_find(dd, "a"));
	put_npy(files, "state/l/0.npy", ckpt_tree_child(l, 0));
	put_str(files, "state/l/2", "True");
	put_str(files, "state/n", "7\n");
	put_str(files, "state/x", "0.5");
	put_str(files, "state/s", "hello");
	put_str(files, "state/s2", "123");
	put_npy(files, "state/big.npy", ckpt_tree_find(exp, "big"));
	{ /* big-endian int32 (5, 3) */
		const ckpt_tree *be = ckpt_tree_find(exp, "be");
		unsigned char bytes[60];
		const unsigned char *le = ckpt_tree_data(be);
		for (int i = 0; i < 15; i++)
			for (int b = 0; b < 4; b++)
				bytes[i * 4 + b] = le[i * 4 + 3 - b];
		put_npy_raw(files, "state/be.npy", ">i4", "(5, 3)", bytes, sizeof(bytes));
	}
	put_stub(files, "state/k.npy", 1, "state", "params/dense/kernel");
	put_stub(files, "state/cstep", 1, "state", "step");
	put_stub(files, "state/%5Fx.npy", 1, "state", "%5Fx");
	put_str(files, "cfg/metadata", "{\"lr\": 0.1}");
	put_stub(files, "cfg/name", 1, "state", "name"); /* a raw item's stub: key state/name */

	if (ckpt_pending_finalize(dir, fd, NULL) != 0)
		fail_msg("finalize: %s", ckpt_error_last());
	close(fd);
	assert_false(exists("%s", dir));
	assert_false(exists("%s/2/files", root));
	p = xprintf("%s/2", root);
	got = restore(p, "state");
	assert_int_equal(test_tree_cmp(exp, got, "step 2"), 0);
	assert_string_equal(ckpt_tree_custom_metadata(ckpt_tree_find(got, "n")),
			    "{\"unit\":\"s\"}");
	ckpt_tree_free(got);
	ckpt_step *s = NULL;
	void *v = NULL;
	size_t vlen = 0;
	const ckpt_tree *mt = NULL;
	assert_int_equal(ckpt_step_open(&s, p, NULL), 0);
	assert_int_equal(ckpt_step_item_tree(&mt, s, "state"), 0);
	assert_non_null(ckpt_tree_custom_metadata(ckpt_tree_find(mt, "d")));
	assert_string_equal(ckpt_tree_custom_metadata(ckpt_tree_find(mt, "d")), "{\"layer\":1}");
	assert_non_null(strstr(ckpt_step_metadata_json(s), "1700000000123456789"));
	assert_non_null(strstr(ckpt_step_metadata_json(s), "\"run\":\"r2\""));
	assert_non_null(strstr(ckpt_step_metadata_json(s), "my.JsonHandler"));
	assert_int_equal(ckpt_store_get(&v, &vlen, ckpt_step_store(s), "cfg/metadata", 12), 0);
	assert_int_equal(vlen, 11);
	assert_memory_equal(v, "{\"lr\": 0.1}", 11);
	free(v);
	assert_int_equal(ckpt_store_get(&v, &vlen, ckpt_step_store(s), "cfg/name", 8), 0);
	assert_int_equal(vlen, 5);
	assert_memory_equal(v, "hello", 5);
	free(v);
	ckpt_step_free(s);
	free(p);
	free(files);
	free(json);
	free(dir);
	ckpt_tree_free(exp);
	ckpt_tree_free(src);
	ckpt_rmtree(root);
	free(root);
}

static void test_finalize_failures(void **state)
{
	char *root = test_tmpdir(), *dir = NULL, *files, *p;
	uint64_t s3[1] = {3};
	ckpt_tree *t = node(CKPT_TREE_DICT), *got;
	ckpt_pending_info *list = NULL;
	size_t n = 0;
	int fd = -1;

	(void)state;
	assert_int_equal(test_add_array(t, "w", CKPT_DTYPE_FLOAT64, 1, s3, 2), 0);
	assert_int_equal(ckpt_pending_create(&dir, &fd, root, 3), 0);
	files = xprintf("%s/files", dir);
	put_npy(files, "state/w.npy", ckpt_tree_find(t, "w"));
	p = xprintf("%s/state/w.npy", files);
	assert_int_equal(truncate(p, 100), 0);
	/* a bad file: nothing finalized, files/ intact, no store left behind */
	assert_int_equal(ckpt_pending_finalize(dir, fd, NULL), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "w.npy"));
	assert_true(exists("%s", p));
	assert_false(exists("%s/3", root));
	assert_false(exists("%s/ckpt.db", dir));
	/* a clone of a step that does not exist */
	put_npy(files, "state/w.npy", ckpt_tree_find(t, "w"));
	put_stub(files, "state/c.npy", 42, "state", "w");
	assert_int_equal(ckpt_pending_finalize(dir, fd, NULL), CKPT_ENOTFOUND);
	assert_non_null(strstr(ckpt_error_last(), "c.npy"));
	assert_false(exists("%s/3", root));
	free(p);
	p = xprintf("%s/state/c.npy", files);
	assert_int_equal(unlink(p), 0);
	/* a copy of an <item>.safetensors (empty path) where it is no such file: refused by
	 * name and place before its source is looked for (step 42 does not exist) */
	static const char *misplaced[] = {"m.npz", "state/m.safetensors"};
	for (size_t i = 0; i < 2; i++) {
		put_stub(files, misplaced[i], 42, "state", "");
		assert_int_equal(ckpt_pending_finalize(dir, fd, NULL), CKPT_EINVAL);
		if (!strstr(ckpt_error_last(), misplaced[i]) ||
		    !strstr(ckpt_error_last(), "state.safetensors stands only for a <name>.safetensors"))
			fail_msg("%s: %s", misplaced[i], ckpt_error_last());
		assert_false(exists("%s/3", root));
		free(p);
		p = xprintf("%s/%s", files, misplaced[i]);
		assert_int_equal(unlink(p), 0);
	}
	/* a failure while writing (Standard items refuse strings): the store is removed */
	put_str(files, "_CHECKPOINT_METADATA",
		"{\"item_handlers\": {\"state\": \"" CKPT_STANDARD_TYPESTR "\"}}");
	put_str(files, "state/name", "a string");
	assert_int_equal(ckpt_pending_finalize(dir, fd, NULL), CKPT_EUNSUPPORTED);
	assert_non_null(strstr(ckpt_error_last(), "state/name"));
	assert_false(exists("%s/3", root));
	assert_false(exists("%s/ckpt.db", dir));
	assert_false(exists("%s/d", dir));
	assert_true(exists("%s/files/state/name", dir));
	free(p);
	p = xprintf("%s/state/name", files);
	assert_int_equal(unlink(p), 0);
	/* the step appeared meanwhile: refused, still pending */
	ckpt_handler *h = NULL;
	assert_int_equal(ckpt_pytree_handler_new(&h), 0);
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	sa.item = t;
	ckpt_item_args it = {"other", h, &sa};
	assert_int_equal(ckpt_checkpointer_save(root, 3, &it, 1, NULL), 0);
	assert_int_equal(ckpt_pending_finalize(dir, fd, NULL), CKPT_EEXISTS);
	assert_true(exists("%s/files/state/w.npy", dir));
	assert_false(exists("%s/ckpt.db", dir));
	assert_int_equal(ckpt_root_delete_step(root, 3), 0);
	/* fixed: it finalizes now */
	if (ckpt_pending_finalize(dir, fd, NULL) != 0)
		fail_msg("finalize: %s", ckpt_error_last());
	close(fd);
	free(p);
	p = xprintf("%s/3", root);
	got = restore(p, "state");
	assert_int_equal(test_tree_cmp(t, got, "step 3"), 0);
	ckpt_tree_free(got);
	assert_int_equal(ckpt_pending_list(&list, &n, root), 0);
	assert_int_equal(n, 0);
	ckpt_pending_list_free(list, n);
	ckpt_handler_free(h);
	ckpt_tree_free(t);
	free(p);
	free(files);
	free(dir);
	ckpt_rmtree(root);
	free(root);
}

/* _METADATA written, then files removed, renamed, retyped: the files win. */
static void test_finalize_lenient(void **state)
{
	char *root = test_tmpdir(), *dir = NULL, *files, *json = NULL, *p;
	uint64_t s1[1] = {1}, s2[1] = {2}, s3[1] = {3}, s4[1] = {4};
	ckpt_tree *meta = node(CKPT_TREE_DICT), *exp = node(CKPT_TREE_DICT), *x = NULL, *got;
	ckpt_tree *l = node(CKPT_TREE_LIST), *tu = node(CKPT_TREE_TUPLE),
		  *gone = node(CKPT_TREE_DICT);
	int fd = -1;

	(void)state;
	/* what _METADATA says */
	assert_int_equal(test_add_array(meta, "a", CKPT_DTYPE_FLOAT32, 1, s4, 1), 0);
	assert_int_equal(ckpt_tree_new_int(&x, 3), 0);
	add(meta, "b", x);
	assert_int_equal(test_add_array(l, NULL, CKPT_DTYPE_FLOAT32, 1, s1, 1), 0);
	assert_int_equal(test_add_array(l, NULL, CKPT_DTYPE_FLOAT32, 1, s2, 2), 0);
	assert_int_equal(test_add_array(l, NULL, CKPT_DTYPE_FLOAT32, 1, s3, 3), 0);
	add(meta, "l", l);
	add(tu, NULL, node(CKPT_TREE_NONE));
	assert_int_equal(ckpt_tree_new_int(&x, 1), 0);
	add(tu, NULL, x);
	add(meta, "t", tu);
	assert_int_equal(test_add_array(gone, "x", CKPT_DTYPE_FLOAT32, 1, s1, 1), 0);
	add(meta, "gone", gone);
	/* what the files say: a.npy and l/1.npy removed, gone/ removed, b is no
	 * int any more, c is new, l/0.npy is now float64 */
	ckpt_tree *el = node(CKPT_TREE_LIST), *et = node(CKPT_TREE_TUPLE);
	assert_int_equal(ckpt_tree_new_string(&x, "notint", 6), 0);
	add(exp, "b", x);
	assert_int_equal(ckpt_tree_new_string(&x, "hi", 2), 0);
	add(exp, "c", x);
	assert_int_equal(test_add_array(el, NULL, CKPT_DTYPE_FLOAT64, 1, s1, 7), 0);
	add(el, NULL, leaf_copy(l, "2"));
	add(exp, "l", el);
	add(et, NULL, node(CKPT_TREE_NONE));
	assert_int_equal(ckpt_tree_new_int(&x, 1), 0);
	add(et, NULL, x);
	add(exp, "t", et);
	add(meta, "e", node(CKPT_TREE_LIST));
	ckpt_tree *ee = node(CKPT_TREE_LIST);
	assert_int_equal(ckpt_tree_new_int(&x, 9), 0);
	add(ee, NULL, x);
	assert_int_equal(ckpt_tree_new_int(&x, 10), 0);
	add(ee, NULL, x);
	add(exp, "e", ee);
	/* a None leaf and an empty dict of _METADATA filled by files: the files' word */
	add(meta, "n", node(CKPT_TREE_NONE));
	add(meta, "d", node(CKPT_TREE_DICT));
	assert_int_equal(test_add_array(exp, "n", CKPT_DTYPE_FLOAT32, 1, s2, 5), 0);
	assert_int_equal(ckpt_tree_new_int(&x, 5), 0);
	add(exp, "d", x);

	assert_int_equal(ckpt_pending_create(&dir, &fd, root, 4), 0);
	files = xprintf("%s/files", dir);
	assert_int_equal(ckpt_tree_metadata_to_json(&json, meta), 0);
	put_str(files, "state/_METADATA", json);
	put_str(files, "state/b", "notint");
	put_str(files, "state/c", "hi");
	put_npy(files, "state/l/0.npy", ckpt_tree_child(el, 0));
	put_npy(files, "state/l/2.npy", ckpt_tree_child(l, 2));
	put_str(files, "state/t/1", "1");
	put_str(files, "state/e/10", "10");
	put_str(files, "state/e/9", "9");
	put_npy(files, "state/n.npy", ckpt_tree_find(exp, "n"));
	put_str(files, "state/d", "5");
	if (ckpt_pending_finalize(dir, fd, NULL) != 0)
		fail_msg("finalize: %s", ckpt_error_last());
	close(fd);
	p = xprintf("%s/4", root);
	got = restore(p, "state");
	assert_int_equal(test_tree_cmp(exp, got, "step 4"), 0);
	assert_int_equal(ckpt_tree_get_kind(ckpt_tree_find(got, "l")), CKPT_TREE_LIST);
	assert_int_equal(ckpt_tree_get_kind(ckpt_tree_find(got, "t")), CKPT_TREE_TUPLE);
	ckpt_tree_free(got);
	/* and the interchange view of it reads back the same */
	char *out = xprintf("%s/out", root);
	ckpt_step *s = NULL;
	assert_int_equal(ckpt_step_open(&s, p, NULL), 0);
	assert_int_equal(ckpt_interchange_restore(s, "state", NULL, out), 0);
	ckpt_step_free(s);
	assert_int_equal(ckpt_interchange_read_item(&got, out), 0);
	assert_int_equal(test_tree_cmp(exp, got, "interchange"), 0);
	ckpt_tree_free(got);
	free(out);
	free(p);
	free(files);
	free(json);
	free(dir);
	ckpt_tree_free(meta);
	ckpt_tree_free(exp);
	ckpt_rmtree(root);
	free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_create_list_lock), cmocka_unit_test(test_check_path),
	    cmocka_unit_test(test_check_file),	     cmocka_unit_test(test_clone_stub),
	    cmocka_unit_test(test_finalize),	     cmocka_unit_test(test_finalize_failures),
	    cmocka_unit_test(test_finalize_lenient),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
