/*
 * tree_bin_test.c — the compact binary form of metadata trees (tree_bin.c):
 * exact round trips of built trees, of _METADATA texts and of random trees;
 * every truncation and byte flip of valid encodings; the limits the
 * _METADATA reader enforces, refused alike; every allocation failing in turn
 * (builds without AddressSanitizer).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ckpt/error.h"
#include "ckpt/tree.h"
#include "fault_inject.h"
#include "tree_private.h"
#include "treescan.h"
#include "treemk.h"

/* ---- helpers ------------------------------------------------------------- */

static ckpt_tree *mk_nt(const char *type)
{
	ckpt_tree *t = NULL;

	assert_int_equal(ckpt_tree_new_namedtuple(&t, type), 0);
	return t;
}

static ckpt_tree *mk_arr(ckpt_dtype dt, unsigned nd, const uint64_t *shape)
{
	ckpt_tree *t = NULL;

	assert_int_equal(ckpt_tree_new_array(&t, dt, nd, shape, NULL, CKPT_TREE_COPY), 0);
	return t;
}

static ckpt_tree *mk_float(double v)
{
	ckpt_tree *t = NULL;

	assert_int_equal(ckpt_tree_new_float(&t, v), 0);
	return t;
}

static ckpt_tree *mk_float_bits(uint64_t bits)
{
	double f;

	memcpy(&f, &bits, sizeof(f));
	return mk_float(f);
}

static ckpt_tree *mk_bool(int v)
{
	ckpt_tree *t = NULL;

	assert_int_equal(ckpt_tree_new_bool(&t, v), 0);
	return t;
}

static ckpt_tree *mk_str(const char *s, size_t len)
{
	ckpt_tree *t = NULL;

	assert_int_equal(ckpt_tree_new_string(&t, s, len), 0);
	return t;
}

static ckpt_tree *custom(ckpt_tree *t, const char *json)
{
	assert_int_equal(ckpt_tree_set_custom_metadata(t, json), 0);
	return t;
}

/* b answers every accessor as a does (b from the compact form: no data, no shards). */
static void assert_same(const ckpt_tree *a, const ckpt_tree *b)
{
	ckpt_tree_kind k = ckpt_tree_get_kind(a);
	const char *ca = ckpt_tree_custom_metadata(a), *cb = ckpt_tree_custom_metadata(b);
	const char *sa, *sb;
	size_t la, lb;
	double fa, fb;

	assert_int_equal(k, ckpt_tree_get_kind(b));
	assert_string_equal(ckpt_tree_key(a), ckpt_tree_key(b));
	assert_string_equal(ckpt_tree_name(a), ckpt_tree_name(b));
	assert_int_equal(ckpt_tree_count(a), ckpt_tree_count(b));
	assert_int_equal(ckpt_tree_is_container(a), ckpt_tree_is_container(b));
	if (k == CKPT_TREE_NAMEDTUPLE)
		assert_string_equal(ckpt_tree_namedtuple_type(a), ckpt_tree_namedtuple_type(b));
	else
		assert_null(ckpt_tree_namedtuple_type(b));
	assert_true((ca == NULL) == (cb == NULL));
	if (ca)
		assert_string_equal(ca, cb);
	assert_int_equal(ckpt_tree_dtype(a), ckpt_tree_dtype(b));
	assert_int_equal(ckpt_tree_ndim(a), ckpt_tree_ndim(b));
	for (unsigned i = 0; i < ckpt_tree_ndim(a); i++)
		assert_int_equal(ckpt_tree_shape(a)[i], ckpt_tree_shape(b)[i]);
	assert_int_equal(ckpt_tree_nelems(a), ckpt_tree_nelems(b));
	assert_int_equal(ckpt_tree_nbytes(a), ckpt_tree_nbytes(b));
	assert_null(ckpt_tree_data(b));
	assert_int_equal(ckpt_tree_is_sharded(b), 0);
	assert_int_equal(ckpt_tree_int(a), ckpt_tree_int(b));
	fa = ckpt_tree_float(a);
	fb = ckpt_tree_float(b);
	assert_memory_equal(&fa, &fb, sizeof(fa)); /* bit for bit: NaN payloads, -0.0 */
	assert_int_equal(ckpt_tree_bool(a), ckpt_tree_bool(b));
	sa = ckpt_tree_string(a, &la);
	sb = ckpt_tree_string(b, &lb);
	assert_true((sa == NULL) == (sb == NULL));
	assert_int_equal(la, lb);
	if (sa) {
		assert_memory_equal(sa, sb, la + 1);
	}
	for (size_t i = 0; i < ckpt_tree_count(a); i++) {
		assert_ptr_equal(ckpt_tree_parent(ckpt_tree_child(b, i)), b);
		assert_ptr_equal(ckpt_tree_find(b, ckpt_tree_key(ckpt_tree_child(a, i))),
				 ckpt_tree_child(b, i));
		assert_same(ckpt_tree_child(a, i), ckpt_tree_child(b, i));
	}
}

/* Decode from an exact-size copy, so that AddressSanitizer sees any read past the end. */
static int decode_exact(ckpt_tree **out, const unsigned char *buf, size_t len)
{
	unsigned char *copy = malloc(len ? len : 1);
	int rc;

	assert_non_null(copy);
	if (len)
		memcpy(copy, buf, len);
	rc = ckpt_tree_decode(out, copy, len);
	free(copy);
	return rc;
}

/*
 * The round trip: decode(encode(t)) answers as t, passes ckpt_tree_check,
 * writes the same _METADATA and encodes to the same bytes. Returns the
 * encoding (caller frees), *len its length.
 */
