/*
 * handlers_test.c — Json, Array, JaxRandomKey and NumpyRandomKey handlers:
 * round trips through real steps, refusal of bad input (nothing stored),
 * and the item formats on the files the handlers write and on broken ones.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "handler_files.h"
#include "item_format.h"
#include "unit/treecmp.h"
#include "fsutil.h"

struct fx {
	char *root;
	uint64_t next_step;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f || !(f->root = test_tmpdir()))
		return -1;
	f->next_step = 1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	ckpt_rmtree(f->root);
	free(f->root);
	free(f);
	return 0;
}

/* The message of the last refused save. */
static char save_msg[1024];

/* One item saved into a new step; the step is finalized even when the save
 * fails (so that a test can check nothing of the item was stored). */
static int save_step(struct fx *f, uint64_t *step, const char *item, ckpt_handler *h,
		     const void *args)
{
	ckpt_step_writer *w = NULL;
	int rc, src;

	*step = f->next_step++;
	if ((rc = ckpt_step_writer_open(&w, f->root, *step, NULL)) < 0)
		return rc;
	rc = ckpt_step_writer_add_item(w, item, ckpt_handler_typestr(h));
	src = rc ? rc : ckpt_handler_save(h, w, item, args);
	if (src) {
		snprintf(save_msg, sizeof(save_msg), "%s", ckpt_error_last());
		assert_int_equal(ckpt_step_writer_finalize(w), 0);
		return src;
	}
	rc = ckpt_step_writer_finalize(w);
	if (rc)
		fprintf(stderr, "finalize: %s\n", ckpt_error_last());
	return rc;
}

static ckpt_step *open_step(struct fx *f, uint64_t step)
{
	char dir[600];
	ckpt_step *s = NULL;

	snprintf(dir, sizeof(dir), "%s/%llu", f->root, (unsigned long long)step);
	assert_int_equal(ckpt_step_open(&s, dir, NULL), 0);
	return s;
}

static int count_keys_cb(const void *name, size_t n, int is_prefix, void *payload)
{
	(*(size_t *)payload)++;
	return 0;
}

/* Keys stored under "<item>/" in the step. */
static size_t item_keys(struct fx *f, uint64_t step, const char *item)
{
	ckpt_step *s = open_step(f, step);
	char prefix[256];
	size_t n = 0;

	snprintf(prefix, sizeof(prefix), "%s/", item);
	assert_int_equal(
	    ckpt_store_list(ckpt_step_store(s), prefix, strlen(prefix), -1, count_keys_cb, &n), 0);
	ckpt_step_free(s);
	return n;
}

static void expect_refused(struct fx *f, ckpt_handler *h, const void *args, const char *msg_part)
{
	uint64_t step;
	int rc = save_step(f, &step, "bad", h, args);

	assert_int_equal(rc, CKPT_EINVAL);
	if (!strstr(save_msg, msg_part))
		fail_msg("message '%s' lacks '%s'", save_msg, msg_part);
	assert_int_equal(item_keys(f, step, "bad"), 0);
}

/* ---- Json ---- */

static const char BIG_JSON[] =
    "{\"seed\": 123456789012345678901234567890123456789,\n"
    " \"lr\": 1e-3, \"layers\": [1, 2.50, \"x\"], \"nested\": {\"ok\": true}}\n";

static void test_json_round_trip(void **state)
{
	struct fx *f = *state;
	ckpt_handler *h = NULL, *h2 = NULL;
	uint64_t step, step2;
	ckpt_step *s;
	void *out = NULL, *md = (void *)1;

	assert_int_equal(ckpt_json_handler_new(&h, NULL), 0);
	assert_string_equal(ckpt_handler_typestr(h), CKPT_JSON_TYPESTR);
	assert_int_equal(save_step(f, &step, "metadata", h, BIG_JSON), 0);
	s = open_step(f, step);
	assert_int_equal(ckpt_handler_restore(&out, h, s, "metadata", NULL), 0);
	assert_string_equal(out, BIG_JSON); /* as given: 39 digits, 2.50, spacing */
	ckpt_handler_restored_free(h, out);
	assert_int_equal(ckpt_handler_metadata(&md, h, s, "metadata"), 0);
	assert_null(md);
	/* missing item, missing file */
	assert_int_equal(ckpt_handler_restore(&out, h, s, "nope", NULL), CKPT_ENOTFOUND);
	assert_non_null(strstr(ckpt_error_last(), "item nope: no JSON file 'metadata'"));
	ckpt_step_free(s);

	/* a custom filename; the default-named handler does not find it */
	assert_int_equal(ckpt_json_handler_new(&h2, "config.json"), 0);
	assert_int_equal(save_step(f, &step2, "cfg", h2, "[1, 2]"), 0);
	s = open_step(f, step2);
	assert_int_equal(ckpt_handler_restore(&out, h2, s, "cfg", NULL), 0);
	assert_string_equal(out, "[1, 2]");
	free(out);
	assert_int_equal(ckpt_handler_restore(&out, h, s, "cfg", NULL), CKPT_ENOTFOUND);
	assert_null(out);
	ckpt_step_free(s);
	ckpt_handler_free(h);
	ckpt_handler_free(h2);
}

