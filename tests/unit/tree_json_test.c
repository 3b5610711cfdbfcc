/*
 * tree_json_test.c — _METADATA round trips and malformed input (ckpt/tree.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "ckpt/error.h"
#include "ckpt/tree.h"
#include "treemk.h"

/* A tree with every kind of node, awkward keys and custom metadata. */
static ckpt_tree *every_kind(void)
{
	uint64_t shape[] = {3, 0, 2};
	float data[] = {1, 2};
	ckpt_tree *root = mk(CKPT_TREE_DICT), *p, *l, *t, *nt;

	p = add(root, "params", mk(CKPT_TREE_DICT));
	assert_int_equal(ckpt_tree_new_array(&t, CKPT_DTYPE_BFLOAT16, 3, shape, NULL, 0), 0);
	add(p, "kernel", t);
	assert_int_equal(ckpt_tree_set_custom_metadata(t, "{\"init\":\"lecun\",\"n\":[1,2]}"), 0);
	assert_int_equal(
	    ckpt_tree_new_array(&t, CKPT_DTYPE_FLOAT32, 1, (uint64_t[]){2}, data, CKPT_TREE_COPY),
	    0);
	add(p, "bias", t);
	assert_int_equal(ckpt_tree_new_array(&t, CKPT_DTYPE_INT64, 0, NULL, NULL, 0), 0);
	add(p, "scalar_array", t);
	assert_int_equal(ckpt_tree_new_int(&t, 5), 0);
	add(root, "step", t);
	assert_int_equal(ckpt_tree_new_float(&t, 0.5), 0);
	add(root, "lr", t);
	assert_int_equal(ckpt_tree_new_bool(&t, 1), 0);
	add(root, "flag", t);
	assert_int_equal(ckpt_tree_new_string(&t, "hello", 5), 0);
	add(root, "name", t);
	add(root, "nothing", mk(CKPT_TREE_NONE));
	add(root, "empty_dict", mk(CKPT_TREE_DICT));
	add(root, "empty_list", mk(CKPT_TREE_LIST));
	add(root, "empty_tuple", mk(CKPT_TREE_TUPLE));
	assert_int_equal(ckpt_tree_new_namedtuple(&nt, "EmptyState"), 0);
	add(root, "empty_nt", nt);
	/* opt_state: (ScaleByAdamState(count, mu={...}, nu=[...]), EmptyState()) */
	l = add(root, "opt_state", mk(CKPT_TREE_TUPLE));
	assert_int_equal(ckpt_tree_new_namedtuple(&nt, "ScaleByAdamState"), 0);
	add(l, NULL, nt);
	assert_int_equal(ckpt_tree_set_custom_metadata(nt, "[\"container custom\"]"), 0);
	assert_int_equal(ckpt_tree_new_int(&t, 0), 0);
	add(nt, "count", t);
	p = add(nt, "mu", mk(CKPT_TREE_DICT));
	assert_int_equal(ckpt_tree_new_array(&t, CKPT_DTYPE_FLOAT32, 1, (uint64_t[]){4}, NULL, 0),
			 0);
	add(p, "w", t);
	p = add(nt, "nu", mk(CKPT_TREE_LIST));
	add(p, NULL, mk(CKPT_TREE_NONE));
	add(add(p, NULL, mk(CKPT_TREE_LIST)), NULL, mk(CKPT_TREE_LIST));
	assert_int_equal(ckpt_tree_new_namedtuple(&nt, "EmptyState"), 0);
	add(l, NULL, nt);
	/* awkward keys */
	p = add(root, "keys", mk(CKPT_TREE_DICT));
	add(p, "it's \"quoted\"", mk(CKPT_TREE_NONE));
	add(p, "back\\slash", mk(CKPT_TREE_NONE));
	add(p, "ünïcødé ✓", mk(CKPT_TREE_NONE));
	add(p, "", mk(CKPT_TREE_NONE));
	add(p, "a/b", mk(CKPT_TREE_NONE));
	add(p, "_METADATA", mk(CKPT_TREE_NONE));
	add(p, "ctl\x01\x7f\xff\n", mk(CKPT_TREE_NONE));
	add(p, "0", mk(CKPT_TREE_NONE));
	assert_int_equal(ckpt_tree_set_custom_metadata(root, "{\"tree\": true}"), 0);
	return root;
}

