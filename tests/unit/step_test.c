/*
 * step_test.c — the step writer/reader, root listing and cleanup, leaf view.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <dirent.h>
#include <pthread.h>
#include <unistd.h>

#include "ckpt/ckpt.h"
#include "step_private.h"
#include "root_private.h"
#include "fsutil.h"
#include "nested_step.h"

static char *mkroot(void)
{
	char tmpl[] = "/tmp/ckpt-step-test-XXXXXX";
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	return strdup(d);
}

static int count_entries(const char *dir)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "ls -A %s | wc -l", dir);
	FILE *p = popen(cmd, "r");
	int n = -1;
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

static int exists(const char *a, const char *b)
{
	char path[1100];
	struct stat st;
	snprintf(path, sizeof(path), "%s%s", a, b);
	return stat(path, &st) == 0;
}

/* Save a step holding one key "x/v" with the given value. */
static int save_step(const char *root, uint64_t step, const char *val, int force)
{
	ckpt_step_writer_options o = CKPT_STEP_WRITER_OPTIONS_INIT;
	ckpt_step_writer *w = NULL;
	int rc;

	o.force = force;
	o.custom_metadata = "{\"who\": \"test\"}";
	rc = ckpt_step_writer_open(&w, root, step, &o);
	if (rc)
		return rc;
	rc = ckpt_step_writer_add_item(w, "x", "my.Handler");
	if (rc == 0)
		rc = ckpt_batch_put(ckpt_step_writer_batch(w), "x/v", 3, val, strlen(val), NULL);
	if (rc) {
		ckpt_step_writer_abort(w);
		return rc;
	}
	return ckpt_step_writer_finalize(w);
}