static unsigned char *roundtrip(const ckpt_tree *t, size_t *len)
{
	unsigned char *buf = NULL, *buf2 = NULL;
	size_t len2 = 0;
	ckpt_tree *back = NULL;
	char *j1 = NULL, *j2 = NULL;

	assert_int_equal(ckpt_tree_encode(&buf, len, t), 0);
	assert_int_equal(buf[0], 1);
	if (decode_exact(&back, buf, *len) != 0)
		fail_msg("decode: %s", ckpt_error_last());
	assert_true(ckpt_tree_check(back));
	assert_same(t, back);
	assert_true(treescan_agrees(buf, *len, back)); /* listed lazily as decoded */
	assert_int_equal(ckpt_tree_encode(&buf2, &len2, back), 0);
	assert_int_equal(len2, *len);
	assert_memory_equal(buf, buf2, *len);
	assert_int_equal(ckpt_tree_metadata_to_json(&j1, t), 0);
	assert_int_equal(ckpt_tree_metadata_to_json(&j2, back), 0);
	assert_string_equal(j1, j2);
	free(j1);
	free(j2);
	free(buf2);
	ckpt_tree_free(back);
	return buf;
}

static void roundtrip_free(const ckpt_tree *t)
{
	size_t len;

	free(roundtrip(t, &len));
}

/* ---- (a) built trees and _METADATA texts --------------------------------- */

/* Every kind of node, every dtype, odd keys, values and custom metadata everywhere. */
static ckpt_tree *every_kind(void)
{
	static const char odd[] = "a\0b\x01\xff\"\\\n\xc3\xa9";
	uint64_t s32[CKPT_TREE_MAX_NDIM], s3[] = {3, 0, 2}, s1[] = {7};
	ckpt_tree *root = custom(mk(CKPT_TREE_DICT), "{\"tree\": true}"), *p, *l, *nt;

	for (unsigned i = 0; i < CKPT_TREE_MAX_NDIM; i++)
		s32[i] = i % 5 == 4 ? 2 : 1;
	p = add(root, "arrays", mk(CKPT_TREE_DICT));
	for (int dt = 1; dt < CKPT_DTYPE_COUNT; dt++) /* every dtype: a dict with an index */
		add(p, ckpt_dtype_name((ckpt_dtype)dt), mk_arr((ckpt_dtype)dt, 1, s1));
	add(p, "scalar0d", mk_arr(CKPT_DTYPE_FLOAT64, 0, NULL));
	add(p, "d32", mk_arr(CKPT_DTYPE_INT8, CKPT_TREE_MAX_NDIM, s32));
	add(p, "empty", custom(mk_arr(CKPT_DTYPE_BFLOAT16, 3, s3), "{\"init\":\"lecun\"}"));
	add(p, "huge", mk_arr(CKPT_DTYPE_UINT8, 1, (uint64_t[]){UINT64_C(1) << 53}));
	p = add(root, "scalars", mk(CKPT_TREE_LIST));
	add(p, NULL, mk_int(0));
	add(p, NULL, mk_int(-1));
	add(p, NULL, mk_int(INT64_MIN));
	add(p, NULL, custom(mk_int(INT64_MAX), "7"));
	add(p, NULL, mk_float(0.1));
	add(p, NULL, mk_float(-0.0));
	add(p, NULL, mk_float_bits(UINT64_C(0x7ff0000000000000))); /* inf */
	add(p, NULL, mk_float_bits(UINT64_C(0x7ff8dead0000beef))); /* NaN with a payload */
	add(p, NULL, mk_float_bits(1));				   /* the smallest subnormal */
	add(p, NULL, mk_float(1e300));
	add(p, NULL, mk_float(0));
	add(p, NULL, custom(mk_bool(1), "[\"flag\", 1]"));
	add(p, NULL, mk_bool(0));
	add(p, NULL, mk_str("", 0));
	add(p, NULL, mk_str(odd, sizeof(odd) - 1)); /* a NUL, control bytes, invalid UTF-8 */
	add(p, NULL, custom(mk_str("hello", 5), "\"s\""));
	add(p, NULL, custom(mk(CKPT_TREE_NONE), "null"));
	add(p, NULL, mk(CKPT_TREE_NONE));
	/* empty containers of every kind, with and without custom metadata */
	p = add(root, "empty", mk(CKPT_TREE_TUPLE));
	add(p, NULL, mk(CKPT_TREE_DICT));
	add(p, NULL, custom(mk(CKPT_TREE_LIST), "{}"));
	add(p, NULL, mk(CKPT_TREE_TUPLE));
	add(p, NULL, mk_nt("EmptyState"));
	add(p, NULL, mk_nt(""));
	/* opt_state: (ScaleByAdamState(count, mu={...}, nu=[...]), EmptyState()) */
	l = add(root, "opt_state", mk(CKPT_TREE_TUPLE));
	nt = add(l, NULL, custom(mk_nt("ScaleByAdamState"), "[\"container custom\"]"));
	add(nt, "count", mk_int(0));
	add(add(nt, "mu", mk(CKPT_TREE_DICT)), "w", mk_arr(CKPT_DTYPE_FLOAT32, 1, (uint64_t[]){4}));
	p = add(nt, "nu", mk(CKPT_TREE_LIST));
	add(p, NULL, mk(CKPT_TREE_NONE));
	add(add(p, NULL, mk(CKPT_TREE_LIST)), NULL, mk(CKPT_TREE_LIST));
	add(l, NULL, mk_nt("EmptyState"));
	/* keys that need escaping, or a block of their own (long ones) */
	p = add(root, "keys", mk(CKPT_TREE_DICT));
	add(p, "it's \"quoted\"", mk(CKPT_TREE_NONE));
	add(p, "back\\slash", mk(CKPT_TREE_NONE));
	add(p, "ünïcødé ✓", mk(CKPT_TREE_NONE));
	add(p, "", mk(CKPT_TREE_NONE));
	add(p, "a/b", mk(CKPT_TREE_NONE));
	add(p, "%41", mk(CKPT_TREE_NONE));
	add(p, "_METADATA", mk(CKPT_TREE_NONE));
	add(p, ".", mk(CKPT_TREE_NONE));
	add(p, "..", mk(CKPT_TREE_NONE));
	add(p, "x.npy", mk(CKPT_TREE_NONE));
	add(p, "y.npy", mk_arr(CKPT_DTYPE_INT32, 0, NULL));
	add(p, "ctl\x01\x7f\xff\n", mk(CKPT_TREE_NONE));
	add(p, "0", mk(CKPT_TREE_NONE));
	add(p, "a key much longer than the forty bytes a node keeps for its own key",
	    mk_arr(CKPT_DTYPE_INT32, 0, NULL));
	add(p, "////////", mk(CKPT_TREE_NONE)); /* short, but 24 bytes escaped */
	return root;
}