/* Structural equality, metadata only (values are not in _METADATA). */
static void assert_same(const ckpt_tree *a, const ckpt_tree *b)
{
	ckpt_tree_kind k = ckpt_tree_get_kind(a);
	const char *ca = ckpt_tree_custom_metadata(a), *cb = ckpt_tree_custom_metadata(b);

	assert_int_equal(k, ckpt_tree_get_kind(b));
	assert_string_equal(ckpt_tree_key(a), ckpt_tree_key(b));
	assert_string_equal(ckpt_tree_name(a), ckpt_tree_name(b));
	assert_int_equal(ckpt_tree_count(a), ckpt_tree_count(b));
	if (k == CKPT_TREE_NAMEDTUPLE)
		assert_string_equal(ckpt_tree_namedtuple_type(a), ckpt_tree_namedtuple_type(b));
	if (ca || cb) {
		cJSON *ja = cJSON_Parse(ca), *jb = cJSON_Parse(cb);

		assert_non_null(ja);
		assert_non_null(jb);
		assert_true(cJSON_Compare(ja, jb, 1));
		cJSON_Delete(ja);
		cJSON_Delete(jb);
	}
	if (k == CKPT_TREE_ARRAY) {
		assert_int_equal(ckpt_tree_dtype(a), ckpt_tree_dtype(b));
		assert_int_equal(ckpt_tree_ndim(a), ckpt_tree_ndim(b));
		for (unsigned i = 0; i < ckpt_tree_ndim(a); i++)
			assert_int_equal(ckpt_tree_shape(a)[i], ckpt_tree_shape(b)[i]);
		assert_null(ckpt_tree_data(b));
	}
	for (size_t i = 0; i < ckpt_tree_count(a); i++)
		assert_same(ckpt_tree_child(a, i), ckpt_tree_child(b, i));
}

static void test_roundtrip(void **state)
{
	ckpt_tree *t = every_kind(), *back = NULL;
	char *json = NULL, *json2 = NULL;
	cJSON *doc, *e;

	assert_int_equal(ckpt_tree_metadata_to_json(&json, t), 0);
	/* Orbax-shaped members */
	doc = cJSON_Parse(json);
	assert_non_null(doc);
	e = cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "tree_metadata"), "('params', 'kernel')");
	assert_non_null(e);
	assert_string_equal(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(e, "value_metadata"), "value_type")
		->valuestring,
	    "np.ndarray");
	assert_string_equal(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(e, "value_metadata"), "dtype")->valuestring,
	    "bfloat16");
	assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "tree_metadata"),
					    "('keys', 'it\\'s \"quoted\"')"));
	assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "tree_metadata"),
					    "('opt_state', '0', 'count')"));
	assert_non_null(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "tree_metadata"), "('step',)"));
	assert_string_equal(
	    cJSON_GetObjectItem(
		cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "containers"), "('opt_state',)"),
		"type")
		->valuestring,
	    "tuple");
	assert_int_equal(cJSON_GetObjectItem(doc, "ckptfs_metadata_version")->valueint, 1);
	cJSON_Delete(doc);

	assert_int_equal(ckpt_tree_metadata_from_json(&back, json, strlen(json)), 0);
	assert_same(t, back);
	/* and the JSON of the copy is byte-identical */
	assert_int_equal(ckpt_tree_metadata_to_json(&json2, back), 0);
	assert_string_equal(json, json2);
	free(json);
	free(json2);
	ckpt_tree_free(t);
	ckpt_tree_free(back);
}

static void test_roundtrip_small(void **state)
{
	static const ckpt_tree_kind roots[] = {CKPT_TREE_DICT, CKPT_TREE_LIST, CKPT_TREE_TUPLE,
					       CKPT_TREE_NONE};
	ckpt_tree *t, *back = NULL;
	char *json = NULL;

	/* empty containers and None as the whole tree; a leaf as the whole tree */
	for (size_t i = 0; i < 5; i++) {
		if (i < 4)
			t = mk(roots[i]);
		else
			assert_int_equal(
			    ckpt_tree_new_array(&t, CKPT_DTYPE_UINT8, 1, (uint64_t[]){7}, NULL, 0),
			    0);
		assert_int_equal(ckpt_tree_metadata_to_json(&json, t), 0);
		assert_int_equal(ckpt_tree_metadata_from_json(&back, json, strlen(json)), 0);
		assert_same(t, back);
		free(json);
		ckpt_tree_free(t);
		ckpt_tree_free(back);
	}
	/* a list root with leaves */
	t = mk(CKPT_TREE_LIST);
	for (int i = 0; i < 12; i++) {
		ckpt_tree *x;

		assert_int_equal(ckpt_tree_new_int(&x, i), 0);
		add(t, NULL, x);
	}
	assert_int_equal(ckpt_tree_metadata_to_json(&json, t), 0);
	assert_int_equal(ckpt_tree_metadata_from_json(&back, json, strlen(json)), 0);
	assert_same(t, back);
	free(json);
	ckpt_tree_free(t);
	ckpt_tree_free(back);
}