static void test_json_refused(void **state)
{
	struct fx *f = *state;
	ckpt_handler *h = NULL;

	assert_int_equal(ckpt_json_handler_new(&h, NULL), 0);
	expect_refused(f, h, "{\n  \"a\": 1,\n  \"b\": ]\n}",
		       "item bad: metadata:3:8: invalid JSON");
	expect_refused(f, h, "{\"a\": 1} {}", "metadata:1:10: invalid JSON (text after the value)");
	expect_refused(f, h, "", "metadata:1:1: invalid JSON");
	expect_refused(f, h, "[1, 2", "metadata:1:");
	expect_refused(f, h, NULL, "no JSON text");
	ckpt_handler_free(h);

	/* ckpt_json_check over a length: a NUL inside, a value cut short */
	assert_int_equal(ckpt_json_check("{}\0{}", 5, "t"), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "t:1:3: invalid JSON (a NUL byte)"));
	assert_int_equal(ckpt_json_check("[1, 22]", 5, "t"), CKPT_EINVAL);
	assert_int_equal(ckpt_json_check("[1, 22]", 7, "t"), 0);
	assert_int_equal(ckpt_json_check(" \"s\"\n\t", 6, "t"), 0);
	/* what cJSON lets through but JSON (Python's json) refuses */
	static const char *lenient[] = {"[01]", "[1.]", "[-01]", "[1.e3]", "[\"a\tb\"]"};
	for (size_t i = 0; i < sizeof(lenient) / sizeof(lenient[0]); i++) {
		assert_int_equal(ckpt_json_check(lenient[i], strlen(lenient[i]), "t"), CKPT_EINVAL);
		assert_non_null(
		    strstr(ckpt_error_last(), i < 4 ? "t:1:" : "t:1:4: invalid JSON (a control"));
	}
	static const char *ok[] = {"[0, -0, 1e5, -0.5E-3, 10.25e+2, \"\\\"01\\t\"]",
				   "{\"1.\": [-1]}", "0",
				   /* Python's json.dumps of float('nan'), inf, -inf */
				   "{\"loss\": NaN, \"hi\": Infinity, \"lo\": [-Infinity]}",
				   "\"NaN is a word here, \\\"Infinity\\\" too\"",
				   "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		assert_int_equal(ckpt_json_check(ok[i], strlen(ok[i]), "t"), 0);
	assert_int_equal(ckpt_json_check("[1, 01]", 7, "t"), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "t:1:6: invalid JSON number"));
	/* not UTF-8 (Python cannot read it): a stray byte, an overlong form, a surrogate */
	static const char *bad8[] = {"[\"\xff\xfe\"]", "[\"\xc0\xaf\"]", "[\"\xed\xa0\x80\"]",
				     "[\"\xe2\x82\"]"};
	for (size_t i = 0; i < sizeof(bad8) / sizeof(bad8[0]); i++) {
		assert_int_equal(ckpt_json_check(bad8[i], strlen(bad8[i]), "t"), CKPT_EINVAL);
		assert_non_null(strstr(ckpt_error_last(), "t:1:3: invalid JSON (not UTF-8)"));
	}
	/* a non-finite word where JSON wants a key, or a prefix of one */
	assert_int_equal(ckpt_json_check("{NaN: 1}", 8, "t"), CKPT_EINVAL);
	assert_int_equal(ckpt_json_check("[Infinit]", 9, "t"), CKPT_EINVAL);
	assert_int_equal(ckpt_json_check("[NaNa]", 6, "t"), CKPT_EINVAL);
	/* what Python's json refuses too (checked against json.loads): a non-finite word
	 * glued to a number, a number cut at the end, control bytes between tokens */
	static const char *refused[] = {"1NaN", "[1NaN]", "1Infinity", "1.NaN", "2E2NaN",
					"-NaN", "1.",	  "0.",	       "[1,\x01 2]", "{\x0b\"a\":1}"};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		assert_int_equal(ckpt_json_check(refused[i], strlen(refused[i]), "t"), CKPT_EINVAL);
	assert_int_equal(ckpt_json_check("[NaN ]", 6, "t"), 0);
}

static void test_names(void **state)
{
	static const char *bad[] = {"", "a/b", ".", "..", "_x"};
	int (*news[])(ckpt_handler **,
		      const char *) = {ckpt_json_handler_new, ckpt_array_handler_new,
				       ckpt_jax_key_handler_new, ckpt_np_key_handler_new};

	for (size_t i = 0; i < 4; i++) {
		ckpt_handler *h = (ckpt_handler *)1;
		assert_int_equal(news[i](&h, NULL), 0);
		ckpt_handler_free(h);
		assert_int_equal(news[i](&h, ".hidden.ok"), 0);
		ckpt_handler_free(h);
		for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
			h = (ckpt_handler *)1;
			assert_int_equal(news[i](&h, bad[j]), CKPT_EINVAL);
			assert_null(h);
			assert_non_null(strstr(ckpt_error_last(), "not a plain file name"));
		}
	}
}

/* ---- Array ---- */

static ckpt_tree *make_array(ckpt_dtype dt, unsigned nd, const uint64_t *shape, unsigned seed)
{
	ckpt_tree *d = NULL;

	assert_int_equal(ckpt_tree_new(&d, CKPT_TREE_DICT), 0);
	assert_int_equal(test_add_array(d, "a", dt, nd, shape, seed), 0);
	ckpt_tree *a = ckpt_tree_remove(d, 0);
	ckpt_tree_free(d);
	return a;
}

static void array_round_trip(struct fx *f, ckpt_handler *h, const ckpt_tree *t)
{
	uint64_t step;
	ckpt_step *s;
	void *out = NULL, *md = NULL;

	assert_int_equal(save_step(f, &step, "w", h, t), 0);
	s = open_step(f, step);
	assert_int_equal(ckpt_handler_restore(&out, h, s, "w", NULL), 0);
	assert_int_equal(test_tree_cmp(t, out, "restored"), 0);
	if (ckpt_tree_get_kind(t) == CKPT_TREE_ARRAY)
		assert_non_null(ckpt_tree_data(out));
	ckpt_handler_restored_free(h, out);
	assert_int_equal(ckpt_handler_metadata(&md, h, s, "w"), 0);
	assert_int_equal(ckpt_tree_get_kind(md), ckpt_tree_get_kind(t));
	if (ckpt_tree_get_kind(t) == CKPT_TREE_ARRAY) {
		assert_null(ckpt_tree_data(md));
		assert_int_equal(test_tree_cmp(t, md, "metadata"), 0); /* dtype and shape */
	}
	ckpt_handler_metadata_free(h, md);
	ckpt_step_free(s);
}