static void test_built(void **state)
{
	ckpt_tree *t = every_kind(), *l, *d;
	static const ckpt_tree_kind roots[] = {CKPT_TREE_DICT, CKPT_TREE_LIST, CKPT_TREE_TUPLE,
					       CKPT_TREE_NONE};
	char key[16];

	roundtrip_free(t);
	ckpt_tree_free(t);
	/* a whole tree of one node: empty containers, None, leaves, with custom metadata */
	for (size_t i = 0; i < 4; i++) {
		t = mk(roots[i]);
		roundtrip_free(t);
		roundtrip_free(custom(t, "{\"root\": [1, 2]}"));
		ckpt_tree_free(t);
	}
	t = custom(mk_nt("Point"), "1");
	roundtrip_free(t);
	ckpt_tree_free(t);
	t = custom(mk_arr(CKPT_DTYPE_UINT8, 1, (uint64_t[]){7}), "{\"leaf root\": null}");
	roundtrip_free(t);
	ckpt_tree_free(t);
	t = mk_str("x\0y", 3);
	roundtrip_free(t);
	ckpt_tree_free(t);
	/* long lists and dicts: positions past 9, dict indexes */
	t = mk(CKPT_TREE_DICT);
	l = add(t, "list", mk(CKPT_TREE_LIST));
	d = add(t, "dict", mk(CKPT_TREE_DICT));
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "leaf_%03d", i);
		add(l, NULL, mk_int(i));
		add(d, key, mk_arr(CKPT_DTYPE_FLOAT32, 1, (uint64_t[]){(uint64_t)i}));
	}
	roundtrip_free(t);
	ckpt_tree_free(t);
}

/* Array data is not written; a sharded array is written as its global shape. */
static void test_data_and_shards(void **state)
{
	float data[6] = {1, 2, 3, 4, 5, 6};
	uint64_t shape[] = {2, 3}, start[] = {0, 0}, box[] = {1, 3};
	ckpt_tree *t = mk(CKPT_TREE_DICT), *a = NULL, *back = NULL;
	unsigned char *buf;
	size_t len;

	assert_int_equal(
	    ckpt_tree_new_array(&a, CKPT_DTYPE_FLOAT32, 2, shape, data, CKPT_TREE_COPY), 0);
	add(t, "dense", a);
	assert_int_equal(ckpt_tree_new_sharded_array(&a, CKPT_DTYPE_FLOAT32, 2, shape), 0);
	assert_int_equal(ckpt_tree_add_shard(a, start, box, 0, data), 0);
	add(t, "sharded", a);
	buf = roundtrip(t, &len);
	assert_int_equal(decode_exact(&back, buf, len), 0);
	assert_int_equal(ckpt_tree_nshards(ckpt_tree_find(back, "sharded")), 0);
	assert_int_equal(ckpt_tree_nelems(ckpt_tree_find(back, "sharded")), 6);
	ckpt_tree_free(back);
	free(buf);
	ckpt_tree_free(t);
}