static void test_orbax_input(void **state)
{
	/* A real Orbax _METADATA (no "containers", jax.Array) plus dtype/shape. */
	static const char js[] =
	    "{\"tree_metadata\": {\"('a',)\": {\"key_metadata\": [{\"key\": \"a\", "
	    "\"key_type\": 2}], \"value_metadata\": {\"value_type\": \"jax.Array\", "
	    "\"skip_deserialize\": false, \"write_shape\": [8], \"dtype\": \"int32\", "
	    "\"shape\": [8]}}, \"('b', '0', 'c')\": {\"key_metadata\": [{\"key\": \"b\", "
	    "\"key_type\": 2}, {\"key\": \"0\", \"key_type\": 1}, {\"key\": \"c\", "
	    "\"key_type\": 2}], \"value_metadata\": {\"value_type\": \"scalar\", "
	    "\"skip_deserialize\": false}}}, \"use_ocdbt\": true, \"use_zarr3\": false, "
	    "\"custom_metadata\": null}";
	ckpt_tree *t = NULL, *x = NULL;

	assert_int_equal(ckpt_tree_metadata_from_json(&t, js, strlen(js)), 0);
	assert_int_equal(ckpt_tree_lookup(&x, t, "a.npy"), 0);
	assert_int_equal(ckpt_tree_dtype(x), CKPT_DTYPE_INT32);
	assert_int_equal(ckpt_tree_get_kind(ckpt_tree_find(t, "b")), CKPT_TREE_LIST);
	assert_int_equal(ckpt_tree_lookup(&x, t, "b/0/c"), 0);
	assert_int_equal(ckpt_tree_get_kind(x), CKPT_TREE_FLOAT);
	ckpt_tree_free(t);
}

/*
 * Text as Orbax or a hand may write it (spaces, escapes, a BOM, 1.50, 1e2, a \u escape):
 * read as cJSON read it before jdom (core/util/jdom.h), custom metadata printed compactly.
 */
static void test_lenient_text(void **state)
{
	static const char js[] =
	    "\xEF\xBB\xBF \n{ \"tree_metadata\" : { \"x\" : { \"key_metadata\" : [ { \"key\" : "
	    "\"caf\\u00e9\\/\\\"q\\\"\" , \"key_type\" : 2.0 } ] , \"value_metadata\" : { "
	    "\"value_type\" : \"np.ndarray\", \"dtype\": \"float32\", \"shape\": [ 2e0 , 03 ], "
	    "\"custom_metadata\" : { \"a\" : 1.50 , \"b\" : [ 1e2 , \"x\\u00e9\\n\" , null, true ] "
	    "} } } } , \"ckptfs_metadata_version\" : 1 } trailing text is not looked at";
	ckpt_tree *t = NULL, *x = NULL;

	assert_int_equal(ckpt_tree_metadata_from_json(&t, js, strlen(js)), 0);
	assert_int_equal(ckpt_tree_lookup(&x, t, "caf\xC3\xA9%2F\"q\".npy"), 0);
	assert_int_equal(ckpt_tree_ndim(x), 2);
	assert_int_equal(ckpt_tree_shape(x)[0], 2);
	assert_int_equal(ckpt_tree_shape(x)[1], 3);
	assert_string_equal(ckpt_tree_custom_metadata(x),
			    "{\"a\":1.5,\"b\":[100,\"x\xC3\xA9\\n\",null,true]}");
	ckpt_tree_free(t);
	/* not JSON: the same verdict as before */
	static const char *bad[] = {"", "   ", "{\"tree_metadata\": {}", "[1,]", "{\"a\" 1}",
				    "\"\\uD800\"", "{\"tree_metadata\": {\"\\x\": 1}}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(ckpt_tree_metadata_from_json(&t, bad[i], strlen(bad[i])),
				 CKPT_EINVAL);
		assert_non_null(strstr(ckpt_error_last(), bad[i][0] && bad[i][0] != ' '
								   ? "not valid JSON"
								   : "_METADATA"));
	}
}

