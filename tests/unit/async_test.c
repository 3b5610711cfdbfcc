/*
 * async_test.c — asynchronous saves: copy and borrow modes, memory reserved
 * for the first snapshot, one save at a time, background failures reported
 * once, free waiting for the save.
 *
 * A "gate" item saved before the others holds the background save until the
 * test opens the gate, so what the caller does after ckpt_async_save()
 * returns happens, deterministically, before the save reads its data.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <malloc.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/async.h"
#include "ckpt/sys/handler.h"
#include "unit/treecmp.h"
#include "fsutil.h"

struct gate {
	ckpt_handler base;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int open;
	char log[256]; /* "snap1 begin1 end1 ..." */
};

static void gate_log(struct gate *g, const char *ev, const char *tag)
{
	pthread_mutex_lock(&g->mu);
	size_t l = strlen(g->log);
	snprintf(g->log + l, sizeof(g->log) - l, "%s%s ", ev, tag);
	pthread_mutex_unlock(&g->mu);
}

static void gate_set(struct gate *g, int open)
{
	pthread_mutex_lock(&g->mu);
	g->open = open;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

static const char *g_typestr(const ckpt_handler *h)
{
	(void)h;
	return "test.GateHandler";
}

/* args: a tag string ("1"). Waits for the gate, then writes "<item>/x". */
static int g_save(ckpt_handler *h, ckpt_step_writer *w, const char *item, const void *args)
{
	struct gate *g = (struct gate *)h;
	char key[64];

	gate_log(g, "begin", args);
	pthread_mutex_lock(&g->mu);
	while (!g->open)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
	gate_log(g, "end", args);
	snprintf(key, sizeof(key), "%s/x", item);
	return ckpt_batch_put(ckpt_step_writer_batch(w), key, strlen(key), "1", 1, NULL);
}

static int g_snapshot(void **out, ckpt_handler *h, const void *args)
{
	gate_log((struct gate *)h, "snap", args);
	*out = strdup(args);
	return *out ? 0 : CKPT_ENOMEM;
}

static void g_snapshot_free(ckpt_handler *h, void *snap)
{
	(void)h;
	free(snap);
}

static const ckpt_handler_vtable gate_vt = {
    .version = CKPT_HANDLER_VTABLE_VERSION,
    .typestr = g_typestr, .save = g_save, .snapshot = g_snapshot, .snapshot_free = g_snapshot_free};
static const ckpt_handler_vtable gate_nosnap_vt = {.version = CKPT_HANDLER_VTABLE_VERSION,.typestr = g_typestr, .save = g_save};

static void gate_init(struct gate *g, const ckpt_handler_vtable *vt)
{
	memset(g, 0, sizeof(*g));
	g->base.vt = vt;
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
}

static void gate_fini(struct gate *g)
{
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
}

static int step_exists(const char *root, uint64_t step)
{
	char p[512];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%llu", root, (unsigned long long)step);
	return stat(p, &st) == 0;
}

static ckpt_tree *restore_state(const char *root, uint64_t step)
{
	ckpt_handler *py = NULL;
	void *out = NULL;
	char dir[512];

	assert_int_equal(ckpt_pytree_handler_new(&py), 0);
	ckpt_item_args it = {"state", py, NULL};
	snprintf(dir, sizeof(dir), "%s/%llu", root, (unsigned long long)step);
	assert_int_equal(ckpt_checkpointer_restore(&out, dir, &it, 1), 0);
	ckpt_handler_free(py);
	return out;
}

static float *kernel_data(const ckpt_tree *t)
{
	ckpt_tree *k = NULL;
	assert_int_equal(ckpt_tree_lookup(&k, t, "params/dense/kernel"), 0);
	return (float *)ckpt_tree_data(k);
}

/* leaf_args that must be called only before ckpt_async_save returns (copy mode). */
struct leaf_note {
	char note[32];
	int calls, late_calls, returned;
};

static int note_args(ckpt_leaf_save_args *out, const char *path, const ckpt_tree *leaf,
		     void *payload)
{
	struct leaf_note *n = payload;
	(void)leaf;
	n->calls++;
	n->late_calls += n->returned;
	if (strcmp(path, "params/dense/kernel") == 0)
		out->custom_metadata = n->note;
	return 0;
}

static void test_copy_mode(void **state)
{
	char *root = test_tmpdir();
	ckpt_tree *t = test_tree_every_kind(1), *expect = NULL, *got;
	ckpt_handler *py = NULL;
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	struct leaf_note note = {"{\"note\": \"before\"}", 0, 0, 0};
	ckpt_async *a = NULL;
	ckpt_future *f = NULL;
	struct gate g;

	(void)state;
	gate_init(&g, &gate_vt);
	assert_int_equal(ckpt_pytree_handler_new(&py), 0);
	assert_int_equal(ckpt_tree_clone(&expect, t), 0);
	sa.item = t;
	sa.leaf_args = note_args;
	sa.payload = &note;
	ckpt_item_args items[2] = {{"gate", &g.base, "1"}, {"state", py, &sa}};
	assert_int_equal(ckpt_async_new(&a, NULL), 0);
	assert_int_equal(ckpt_async_save(a, &f, root, 1, items, 2, NULL, "{\"loss\": 0.5}"), 0);
	note.returned = 1;
	assert_true(note.calls > 0);
	/* the caller changes and frees everything at once */
	kernel_data(t)[0] = -7.0f;
	ckpt_tree_free(t);
	strcpy(note.note, "{\"note\": \"after\"}");
	assert_int_equal(ckpt_future_done(f), 0); /* held by the gate */
	gate_set(&g, 1);
	assert_int_equal(ckpt_future_wait(f), 0);
	assert_int_equal(ckpt_future_done(f), 1);
	assert_int_equal(note.late_calls, 0);
	assert_string_equal(g.log, "snap1 begin1 end1 ");

	got = restore_state(root, 1);
	assert_int_equal(test_tree_cmp(expect, got, "copy"), 0);
	ckpt_tree *k = NULL;
	assert_int_equal(ckpt_tree_lookup(&k, got, "params/dense/kernel"), 0);
	assert_non_null(strstr(ckpt_tree_custom_metadata(k), "before"));
	ckpt_tree_free(got);

	ckpt_future_free(f);
	ckpt_async_free(a);
	ckpt_tree_free(expect);
	ckpt_handler_free(py);
	gate_fini(&g);
	ckpt_rmtree(root);
	free(root);
}

static int stop_at_bias(ckpt_leaf_save_args *out, const char *path, const ckpt_tree *leaf,
			void *payload)
{
	(void)out;
	(void)leaf;
	(void)payload;
	return strcmp(path, "params/dense/bias") == 0;
}

/* Saves after the first reuse the snapshot buffers: each must still save its own data. */
static void test_copy_again(void **state)
{
	char *root = test_tmpdir();
	ckpt_tree *t = test_tree_every_kind(1), *t2 = test_tree_every_kind(0), *expect = NULL, *got;
	ckpt_handler *py = NULL;
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_async *a = NULL;
	ckpt_future *f = NULL;

	(void)state;
	assert_int_equal(ckpt_pytree_handler_new(&py), 0);
	sa.item = t;
	ckpt_item_args it = {"state", py, &sa};
	assert_int_equal(ckpt_async_new(&a, NULL), 0);
	for (uint64_t step = 1; step <= 3; step++) {
		kernel_data(t)[0] = (float)step * 10.0f;
		if (step == 3)
			sa.item = t2; /* another structure: other buffers */
		assert_int_equal(ckpt_tree_clone(&expect, sa.item), 0);
		assert_int_equal(ckpt_async_save(a, NULL, root, step, &it, 1, NULL, NULL), 0);
		kernel_data(sa.item)[0] = -1.0f;
		assert_int_equal(ckpt_async_wait_until_finished(a), 0);
		got = restore_state(root, step);
		assert_int_equal(test_tree_cmp(expect, got, "again"), 0);
		ckpt_tree_free(got);
		ckpt_tree_free(expect);
	}

	/* leaf_args are evaluated in ckpt_async_save: their failure is its failure */
	sa.leaf_args = stop_at_bias;
	assert_int_equal(ckpt_async_save(a, &f, root, 4, &it, 1, NULL, NULL), CKPT_ERROR);
	assert_null(f);
	assert_non_null(strstr(ckpt_error_last(), "params/dense/bias"));
	assert_int_equal(ckpt_async_wait_until_finished(a), 0);
	assert_false(step_exists(root, 4));

	ckpt_async_free(a);
	ckpt_tree_free(t);
	ckpt_tree_free(t2);
	ckpt_handler_free(py);
	ckpt_rmtree(root);
	free(root);
}

/* A snapshot above 64 MiB is copied by two threads (pytree.c, copy_all): every
 * byte of several arrays, split anywhere, is the caller's as it was. */
static void test_copy_large(void **state)
{
	char *root = test_tmpdir();
	ckpt_tree *t = NULL, *expect = NULL, *got;
	ckpt_handler *py = NULL;
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_async *a = NULL;
	/* sizes that do not split evenly: the halves cut inside an array */
	static const uint64_t n[3] = {9000001, 5, 11000003}; /* float32: 80 MB in all */
	static const char *name[3] = {"a", "b", "c"};

	(void)state;
	assert_int_equal(ckpt_tree_new(&t, CKPT_TREE_DICT), 0);
	for (int k = 0; k < 3; k++) {
		uint32_t *d = malloc(n[k] * 4), x = 12345u + (uint32_t)k;
		ckpt_tree *leaf = NULL;
		assert_non_null(d);
		for (uint64_t i = 0; i < n[k]; i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			d[i] = x;
		}
		assert_int_equal(ckpt_tree_new_array(&leaf, CKPT_DTYPE_UINT32, 1, &n[k], d,
						     CKPT_TREE_OWN),
				 0);
		assert_int_equal(ckpt_tree_add(t, name[k], leaf), 0);
	}
	assert_int_equal(ckpt_tree_clone(&expect, t), 0);
	assert_int_equal(ckpt_pytree_handler_new(&py), 0);
	sa.item = t;
	ckpt_item_args it = {"state", py, &sa};
	assert_int_equal(ckpt_async_new(&a, NULL), 0);
	assert_int_equal(ckpt_async_save(a, NULL, root, 1, &it, 1, NULL, NULL), 0);
	for (int k = 0; k < 3; k++) /* the caller changes everything at once */
		memset((void *)ckpt_tree_data(ckpt_tree_find(t, name[k])), 0xee, n[k] * 4);
	assert_int_equal(ckpt_async_wait_until_finished(a), 0);
	got = restore_state(root, 1);
	assert_int_equal(test_tree_cmp(expect, got, "large copy"), 0);
	ckpt_tree_free(got);
	ckpt_async_free(a);
	ckpt_tree_free(expect);
	ckpt_tree_free(t);
	ckpt_handler_free(py);
	ckpt_rmtree(root);
	free(root);
}

static long rss_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	assert_true(kib >= 0);
	return kib;
}