/* _METADATA texts as Orbax and ckptfs write them. */
static const char *const json_texts[] = {
    /* Orbax: no "containers", jax.Array, a scalar, custom metadata null */
    "{\"tree_metadata\": {"
    "\"('a',)\": {\"key_metadata\": [{\"key\": \"a\", \"key_type\": 2}], \"value_metadata\": "
    "{\"value_type\": \"jax.Array\", \"skip_deserialize\": false, \"write_shape\": [8], "
    "\"dtype\": \"int32\", \"shape\": [8]}}, "
    "\"('b', '0', 'c')\": {\"key_metadata\": [{\"key\": \"b\", \"key_type\": 2}, {\"key\": "
    "\"0\", \"key_type\": 1}, {\"key\": \"c\", \"key_type\": 2}], \"value_metadata\": "
    "{\"value_type\": \"scalar\", \"skip_deserialize\": false}}}, "
    "\"use_ocdbt\": true, \"use_zarr3\": false, \"custom_metadata\": null}",
    /* ckptfs: tuples, namedtuples, scalars of every kind, None, strings, custom metadata */
    "{\"tree_metadata\": {"
    "\"('opt', '0', 'count')\": {\"key_metadata\": [{\"key\": \"opt\", \"key_type\": 2}, "
    "{\"key\": \"0\", \"key_type\": 1}, {\"key\": \"count\", \"key_type\": 2}], "
    "\"value_metadata\": {\"value_type\": \"scalar\", \"scalar_type\": \"int\"}}, "
    "\"('opt', '0', 'mu')\": {\"key_metadata\": [{\"key\": \"opt\", \"key_type\": 2}, "
    "{\"key\": \"0\", \"key_type\": 1}, {\"key\": \"mu\", \"key_type\": 2}], "
    "\"value_metadata\": {\"value_type\": \"Dict\"}}, "
    "\"('opt', '1')\": {\"key_metadata\": [{\"key\": \"opt\", \"key_type\": 2}, "
    "{\"key\": \"1\", \"key_type\": 1}], \"value_metadata\": {\"value_type\": \"NamedTuple\"}}, "
    "\"('lr',)\": {\"key_metadata\": [{\"key\": \"lr\", \"key_type\": 2}], \"value_metadata\": "
    "{\"value_type\": \"scalar\", \"scalar_type\": \"float\", \"custom_metadata\": "
    "{\"schedule\": \"cosine\", \"w\": [1.5, 2e3]}}}, "
    "\"('flag',)\": {\"key_metadata\": [{\"key\": \"flag\", \"key_type\": 2}], "
    "\"value_metadata\": {\"value_type\": \"scalar\", \"scalar_type\": \"bool\"}}, "
    "\"('name',)\": {\"key_metadata\": [{\"key\": \"name\", \"key_type\": 2}], "
    "\"value_metadata\": {\"value_type\": \"string\"}}, "
    "\"('none',)\": {\"key_metadata\": [{\"key\": \"none\", \"key_type\": 2}], "
    "\"value_metadata\": {\"value_type\": \"None\"}}, "
    "\"('x',)\": {\"key_metadata\": [{\"key\": \"x\", \"key_type\": 2}], \"value_metadata\": "
    "{\"value_type\": \"np.ndarray\", \"dtype\": \"bfloat16\", \"shape\": []}}, "
    "\"('e\\\\'s \\u00e9/\\\\x01',)\": {\"key_metadata\": [{\"key\": \"e's \\u00e9/\\u0001\", "
    "\"key_type\": 2}], \"value_metadata\": {\"value_type\": \"np.ndarray\", \"dtype\": "
    "\"float8_e4m3fn\", \"shape\": [1, 2, 3]}}, "
    "\"('l', '0')\": {\"key_metadata\": [{\"key\": \"l\", \"key_type\": 2}, {\"key\": \"0\", "
    "\"key_type\": 1}], \"value_metadata\": {\"value_type\": \"List\"}}}, "
    "\"containers\": {"
    "\"()\": {\"type\": \"dict\", \"key_metadata\": []}, "
    "\"('opt',)\": {\"type\": \"tuple\", \"key_metadata\": [{\"key\": \"opt\", \"key_type\": 2}]}, "
    "\"('opt', '0')\": {\"type\": \"namedtuple\", \"namedtuple_type\": \"ScaleByAdamState\", "
    "\"key_metadata\": [{\"key\": \"opt\", \"key_type\": 2}, {\"key\": \"0\", \"key_type\": 1}], "
    "\"custom_metadata\": [1, {\"a\": null}]}, "
    "\"('opt', '1')\": {\"type\": \"namedtuple\", \"namedtuple_type\": \"EmptyState\", "
    "\"key_metadata\": [{\"key\": \"opt\", \"key_type\": 2}, {\"key\": \"1\", \"key_type\": 1}]}, "
    "\"('l', '0')\": {\"type\": \"tuple\", \"key_metadata\": [{\"key\": \"l\", \"key_type\": 2}, "
    "{\"key\": \"0\", \"key_type\": 1}]}}, "
    "\"custom_metadata\": {\"top\": true}, \"ckptfs_metadata_version\": 1, \"use_zarr3\": false}",
    /* a whole tree of one leaf, and of one empty namedtuple */
    "{\"tree_metadata\": {\"()\": {\"key_metadata\": [], \"value_metadata\": {\"value_type\": "
    "\"np.ndarray\", \"dtype\": \"uint64\", \"shape\": [0], \"custom_metadata\": \"root\"}}}}",
    "{\"tree_metadata\": {\"()\": {\"key_metadata\": [], \"value_metadata\": {\"value_type\": "
    "\"NamedTuple\"}}}, \"containers\": {\"()\": {\"type\": \"namedtuple\", "
    "\"namedtuple_type\": \"Empty\", \"key_metadata\": []}}}",
    /* nothing at all: an empty dict */
    "{\"tree_metadata\": {}}",
};

static void test_json_texts(void **state)
{
	ckpt_tree *t = every_kind(), *back = NULL;
	char *json = NULL;

	for (size_t i = 0; i < sizeof(json_texts) / sizeof(json_texts[0]); i++) {
		if (ckpt_tree_metadata_from_json(&back, json_texts[i], strlen(json_texts[i])) != 0)
			fail_msg("text %zu: %s", i, ckpt_error_last());
		roundtrip_free(back);
		ckpt_tree_free(back);
	}
	/* and what _METADATA makes of every kind of node */
	assert_int_equal(ckpt_tree_metadata_to_json(&json, t), 0);
	assert_int_equal(ckpt_tree_metadata_from_json(&back, json, strlen(json)), 0);
	roundtrip_free(back);
	ckpt_tree_free(back);
	ckpt_tree_free(t);
	free(json);
}

/* ---- (b) random trees ---------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rnd(void) /* xorshift64: fixed seed, the same trees every run */
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void random_bytes(char *buf, size_t n, int nul_ok)
{
	for (size_t i = 0; i < n; i++) {
		buf[i] = (char)(rnd() % 256);
		if (!nul_ok && !buf[i])
			buf[i] = 'k';
	}
}