#define LEAF(path, km, vm) "\"" path "\": {\"key_metadata\": [" km "], \"value_metadata\": " vm "}"
#define K(k, t)		   "{\"key\": \"" k "\", \"key_type\": " #t "}"
#define NONE		   "{\"value_type\": \"None\"}"
#define ARR(dt, shape)                                                                             \
	"{\"value_type\": \"np.ndarray\", \"dtype\": \"" dt "\", \"shape\": " shape "}"
#define DOC(leaves)	   "{\"tree_metadata\": {" leaves "}}"
#define DOCC(leaves, cont) "{\"tree_metadata\": {" leaves "}, \"containers\": {" cont "}}"

static void test_malformed(void **state)
{
	static const struct {
		const char *json, *msg;
	} cases[] = {
	    {"", "not valid JSON"},
	    {"{\"tree_metadata\": {", "not valid JSON"},
	    {"[]", "tree_metadata"},
	    {DOC(LEAF("x", K("a\\u0000b", 2), NONE)), "NUL"},
	    {"{}", "tree_metadata"},
	    {"{\"tree_metadata\": []}", "tree_metadata"},
	    {DOC("\"x\": 3"), "not an object"},
	    {DOC("\"x\": {}"), "key_metadata"},
	    {DOC("\"x\": {\"key_metadata\": {}}"), "key_metadata"},
	    {DOC(LEAF("x", "3", NONE)), "key_metadata[0]"},
	    {DOC(LEAF("x", "{\"key\": 1, \"key_type\": 2}", NONE)), "key_metadata[0]"},
	    {DOC(LEAF("x", K("a", 3), NONE)), "key_metadata[0]"},
	    {DOC(LEAF("x", K("a", 2), "{}")), "value_type"},
	    {DOC(LEAF("x", K("a", 2), "{\"value_type\": \"Frob\"}")), "unknown value_type"},
	    {DOC(LEAF("x", K("a", 2), ARR("float33", "[1]"))), "dtype"},
	    {DOC(LEAF("x", K("a", 2), "{\"value_type\": \"np.ndarray\", \"shape\": [1]}")),
	     "dtype"},
	    {DOC(LEAF("x", K("a", 2), ARR("float32", "[-1]"))), "shape[0]"},
	    {DOC(LEAF("x", K("a", 2), ARR("float32", "[1.5]"))), "shape[0]"},
	    {DOC(LEAF("x", K("a", 2), ARR("float32", "[\"1\"]"))), "shape[0]"},
	    {DOC(LEAF("x", K("a", 2), ARR("float32", "[1e300]"))), "shape[0]"},
	    {DOC(LEAF("x", K("a", 2), ARR("float32", "3"))), "shape"},
	    {DOC(LEAF("x", K("a", 2), ARR("float64", "[4294967296, 4294967296, 4294967296]"))),
	     "too large"},
	    {DOC(LEAF("x", K("a", 2),
		      ARR("int8", "[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,"
				  "1,1,1,1,1,1,1,1,1,1,1,1]"))),
	     "dimensions"},
	    {DOC(LEAF("x", K("a", 2),
		      "{\"value_type\": \"scalar\", \"scalar_type\": \"complex\"}")),
	     "scalar_type"},
	    {DOC(LEAF("x", K("a", 2), NONE) "," LEAF("y", K("a", 2), NONE)), "duplicate path"},
	    {DOC(LEAF("x", K("a", 2), NONE) "," LEAF("y", K("a", 2) "," K("b", 2), NONE)),
	     "leaf or an empty container"},
	    {DOC(LEAF("x", K("a", 2) "," K("b", 2), NONE) "," LEAF("y", K("a", 2), NONE)),
	     "duplicate path"},
	    {DOC(LEAF("x", K("a", 2) "," K("1", 1), NONE)), "out of order"},
	    {DOC(LEAF("x", K("a", 2) "," K("0", 1), NONE) "," LEAF("y", K("a", 2) "," K("0", 1),
								   NONE)),
	     "out of order"},
	    {DOC(LEAF("x", K("a", 2) "," K("0", 1), NONE) "," LEAF("y", K("a", 2) "," K("b", 2),
								   NONE)),
	     "key_type 2"},
	    {DOC(LEAF("x", K("a", 2),
		      "{\"value_type\": \"Dict\"}") "," LEAF("y", K("a", 2) "," K("b", 2), NONE)),
	     "leaf or an empty container"},
	    {DOC(LEAF("()", "", NONE) "," LEAF("y", K("a", 2), NONE)), "only entry"},
	    {DOC(LEAF("y", K("a", 2), NONE) "," LEAF("()", "", NONE)), "only entry"},
	    {DOCC(LEAF("x", K("a", 2), NONE), "\"c\": {\"type\": \"tuple\", \"key_metadata\": []}"),
	     "does not fit"},
	    {DOCC(LEAF("x", K("a", 2), NONE), "\"c\": {\"type\": \"set\", \"key_metadata\": []}"),
	     "unknown type"},
	    {DOCC(LEAF("x", K("a", 2), NONE), "\"c\": {\"type\": \"namedtuple\", "
					      "\"key_metadata\": []}"),
	     "namedtuple_type"},
	    {DOCC(LEAF("x", K("a", 2), NONE),
		  "\"c\": {\"type\": \"dict\", \"key_metadata\": [" K("zz", 2) "]}"),
	     "no such path"},
	    {DOCC(LEAF("x", K("a", 2), NONE),
		  "\"c\": {\"type\": \"dict\", \"key_metadata\": [" K("a", 2) "]}"),
	     "not a container"},
	    {DOCC(LEAF("x", K("a", 2), NONE), "\"c\": 1"), "not an object"},
	    {"{\"tree_metadata\": {}, \"containers\": []}", "containers"},
	    {"{\"tree_metadata\": {}, \"ckptfs_metadata_version\": \"1\"}", "version"},
	    {DOC(LEAF("x", K("a", 2), "{\"value_type\": \"None\", \"custom_metadata\": 1}")), NULL},
	};
	ckpt_tree *t = NULL;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = ckpt_tree_metadata_from_json(&t, cases[i].json, strlen(cases[i].json));

		if (!cases[i].msg) { /* valid: scalar custom metadata is JSON too */
			assert_int_equal(rc, 0);
			ckpt_tree_free(t);
			continue;
		}
		if (rc != CKPT_EINVAL || !strstr(ckpt_error_last(), cases[i].msg))
			fail_msg("case %zu: rc %d, message '%s', wanted '%s'", i, rc,
				 ckpt_error_last(), cases[i].msg);
		assert_null(t);
	}
	{
		static const char v2[] = "{\"tree_metadata\": {}, \"ckptfs_metadata_version\": 2}";

		assert_int_equal(ckpt_tree_metadata_from_json(&t, v2, strlen(v2)), CKPT_EVERSION);
	}
}