static void test_save_open_list(void **state)
{
	char *root = mkroot();
	uint64_t *steps = NULL;
	size_t n = 0, idx = 99;
	ckpt_step *s = NULL;
	char dir[512];
	void *v = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(save_step(root, 100, "hello", 0), 0);
	assert_int_equal(save_step(root, 7, "seven", 0), 0);
	/* no tmp dir is left */
	assert_int_equal(count_entries(root), 2);
	assert_int_equal(ckpt_root_steps(&steps, &n, root), 0);
	assert_int_equal(n, 2);
	assert_int_equal(steps[0], 7);
	assert_int_equal(steps[1], 100);
	free(steps);

	snprintf(dir, sizeof(dir), "%s/100", root);
	assert_int_equal(ckpt_step_open(&s, dir, NULL), 0);
	assert_int_equal(ckpt_step_item_count(s), 1);
	assert_string_equal(ckpt_step_item_name(s, 0), "x");
	assert_string_equal(ckpt_step_item_typestr(s, 0), "my.Handler");
	assert_int_equal(ckpt_step_item_find(&idx, s, "x"), 0);
	assert_int_equal(idx, 0);
	assert_int_equal(ckpt_step_item_find(&idx, s, "y"), CKPT_ENOTFOUND);
	assert_true(ckpt_step_commit_time_ns(s) > 0);
	assert_non_null(strstr(ckpt_step_metadata_json(s), "\"who\":\"test\""));
	assert_non_null(strstr(ckpt_step_metadata_json(s), "\"init_timestamp_nsecs\":"));
	assert_int_equal(ckpt_store_get(&v, &len, ckpt_step_store(s), "x/v", 3), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(v, "hello", 5);
	free(v);
	ckpt_step_free(s);

	/* overwrite refused, then forced */
	assert_int_equal(save_step(root, 100, "again", 0), CKPT_EEXISTS);
	assert_int_equal(count_entries(root), 2);
	assert_int_equal(save_step(root, 100, "again", 1), 0);
	assert_int_equal(count_entries(root), 2);
	assert_int_equal(ckpt_step_open(&s, dir, NULL), 0);
	assert_int_equal(ckpt_store_get(&v, &len, ckpt_step_store(s), "x/v", 3), 0);
	assert_memory_equal(v, "again", 5);
	free(v);
	ckpt_step_free(s);

	/* delete */
	assert_int_equal(ckpt_root_delete_step(root, 7), 0);
	assert_int_equal(ckpt_root_delete_step(root, 7), CKPT_ENOTFOUND);
	assert_int_equal(count_entries(root), 1);
	ckpt_rmtree(root);
	free(root);
}

static void test_abort_and_names(void **state)
{
	char *root = mkroot();
	ckpt_step_writer *w = NULL;
	uint64_t *steps = NULL, v = 0;
	size_t n = 9;

	(void)state;
	assert_int_equal(ckpt_step_writer_open(&w, root, 5, NULL), 0);
	assert_int_equal(ckpt_step_writer_add_item(w, "a", "T1"), 0);
	assert_int_equal(ckpt_step_writer_add_item(w, "a", "T1"), 0);
	assert_int_equal(ckpt_step_writer_add_item(w, "a", "T2"), CKPT_EEXISTS);
	assert_non_null(strstr(ckpt_error_last(), "T1"));
	assert_int_equal(ckpt_step_writer_add_item(w, "_bad", "T1"), CKPT_EINVAL);
	assert_int_equal(ckpt_step_writer_add_item(w, "a/b", "T1"), CKPT_EINVAL);
	assert_int_equal(count_entries(root), 1); /* the tmp dir */
	ckpt_step_writer_abort(w);
	assert_int_equal(count_entries(root), 0);
	assert_int_equal(ckpt_root_steps(&steps, &n, root), 0);
	assert_int_equal(n, 0);
	free(steps);

	assert_true(ckpt_step_name_parse(&v, "0") && v == 0);
	assert_true(ckpt_step_name_parse(&v, "18446744073709551615") && v == UINT64_MAX);
	assert_false(ckpt_step_name_parse(&v, "18446744073709551616"));
	assert_false(ckpt_step_name_parse(&v, "012"));
	assert_false(ckpt_step_name_parse(&v, ""));
	assert_false(ckpt_step_name_parse(&v, "12a"));
	assert_false(ckpt_step_name_parse(&v, "1" CKPT_TMP_INFIX "x"));
	/* a step-like directory without ckpt.db is not a step */
	char p[512];
	snprintf(p, sizeof(p), "%s/12", root);
	assert_int_equal(mkdir(p, 0777), 0);
	assert_int_equal(ckpt_root_steps(&steps, &n, root), 0);
	assert_int_equal(n, 0);
	free(steps);
	assert_int_equal(ckpt_root_steps(&steps, &n, "/nonexistent/ckpt-root"), CKPT_ENOTFOUND);
	ckpt_rmtree(root);
	free(root);
}

static void test_cleanup(void **state)
{
	char *root = mkroot();
	char a[512], b[512], c[512], old[600], lock[600];
	ckpt_step_writer *w = NULL;
	size_t removed = 99;
	int fd;

	(void)state;
	/* abandoned just after its mkdir: empty, no lock held, removed at once */
	snprintf(a, sizeof(a), "%s/3%sdead", root, CKPT_TMP_INFIX);
	assert_int_equal(mkdir(a, 0777), 0);
	/* abandoned with content and an old-style lock file: removed too */
	snprintf(c, sizeof(c), "%s/5%sfull", root, CKPT_TMP_INFIX);
	assert_int_equal(mkdir(c, 0777), 0);
	snprintf(lock, sizeof(lock), "%s/sub", c);
	assert_int_equal(mkdir(lock, 0777), 0);
	snprintf(lock, sizeof(lock), "%s/ckpt.lock", c);
	assert_int_equal(ckpt_write_file(lock, "", 0), 0);
	/* alive: the directory is locked by this process through another open file */
	snprintf(b, sizeof(b), "%s/4%slive", root, CKPT_TMP_INFIX);
	assert_int_equal(mkdir(b, 0777), 0);
	fd = open(b, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX), 0);

	assert_int_equal(ckpt_root_cleanup(root, &removed), 0);
	assert_int_equal(removed, 2);
	assert_false(exists(a, ""));
	assert_false(exists(c, ""));
	assert_true(exists(b, ""));

	/* a writer's own tmp dir survives cleanup by another writer */
	assert_int_equal(ckpt_step_writer_open(&w, root, 6, NULL), 0);
	assert_int_equal(ckpt_root_cleanup(root, &removed), 0);
	assert_int_equal(removed, 0);
	assert_true(exists(ckpt_step_writer_dir(w), ""));
	ckpt_step_writer_abort(w);
	assert_int_equal(count_entries(root), 1);

	close(fd); /* the "live" writer dies */
	assert_int_equal(ckpt_root_cleanup(root, &removed), 0);
	assert_int_equal(removed, 1);
	assert_false(exists(b, ""));

	/* a step being replaced by force is locked before the exchange gives it
	 * a temporary name:
	 * a save that waits for it is not removed by cleanup meanwhile */
	assert_int_equal(save_step(root, 8, "old", 0), 0);
	snprintf(old, sizeof(old), "%s/8", root);
	fd = open(old, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	snprintf(a, sizeof(a), "%s/8%sold-x", root, CKPT_TMP_INFIX);
	assert_int_equal(rename(old, a), 0);
	assert_int_equal(ckpt_root_cleanup(root, &removed), 0);
	assert_int_equal(removed, 0);
	assert_true(exists(a, "/ckpt.db"));
	close(fd);
	assert_int_equal(ckpt_root_cleanup(root, &removed), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(count_entries(root), 0);

	/* locking: a missing directory, a held lock */
	assert_int_equal(ckpt_lock_dir(&fd, a, 1), CKPT_ENOTFOUND);
	assert_int_equal(fd, -1);
	assert_int_equal(ckpt_lock_dir(&fd, root, 1), 0);
	int fd2 = 99;
	assert_int_equal(ckpt_lock_dir(&fd2, root, 1), CKPT_EBUSY);
	assert_int_equal(fd2, -1);
	close(fd);

	/* removing a tree that is already gone, or a plain file, is fine */
	assert_int_equal(ckpt_rmtree(a), 0);
	assert_int_equal(ckpt_write_file(a, "x", 1), 0);
	assert_int_equal(ckpt_rmtree(a), 0);
	assert_false(exists(a, ""));
	ckpt_rmtree(root);
	free(root);
}

/* The integer after the first `"key":` of json (test-side parsing). */
static long long int_after(const char *json, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(json, pat);
	assert_non_null(p);
	return strtoll(p + strlen(pat), NULL, 10);
}

/* Create a store holding only the given _CHECKPOINT_METADATA and open it as a step. */
static int open_with_metadata(ckpt_step **s, const char *dir, const char *json)
{
	ckpt_store *st = NULL;
	ckpt_batch *b = NULL;

	assert_int_equal(ckpt_store_open(&st, dir, CKPT_STORE_CREATE, NULL), 0);
	assert_int_equal(ckpt_batch_begin(&b, st), 0);
	assert_int_equal(ckpt_batch_put(b, CKPT_STEP_METADATA_KEY, strlen(CKPT_STEP_METADATA_KEY),
					json, strlen(json), NULL),
			 0);
	assert_int_equal(ckpt_batch_commit(b, NULL), 0);
	assert_int_equal(ckpt_store_seal(st), 0);
	ckpt_store_free(st);
	return ckpt_step_open(s, dir, NULL);
}

/* commit_timestamp_nsecs is read exactly (not through a double), top-level only. */
static void test_commit_time_exact(void **state)
{
	static const struct {
		const char *json;
		int64_t want;
	} cases[] = {
	    {"{\"commit_timestamp_nsecs\": 1796000000896583047}", 1796000000896583047},
	    /* the same key nested first, in strings with escapes, objects and arrays */
	    {"{\"custom_metadata\": {\"commit_timestamp_nsecs\": 5, \"s\": \"x\\\",\\\"commit_"
	     "timestamp_nsecs\\\": 6\", \"a\": [{\"commit_timestamp_nsecs\": 7}]}, "
	     "\"k\\\"\": \"{\", \"commit_timestamp_nsecs\" : 1796000000896583047 }",
	     1796000000896583047},
	    {"{\"custom_metadata\": {\"commit_timestamp_nsecs\": 5}}", 0},
	    {"{\"commit_timestamp_nsecs\": 1.5e18}", 0},
	    {"{\"commit_timestamp_nsecs\": -3}", 0},
	    {"{\"commit_timestamp_nsecs\": \"12\"}", 0},
	    {"{\"commit_timestamp_nsecs\": 99999999999999999999}", 0},
	};
	char *root = mkroot();
	ckpt_step *s = NULL;
	char dir[512];

	(void)state;
	/* a real save: the value read back equals the integer stored */
	assert_int_equal(save_step(root, 1, "v", 0), 0);
	snprintf(dir, sizeof(dir), "%s/1", root);
	assert_int_equal(ckpt_step_open(&s, dir, NULL), 0);
	assert_true(ckpt_step_commit_time_ns(s) > 0);
	assert_true(ckpt_step_commit_time_ns(s) ==
		    int_after(ckpt_step_metadata_json(s), "commit_timestamp_nsecs"));
	ckpt_step_free(s);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(dir, sizeof(dir), "%s/c%zu", root, i);
		assert_int_equal(open_with_metadata(&s, dir, cases[i].json), 0);
		if (ckpt_step_commit_time_ns(s) != cases[i].want)
			fail_msg("case %zu: got %lld, want %lld", i,
				 (long long)ckpt_step_commit_time_ns(s), (long long)cases[i].want);
		ckpt_step_free(s);
	}
	ckpt_rmtree(root);
	free(root);
}

static void test_leaf_view(void **state)
{
	char *root = mkroot();
	ckpt_item_args item;
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_handler *h = NULL;
	ckpt_tree *t = NULL, *arr = NULL, *sc = NULL, *str = NULL;
	const ckpt_tree *meta = NULL, *node = NULL;
	ckpt_step *s = NULL;
	ckpt_leaf *l = NULL;
	uint64_t shape[2] = {3000, 7};
	float *data = malloc(3000 * 7 * sizeof(float));
	char dir[512];

	(void)state;
	for (int i = 0; i < 3000 * 7; i++)
		data[i] = (float)i * 0.5f;
	assert_int_equal(ckpt_tree_new(&t, CKPT_TREE_DICT), 0);
	assert_int_equal(
	    ckpt_tree_new_array(&arr, CKPT_DTYPE_FLOAT32, 2, shape, data, CKPT_TREE_BORROW), 0);
	assert_int_equal(ckpt_tree_add(t, "w", arr), 0);
	assert_int_equal(ckpt_tree_new_int(&sc, -42), 0);
	assert_int_equal(ckpt_tree_add(t, "n", sc), 0);
	assert_int_equal(ckpt_tree_new_string(&str, "abc", 3), 0);
	assert_int_equal(ckpt_tree_add(t, "s", str), 0);
	assert_int_equal(ckpt_pytree_handler_new(&h), 0);
	sa.item = t;
	item = (ckpt_item_args){"state", h, &sa};
	ckpt_step_writer_options o = CKPT_STEP_WRITER_OPTIONS_INIT;
	o.store.chunk_size = 4096; /* many chunks */
	o.store.inline_max = 16;
	int src = ckpt_checkpointer_save(root, 1, &item, 1, &o);
	if (src)
		print_error("%s\n", ckpt_error_last());
	assert_int_equal(src, 0);
	snprintf(dir, sizeof(dir), "%s/1", root);
	assert_int_equal(ckpt_step_open(&s, dir, NULL), 0);
	assert_int_equal(ckpt_step_item_tree(&meta, s, "state"), 0);

	/* array: header + data, every offset and several lengths */
	node = ckpt_tree_find(meta, "w");
	assert_non_null(node);
	assert_int_equal(ckpt_leaf_open(&l, s, "state", node), 0);
	size_t hl = ckpt_npy_header_len(CKPT_DTYPE_FLOAT32, 2, shape);
	size_t fsz = hl + sizeof(float) * 3000 * 7;
	unsigned char *want = malloc(fsz), *got = malloc(fsz);
	size_t n = 0;
	assert_int_equal(ckpt_npy_format_header(want, fsz, &n, CKPT_DTYPE_FLOAT32, 2, shape), 0);
	memcpy(want + hl, data, fsz - hl);
	assert_int_equal(ckpt_leaf_file_size(l), fsz);
	uint64_t tsz = 0;
	assert_int_equal(ckpt_leaf_size_from_tree(&tsz, node), 0); /* without the index */
	assert_int_equal(tsz, fsz);
	assert_int_equal(ckpt_leaf_size_from_tree(&tsz, ckpt_tree_find(meta, "n")), CKPT_ENOTFOUND);
	assert_int_equal(ckpt_leaf_size_from_tree(&tsz, meta), CKPT_EINVAL);
	assert_string_equal(ckpt_leaf_key(l), "state/w");
	for (size_t off = 0; off <= fsz; off += 1 + off / 50) {
		size_t lens[] = {1, 7, 129, 1000, fsz};
		for (size_t k = 0; k < 5; k++) {
			size_t len = lens[k];
			size_t exp = off + len > fsz ? fsz - off : len;
			assert_int_equal(ckpt_leaf_pread(&n, l, got, len, off), 0);
			assert_int_equal(n, exp);
			assert_memory_equal(got, want + off, exp);
		}
	}
	ckpt_leaf_free(l);

	node = ckpt_tree_find(meta, "n");
	assert_int_equal(ckpt_leaf_open(&l, s, "state", node), 0);
	/* a scalar's file is its text and a newline (docs/fs.md); every range of it reads right */
	assert_int_equal(ckpt_leaf_file_size(l), 4);
	assert_int_equal(ckpt_leaf_pread(&n, l, got, 100, 1), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(got, "42\n", 3);
	assert_int_equal(ckpt_leaf_pread(&n, l, got, 2, 1), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(got, "42", 2);
	assert_int_equal(ckpt_leaf_pread(&n, l, got, 1, 3), 0);
	assert_int_equal(n, 1);
	assert_int_equal(got[0], '\n');
	assert_int_equal(ckpt_leaf_pread(&n, l, got, 10, 4), 0);
	assert_int_equal(n, 0);
	ckpt_leaf_free(l);
	node = ckpt_tree_find(meta, "s");
	assert_int_equal(ckpt_leaf_open(&l, s, "state", node), 0);
	assert_int_equal(ckpt_leaf_pread(&n, l, got, 100, 0), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(got, "abc", 3);
	ckpt_leaf_free(l);
	/* not a leaf */
	assert_int_equal(ckpt_leaf_open(&l, s, "state", meta), CKPT_EINVAL);

	ckpt_step_free(s);
	ckpt_handler_free(h);
	ckpt_tree_free(t);
	free(want);
	free(got);
	free(data);
	ckpt_rmtree(root);
	free(root);
}

/* A store with a hand-written _CHECKPOINT_METADATA must be refused when malformed. */
static void test_bad_step_metadata(void **state)
{
	const char *bad[] = {"not json", "[1, 2]", "{\"item_handlers\": [\"x\"]}",
			     "{\"item_handlers\": {\"a\": 3}}",
			     "{\"item_handlers\": {\"a\": \"h\", \"b\": \"h\", \"a\": \"h\"}}"};
	char *root = mkroot();
	char dir[512];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ckpt_store *st = NULL;
		ckpt_batch *b = NULL;
		ckpt_step *s = NULL;

		snprintf(dir, sizeof(dir), "%s/%zu", root, i);
		assert_int_equal(ckpt_store_open(&st, dir, CKPT_STORE_CREATE, NULL), 0);
		assert_int_equal(ckpt_batch_begin(&b, st), 0);
		assert_int_equal(ckpt_batch_put(b, CKPT_STEP_METADATA_KEY,
						strlen(CKPT_STEP_METADATA_KEY), bad[i],
						strlen(bad[i]), NULL),
				 0);
		assert_int_equal(ckpt_batch_commit(b, NULL), 0);
		assert_int_equal(ckpt_store_seal(st), 0);
		ckpt_store_free(st);
		assert_int_equal(ckpt_step_open(&s, dir, NULL), CKPT_ECORRUPT);
		assert_null(s);
		assert_non_null(strstr(ckpt_error_last(), CKPT_STEP_METADATA_KEY));
	}
	ckpt_rmtree(root);
	free(root);
}

/* ---- an item's tree listed without building it ---- */

struct walk {
	ckpt_step *s;
	const ckpt_tree *t; /* the container listed, built */
	uint64_t id;
	size_t n;
	char *seen; /* "name:id," of every node, depth first */
	size_t len;
};

static int walk_cb(const ckpt_tree_entry *e, void *payload)
{
	struct walk *w = payload;
	const ckpt_tree *c = ckpt_tree_child(w->t, e->pos);
	uint64_t parent = 99;

	assert_int_equal(e->pos, w->n++);
	assert_non_null(c);
	assert_string_equal(e->name, ckpt_tree_name(c));
	assert_int_equal(e->kind, ckpt_tree_get_kind(c));
	assert_true(e->id > w->id);
	assert_int_equal(ckpt_step_item_parent(&parent, w->s, 0, e->id), 0);
	assert_int_equal(parent, w->id);
	w->seen = realloc(w->seen, w->len + strlen(e->name) + 32);
	w->len += (size_t)sprintf(w->seen + w->len, "%s:%llu,", e->name, (unsigned long long)e->id);
	if (ckpt_tree_is_container(c)) {
		struct walk sub = {w->s, c, e->id, 0, w->seen, w->len};
		assert_int_equal(ckpt_step_item_children(w->s, 0, e->id, walk_cb, &sub), 0);
		assert_int_equal(sub.n, ckpt_tree_count(c));
		w->seen = sub.seen;
		w->len = sub.len;
	} else {
		assert_int_equal(ckpt_step_item_children(w->s, 0, e->id, walk_cb, NULL),
				 CKPT_EINVAL);
	}
	return 0;
}

/* Every node of item 0 listed, checked against its built tree; returns "name:id,..." */
static char *walk_item(ckpt_step *s)
{
	const ckpt_tree *t = NULL;
	uint64_t limit = 0;
	struct walk w = {s, NULL, 0, 0, NULL, 0};

	assert_int_equal(ckpt_step_item_id_limit(&limit, s, 0), 0);
	assert_int_equal(ckpt_step_item_tree(&t, s, ckpt_step_item_name(s, 0)), 0);
	w.t = t;
	w.seen = strdup("");
	assert_int_equal(ckpt_step_item_children(s, 0, 0, walk_cb, &w), 0);
	assert_int_equal(w.n, ckpt_tree_count(t));
	return w.seen;
}

/* Listed and not: the same names and ids (the mount's inode numbers); bad arguments refused. */
static void test_item_children(void **state)
{
	char *root = mkroot(), *a, *b;
	ckpt_step *s = NULL;
	uint64_t u = 0;
	char dir[512], path[600];

	(void)state;
	save_nested_step(root);
	snprintf(dir, sizeof(dir), "%s/1", root);

	assert_int_equal(ckpt_step_open_listed(&s, dir, NULL), 0);
	a = walk_item(s);
	assert_int_equal(ckpt_step_item_id_limit(&u, s, 1), CKPT_ENOTFOUND); /* Json: no tree */
	assert_int_equal(ckpt_step_item_id_limit(&u, s, 6), CKPT_EINVAL);
	assert_int_equal(ckpt_step_item_children(s, 6, 0, walk_cb, NULL), CKPT_EINVAL);
	assert_int_equal(ckpt_step_item_parent(&u, s, 6, 5), CKPT_EINVAL);
	assert_int_equal(ckpt_step_item_parent(&u, s, 0, 0), CKPT_ENOTFOUND); /* the root */
	assert_int_equal(ckpt_step_item_parent(&u, s, 0, 1u << 30), CKPT_ENOTFOUND);
	ckpt_step_free(s);

	snprintf(path, sizeof(path), "%s/ckpt.list", dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(ckpt_step_open_listed(&s, dir, NULL), 0);
	b = walk_item(s); /* from _METADATA, encoded: the same ids */
	assert_string_equal(a, b);
	assert_non_null(strstr(a, "a%2Fb w.npy:"));
	assert_non_null(strstr(a, "none:")); /* None is listed (the mount shows no file) */
	ckpt_step_free(s);
	free(a);
	free(b);
	ckpt_rmtree(root);
	free(root);
}

struct reader {
	ckpt_leaf *l;
	const unsigned char *want;
	size_t size;
	unsigned seed;
	int bad;
};

static void *read_random(void *arg)
{
	struct reader *r = arg;
	unsigned char buf[5000];

	for (int i = 0; i < 300; i++) {
		size_t off = (size_t)rand_r(&r->seed) % r->size;
		size_t len = 1 + (size_t)rand_r(&r->seed) % sizeof(buf);
		size_t n = 0;
		if (ckpt_leaf_pread(&n, r->l, buf, len, off) != 0 ||
		    n != (off + len > r->size ? r->size - off : len) ||
		    memcmp(buf, r->want + off, n) != 0)
			r->bad++;
	}
	return NULL;
}

/* Corrupt one byte of the data file: the error names the leaf. Also concurrent preads. */
static void test_leaf_threads_and_corruption(void **state)
{
	char *root = mkroot();
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_step_writer_options o = CKPT_STEP_WRITER_OPTIONS_INIT;
	ckpt_handler *h = NULL;
	ckpt_tree *t = NULL, *arr = NULL;
	const ckpt_tree *meta = NULL;
	ckpt_step *s = NULL;
	ckpt_leaf *l = NULL;
	uint64_t shape[1] = {100000};
	uint32_t *data = malloc(sizeof(uint32_t) * 100000);
	char dir[512], cmd[1024];

	(void)state;
	for (uint32_t i = 0; i < 100000; i++)
		data[i] = i * 2654435761u;
	assert_int_equal(ckpt_tree_new(&t, CKPT_TREE_DICT), 0);
	assert_int_equal(
	    ckpt_tree_new_array(&arr, CKPT_DTYPE_UINT32, 1, shape, data, CKPT_TREE_BORROW), 0);
	assert_int_equal(ckpt_tree_add(t, "w", arr), 0);
	assert_int_equal(ckpt_pytree_handler_new(&h), 0);
	sa.item = t;
	ckpt_item_args item = {"state", h, &sa};
	o.store.chunk_size = 4096;
	o.store.compression_level = 0;
	assert_int_equal(ckpt_checkpointer_save(root, 1, &item, 1, &o), 0);
	snprintf(dir, sizeof(dir), "%s/1", root);

	/* concurrent readers */
	size_t hl = ckpt_npy_header_len(CKPT_DTYPE_UINT32, 1, shape), n = 0;
	size_t fsz = hl + sizeof(uint32_t) * 100000;
	unsigned char *want = malloc(fsz);
	assert_int_equal(ckpt_npy_format_header(want, fsz, &n, CKPT_DTYPE_UINT32, 1, shape), 0);
	memcpy(want + hl, data, fsz - hl);
	assert_int_equal(ckpt_step_open(&s, dir, NULL), 0);
	assert_int_equal(ckpt_step_item_tree(&meta, s, "state"), 0);
	assert_int_equal(ckpt_leaf_open(&l, s, "state", ckpt_tree_find(meta, "w")), 0);
	pthread_t th[4];
	struct reader rd[4];
	for (int i = 0; i < 4; i++) {
		rd[i] = (struct reader){l, want, fsz, (unsigned)i + 1, 0};
		assert_int_equal(pthread_create(&th[i], NULL, read_random, &rd[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(rd[i].bad, 0);
	}
	ckpt_leaf_free(l);
	ckpt_step_free(s);

	/* flip a byte in the middle of every data file */
	snprintf(cmd, sizeof(cmd),
		 "for f in %s/d/*; do s=$(stat -c %%s $f); printf '\\377' | "
		 "dd of=$f bs=1 seek=$((s / 2)) conv=notrunc status=none; done",
		 dir);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(ckpt_step_open(&s, dir, NULL), 0);
	assert_int_equal(ckpt_step_item_tree(&meta, s, "state"), 0);
	assert_int_equal(ckpt_leaf_open(&l, s, "state", ckpt_tree_find(meta, "w")), 0);
	unsigned char *buf = malloc(fsz);
	int rc = ckpt_leaf_pread(&n, l, buf, fsz, 0);
	assert_int_equal(rc, CKPT_ECORRUPT);
	assert_non_null(strstr(ckpt_error_last(), "state/w"));
	/* the header alone still reads */
	assert_int_equal(ckpt_leaf_pread(&n, l, buf, hl, 0), 0);
	assert_int_equal(n, hl);
	free(buf);
	ckpt_leaf_free(l);
	ckpt_step_free(s);
	ckpt_handler_free(h);
	ckpt_tree_free(t);
	free(want);
	free(data);
	ckpt_rmtree(root);
	free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_save_open_list),
	    cmocka_unit_test(test_abort_and_names),
	    cmocka_unit_test(test_cleanup),
	    cmocka_unit_test(test_commit_time_exact),
	    cmocka_unit_test(test_leaf_view),
	    cmocka_unit_test(test_bad_step_metadata),
	    cmocka_unit_test(test_item_children),
	    cmocka_unit_test(test_leaf_threads_and_corruption),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