static ckpt_tree *random_leaf(void)
{
	static const ckpt_tree_kind kinds[] = {CKPT_TREE_NONE,	CKPT_TREE_ARRAY, CKPT_TREE_ARRAY,
					       CKPT_TREE_INT,	CKPT_TREE_FLOAT, CKPT_TREE_BOOL,
					       CKPT_TREE_STRING};
	uint64_t shape[CKPT_TREE_MAX_NDIM];
	unsigned nd;
	char s[24];
	size_t n;

	switch (kinds[rnd() % 7]) {
	case CKPT_TREE_NONE: return mk(CKPT_TREE_NONE);
	case CKPT_TREE_ARRAY:
		nd = rnd() % 8 == 0 ? CKPT_TREE_MAX_NDIM : (unsigned)(rnd() % 5);
		for (unsigned i = 0; i < nd; i++)
			shape[i] = nd > 4 ? 1 : rnd() % 6;
		if (nd == 1 && rnd() % 4 == 0)
			shape[0] = UINT64_C(1) << 53;
		return mk_arr((ckpt_dtype)(1 + rnd() % (CKPT_DTYPE_COUNT - 1)), nd, shape);
	case CKPT_TREE_INT: return mk_int((int64_t)(rnd() >> (rnd() % 64)));
	case CKPT_TREE_FLOAT: return mk_float_bits(rnd());
	case CKPT_TREE_BOOL: return mk_bool(rnd() % 2);
	default:
		n = rnd() % sizeof(s);
		random_bytes(s, n, 1);
		return mk_str(s, n);
	}
}

static ckpt_tree *random_tree(unsigned depth)
{
	static const char *const customs[] = {"null",
					      "1",
					      "\"s\"",
					      "[1, 2.5, {\"a\": []}]",
					      " { \"k\" : true } ",
					      "{\"\\u00e9\": \"\\n\"}"};
	ckpt_tree *t;

	if (depth < 5 && rnd() % 3 == 0) {
		static const ckpt_tree_kind kinds[] = {CKPT_TREE_DICT, CKPT_TREE_LIST,
						       CKPT_TREE_TUPLE, CKPT_TREE_NAMEDTUPLE};
		ckpt_tree_kind k = kinds[rnd() % 4];
		size_t n = rnd() % (rnd() % 4 == 0 ? 24 : 6);
		char key[48];

		if (k == CKPT_TREE_NAMEDTUPLE) {
			size_t tl = rnd() % 12;

			random_bytes(key, tl, 0);
			key[tl] = '\0';
			t = mk_nt(key);
		} else {
			t = mk(k);
		}
		for (size_t i = 0; i < n; i++) {
			ckpt_tree *c = random_tree(depth + 1);
			size_t kl = rnd() % (rnd() % 8 == 0 ? sizeof(key) : 5);
			int rc;

			random_bytes(key, kl, 0);
			key[kl] = '\0';
			rc = ckpt_tree_add(
			    t, k == CKPT_TREE_DICT || k == CKPT_TREE_NAMEDTUPLE ? key : NULL,
			    c); /* a key drawn twice: c is dropped */
			assert_true(rc == 0 || rc == CKPT_EEXISTS);
		}
	} else {
		t = random_leaf();
	}
	if (rnd() % 8 == 0)
		custom(t, customs[rnd() % (sizeof(customs) / sizeof(customs[0]))]);
	return t;
}

static void test_random(void **state)
{
	for (int i = 0; i < 400; i++) {
		ckpt_tree *t = random_tree(0);

		roundtrip_free(t);
		ckpt_tree_free(t);
	}
}

/* ---- (c) malformed input ------------------------------------------------- */

/* A failed decode: CKPT_ECORRUPT, *out NULL, a message with the byte offset. */
static void assert_corrupt(int rc, const ckpt_tree *t, const char *what)
{
	if (rc != CKPT_ECORRUPT)
		fail_msg("%s: rc %d (%s)", what, rc, ckpt_error_last());
	assert_null(t);
	if (strncmp(ckpt_error_last(), "compact tree: byte ", 19) != 0)
		fail_msg("%s: message '%s'", what, ckpt_error_last());
}

/*
 * Every truncation fails; every byte flip fails cleanly or gives a valid tree
 * that encodes back to the flipped bytes. Returns how many flips decoded.
 */
static size_t damage(const unsigned char *buf, size_t len)
{
	static const unsigned char masks[] = {0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xFF};
	unsigned char *copy = malloc(len);
	ckpt_tree *t = NULL;
	size_t ok = 0;

	assert_non_null(copy);
	for (size_t n = 0; n < len; n++) {
		int rc = decode_exact(&t, buf, n);

		assert_corrupt(rc, t, "truncation");
		assert_non_null(strstr(ckpt_error_last(), "truncated"));
	}
	for (size_t i = 0; i < len; i++) {
		for (size_t m = 0; m < sizeof(masks); m++) {
			unsigned char *again = NULL;
			size_t alen = 0;
			int rc;

			memcpy(copy, buf, len);
			copy[i] ^= masks[m];
			rc = decode_exact(&t, copy, len);
			if (rc == CKPT_EVERSION && i == 0)
				continue;
			if (rc != 0) {
				assert_corrupt(rc, t, "flip");
				continue;
			}
			ok++;
			assert_true(ckpt_tree_check(t));
			assert_true(treescan_agrees(copy, len, t));
			assert_int_equal(ckpt_tree_encode(&again, &alen, t), 0);
			assert_int_equal(alen, len);
			assert_memory_equal(again, copy, len); /* the form is canonical */
			free(again);
			ckpt_tree_free(t);
		}
	}
	free(copy);
	return ok;
}

static void test_damage(void **state)
{
	ckpt_tree *t = every_kind();
	unsigned char *buf;
	size_t len;

	buf = roundtrip(t, &len);
	assert_true(damage(buf, len) > 100); /* flipped values and key bytes still decode */
	free(buf);
	ckpt_tree_free(t);
	for (int i = 0; i < 20; i++) {
		t = random_tree(0);
		buf = roundtrip(t, &len);
		damage(buf, len);
		free(buf);
		ckpt_tree_free(t);
	}
}