static long minor_faults(void)
{
	struct rusage ru;

	assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
	return ru.ru_minflt;
}

/* {a, b, c}: 64 MiB of float32 in three arrays, resident. */
static ckpt_tree *tree_64mib(void)
{
	static const uint64_t n[3] = {8u << 20, 6u << 20, 2u << 20};
	static const char *name[3] = {"a", "b", "c"};
	ckpt_tree *t = NULL;

	assert_int_equal(ckpt_tree_new(&t, CKPT_TREE_DICT), 0);
	for (int k = 0; k < 3; k++) {
		float *d = malloc(n[k] * 4);
		ckpt_tree *leaf = NULL;
		assert_non_null(d);
		for (uint64_t i = 0; i < n[k]; i++)
			d[i] = (float)(i % 1000003) * 0.5f + (float)k;
		assert_int_equal(ckpt_tree_new_array(&leaf, CKPT_DTYPE_FLOAT32, 1, &n[k], d,
						     CKPT_TREE_OWN),
				 0);
		assert_int_equal(ckpt_tree_add(t, name[k], leaf), 0);
	}
	return t;
}

/*
 * ckpt_async_reserve writes the first snapshot's buffers in the background:
 * they are resident before the save, and the save copies into them (the
 * process does not grow by another state). A save right after a reserve,
 * and a handler freed while reserving, stop the reserve's thread.
 */