static void test_array_round_trip(void **state)
{
	struct fx *f = *state;
	static const struct {
		ckpt_dtype dt;
		unsigned nd;
		uint64_t shape[3];
	} cases[] = {
	    {CKPT_DTYPE_FLOAT32, 2, {3, 4}},   {CKPT_DTYPE_INT8, 1, {5}},
	    {CKPT_DTYPE_UINT64, 3, {2, 1, 2}}, {CKPT_DTYPE_BOOL, 1, {3}},
	    {CKPT_DTYPE_BFLOAT16, 1, {7}},     {CKPT_DTYPE_COMPLEX128, 1, {2}},
	    {CKPT_DTYPE_FLOAT64, 0, {0}},      {CKPT_DTYPE_INT32, 2, {0, 3}},
	    {CKPT_DTYPE_FLOAT16, 1, {100000}}, /* 200 KB: a streamed, chunked value */
	};
	ckpt_handler *h = NULL, *hn = NULL;
	ckpt_tree *t;

	assert_int_equal(ckpt_array_handler_new(&h, NULL), 0);
	assert_int_equal(ckpt_array_handler_new(&hn, "weights"), 0);
	assert_string_equal(ckpt_handler_typestr(h), CKPT_ARRAY_TYPESTR);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		t = make_array(cases[i].dt, cases[i].nd, cases[i].shape, (unsigned)i);
		array_round_trip(f, i % 2 ? hn : h, t);
		ckpt_tree_free(t);
	}
	assert_int_equal(ckpt_tree_new_int(&t, -1234567890123), 0);
	array_round_trip(f, h, t);
	ckpt_tree_free(t);
	assert_int_equal(ckpt_tree_new_float(&t, 0.1), 0);
	array_round_trip(f, h, t);
	ckpt_tree_free(t);
	assert_int_equal(ckpt_tree_new_float(&t, 3.0), 0); /* "3.0" stays a float */
	array_round_trip(f, hn, t);
	ckpt_tree_free(t);
	assert_int_equal(ckpt_tree_new_bool(&t, 1), 0);
	array_round_trip(f, h, t);
	ckpt_tree_free(t);
	ckpt_handler_free(h);
	ckpt_handler_free(hn);
}

/* A big-endian Fortran-order .npy stored as is (as `ckpt save` would) is
 * restored as little-endian C order. */
static void test_array_be_fortran(void **state)
{
	struct fx *f = *state;
	char hdr[128];
	unsigned char file[128 + 24];
	const int32_t want[6] = {1, 2, 3, 4, 5, 6}; /* C order of [[1,2,3],[4,5,6]] */
	const int32_t fortran[6] = {1, 4, 2, 5, 3, 6};
	ckpt_step_writer *w = NULL;
	ckpt_handler *h = NULL;
	ckpt_step *s;
	void *out = NULL;
	uint64_t step = f->next_step++;
	int n = snprintf(hdr, sizeof(hdr),
			 "{'descr': '>i4', 'fortran_order': True, 'shape': (2, 3), }");

	memset(hdr + n, ' ', sizeof(hdr) - (size_t)n);
	memcpy(file, "\x93NUMPY\x01\x00", 8);
	file[8] = 128 - 10;
	file[9] = 0;
	memcpy(file + 10, hdr, 128 - 10);
	file[127] = '\n';
	for (int i = 0; i < 6; i++) {
		uint32_t v = (uint32_t)fortran[i];
		unsigned char *p = file + 128 + 4 * i;
		p[0] = (unsigned char)(v >> 24);
		p[1] = (unsigned char)(v >> 16);
		p[2] = (unsigned char)(v >> 8);
		p[3] = (unsigned char)v;
	}
	assert_int_equal(ckpt_array_handler_new(&h, NULL), 0);
	assert_int_equal(ckpt_step_writer_open(&w, f->root, step, NULL), 0);
	assert_int_equal(ckpt_step_writer_add_item(w, "w", CKPT_ARRAY_TYPESTR), 0);
	assert_int_equal(ckpt_batch_put(ckpt_step_writer_batch(w), "w/checkpoint.npy", 16, file,
					sizeof(file), NULL),
			 0);
	assert_int_equal(ckpt_step_writer_finalize(w), 0);
	s = open_step(f, step);
	assert_int_equal(ckpt_handler_restore(&out, h, s, "w", NULL), 0);
	assert_int_equal(ckpt_tree_dtype(out), CKPT_DTYPE_INT32);
	assert_int_equal(ckpt_tree_ndim(out), 2);
	assert_int_equal(ckpt_tree_shape(out)[0], 2);
	assert_memory_equal(ckpt_tree_data(out), want, sizeof(want));
	ckpt_handler_restored_free(h, out);
	ckpt_step_free(s);
	ckpt_handler_free(h);
}