#define BYTES(...)                                                                                 \
	(const unsigned char[]){__VA_ARGS__}, sizeof((const unsigned char[]){__VA_ARGS__})

static void test_malformed(void **state)
{
	const struct { /* not static: compound literals */
		const unsigned char *b;
		size_t len;
		int rc;
		const char *msg;
	} cases[] = {
	    {(const unsigned char *)"", 0, CKPT_ECORRUPT, "byte 0: truncated: version missing"},
	    {BYTES(0, 5), CKPT_ECORRUPT, "byte 0: bad version 0"},
	    {BYTES(2, 5), CKPT_EVERSION, "version 2 is newer than 1"},
	    {BYTES(1), CKPT_ECORRUPT, "byte 1: truncated: node missing"},
	    {BYTES(1, 0x00), CKPT_ECORRUPT, "byte 1: bad node tag 0x00"},
	    {BYTES(1, 0x0B), CKPT_ECORRUPT, "bad node tag 0x0b"},
	    {BYTES(1, 0x25), CKPT_ECORRUPT, "bad node tag 0x25"},
	    {BYTES(1, 0x06, 0, 0), CKPT_ECORRUPT, "byte 2: bad dtype 0"},
	    {BYTES(1, 0x06, CKPT_DTYPE_COUNT, 0), CKPT_ECORRUPT, "bad dtype 18"},
	    {BYTES(1, 0x06, CKPT_DTYPE_FLOAT32), CKPT_ECORRUPT, "truncated: ndim missing"},
	    {BYTES(1, 0x06, CKPT_DTYPE_FLOAT32, 33), CKPT_ECORRUPT, "byte 3: ndim 33 over 32"},
	    {BYTES(1, 0x06, CKPT_DTYPE_FLOAT32, 1, 0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10),
	     CKPT_ECORRUPT, "byte 4: dimension 0 is over 2^53"},
	    {BYTES(1, 0x06, CKPT_DTYPE_FLOAT64, 3, 0x80, 0x80, 0x80, 0x80, 0x10, 0x80, 0x80, 0x80,
		   0x80, 0x10, 0x80, 0x80, 0x80, 0x80, 0x10),
	     CKPT_ECORRUPT, "byte 2: array too large"},
	    {BYTES(1, 0x07, 0x80, 0x00), CKPT_ECORRUPT, "byte 2: int is not in its shortest form"},
	    {BYTES(1, 0x07, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02),
	     CKPT_ECORRUPT, "int overflows 64 bits"},
	    {BYTES(1, 0x07, 0xFF, 0xFF), CKPT_ECORRUPT, "truncated: int cut short"},
	    {BYTES(1, 0x08, 1, 2, 3), CKPT_ECORRUPT, "truncated: float of 8 bytes, 3 left"},
	    {BYTES(1, 0x09, 2), CKPT_ECORRUPT, "byte 2: bool 2 is not 0 or 1"},
	    {BYTES(1, 0x0A, 5, 'a'), CKPT_ECORRUPT, "truncated: string of 5 bytes, 1 left"},
	    {BYTES(1, 0x01, 2, 1, 'a', 0x05, 1, 'a', 0x05), CKPT_ECORRUPT,
	     "byte 6: duplicate key 'a'"},
	    {BYTES(1, 0x01, 1, 2, 'a', 0, 0x05), CKPT_ECORRUPT, "byte 3: key contains a NUL byte"},
	    {BYTES(1, 0x04, 2, 'T', 0, 0), CKPT_ECORRUPT, "namedtuple type contains a NUL byte"},
	    {BYTES(1, 0x04, 1, 'T'), CKPT_ECORRUPT, "truncated: child count"},
	    {BYTES(1, 0x15, 1, '{'), CKPT_ECORRUPT, "byte 3: custom metadata is not JSON"},
	    {BYTES(1, 0x15, 3, '1', ' ', '2'), CKPT_ECORRUPT, "custom metadata is not JSON"},
	    {BYTES(1, 0x15, 3, '1', 0, '2'), CKPT_ECORRUPT, "custom metadata contains a NUL byte"},
	    {BYTES(1, 0x15, 9, '1'), CKPT_ECORRUPT, "truncated: custom metadata of 9 bytes"},
	    {BYTES(1, 0x02, 5, 5), CKPT_ECORRUPT, "byte 2: truncated: 5 children in 1 bytes"},
	    {BYTES(1, 0x02, 2, 0x05, 0x07), CKPT_ECORRUPT, "byte 5: truncated: int cut short"},
	    {BYTES(1, 0x05, 0, 0), CKPT_ECORRUPT, "byte 2: trailing data after the tree (2 bytes)"},
	    {BYTES(1, 0x02, 1, 0x01, 1, 0, 0x00), CKPT_ECORRUPT, "byte 6: bad node tag 0x00"},
	};
	ckpt_tree *t = NULL;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = decode_exact(&t, cases[i].b, cases[i].len);

		if (rc != cases[i].rc || !strstr(ckpt_error_last(), cases[i].msg))
			fail_msg("case %zu: rc %d, message '%s', wanted '%s'", i, rc,
				 ckpt_error_last(), cases[i].msg);
		assert_null(t);
	}
	assert_int_equal(ckpt_tree_decode(&t, NULL, 1), CKPT_EINVAL);
	assert_int_equal(ckpt_tree_decode(&t, NULL, 0), CKPT_ECORRUPT);
}

/* A chain of depth nested lists, each with one child, the last empty. */
static unsigned char *nested(size_t *len, unsigned depth)
{
	unsigned char *b = malloc(2 * depth + 3);

	assert_non_null(b);
	b[0] = 1;
	for (unsigned i = 0; i <= depth; i++) {
		b[1 + 2 * i] = CKPT_TREE_LIST;
		b[2 + 2 * i] = i < depth;
	}
	*len = 2 * depth + 3;
	return b;
}