static void test_reserve(void **state)
{
	char *root = test_tmpdir();
	ckpt_tree *t = tree_64mib(), *expect = NULL, *got;
	ckpt_handler *py = NULL, *py2 = NULL;
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT, none = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_async_options bo = CKPT_ASYNC_OPTIONS_INIT;
	ckpt_async *a = NULL, *b = NULL;
	const long mib = 1024;
	long before, faults;
	struct gate g;
	int i;

	(void)state;
	/* every buffer from here on a fresh mapping: glibc's adaptive threshold would
	 * otherwise serve them from memory earlier tests freed, without faults (ASan's
	 * allocator refuses mallopt and maps large blocks afresh anyway) */
	(void)mallopt(M_MMAP_THRESHOLD, 1 << 20);
	gate_init(&g, &gate_vt);
	assert_int_equal(ckpt_tree_clone(&expect, t), 0);
	assert_int_equal(ckpt_pytree_handler_new(&py), 0);
	sa.item = t;
	ckpt_item_args items[2] = {{"gate", &g.base, "1"}, {"state", py, &sa}};
	assert_int_equal(ckpt_async_new(&a, NULL), 0);
	before = rss_kib();
	assert_int_equal(ckpt_async_reserve(a, items, 2), 0); /* the gate has nothing to reserve */
	for (i = 0; i < 6000 && rss_kib() - before < 60 * mib; i++)
		usleep(10000);
	assert_true(rss_kib() - before >= 60 * mib);
	faults = minor_faults();
	assert_int_equal(ckpt_async_save(a, NULL, root, 1, items, 2, NULL, NULL), 0);
	/* copied into the reserved buffers: not a fault per page of 64 MiB (16384) */
	assert_true(minor_faults() - faults < 4096);
	/* while that save runs, a reserve has nothing to do: the snapshot's buffers go
	 * to the next one (a thread writing 64 MiB more would be seen in 0.5 s) */
	before = rss_kib();
	assert_int_equal(ckpt_async_reserve(a, items, 2), 0);
	usleep(500000);
	assert_true(rss_kib() - before < 16 * mib);
	for (const char *k = "abc"; *k; k++) {
		char name[2] = {*k, 0};
		ckpt_tree *leaf = ckpt_tree_find(t, name);
		memset((void *)ckpt_tree_data(leaf), 0xee, ckpt_tree_nbytes(leaf));
	}
	gate_set(&g, 1);
	assert_int_equal(ckpt_async_wait_until_finished(a), 0);
	got = restore_state(root, 1);
	assert_int_equal(test_tree_cmp(expect, got, "reserved"), 0);
	ckpt_tree_free(got);

	/* a save right after the reserve: takes what is ready, allocates the rest */
	assert_int_equal(ckpt_pytree_handler_new(&py2), 0);
	ckpt_tree_free(t);
	assert_int_equal(ckpt_tree_clone(&t, expect), 0);
	sa.item = t;
	items[1].handler = py2;
	assert_int_equal(ckpt_async_reserve(a, &items[1], 1), 0);
	assert_int_equal(ckpt_async_save(a, NULL, root, 2, &items[1], 1, NULL, NULL), 0);
	assert_int_equal(ckpt_async_wait_until_finished(a), 0);
	got = restore_state(root, 2);
	assert_int_equal(test_tree_cmp(expect, got, "reserve interrupted"), 0);
	ckpt_tree_free(got);
	/* a reserve the spare buffers cover has nothing to do; then a free while reserving */
	before = rss_kib();
	assert_int_equal(ckpt_async_reserve(a, &items[1], 1), 0);
	usleep(500000);
	assert_true(rss_kib() - before < 16 * mib);
	ckpt_handler_free(py2);
	assert_int_equal(ckpt_pytree_handler_new(&py2), 0);
	items[1].handler = py2;
	assert_int_equal(ckpt_async_reserve(a, &items[1], 1), 0);
	ckpt_handler_free(py2);

	/* borrow mode has nothing to reserve; a missing tree is an error */
	bo.borrow = 1;
	assert_int_equal(ckpt_async_new(&b, &bo), 0);
	items[1].handler = py;
	assert_int_equal(ckpt_async_reserve(b, &items[1], 1), 0);
	items[1].args = &none;
	assert_int_equal(ckpt_async_reserve(a, &items[1], 1), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "item state"));

	ckpt_async_free(b);
	ckpt_async_free(a);
	ckpt_tree_free(expect);
	ckpt_tree_free(t);
	ckpt_handler_free(py);
	gate_fini(&g);
	ckpt_rmtree(root);
	free(root);
}