static void test_array_refused(void **state)
{
	struct fx *f = *state;
	ckpt_handler *h = NULL;
	ckpt_tree *t = NULL;
	const uint64_t shape[1] = {4};

	assert_int_equal(ckpt_array_handler_new(&h, NULL), 0);
	assert_int_equal(ckpt_tree_new_string(&t, "abc", 3), 0);
	expect_refused(f, h, t, "saves an array with data or an int, float or bool scalar");
	ckpt_tree_free(t);
	assert_int_equal(ckpt_tree_new_array(&t, CKPT_DTYPE_FLOAT32, 1, shape, NULL, 0), 0);
	expect_refused(f, h, t, "saves an array with data");
	ckpt_tree_free(t);
	assert_int_equal(ckpt_tree_new(&t, CKPT_TREE_DICT), 0);
	expect_refused(f, h, t, "saves an array with data");
	ckpt_tree_free(t);

	/* restoring an item that is not there */
	uint64_t step;
	ckpt_step *s;
	void *out = NULL;
	assert_int_equal(ckpt_tree_new_int(&t, 1), 0);
	assert_int_equal(save_step(f, &step, "w", h, t), 0);
	ckpt_tree_free(t);
	s = open_step(f, step);
	assert_int_equal(ckpt_handler_restore(&out, h, s, "x", NULL), CKPT_ENOTFOUND);
	assert_non_null(strstr(ckpt_error_last(), "no array file 'checkpoint.npy' or scalar"));
	ckpt_step_free(s);
	ckpt_handler_free(h);
}

/* ---- JAX keys ---- */

static ckpt_tree *key_data(ckpt_dtype dt, unsigned nd, uint64_t d0, uint64_t d1)
{
	const uint64_t shape[2] = {d0, d1};
	return make_array(dt, nd, shape, 42);
}

static void test_jax_round_trip(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *impl;
		unsigned nd;
		uint64_t d0, d1;
	} cases[] = {{"threefry2x32", 1, 2, 0}, {"threefry2x32", 2, 3, 2}, {"rbg", 1, 4, 0},
		     {"unsafe_rbg", 2, 2, 4},	{NULL, 1, 2, 0},	   {NULL, 2, 5, 4}};
	ckpt_handler *h = NULL;

	assert_int_equal(ckpt_jax_key_handler_new(&h, NULL), 0);
	assert_string_equal(ckpt_handler_typestr(h), CKPT_JAX_KEY_TYPESTR);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ckpt_jax_key k = {(char *)cases[i].impl, key_data(CKPT_DTYPE_UINT32, cases[i].nd,
								  cases[i].d0, cases[i].d1)};
		ckpt_jax_key *r = NULL, *m = NULL;
		uint64_t step;
		ckpt_step *s;

		assert_int_equal(save_step(f, &step, "rng", h, &k), 0);
		assert_int_equal(item_keys(f, step, "rng"), 2);
		s = open_step(f, step);
		assert_int_equal(ckpt_handler_restore((void **)&r, h, s, "rng", NULL), 0);
		if (cases[i].impl)
			assert_string_equal(r->impl, cases[i].impl);
		else
			assert_null(r->impl);
		assert_int_equal(test_tree_cmp(k.data, r->data, "key"), 0);
		assert_non_null(ckpt_tree_data(r->data));
		ckpt_handler_restored_free(h, r);
		assert_int_equal(ckpt_handler_metadata((void **)&m, h, s, "rng"), 0);
		assert_null(ckpt_tree_data(m->data));
		assert_int_equal(test_tree_cmp(k.data, m->data, "key metadata"), 0);
		ckpt_handler_metadata_free(h, m);
		ckpt_step_free(s);
		ckpt_tree_free(k.data);
	}
	ckpt_handler_free(h);
}

static void test_jax_refused(void **state)
{
	struct fx *f = *state;
	ckpt_handler *h = NULL;
	ckpt_jax_key k;

	assert_int_equal(ckpt_jax_key_handler_new(&h, NULL), 0);
	k = (ckpt_jax_key){"threefry2x32", key_data(CKPT_DTYPE_INT32, 1, 2, 0)};
	expect_refused(f, h, &k, "JAX key data is uint32, not int32");
	ckpt_tree_free(k.data);
	k = (ckpt_jax_key){NULL, key_data(CKPT_DTYPE_UINT32, 2, 4, 3)};
	expect_refused(f, h, &k, "untyped JAX key data has last dimension 2 or 4, not 3");
	ckpt_tree_free(k.data);
	k = (ckpt_jax_key){"threefry2x32", key_data(CKPT_DTYPE_UINT32, 1, 4, 0)};
	expect_refused(f, h, &k, "threefry2x32 key data needs last dimension 2, not 4");
	ckpt_tree_free(k.data);
	k = (ckpt_jax_key){"rbg", key_data(CKPT_DTYPE_UINT32, 1, 2, 0)};
	expect_refused(f, h, &k, "rbg key data needs last dimension 4, not 2");
	ckpt_tree_free(k.data);
	k = (ckpt_jax_key){"philox", key_data(CKPT_DTYPE_UINT32, 1, 2, 0)};
	expect_refused(f, h, &k, "unknown PRNG impl 'philox'");
	ckpt_tree_free(k.data);
	k = (ckpt_jax_key){NULL, key_data(CKPT_DTYPE_UINT32, 0, 0, 0)};
	expect_refused(f, h, &k, "got a 0-d array");
	ckpt_tree_free(k.data);
	k = (ckpt_jax_key){NULL, NULL};
	expect_refused(f, h, &k, "a JAX key needs array data");
	ckpt_handler_free(h);
}

/* ---- NumPy keys ---- */

static const char PCG64_STATE[] =
    "{\"bit_generator\": \"PCG64\", \"state\": {\"state\": "
    "35399562948360463058890781895381311971, \"inc\": "
    "87136372517582989555478159403783844777}, \"has_uint32\": 0, \"uinteger\": 0}";

static void fill_legacy(ckpt_np_legacy_state *mt)
{
	for (uint32_t i = 0; i < 624; i++)
		mt->key[i] = i * 2654435761u;
	mt->key[7] = 4294967295u;
	mt->key[8] = 0;
	mt->pos = 624;
	mt->has_gauss = 1;
	mt->cached_gaussian = -0.12345678901234567;
}