/* Nodes 128 levels below the root, as _METADATA allows, and no deeper. */
static void test_depth(void **state)
{
	ckpt_tree *t = mk(CKPT_TREE_LIST), *leaf = t, *back = NULL;
	unsigned char *buf;
	size_t len;
	char *json = NULL;
	int rc;

	for (int i = 0; i < 128; i++)
		leaf = add(leaf, NULL, mk(CKPT_TREE_LIST));
	roundtrip_free(t);
	add(leaf, NULL, mk(CKPT_TREE_NONE)); /* 129: neither form carries it */
	assert_int_equal(ckpt_tree_encode(&buf, &len, t), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "deeper than 128"));
	assert_null(buf);
	assert_int_equal(ckpt_tree_metadata_to_json(&json, t), CKPT_EINVAL);
	ckpt_tree_free(t);

	buf = nested(&len, 128);
	assert_int_equal(decode_exact(&back, buf, len), 0);
	ckpt_tree_free(back);
	free(buf);
	buf = nested(&len, 129);
	rc = decode_exact(&back, buf, len);
	assert_corrupt(rc, back, "depth 129");
	assert_non_null(strstr(ckpt_error_last(), "byte 258: tree deeper than 128"));
	free(buf);
	buf = nested(&len, 100000); /* no stack overflow either */
	rc = decode_exact(&back, buf, len);
	assert_corrupt(rc, back, "depth 100000");
	free(buf);
}

/* What the _METADATA reader refuses, the compact form refuses too. */
static void test_parity(void **state)
{
	static const char *const json[] = {
	    "{\"tree_metadata\": {\"x\": {\"key_metadata\": [{\"key\": \"a\", \"key_type\": 2}], "
	    "\"value_metadata\": {\"value_type\": \"None\"}}, \"y\": {\"key_metadata\": [{\"key\": "
	    "\"a\", \"key_type\": 2}], \"value_metadata\": {\"value_type\": \"None\"}}}}",
	    "{\"tree_metadata\": {\"x\": {\"key_metadata\": [{\"key\": \"a\", \"key_type\": 2}], "
	    "\"value_metadata\": {\"value_type\": \"np.ndarray\", \"dtype\": \"float33\", "
	    "\"shape\": [1]}}}}",
	    "{\"tree_metadata\": {\"x\": {\"key_metadata\": [{\"key\": \"a\", \"key_type\": 2}], "
	    "\"value_metadata\": {\"value_type\": \"np.ndarray\", \"dtype\": \"float64\", "
	    "\"shape\": [4294967296, 4294967296, 4294967296]}}}}",
	    "{\"tree_metadata\": {\"x\": {\"key_metadata\": [{\"key\": \"a\", \"key_type\": 2}], "
	    "\"value_metadata\": {\"value_type\": \"np.ndarray\", \"dtype\": \"int8\", "
	    "\"shape\": [9007199254740994]}}}}",
	    "{\"tree_metadata\": {\"x\": {\"key_metadata\": [{\"key\": \"a\", \"key_type\": 2}], "
	    "\"value_metadata\": {\"value_type\": \"None\", \"custom_metadata\": \"\\u0000\"}}}}",
	    "{\"tree_metadata\": {\"x\": {\"key_metadata\": [{\"key\": \"a\\u0000\", "
	    "\"key_type\": 2}], \"value_metadata\": {\"value_type\": \"None\"}}}}",
	};
	const struct { /* not static: compound literals */
		const unsigned char *b;
		size_t len;
		const char *msg;
	} bin[] = {
	    {BYTES(1, 0x01, 2, 1, 'a', 0x05, 1, 'a', 0x05), "duplicate key 'a'"},
	    {BYTES(1, 0x01, 1, 1, 'a', 0x06, 0, 1, 1), "bad dtype 0"},
	    {BYTES(1, 0x01, 1, 1, 'a', 0x06, CKPT_DTYPE_FLOAT64, 3, 0x80, 0x80, 0x80, 0x80, 0x10,
		   0x80, 0x80, 0x80, 0x80, 0x10, 0x80, 0x80, 0x80, 0x80, 0x10),
	     "array too large"},
	    {BYTES(1, 0x01, 1, 1, 'a', 0x06, CKPT_DTYPE_INT8, 1, 0x82, 0x80, 0x80, 0x80, 0x80, 0x80,
		   0x80, 0x10),
	     "over 2^53"},
	    {BYTES(1, 0x01, 1, 1, 'a', 0x15, 3, '"', 0, '"'), "custom metadata contains a NUL"},
	    {BYTES(1, 0x01, 1, 2, 'a', 0, 0x05), "key contains a NUL"},
	};
	uint64_t big = (UINT64_C(1) << 53) + 2;
	ckpt_tree *t = NULL;
	unsigned char *buf = NULL;
	size_t len;

	for (size_t i = 0; i < sizeof(json) / sizeof(json[0]); i++) {
		assert_int_equal(ckpt_tree_metadata_from_json(&t, json[i], strlen(json[i])),
				 CKPT_EINVAL);
		if (decode_exact(&t, bin[i].b, bin[i].len) != CKPT_ECORRUPT ||
		    !strstr(ckpt_error_last(), bin[i].msg))
			fail_msg("case %zu: message '%s', wanted '%s'", i, ckpt_error_last(),
				 bin[i].msg);
	}
	/* a tree neither form carries: a dimension over 2^53 */
	t = mk(CKPT_TREE_DICT);
	add(t, "a", mk_arr(CKPT_DTYPE_INT8, 1, &big));
	assert_int_equal(ckpt_tree_encode(&buf, &len, t), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "'a': dimension 0 is over 2^53"));
	ckpt_tree_free(t);
	/* and a dict of many children (the indexed path) with a duplicate */
	{
		unsigned char b[3 + 20 * 3] = {1, 0x01, 20};
		size_t n = 3;

		for (int i = 0; i < 20; i++) {
			b[n++] = 1;
			b[n++] = (unsigned char)('a' + (i == 17 ? 4 : i));
			b[n++] = 0x05;
		}
		int rc = decode_exact(&t, b, n);

		assert_corrupt(rc, t, "duplicate in a big dict");
		assert_non_null(strstr(ckpt_error_last(), "byte 54: duplicate key 'e'"));
	}
}