static void test_deep(void **state)
{
	/* a key path of 200 keys is refused, 100 accepted */
	for (int depth = 100; depth <= 200; depth += 100) {
		size_t cap = 64 + (size_t)depth * 40, n;
		char *js = malloc(cap);
		ckpt_tree *t = NULL;
		int rc;

		assert_non_null(js);
		n = (size_t)snprintf(js, cap, "{\"tree_metadata\": {\"x\": {\"key_metadata\": [");
		for (int i = 0; i < depth; i++)
			n += (size_t)snprintf(js + n, cap - n,
					      "%s{\"key\": \"k\", \"key_type\": 2}", i ? "," : "");
		snprintf(js + n, cap - n, "], \"value_metadata\": {\"value_type\": \"None\"}}}}");
		rc = ckpt_tree_metadata_from_json(&t, js, strlen(js));
		assert_int_equal(rc, depth == 100 ? 0 : CKPT_EINVAL);
		if (rc == 0) {
			char *out = NULL;

			assert_int_equal(ckpt_tree_metadata_to_json(&out, t), 0);
			free(out);
		}
		ckpt_tree_free(t);
		free(js);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip),	cmocka_unit_test(test_roundtrip_small),
	    cmocka_unit_test(test_orbax_input), cmocka_unit_test(test_lenient_text),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_deep),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