static void test_np_round_trip(void **state)
{
	struct fx *f = *state;
	ckpt_handler *h = NULL;
	ckpt_np_key k = {0}, *r = NULL;
	uint64_t step;
	ckpt_step *s;
	void *md = (void *)1;
	char *text = NULL;
	size_t len = 0;

	assert_int_equal(ckpt_np_key_handler_new(&h, NULL), 0);
	assert_string_equal(ckpt_handler_typestr(h), CKPT_NP_KEY_TYPESTR);
	k.legacy = 1;
	fill_legacy(&k.mt);
	assert_int_equal(save_step(f, &step, "np", h, &k), 0);
	s = open_step(f, step);
	assert_int_equal(ckpt_handler_restore((void **)&r, h, s, "np", NULL), 0);
	assert_int_equal(r->legacy, 1);
	assert_null(r->state_json);
	assert_memory_equal(r->mt.key, k.mt.key, sizeof(k.mt.key));
	assert_int_equal(r->mt.pos, 624);
	assert_int_equal(r->mt.has_gauss, 1);
	assert_memory_equal(&r->mt.cached_gaussian, &k.mt.cached_gaussian, sizeof(double));
	ckpt_handler_restored_free(h, r);
	/* the file is what Python's json.dumps writes for the state */
	assert_int_equal(
	    ckpt_store_get((void **)&text, &len, ckpt_step_store(s), "np/np_random_key.json", 21),
	    0);
	assert_true(len > 20 && !memcmp(text, "[\"MT19937\", [0, 2654435761, 1013904226, ", 40));
	assert_non_null(strstr(text, ", 4294967295, 0, "));
	assert_non_null(strstr(text, "], 624, 1, -0.1234567890123456"));
	assert_int_equal(text[len - 1], ']');
	free(text);
	assert_int_equal(ckpt_handler_metadata(&md, h, s, "np"), 0);
	assert_null(md);
	ckpt_step_free(s);

	/* PCG64 with 128-bit integers: stored and restored as given */
	k = (ckpt_np_key){0};
	k.state_json = (char *)PCG64_STATE;
	assert_int_equal(save_step(f, &step, "np", h, &k), 0);
	s = open_step(f, step);
	assert_int_equal(ckpt_handler_restore((void **)&r, h, s, "np", NULL), 0);
	assert_int_equal(r->legacy, 0);
	assert_string_equal(r->state_json, PCG64_STATE);
	ckpt_handler_restored_free(h, r);
	ckpt_step_free(s);
	ckpt_handler_free(h);
}

static void test_np_refused(void **state)
{
	struct fx *f = *state;
	ckpt_handler *h = NULL;
	ckpt_np_key k = {0};

	assert_int_equal(ckpt_np_key_handler_new(&h, NULL), 0);
	k.legacy = 1;
	fill_legacy(&k.mt);
	k.mt.pos = 625;
	expect_refused(f, h, &k, "pos in 0..624");
	k.mt.pos = 0;
	k.mt.has_gauss = 2;
	expect_refused(f, h, &k, "has_gauss 0 or 1");
	k = (ckpt_np_key){0};
	k.state_json = "{\"state\": {\"state\": 1, \"inc\": 2}}";
	expect_refused(f, h, &k, "needs a string \"bit_generator\" and an object \"state\"");
	k.state_json = "{\"bit_generator\": \"PCG64\", \"state\": {\"state\": 1,}}";
	expect_refused(f, h, &k, "np_random_key.json:1:");
	k.state_json = "[\"MT19937\"]"; /* a legacy state goes in mt */
	expect_refused(f, h, &k, "is a JSON object");
	k.state_json = NULL;
	expect_refused(f, h, &k, "no NumPy key state");
	ckpt_handler_free(h);
}

/* ---- snapshots (copy mode of async saves) and damaged items ---- */

/* Each handler saves from a snapshot after the caller's args are gone. */
static void test_snapshots(void **state)
{
	struct fx *f = *state;
	ckpt_handler *h[4] = {NULL, NULL, NULL, NULL};
	const uint64_t shape[1] = {3};
	char *json = strdup("{\"a\": 1}");
	ckpt_tree *arr = make_array(CKPT_DTYPE_INT16, 1, shape, 9), *arr_copy = NULL;
	ckpt_jax_key *jk = calloc(1, sizeof(*jk));
	ckpt_np_key *nk = calloc(1, sizeof(*nk));
	const void *args[4];
	void *snap[4], *out = NULL;
	const char *items[4] = {"j", "a", "k", "n"};
	ckpt_step_writer *w = NULL;
	uint64_t step = f->next_step++;
	ckpt_step *s;

	assert_int_equal(ckpt_json_handler_new(&h[0], NULL), 0);
	assert_int_equal(ckpt_array_handler_new(&h[1], NULL), 0);
	assert_int_equal(ckpt_jax_key_handler_new(&h[2], NULL), 0);
	assert_int_equal(ckpt_np_key_handler_new(&h[3], NULL), 0);
	assert_int_equal(ckpt_tree_clone(&arr_copy, arr), 0);
	jk->impl = strdup("rbg");
	jk->data = key_data(CKPT_DTYPE_UINT32, 1, 4, 0);
	nk->state_json = strdup(PCG64_STATE);
	args[0] = json;
	args[1] = arr;
	args[2] = jk;
	args[3] = nk;
	for (int i = 0; i < 4; i++)
		assert_int_equal(ckpt_handler_snapshot(&snap[i], h[i], args[i]), 0);
	free(json);
	ckpt_tree_free(arr);
	ckpt_jax_key_free(jk);
	ckpt_np_key_free(nk);
	assert_int_equal(ckpt_step_writer_open(&w, f->root, step, NULL), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(ckpt_step_writer_add_item(w, items[i], ckpt_handler_typestr(h[i])),
				 0);
		assert_int_equal(ckpt_handler_save(h[i], w, items[i], snap[i]), 0);
		ckpt_handler_snapshot_free(h[i], snap[i]);
	}
	assert_int_equal(ckpt_step_writer_finalize(w), 0);
	s = open_step(f, step);
	assert_int_equal(ckpt_handler_restore(&out, h[0], s, "j", NULL), 0);
	assert_string_equal(out, "{\"a\": 1}");
	ckpt_handler_restored_free(h[0], out);
	assert_int_equal(ckpt_handler_restore(&out, h[1], s, "a", NULL), 0);
	assert_int_equal(test_tree_cmp(arr_copy, out, "array"), 0);
	ckpt_handler_restored_free(h[1], out);
	assert_int_equal(ckpt_handler_restore(&out, h[2], s, "k", NULL), 0);
	assert_string_equal(((ckpt_jax_key *)out)->impl, "rbg");
	ckpt_handler_restored_free(h[2], out);
	assert_int_equal(ckpt_handler_restore(&out, h[3], s, "n", NULL), 0);
	assert_string_equal(((ckpt_np_key *)out)->state_json, PCG64_STATE);
	ckpt_handler_restored_free(h[3], out);
	ckpt_step_free(s);
	ckpt_tree_free(arr_copy);
	for (int i = 0; i < 4; i++)
		ckpt_handler_free(h[i]);
}