/* k nested JSON arrays, malloc'd. */
static char *nest(unsigned k)
{
	char *s = malloc(2 * k + 1);

	assert_non_null(s);
	for (unsigned i = 0; i < k; i++) {
		s[i] = '[';
		s[2 * k - 1 - i] = ']';
	}
	s[2 * k] = '\0';
	return s;
}

/*
 * Custom metadata nests as deep as _METADATA can hold it where it sits (999
 * levels for the root container's, 997 for another container's, 996 for a
 * leaf's) and no deeper, in both forms.
 */
static void test_custom_nesting(void **state)
{
	static const unsigned max[] = {999, 997, 996};
	ckpt_tree *back = NULL;
	unsigned char *buf = NULL;
	size_t len;
	char *json = NULL;

	for (int where = 0; where < 3; where++) {
		for (unsigned k = max[where]; k <= max[where] + 1; k++) {
			ckpt_tree *t = mk(CKPT_TREE_DICT), *c = add(t, "c", mk(CKPT_TREE_DICT));
			ckpt_tree *leaf = add(c, "a", mk(CKPT_TREE_NONE));
			char *text = nest(k);

			custom(where == 0 ? t : where == 1 ? c : leaf, text);
			assert_int_equal(ckpt_tree_metadata_to_json(&json, t), 0);
			assert_int_equal(ckpt_tree_metadata_from_json(&back, json, strlen(json)),
					 k == max[where] ? 0 : CKPT_EINVAL);
			ckpt_tree_free(back);
			free(json);
			if (k == max[where]) {
				roundtrip_free(t);
			} else {
				assert_int_equal(ckpt_tree_encode(&buf, &len, t), CKPT_EINVAL);
				assert_non_null(strstr(ckpt_error_last(), "nested deeper"));
			}
			ckpt_tree_free(t);
			free(text);
		}
	}
	/* the decoder: {"a": None} with the None's custom metadata 996 and 997 deep */
	for (unsigned k = 996; k <= 997; k++) {
		char *text = nest(k);
		size_t n = strlen(text);
		unsigned char *b = malloc(n + 8);
		int rc;

		assert_non_null(b);
		memcpy(b,
		       (unsigned char[]){1, 0x01, 1, 1, 'a', 0x15, (unsigned char)(n | 0x80),
					 (unsigned char)(n >> 7)},
		       8);
		memcpy(b + 8, text, n);
		rc = decode_exact(&back, b, n + 8);
		if (k == 996) {
			assert_int_equal(rc, 0);
			ckpt_tree_free(back);
		} else {
			assert_corrupt(rc, back, "custom nesting");
			assert_non_null(strstr(ckpt_error_last(),
					       "byte 8: custom metadata nested deeper than "
					       "_METADATA carries (996 levels)"));
		}
		free(b);
		free(text);
	}
}

/* Every allocation of a decode and an encode failing in turn (builds without ASan). */
static void test_enomem(void **state)
{
	ckpt_tree *t = every_kind(), *back = NULL;
	unsigned char *buf = NULL;
	size_t len;
	long points = 0;

	free(roundtrip(t, &len));
	if (!MALLOC_POINTS) {
		ckpt_tree_free(t);
		skip();
	}
	mem_pass = 1;
	for (long n = 1;; n++) {
		unsigned char *copy = malloc(len);
		int rc;

		assert_non_null(copy);
		assert_int_equal(ckpt_tree_encode(&buf, &len, t), 0);
		memcpy(copy, buf, len);
		free(buf);
		arm(n);
		rc = ckpt_tree_decode(&back, copy, len);
		disarm();
		free(copy);
		if (!__atomic_load_n(&fired, __ATOMIC_RELAXED)) {
			assert_int_equal(rc, 0);
			ckpt_tree_free(back);
			points = n - 1;
			break;
		}
		/* cJSON cannot tell a failed allocation from bad JSON: custom metadata
		 * whose check ran out of memory reads as not JSON. */
		if (rc != CKPT_ENOMEM &&
		    !(rc == CKPT_ECORRUPT &&
		      strstr(ckpt_error_last(), "custom metadata is not JSON")))
			fail_msg("allocation %ld: rc %d (%s)", n, rc, ckpt_error_last());
		assert_null(back);
	}
	for (long n = 1;; n++) {
		arm(n);
		int rc = ckpt_tree_encode(&buf, &len, t);
		disarm();
		if (!__atomic_load_n(&fired, __ATOMIC_RELAXED)) {
			assert_int_equal(rc, 0);
			free(buf);
			break;
		}
		assert_int_equal(rc, CKPT_ENOMEM);
		assert_null(buf);
	}
	mem_pass = 0;
	print_message("decode: %ld allocations, each failed in turn\n", points);
	assert_true(points > 50);
	ckpt_tree_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_built),	   cmocka_unit_test(test_data_and_shards),
	    cmocka_unit_test(test_json_texts),	   cmocka_unit_test(test_random),
	    cmocka_unit_test(test_damage),	   cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_depth),	   cmocka_unit_test(test_parity),
	    cmocka_unit_test(test_custom_nesting), cmocka_unit_test(test_enomem),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