static void test_borrow_mode(void **state)
{
	char *root = test_tmpdir();
	ckpt_tree *t = test_tree_every_kind(1), *got;
	ckpt_handler *py = NULL;
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_async_options o = CKPT_ASYNC_OPTIONS_INIT;
	ckpt_async *a = NULL;
	ckpt_future *f = NULL;
	struct gate g;

	(void)state;
	gate_init(&g, &gate_nosnap_vt);
	assert_int_equal(ckpt_pytree_handler_new(&py), 0);
	sa.item = t;
	ckpt_item_args items[2] = {{"gate", &g.base, "1"}, {"state", py, &sa}};

	/* copy mode needs a snapshot from every handler: nothing starts */
	assert_int_equal(ckpt_async_new(&a, NULL), 0);
	assert_int_equal(ckpt_async_save(a, &f, root, 1, items, 2, NULL, NULL), CKPT_EUNSUPPORTED);
	assert_null(f);
	assert_non_null(strstr(ckpt_error_last(), "gate"));
	assert_int_equal(ckpt_async_wait_until_finished(a), 0);
	ckpt_async_free(a);

	/* borrow mode saves the caller's data as it is when the save reads it */
	o.borrow = 1;
	assert_int_equal(ckpt_async_new(&a, &o), 0);
	assert_int_equal(ckpt_async_save(a, &f, root, 1, items, 2, NULL, NULL), 0);
	kernel_data(t)[0] = 12345.0f;
	gate_set(&g, 1);
	assert_int_equal(ckpt_future_wait(f), 0);
	assert_string_equal(g.log, "begin1 end1 ");
	got = restore_state(root, 1);
	assert_int_equal(test_tree_cmp(t, got, "borrow"), 0);
	assert_true(kernel_data(got)[0] == 12345.0f);
	ckpt_tree_free(got);

	ckpt_future_free(f);
	ckpt_async_free(a);
	ckpt_tree_free(t);
	ckpt_handler_free(py);
	gate_fini(&g);
	ckpt_rmtree(root);
	free(root);
}