/* Items whose stored files are damaged (put as raw keys) restore as CKPT_ECORRUPT. */
static void test_damaged(void **state)
{
	struct fx *f = *state;
	static const char rbg[] = "{\"typed\": true, \"impl\": \"rbg\"}";
	ckpt_tree *kd = key_data(CKPT_DTYPE_UINT32, 1, 2, 0);
	ckpt_handler *hj = NULL, *ha = NULL, *hn = NULL;
	ckpt_step_writer *w = NULL;
	ckpt_batch *b;
	uint64_t step = f->next_step++;
	ckpt_step *s;
	void *out = NULL;

	assert_int_equal(ckpt_jax_key_handler_new(&hj, NULL), 0);
	assert_int_equal(ckpt_array_handler_new(&ha, NULL), 0);
	assert_int_equal(ckpt_np_key_handler_new(&hn, NULL), 0);
	assert_int_equal(ckpt_step_writer_open(&w, f->root, step, NULL), 0);
	b = ckpt_step_writer_batch(w);
	/* JAX: threefry-shaped data, metadata says rbg */
	assert_int_equal(ckpt_step_writer_add_item(w, "k", CKPT_JAX_KEY_TYPESTR), 0);
	assert_int_equal(npy_value_put(b, "k/jax_random_key.npy", kd), 0);
	assert_int_equal(ckpt_batch_put(b, "k/jax_random_key_metadata", 25, rbg, strlen(rbg), NULL),
			 0);
	/* Array: a .npy cut short; NumPy: 3 keys */
	assert_int_equal(ckpt_step_writer_add_item(w, "a", CKPT_ARRAY_TYPESTR), 0);
	assert_int_equal(ckpt_batch_put(b, "a/checkpoint.npy", 16, "\x93NUMPY\x01\x00", 8, NULL),
			 0);
	assert_int_equal(ckpt_step_writer_add_item(w, "n", CKPT_NP_KEY_TYPESTR), 0);
	assert_int_equal(ckpt_batch_put(b, "n/np_random_key.json", 20,
					"[\"MT19937\", [1, 2, 3], 0, 0, 0.0]", 33, NULL),
			 0);
	assert_int_equal(ckpt_step_writer_finalize(w), 0);
	s = open_step(f, step);
	assert_int_equal(ckpt_handler_restore(&out, hj, s, "k", NULL), CKPT_ECORRUPT);
	assert_non_null(strstr(ckpt_error_last(), "rbg key data needs last dimension 4, not 2"));
	assert_int_equal(ckpt_handler_restore(&out, ha, s, "a", NULL), CKPT_ECORRUPT);
	assert_non_null(strstr(ckpt_error_last(), "a/checkpoint.npy"));
	assert_int_equal(ckpt_handler_restore(&out, hn, s, "n", NULL), CKPT_ECORRUPT);
	assert_non_null(strstr(ckpt_error_last(), "624 keys; found 3"));
	assert_null(out);
	ckpt_step_free(s);
	ckpt_tree_free(kd);
	ckpt_handler_free(hj);
	ckpt_handler_free(ha);
	ckpt_handler_free(hn);
}

/* ---- item formats ---- */

static void write_file(const char *dir, const char *name, const void *data, size_t len)
{
	char *p = ckpt_asprintf("%s/%s", dir, name);

	assert_int_equal(ckpt_write_file(p, data, len), 0);
	free(p);
}

static void write_text(const char *dir, const char *name, const char *text)
{
	write_file(dir, name, text, strlen(text));
}

static void rm_file(const char *dir, const char *name)
{
	char *p = ckpt_asprintf("%s/%s", dir, name);

	assert_int_equal(unlink(p), 0);
	free(p);
}

/* Write every key of item in step as a file of dir (what `ckpt restore` does). */
struct dump_ctx {
	ckpt_store *st;
	const char *item, *dir;
};

static int dump_cb(const void *name, size_t n, int is_prefix, void *payload)
{
	struct dump_ctx *c = payload;
	char key[512], fname[256];
	void *v = NULL;
	size_t len = 0;

	snprintf(fname, sizeof(fname), "%.*s", (int)n, (const char *)name);
	snprintf(key, sizeof(key), "%s/%s", c->item, fname);
	assert_int_equal(ckpt_store_get(&v, &len, c->st, key, strlen(key)), 0);
	write_file(c->dir, fname, v, len);
	free(v);
	return 0;
}

static char *dump_item(struct fx *f, uint64_t step, const char *item)
{
	ckpt_step *s = open_step(f, step);
	char prefix[256], *dir = test_tmpdir();
	struct dump_ctx c = {ckpt_step_store(s), item, dir};

	assert_non_null(dir);
	snprintf(prefix, sizeof(prefix), "%s/", item);
	assert_int_equal(
	    ckpt_store_list(ckpt_step_store(s), prefix, strlen(prefix), -1, dump_cb, &c), 0);
	ckpt_step_free(s);
	return dir;
}

/* item_format_check_dir on dir: 0, or the code with msg_part in the message. */
static void check_dir(const char *typestr, const char *dir, int want, const char *msg_part)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	assert_true(fd >= 0);
	rc = item_format_check_dir(typestr, fd, "x");
	close(fd);
	if (rc != want)
		fail_msg("check_dir: %d, want %d (%s)", rc, want, ckpt_error_last());
	if (msg_part && !strstr(ckpt_error_last(), msg_part))
		fail_msg("message '%s' lacks '%s'", ckpt_error_last(), msg_part);
}

static void test_format_json(void **state)
{
	struct fx *f = *state;
	ckpt_handler *h = NULL;
	uint64_t step;
	char *dir;

	assert_int_equal(ckpt_json_handler_new(&h, NULL), 0);
	assert_int_equal(save_step(f, &step, "metadata", h, BIG_JSON), 0);
	dir = dump_item(f, step, "metadata");
	check_dir(CKPT_JSON_TYPESTR, dir, 0, NULL);
	write_file(dir, "other", "{}", 2);
	check_dir(CKPT_JSON_TYPESTR, dir, CKPT_EINVAL, "a JSON item holds one file; found 2 (");
	rm_file(dir, "other");
	write_file(dir, "metadata", "{\"a\":\n [1,, 2]}", 15);
	check_dir(CKPT_JSON_TYPESTR, dir, CKPT_EINVAL, "x/metadata:2:5: invalid JSON");
	rm_file(dir, "metadata");
	check_dir(CKPT_JSON_TYPESTR, dir, CKPT_EINVAL, "a JSON item holds one file; found 0");
	ckpt_rmtree(dir);
	free(dir);
	ckpt_handler_free(h);
}

static void test_format_array(void **state)
{
	struct fx *f = *state;
	const uint64_t shape[2] = {3, 4};
	ckpt_handler *h = NULL;
	ckpt_tree *t = make_array(CKPT_DTYPE_FLOAT32, 2, shape, 3);
	uint64_t step;
	char *dir, p[700];

	assert_int_equal(ckpt_array_handler_new(&h, NULL), 0);
	assert_int_equal(save_step(f, &step, "w", h, t), 0);
	dir = dump_item(f, step, "w");
	check_dir(CKPT_ARRAY_TYPESTR, dir, 0, NULL);
	/* the file is the .npy numpy would write: reads back equal */
	ckpt_npy_header nh;
	void *data = NULL;
	snprintf(p, sizeof(p), "%s/checkpoint.npy", dir);
	assert_int_equal(ckpt_npy_read_file(&nh, &data, p), 0);
	assert_memory_equal(data, ckpt_tree_data(t), ckpt_tree_nbytes(t));
	free(data);
	assert_int_equal(truncate(p, (off_t)nh.header_len + 47), 0); /* one byte short */
	check_dir(CKPT_ARRAY_TYPESTR, dir, CKPT_EINVAL, "but the file has 47");
	rm_file(dir, "checkpoint.npy");
	write_file(dir, "checkpoint", "1.5e3\n", 6);
	check_dir(CKPT_ARRAY_TYPESTR, dir, 0, NULL);
	write_file(dir, "checkpoint", "True", 4);
	check_dir(CKPT_ARRAY_TYPESTR, dir, 0, NULL);
	write_file(dir, "checkpoint", "abc", 3);
	check_dir(CKPT_ARRAY_TYPESTR, dir, CKPT_EINVAL,
		  "x/checkpoint: 'abc' is not an int, float or bool");
	write_file(dir, "checkpoint", "7", 1);
	write_file(dir, "more", "8", 1);
	check_dir(CKPT_ARRAY_TYPESTR, dir, CKPT_EINVAL,
		  "an array item (<name>.npy or a scalar) holds one file; found 2 (");
	ckpt_rmtree(dir);
	free(dir);
	ckpt_tree_free(t);
	ckpt_handler_free(h);
}