struct second {
	ckpt_async *a;
	const char *root;
	ckpt_item_args *items;
	int rc, returned;
};

static void *second_save(void *arg)
{
	struct second *s = arg;
	s->rc = ckpt_async_save(s->a, NULL, s->root, 2, s->items, 1, NULL, NULL);
	__atomic_store_n(&s->returned, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void test_one_at_a_time(void **state)
{
	char *root = test_tmpdir();
	ckpt_async *a = NULL;
	struct gate g;
	pthread_t th;

	(void)state;
	gate_init(&g, &gate_vt);
	ckpt_item_args it1 = {"gate", &g.base, "1"}, it2 = {"gate", &g.base, "2"};
	struct second s = {NULL, root, &it2, -100, 0};

	assert_int_equal(ckpt_async_new(&a, NULL), 0);
	s.a = a;
	assert_int_equal(ckpt_async_save(a, NULL, root, 1, &it1, 1, NULL, NULL), 0);
	assert_int_equal(pthread_create(&th, NULL, second_save, &s), 0);
	usleep(100 * 1000); /* room for a wrong implementation to go ahead */
	assert_int_equal(__atomic_load_n(&s.returned, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(ckpt_async_check_for_errors(a), 0);
	gate_set(&g, 1);
	pthread_join(th, NULL);
	assert_int_equal(s.rc, 0);
	assert_int_equal(ckpt_async_wait_until_finished(a), 0);
	/* step 2 was snapshotted only once step 1 was finished */
	assert_string_equal(g.log, "snap1 begin1 end1 snap2 begin2 end2 ");
	assert_true(step_exists(root, 1) && step_exists(root, 2));
	ckpt_async_free(a);
	gate_fini(&g);
	ckpt_rmtree(root);
	free(root);
}

static void test_failures_reported_once(void **state)
{
	char *dir = test_tmpdir(), bad[256], good[256], file[256];
	ckpt_async *a = NULL;
	ckpt_future *f = NULL;
	struct gate g;
	FILE *fp;

	(void)state;
	gate_init(&g, &gate_vt);
	gate_set(&g, 1);
	snprintf(file, sizeof(file), "%s/file", dir);
	snprintf(bad, sizeof(bad), "%s/file/root", dir); /* mkdir fails, even for root */
	snprintf(good, sizeof(good), "%s/good", dir);
	assert_non_null(fp = fopen(file, "w"));
	fclose(fp);
	ckpt_item_args it = {"gate", &g.base, "1"};
	assert_int_equal(ckpt_async_new(&a, NULL), 0);

	/* 1. through the future, and then by nobody else */
	assert_int_equal(ckpt_async_save(a, &f, bad, 3, &it, 1, NULL, NULL), 0);
	int rc = ckpt_future_wait(f);
	assert_true(rc < 0);
	assert_non_null(strstr(ckpt_error_last(), "file/root"));
	assert_non_null(strstr(ckpt_error_last(), "step 3"));
	assert_int_equal(ckpt_future_wait(f), rc); /* a future keeps its result */
	assert_int_equal(ckpt_async_check_for_errors(a), 0);
	assert_int_equal(ckpt_async_wait_until_finished(a), 0);
	ckpt_future_free(f);

	/* 2. by check_for_errors (once the save is done), then by nobody else */
	assert_int_equal(ckpt_async_save(a, &f, bad, 4, &it, 1, NULL, NULL), 0);
	while (!ckpt_future_done(f))
		usleep(1000);
	ckpt_future_free(f);
	assert_int_equal(ckpt_async_check_for_errors(a), rc);
	assert_non_null(strstr(ckpt_error_last(), "step 4"));
	assert_int_equal(ckpt_async_check_for_errors(a), 0);
	assert_int_equal(ckpt_async_wait_until_finished(a), 0);

	/* 3. by wait_until_finished */
	assert_int_equal(ckpt_async_save(a, NULL, bad, 5, &it, 1, NULL, NULL), 0);
	assert_int_equal(ckpt_async_wait_until_finished(a), rc);
	assert_non_null(strstr(ckpt_error_last(), "step 5"));
	assert_int_equal(ckpt_async_wait_until_finished(a), 0);
	assert_int_equal(ckpt_async_check_for_errors(a), 0);

	/* 4. by the next save, which then starts nothing; the one after works */
	assert_int_equal(ckpt_async_save(a, NULL, bad, 6, &it, 1, NULL, NULL), 0);
	assert_int_equal(ckpt_async_save(a, NULL, good, 7, &it, 1, NULL, NULL), rc);
	assert_non_null(strstr(ckpt_error_last(), "step 6"));
	assert_int_equal(ckpt_async_wait_until_finished(a), 0);
	assert_false(step_exists(good, 7));
	assert_int_equal(ckpt_async_save(a, NULL, good, 7, &it, 1, NULL, NULL), 0);
	assert_int_equal(ckpt_async_wait_until_finished(a), 0);
	assert_true(step_exists(good, 7));

	/* 5. a step that exists (without force) */
	assert_int_equal(ckpt_async_save(a, &f, good, 7, &it, 1, NULL, NULL), 0);
	assert_int_equal(ckpt_future_wait(f), CKPT_EEXISTS);
	assert_int_equal(ckpt_async_check_for_errors(a), 0);
	ckpt_future_free(f);

	ckpt_async_free(a);
	gate_fini(&g);
	ckpt_rmtree(dir);
	free(dir);
}

static void *open_later(void *arg)
{
	usleep(100 * 1000);
	gate_set(arg, 1);
	return NULL;
}

static void test_free_waits(void **state)
{
	char *root = test_tmpdir();
	ckpt_async *a = NULL;
	ckpt_future *f = NULL;
	struct gate g;
	pthread_t th;

	(void)state;
	gate_init(&g, &gate_vt);
	ckpt_item_args it = {"gate", &g.base, "1"};
	assert_int_equal(ckpt_async_new(&a, NULL), 0);
	assert_int_equal(ckpt_async_save(a, &f, root, 1, &it, 1, NULL, NULL), 0);
	assert_int_equal(pthread_create(&th, NULL, open_later, &g), 0);
	ckpt_async_free(a);
	/* the save finished before free returned, and the future outlives a */
	assert_true(step_exists(root, 1));
	assert_int_equal(ckpt_future_done(f), 1);
	assert_int_equal(ckpt_future_wait(f), 0);
	ckpt_future_free(f);
	pthread_join(th, NULL);
	ckpt_async_free(NULL);
	ckpt_future_free(NULL);
	gate_fini(&g);
	ckpt_rmtree(root);
	free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_copy_mode),
	    cmocka_unit_test(test_copy_again),
	    cmocka_unit_test(test_copy_large),
	    cmocka_unit_test(test_reserve),
	    cmocka_unit_test(test_borrow_mode),
	    cmocka_unit_test(test_one_at_a_time),
	    cmocka_unit_test(test_failures_reported_once),
	    cmocka_unit_test(test_free_waits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