static void test_format_jax(void **state)
{
	struct fx *f = *state;
	ckpt_handler *h = NULL;
	ckpt_jax_key k = {"threefry2x32", key_data(CKPT_DTYPE_UINT32, 2, 3, 2)};
	const uint64_t shape[1] = {2};
	const int32_t i32[2] = {1, 2};
	uint64_t step;
	char *dir, p[700], *meta = NULL;
	size_t len = 0;

	assert_int_equal(ckpt_jax_key_handler_new(&h, NULL), 0);
	assert_int_equal(save_step(f, &step, "rng", h, &k), 0);
	dir = dump_item(f, step, "rng");
	check_dir(CKPT_JAX_KEY_TYPESTR, dir, 0, NULL);
	snprintf(p, sizeof(p), "%s/jax_random_key_metadata", dir);
	assert_int_equal(ckpt_read_file(&meta, &len, p, 1000), 0);
	assert_string_equal(meta, "{\"typed\": true, \"impl\": \"threefry2x32\"}");
	free(meta);
	/* impl and data disagree */
	write_text(dir, "jax_random_key_metadata", "{\"typed\": true, \"impl\": \"rbg\"}");
	check_dir(CKPT_JAX_KEY_TYPESTR, dir, CKPT_EINVAL,
		  "x/jax_random_key.npy: rbg key data needs last dimension 4, not 2");
	write_text(dir, "jax_random_key_metadata", "{\"typed\": true}");
	check_dir(CKPT_JAX_KEY_TYPESTR, dir, CKPT_EINVAL,
		  "a typed JAX key needs a string \"impl\"");
	/* check_dir alone (finalize calls it after the files passed) checks too */
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(ckpt_jax_key_format.check_dir(dfd, "x"), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "x/jax_random_key_metadata: a typed JAX key"));
	close(dfd);
	write_text(dir, "jax_random_key_metadata", "{\"typed\": false}");
	check_dir(CKPT_JAX_KEY_TYPESTR, dir, 0, NULL);
	rm_file(dir, "jax_random_key_metadata");
	check_dir(CKPT_JAX_KEY_TYPESTR, dir, CKPT_EINVAL,
		  "a JAX key item holds <key>.npy and <key>_metadata; found 1 file(s): "
		  "jax_random_key.npy");
	write_file(dir, "other.txt", "{}", 2);
	check_dir(CKPT_JAX_KEY_TYPESTR, dir, CKPT_EINVAL, "x/other.txt: not a JAX key file");
	rm_file(dir, "other.txt");
	snprintf(p, sizeof(p), "%s/jax_random_key.npy", dir);
	assert_int_equal(ckpt_npy_write_file(p, CKPT_DTYPE_INT32, 1, shape, i32), 0);
	write_text(dir, "jax_random_key_metadata", "{\"typed\": false}");
	check_dir(CKPT_JAX_KEY_TYPESTR, dir, CKPT_EINVAL, "JAX key data is uint32, not int32");
	ckpt_rmtree(dir);
	free(dir);
	ckpt_tree_free(k.data);
	ckpt_handler_free(h);
}

/* A legacy state text with nkeys keys, key 5 replaced by key5 (a lexeme). */
static char *legacy_text(int nkeys, const char *key5)
{
	size_t cap = 16000, n;
	char *b = malloc(cap);

	n = (size_t)snprintf(b, cap, "[\"MT19937\", [");
	for (int i = 0; i < nkeys; i++)
		n += (size_t)snprintf(b + n, cap - n, "%s%s", i ? ", " : "",
				      i == 5 ? key5 : "12345");
	snprintf(b + n, cap - n, "], 3, 0, 0.0]");
	return b;
}

static void test_format_np(void **state)
{
	struct fx *f = *state;
	ckpt_handler *h = NULL;
	ckpt_np_key k = {0};
	uint64_t step;
	char *dir, *t;

	assert_int_equal(ckpt_np_key_handler_new(&h, NULL), 0);
	k.legacy = 1;
	fill_legacy(&k.mt);
	assert_int_equal(save_step(f, &step, "np", h, &k), 0);
	dir = dump_item(f, step, "np");
	check_dir(CKPT_NP_KEY_TYPESTR, dir, 0, NULL);
	t = legacy_text(624, "4294967295"); /* as Python writes it */
	write_file(dir, "np_random_key.json", t, strlen(t));
	free(t);
	check_dir(CKPT_NP_KEY_TYPESTR, dir, 0, NULL);
	t = legacy_text(623, "1");
	write_file(dir, "np_random_key.json", t, strlen(t));
	free(t);
	check_dir(CKPT_NP_KEY_TYPESTR, dir, CKPT_EINVAL, "a legacy state has 624 keys; found 623");
	t = legacy_text(624, "4294967296");
	write_file(dir, "np_random_key.json", t, strlen(t));
	free(t);
	check_dir(CKPT_NP_KEY_TYPESTR, dir, CKPT_EINVAL, "key 5 is not an integer in 0..2^32-1");
	t = legacy_text(624, "1.5");
	write_file(dir, "np_random_key.json", t, strlen(t));
	free(t);
	check_dir(CKPT_NP_KEY_TYPESTR, dir, CKPT_EINVAL, "key 5 is not an integer");
	write_file(dir, "np_random_key.json", PCG64_STATE, strlen(PCG64_STATE));
	check_dir(CKPT_NP_KEY_TYPESTR, dir, 0, NULL);
	write_file(dir, "np_random_key.json", "{\"state\": {}}", 13);
	check_dir(CKPT_NP_KEY_TYPESTR, dir, CKPT_EINVAL, "needs a string \"bit_generator\"");
	rm_file(dir, "np_random_key.json");
	write_file(dir, "np_random_key", PCG64_STATE, strlen(PCG64_STATE));
	check_dir(CKPT_NP_KEY_TYPESTR, dir, CKPT_EINVAL, "not a NumPy key file (<key>.json)");
	rm_file(dir, "np_random_key");
	check_dir(CKPT_NP_KEY_TYPESTR, dir, CKPT_EINVAL,
		  "a NumPy key item (<key>.json) holds one file; found 0");
	ckpt_rmtree(dir);
	free(dir);
	ckpt_handler_free(h);
}

/* A directory inside an item of these handlers is refused. */
static void test_format_no_subdirs(void **state)
{
	char *dir = test_tmpdir(), p[700];

	assert_non_null(dir);
	snprintf(p, sizeof(p), "%s/sub", dir);
	assert_int_equal(mkdir(p, 0755), 0);
	write_file(p, "metadata", "{}", 2);
	check_dir(CKPT_JSON_TYPESTR, dir, CKPT_EINVAL, "holds files only");
	check_dir(CKPT_ARRAY_TYPESTR, dir, CKPT_EINVAL, "holds files only");
	check_dir(CKPT_NP_KEY_TYPESTR, dir, CKPT_EINVAL, "holds files only");
	ckpt_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_json_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_json_refused, setup, teardown),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test_setup_teardown(test_array_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_array_be_fortran, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_array_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_jax_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_jax_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_np_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_np_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_snapshots, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_damaged, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_format_json, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_format_array, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_format_jax, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_format_np, setup, teardown),
	    cmocka_unit_test(test_format_no_subdirs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
