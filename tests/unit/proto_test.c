/*
 * proto_test.c — ProtoCheckpointHandler (ckpt/proto.h): description of a
 * real protoc-c type (tests/proto/example.proto), text format rendering and
 * parsing, save/restore through a real step, refusal of mismatching
 * descriptions, wire bytes and invalid text, and the item format.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cJSON.h>
#include <fcntl.h>
#include <unistd.h>

#include "example.pb-c.h"
#include "item_format.h"
#include "unit/treecmp.h"
#include "fsutil.h"

/* ---- a message using every field kind ---- */

struct msg_store {
	Example__Config c;
	Example__Config__Layer l1, l2, *layers[2];
	Example__Config__Schedule sch;
	Example__Config__CountsEntry e1, e2, *counts[2];
	int64_t shape1[3];
	float bounds[3];
	char *tags[3];
	int32_t dims[3];
	double losses[5];
	Example__Config__Mode modes[3];
	uint8_t blob[4];
};

static void fill_every_kind(struct msg_store *m)
{
	memset(m, 0, sizeof(*m));
	example__config__init(&m->c);
	example__config__layer__init(&m->l1);
	example__config__layer__init(&m->l2);
	example__config__schedule__init(&m->sch);
	example__config__counts_entry__init(&m->e1);
	example__config__counts_entry__init(&m->e2);
	m->c.name = "resnet \"50\"\n\tüber";
	m->c.step = INT64_MIN;
	m->c.seed = UINT64_MAX;
	m->c.offset = -9007199254740993LL; /* not a double */
	m->c.batch_size = INT32_MIN;
	m->c.epochs = UINT32_MAX;
	m->c.delta = -7;
	m->c.tokens = 0x8000000000000001ULL;
	m->c.shift = -2;
	m->c.dropout = 0.1f;
	m->c.learning_rate = 3e-310; /* subnormal */
	m->c.use_bf16 = 1;
	memcpy(m->blob, "\0\377\\'", 4);
	m->c.blob = (ProtobufCBinaryData){4, m->blob};
	m->c.mode = EXAMPLE__CONFIG__MODE__EVAL;
	m->c.optimizer = EXAMPLE__OPTIMIZER__ADAMW;
	m->l1.name = "dense";
	m->l1.units = 128;
	m->l1.dropout = -0.0f;
	m->shape1[0] = 3, m->shape1[1] = -1, m->shape1[2] = INT64_MAX;
	m->l1.n_shape = 3;
	m->l1.shape = m->shape1;
	m->l2.name = "";
	m->l2.units = 7;
	m->layers[0] = &m->l1, m->layers[1] = &m->l2;
	m->c.n_layers = 2;
	m->c.layers = m->layers;
	m->sch.learning_rate = 0.1;
	m->sch.warmup_steps = 1000;
	m->bounds[0] = 1.5f, m->bounds[1] = INFINITY, m->bounds[2] = 1e-45f;
	m->sch.n_boundaries = 3;
	m->sch.boundaries = m->bounds;
	m->c.schedule = &m->sch;
	m->tags[0] = "a", m->tags[1] = "", m->tags[2] = "c d";
	m->c.n_tags = 3;
	m->c.tags = m->tags;
	m->dims[0] = 1, m->dims[1] = -1, m->dims[2] = INT32_MAX;
	m->c.n_dims = 3;
	m->c.dims = m->dims;
	m->losses[0] = 0.1, m->losses[1] = -INFINITY, m->losses[2] = NAN, m->losses[3] = -0.0;
	m->losses[4] = 1e300;
	m->c.n_losses = 5;
	m->c.losses = m->losses;
	m->e1.key = "x", m->e1.value = 1;
	m->e2.key = "y", m->e2.value = -2;
	m->counts[0] = &m->e1, m->counts[1] = &m->e2;
	m->c.n_counts = 2;
	m->c.counts = m->counts;
	m->c.source_case = EXAMPLE__CONFIG__SOURCE_DATASET_ID;
	m->c.dataset_id = -42;
	m->c.checksum = 0xdeadbeef;
	m->c.origin = INT64_MIN + 1;
	m->modes[0] = EXAMPLE__CONFIG__MODE__TRAIN, m->modes[1] = 7, m->modes[2] = -1;
	m->c.n_modes = 3;
	m->c.modes = m->modes;
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
	uint8_t *buf = malloc(protobuf_c_message_get_packed_size(m) + 1);
	assert_non_null(buf);
	*len = protobuf_c_message_pack(m, buf);
	return buf;
}

static char *describe(const ProtobufCMessageDescriptor *d)
{
	char *json = NULL;
	int rc = ckpt_proto_describe(&json, d);
	if (rc)
		fail_msg("describe: %s", ckpt_error_last());
	return json;
}

static void assert_msg_contains(const char *needle)
{
	if (!strstr(ckpt_error_last(), needle))
		fail_msg("message \"%s\" lacks \"%s\"", ckpt_error_last(), needle);
}

/* ---- description ---- */

static void test_describe(void **state)
{
	char *json = describe(&example__config__descriptor);
	cJSON *root = cJSON_Parse(json), *msgs, *cfg, *f;
	int found_dims = 0, found_counts = 0;

	assert_non_null(root);
	assert_string_equal(cJSON_GetObjectItem(root, "message")->valuestring, "example.Config");
	msgs = cJSON_GetObjectItem(root, "messages");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(
	    cJSON_GetObjectItem(msgs, "example.Config.CountsEntry"), "map_entry")));
	assert_null(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(msgs, "example.Config.Layer"), "map_entry"));
	assert_non_null(cJSON_GetObjectItem(msgs, "example.Config.Schedule"));
	assert_non_null(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(root, "enums"), "example.Optimizer"));
	assert_non_null(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(root, "enums"), "example.Config.Mode"));
	cfg = cJSON_GetObjectItem(cJSON_GetObjectItem(msgs, "example.Config"), "fields");
	assert_int_equal(cJSON_GetArraySize(cfg), example__config__descriptor.n_fields);
	cJSON_ArrayForEach(f, cfg)
	{
		const char *name = cJSON_GetObjectItem(f, "name")->valuestring;
		if (!strcmp(name, "dims")) {
			found_dims = 1;
			assert_true(cJSON_IsTrue(cJSON_GetObjectItem(f, "packed")));
			assert_string_equal(cJSON_GetObjectItem(f, "label")->valuestring,
					    "repeated");
			assert_string_equal(cJSON_GetObjectItem(f, "type")->valuestring, "int32");
		}
		if (!strcmp(name, "counts")) {
			found_counts = 1;
			assert_string_equal(cJSON_GetObjectItem(f, "type_name")->valuestring,
					    "example.Config.CountsEntry");
		}
		if (!strcmp(name, "dataset_id"))
			assert_string_equal(cJSON_GetObjectItem(f, "oneof")->valuestring, "path");
	}
	assert_true(found_dims && found_counts);
	cJSON_Delete(root);
	free(json);
}

struct bad_desc {
	const char *json, *needle;
};

static void test_bad_descriptions(void **state)
{
	static const struct bad_desc cases[] = {
	    {"{", "not valid JSON"},
	    {"{\"format\":2,\"message\":\"a.M\",\"messages\":{}}", "format 2"},
	    {"{\"format\":1,\"message\":\"a.M\",\"messages\":{}}", "a.M is not described"},
	    {"{\"format\":1,\"message\":\"a.M\",\"messages\":{\"a.M\":{\"fields\":[{\"name\":\"x\","
	     "\"number\":1,\"label\":\"optional\",\"type\":\"int33\"}]}}}",
	     "unknown \"type\" int33"},
	    {"{\"format\":1,\"message\":\"a.M\",\"messages\":{\"a.M\":{\"fields\":[{\"name\":\"x\","
	     "\"number\":1,\"label\":\"optional\",\"type\":\"message\"}]}}}",
	     "without a valid \"type_name\""},
	    {"{\"format\":1,\"message\":\"a.M\",\"messages\":{\"a.M\":{\"fields\":[{\"name\":\"x\","
	     "\"number\":1,\"label\":\"optional\",\"type\":\"message\",\"type_name\":\"a.N\"}]}}}",
	     "a.N is not described"},
	    {"{\"format\":1,\"message\":\"a.M\",\"messages\":{\"a.M\":{\"fields\":[{\"name\":\"x\","
	     "\"number\":1,\"label\":\"optional\",\"type\":\"int32\"},{\"name\":\"y\",\"number\":1,"
	     "\"label\":\"optional\",\"type\":\"int32\"}]}}}",
	     "both have number 1"},
	    {"{\"format\":1,\"message\":\"a.M\",\"messages\":{\"a.M\":{\"fields\":[{\"name\":\"x\","
	     "\"number\":536870912,\"label\":\"optional\",\"type\":\"int32\"}]}}}",
	     "\"number\" must be an integer"},
	    {"{\"format\":1,\"message\":\"a.M\",\"messages\":{\"a.M\":{\"fields\":[{\"name\":\"x\","
	     "\"number\":0,\"label\":\"optional\",\"type\":\"int32\"}]}}}",
	     "\"number\" must be an integer"},
	    {"{\"format\":1,\"message\":\"a.M\",\"messages\":{\"a.M\":{\"fields\":[{\"name\":\"x "
	     "y\","
	     "\"number\":1,\"label\":\"optional\",\"type\":\"int32\"}]}}}",
	     "no valid \"name\""},
	    {"{\"format\":1,\"message\":\"a.M\",\"messages\":{\"a.M\":{\"fields\":[]},"
	     "\"a.M\":{\"fields\":[]}}}",
	     "described twice"},
	    {"{\"format\":1,\"message\":\"a.M\",\"messages\":{\"a.M\":{\"fields\":[{\"name\":\"x\","
	     "\"number\":1,\"label\":\"optional\",\"type\":\"string\",\"packed\":true}]}}}",
	     "can be packed"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *text = (char *)"x";
		int rc = ckpt_proto_to_text(&text, cases[i].json, strlen(cases[i].json), "", 0);
		assert_true(rc == CKPT_EINVAL || rc == CKPT_EVERSION);
		assert_null(text);
		assert_msg_contains(cases[i].needle);
	}
}

/* ---- text format ---- */

static const char expected_text[] = "name: \"resnet \\\"50\\\"\\n\\tb\\303\\274ber\"\n"
				    "step: -9223372036854775808\n"
				    "seed: 18446744073709551615\n"
				    "offset: -9007199254740993\n"
				    "batch_size: -2147483648\n"
				    "epochs: 4294967295\n"
				    "delta: -7\n"
				    "tokens: 9223372036854775809\n"
				    "shift: -2\n"
				    "dropout: 0.1\n"
				    "learning_rate: 3e-310\n"
				    "use_bf16: true\n"
				    "blob: \"\\000\\377\\\\\\'\"\n"
				    "mode: EVAL\n"
				    "optimizer: ADAMW\n"
				    "layers {\n"
				    "  name: \"dense\"\n"
				    "  units: 128\n"
				    "  shape: 3\n"
				    "  shape: -1\n"
				    "  shape: 9223372036854775807\n"
				    "}\n"
				    "layers {\n"
				    "  units: 7\n"
				    "}\n"
				    "schedule {\n"
				    "  learning_rate: 0.1\n"
				    "  warmup_steps: 1000\n"
				    "  boundaries: 1.5\n"
				    "  boundaries: inf\n"
				    "  boundaries: 1e-45\n"
				    "}\n"
				    "tags: \"a\"\n"
				    "tags: \"\"\n"
				    "tags: \"c d\"\n"
				    "dims: 1\n"
				    "dims: -1\n"
				    "dims: 2147483647\n"
				    "losses: 0.1\n"
				    "losses: -inf\n"
				    "losses: nan\n"
				    "losses: -0\n"
				    "losses: 1e+300\n"
				    "counts {\n"
				    "  key: \"x\"\n"
				    "  value: 1\n"
				    "}\n"
				    "counts {\n"
				    "  key: \"y\"\n"
				    "  value: -2\n"
				    "}\n"
				    "dataset_id: -42\n"
				    "checksum: 3735928559\n"
				    "origin: -9223372036854775807\n"
				    "modes: TRAIN\n"
				    "modes: 7\n"
				    "modes: -1\n";

static void test_render_known(void **state)
{
	struct msg_store m;
	char *desc = describe(&example__config__descriptor), *text = NULL;
	size_t len;
	uint8_t *wire;

	fill_every_kind(&m);
	m.c.name = "resnet \"50\"\n\tb\xc3\xbc"
		   "ber";
	wire = pack(&m.c.base, &len);
	if (ckpt_proto_to_text(&text, desc, strlen(desc), wire, len))
		fail_msg("to_text: %s", ckpt_error_last());
	assert_string_equal(text, expected_text);
	free(text);
	free(wire);
	free(desc);
}

/* text -> wire equals protobuf-c's own packing; wire -> text -> wire is stable. */
static void test_text_roundtrip(void **state)
{
	struct msg_store m;
	char *desc = describe(&example__config__descriptor), *text = NULL, *text2 = NULL;
	void *wire2 = NULL;
	size_t len, len2;
	uint8_t *wire;

	fill_every_kind(&m);
	wire = pack(&m.c.base, &len);
	assert_int_equal(ckpt_proto_to_text(&text, desc, strlen(desc), wire, len), 0);
	if (ckpt_proto_from_text(&wire2, &len2, desc, strlen(desc), text, strlen(text), "t"))
		fail_msg("from_text: %s", ckpt_error_last());
	assert_int_equal(len2, len);
	assert_memory_equal(wire2, wire, len);
	assert_int_equal(ckpt_proto_to_text(&text2, desc, strlen(desc), wire2, len2), 0);
	assert_string_equal(text2, text);
	free(text);
	free(text2);
	free(wire);
	free(wire2);
	free(desc);
}

/* The liberties of the parser give the same bytes as the canonical text. */
static void test_parse_liberties(void **state)
{
	static const char canon[] =
	    "name: \"ab\"\nstep: 16\nseed: 8\ndropout: 1.5\nuse_bf16: "
	    "true\nmode: TRAIN\nlayers {\n  units: 1\n}\nlayers {\n  units: "
	    "2\n}\ntags: \"x\"\ntags: \"y\"\ntags: \"\\303\\274?\\001\"\ndims: 1\ndims: 2\nlosses: "
	    "inf\n";
	static const char loose[] = "# a comment\nname: 'a' \"b\" ; step: 0x10, seed: 010\n"
				    "dropout: 1.5f use_bf16: t mode: 1\nlayers < units: 1 >\n"
				    "layers: { units: 2 }\ntags: [\"\\x78\", '\\171']\n"
				    "tags: \"\\u00fc\\?\\1\" dims: [1, 2]\n"
				    "losses: [] losses: [Infinity] # end\n";
	char *desc = describe(&example__config__descriptor);
	void *w1 = NULL, *w2 = NULL;
	size_t l1, l2;

	assert_int_equal(
	    ckpt_proto_from_text(&w1, &l1, desc, strlen(desc), canon, strlen(canon), "canon"), 0);
	if (ckpt_proto_from_text(&w2, &l2, desc, strlen(desc), loose, strlen(loose), "loose"))
		fail_msg("loose: %s", ckpt_error_last());
	assert_int_equal(l1, l2);
	assert_memory_equal(w1, w2, l1);
	free(w1);
	free(w2);
	free(desc);
}

struct bad_text {
	const char *text, *error;
};

static void test_invalid_text(void **state)
{
	static const struct bad_text cases[] = {
	    {"name: \"a\"\nstep: 5\n  nmae: 3\n",
	     "p.pbtxt:3:3: unknown field \"nmae\" in example.Config"},
	    {"batch_size: 3000000000", "p.pbtxt:1:13: value out of range for int32"},
	    {"batch_size: -2147483649", "p.pbtxt:1:13: value out of range for int32"},
	    {"seed: -1", "p.pbtxt:1:7: value out of range for uint64"},
	    {"seed: 18446744073709551616", "p.pbtxt:1:7: value out of range for uint64"},
	    {"step: abc", "p.pbtxt:1:7: expected integer"},
	    {"step: 1.5", "p.pbtxt:1:7: expected integer"},
	    {"dropout: x1", "p.pbtxt:1:10: expected number"},
	    {"layers {\n  units: 1\n", "p.pbtxt:3:1: expected '}'"},
	    {"name: \"abc\nstep: 1", "p.pbtxt:1:7: unterminated string"},
	    {"name: \"a\\qb\"", "p.pbtxt:1:9: invalid escape"},
	    {"mode: FOO", "p.pbtxt:1:7: unknown value \"FOO\" for enum example.Config.Mode"},
	    {"name: \"a\" name: \"b\"", "p.pbtxt:1:11: non-repeated field \"name\" given twice"},
	    {"path: \"a\"\ndataset_id: 3",
	     "p.pbtxt:2:1: fields \"path\" and \"dataset_id\" are in the same oneof"},
	    {"use_bf16: maybe", "p.pbtxt:1:11: expected true or false"},
	    {"name 5", "p.pbtxt:1:6: expected ':'"},
	    {"name: 5", "p.pbtxt:1:7: expected a quoted string"},
	    {"schedule: 5", "p.pbtxt:1:11: expected '{'"},
	    {"}", "p.pbtxt:1:1: expected a field name"},
	    {"step: 1 @", "p.pbtxt:1:9: unexpected character '@'"},
	    {"name: [\"a\"]", "p.pbtxt:1:7: a list for non-repeated field"},
	    {"dims: [1 2]", "p.pbtxt:1:10: expected ',' or ']'"},
	};
	char *desc = describe(&example__config__descriptor);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		void *wire = (void *)1;
		size_t len = 1;
		int rc = ckpt_proto_from_text(&wire, &len, desc, strlen(desc), cases[i].text,
					      strlen(cases[i].text), "p.pbtxt");
		assert_int_equal(rc, CKPT_EINVAL);
		assert_null(wire);
		assert_int_equal(len, 0);
		if (strncmp(ckpt_error_last(), cases[i].error, strlen(cases[i].error)))
			fail_msg("case %zu: got \"%s\", want \"%s...\"", i, ckpt_error_last(),
				 cases[i].error);
	}
	free(desc);
}

static void test_required_and_depth(void **state)
{
	static const char req[] =
	    "{\"format\":1,\"message\":\"t.R\",\"messages\":{\"t.R\":{\"fields\":[{\"name\":\"a\","
	    "\"number\":1,\"label\":\"required\",\"type\":\"int32\"},{\"name\":\"r\",\"number\":2,"
	    "\"label\":\"optional\",\"type\":\"message\",\"type_name\":\"t.R\"}]}}}";
	char text[2048];
	void *wire = NULL;
	size_t len = 0, n = 0;

	assert_int_equal(
	    ckpt_proto_from_text(&wire, &len, req, strlen(req), "a: 1\nr {\n}\n", 11, "q"),
	    CKPT_EINVAL);
	assert_string_equal(ckpt_error_last(), "q:3:1: required field \"a\" of t.R is missing");
	/* 101 nested messages: refused, not a stack overflow. */
	for (int i = 0; i < 101; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "a: 1 r {");
	assert_int_equal(ckpt_proto_from_text(&wire, &len, req, strlen(req), text, n, "q"),
			 CKPT_EINVAL);
	assert_msg_contains("nested deeper than 100");
	/* Wire bytes nested 101 deep (a: 1 r { a: 1 r { ... } }): refused too. */
	uint8_t deep[1024];
	size_t dl = 0;
	for (int i = 0; i < 101; i++) { /* wrap: a: 1, tag of r, varint length, inner bytes */
		size_t hl = dl < 128 ? 4 : 5;
		memmove(deep + hl, deep, dl);
		memcpy(deep, "\x08\x01\x12", 3);
		deep[3] = (uint8_t)(dl < 128 ? dl : (dl & 0x7f) | 0x80);
		if (hl == 5)
			deep[4] = (uint8_t)(dl >> 7);
		dl += hl;
	}
	char *out = NULL;
	assert_int_equal(ckpt_proto_to_text(&out, req, strlen(req), deep, dl), CKPT_EINVAL);
	assert_msg_contains("nested deeper than 100");
}

static void test_wire_mismatch(void **state)
{
	struct msg_store m;
	char *ldesc = describe(&example__config__layer__descriptor), *text = NULL;
	char *cdesc = describe(&example__config__descriptor);
	size_t len;
	uint8_t *wire;
	/* field 4 (shape, int64) given as fixed32; a length past the end; a bad varint */
	static const uint8_t wrong_type[] = {0x10, 0x01, 0x25, 1, 2, 3, 4};
	static const uint8_t too_long[] = {0x0a, 0x05, 'a'};
	static const uint8_t bad_varint[] = {0x10, 0xff, 0xff};

	fill_every_kind(&m);
	example__config__init(&m.c);
	m.c.batch_size = 3;
	wire = pack(&m.c.base, &len);
	/* Config's bytes read as a Layer: field 5 (batch_size) is no field of Layer. */
	assert_int_equal(ckpt_proto_to_text(&text, ldesc, strlen(ldesc), wire, len), CKPT_EINVAL);
	assert_null(text);
	assert_msg_contains("does not match the description: field number 5 at byte offset 0: not "
			    "a field of example.Config.Layer");
	assert_int_equal(
	    ckpt_proto_to_text(&text, ldesc, strlen(ldesc), wrong_type, sizeof(wrong_type)),
	    CKPT_EINVAL);
	assert_msg_contains(
	    "field example.Config.Layer.shape (number 4) at byte offset 2: wrong wire type");
	assert_int_equal(
	    ckpt_proto_to_text(&text, ldesc, strlen(ldesc), too_long, sizeof(too_long)),
	    CKPT_EINVAL);
	assert_msg_contains("bad length");
	assert_int_equal(
	    ckpt_proto_to_text(&text, cdesc, strlen(cdesc), bad_varint, sizeof(bad_varint)),
	    CKPT_EINVAL);
	assert_msg_contains("bad varint");
	free(wire);
	free(ldesc);
	free(cdesc);
}

/* Wire bytes as protobuf reads them: the last of a oneof or of a repeated
 * non-repeated field counts; a required field must be there. */
static void test_wire_last_wins(void **state)
{
	static const char req[] =
	    "{\"format\":1,\"message\":\"t.R\",\"messages\":{\"t.R\":{\"fields\":[{\"name\":\"a\","
	    "\"number\":1,\"label\":\"required\",\"type\":\"int32\"}]}}}";
	/* dataset_id = 3, path = "p", dataset_id = 4, name "a", name "b" */
	static const uint8_t both[] = {0xb8, 0x01, 3,	 0xb2, 0x01, 1,	   'p', 0xb8,
				       0x01, 4,	   0x0a, 1,    'a',  0x0a, 1,	'b'};
	char *cdesc = describe(&example__config__descriptor), *text = NULL;

	assert_int_equal(ckpt_proto_to_text(&text, cdesc, strlen(cdesc), both, sizeof(both)), 0);
	assert_string_equal(text, "name: \"b\"\ndataset_id: 4\n");
	free(text);
	assert_int_equal(ckpt_proto_to_text(&text, req, strlen(req), "", 0), CKPT_EINVAL);
	assert_msg_contains("required field t.R.a is missing");
	assert_int_equal(ckpt_proto_to_text(&text, req, strlen(req), "\x08\x05", 2), 0);
	assert_string_equal(text, "a: 5\n");
	free(text);
	free(cdesc);
}

/* ---- through a real step ---- */

struct fx {
	char *root;
	char dir[512];
	ckpt_handler *h;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f || !(f->root = test_tmpdir()) || ckpt_proto_handler_new(&f->h, NULL))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	ckpt_rmtree(f->root);
	free(f->root);
	ckpt_handler_free(f->h);
	free(f);
	return 0;
}

/* Save msg as item "config" of step `step` (with the handler, or with raw
 * keys desc/text when msg is NULL). */
static void save_step(struct fx *f, uint64_t step, const ProtobufCMessage *msg, const char *desc,
		      const char *text)
{
	ckpt_step_writer *w = NULL;

	assert_int_equal(ckpt_step_writer_open(&w, f->root, step, NULL), 0);
	assert_int_equal(ckpt_step_writer_add_item(w, "config", CKPT_PROTO_TYPESTR), 0);
	if (msg) {
		if (ckpt_handler_save(f->h, w, "config", msg))
			fail_msg("save: %s", ckpt_error_last());
	} else {
		ckpt_batch *b = ckpt_step_writer_batch(w);
		assert_int_equal(
		    ckpt_batch_put(b, "config/descriptor.json", 22, desc, strlen(desc), NULL), 0);
		assert_int_equal(
		    ckpt_batch_put(b, "config/proto.pbtxt", 18, text, strlen(text), NULL), 0);
	}
	assert_int_equal(ckpt_step_writer_finalize(w), 0);
	snprintf(f->dir, sizeof(f->dir), "%s/%llu", f->root, (unsigned long long)step);
}

static int restore_step(struct fx *f, void **out, const ProtobufCMessageDescriptor *d)
{
	ckpt_step *s = NULL;
	int rc;

	assert_int_equal(ckpt_step_open(&s, f->dir, NULL), 0);
	rc = ckpt_handler_restore(out, f->h, s, "config", d);
	ckpt_step_free(s);
	return rc;
}

static void test_save_restore(void **state)
{
	struct fx *f = *state;
	struct msg_store m;
	ProtobufCMessage *back = NULL;
	uint8_t *w1, *w2;
	size_t l1, l2;
	ckpt_step *s = NULL;
	char *meta = NULL, *desc = describe(&example__config__descriptor), *text = NULL;
	size_t tlen;

	fill_every_kind(&m);
	save_step(f, 1, &m.c.base, NULL, NULL);
	if (restore_step(f, (void **)&back, &example__config__descriptor))
		fail_msg("restore: %s", ckpt_error_last());
	w1 = pack(&m.c.base, &l1);
	w2 = pack(back, &l2);
	assert_int_equal(l1, l2);
	assert_memory_equal(w1, w2, l1);
	{ /* a few fields by value, beyond the bytes */
		const Example__Config *c = (const Example__Config *)back;
		assert_string_equal(c->name, m.c.name);
		assert_int_equal(c->n_counts, 2);
		assert_string_equal(c->counts[1]->key, "y");
		assert_true(c->seed == UINT64_MAX && c->step == INT64_MIN);
		assert_int_equal(c->source_case, EXAMPLE__CONFIG__SOURCE_DATASET_ID);
	}
	ckpt_handler_restored_free(f->h, back);

	/* The stored files: the text and the description, as written. */
	assert_int_equal(ckpt_step_open(&s, f->dir, NULL), 0);
	assert_int_equal(
	    ckpt_store_get((void **)&text, &tlen, ckpt_step_store(s), "config/proto.pbtxt", 18), 0);
	assert_true(tlen > 100 && !memcmp(text, "name: \"resnet", 13));
	assert_int_equal(ckpt_handler_metadata((void **)&meta, f->h, s, "config"), 0);
	assert_string_equal(meta, desc);
	ckpt_handler_metadata_free(f->h, meta);
	assert_int_equal(
	    ckpt_handler_restore((void **)&back, f->h, s, "nothing", &example__config__descriptor),
	    CKPT_ENOTFOUND);
	/* no type to unpack into: from neither the args nor the handler */
	assert_int_equal(ckpt_handler_restore((void **)&back, f->h, s, "config", NULL),
			 CKPT_EUNSUPPORTED);
	assert_non_null(strstr(ckpt_error_last(), "needs the message type"));
	ckpt_step_free(s);
	free(text);
	free(w1);
	free(w2);
	free(desc);
}

/* Change field `name` of example.Config in a description: set key to a
 * string (sval) or number (nval). */
static char *edit_desc(const char *name, const char *key, const char *sval, double nval)
{
	char *json = describe(&example__config__descriptor), *out;
	cJSON *root = cJSON_Parse(json), *f;

	cJSON_ArrayForEach(
	    f, cJSON_GetObjectItem(
		   cJSON_GetObjectItem(cJSON_GetObjectItem(root, "messages"), "example.Config"),
		   "fields"))
	{
		if (strcmp(cJSON_GetObjectItem(f, "name")->valuestring, name))
			continue;
		cJSON_ReplaceItemInObject(
		    f, key, sval ? cJSON_CreateString(sval) : cJSON_CreateNumber(nval));
	}
	out = cJSON_Print(root);
	cJSON_Delete(root);
	free(json);
	return out;
}

static void test_restore_mismatch(void **state)
{
	struct fx *f = *state;
	struct msg_store m;
	void *back = NULL;
	char *d_type = edit_desc("step", "type", "int32", 0);
	char *d_num = edit_desc("epochs", "number", NULL, 99);
	char *d_label = edit_desc("name", "label", "repeated", 0);

	save_step(f, 2, NULL, d_type, "step: 5\n");
	assert_int_equal(restore_step(f, &back, &example__config__descriptor), CKPT_EINVAL);
	assert_null(back);
	assert_msg_contains("stored description does not match example.Config: field "
			    "example.Config.step");
	assert_msg_contains("has another type");

	save_step(f, 3, NULL, d_num, "epochs: 5\n");
	assert_int_equal(restore_step(f, &back, &example__config__descriptor), CKPT_EINVAL);
	assert_msg_contains("field example.Config.epochs");
	assert_msg_contains("has another number");

	save_step(f, 4, NULL, d_label, "name: \"a\"\n");
	assert_int_equal(restore_step(f, &back, &example__config__descriptor), CKPT_EINVAL);
	assert_msg_contains("field example.Config.name");

	/* Another message. */
	fill_every_kind(&m);
	save_step(f, 5, &m.l1.base, NULL, NULL);
	assert_int_equal(restore_step(f, &back, &example__config__descriptor), CKPT_EINVAL);
	assert_msg_contains("stored description is of example.Config.Layer, not example.Config");
	if (restore_step(f, &back, &example__config__layer__descriptor))
		fail_msg("restore layer: %s", ckpt_error_last());
	assert_string_equal(((Example__Config__Layer *)back)->name, "dense");
	ckpt_handler_restored_free(f->h, back);

	/* A stored text that does not parse: refused with line and column. */
	char *desc = describe(&example__config__descriptor);
	save_step(f, 6, NULL, desc, "name: \"a\"\nstep: x\n");
	assert_int_equal(restore_step(f, &back, &example__config__descriptor), CKPT_EINVAL);
	assert_string_equal(ckpt_error_last(), "config/proto.pbtxt:2:7: expected integer for step");
	free(desc);
	free(d_type);
	free(d_num);
	free(d_label);
}

/* A message carrying fields its type does not describe: refused, nothing saved. */
static void test_save_unknown_fields(void **state)
{
	struct fx *f = *state;
	Example__Config c = EXAMPLE__CONFIG__INIT;
	uint8_t data[1] = {7};
	ProtobufCMessageUnknownField u = {99, PROTOBUF_C_WIRE_TYPE_VARINT, 1, data};
	ckpt_step_writer *w = NULL;

	c.base.n_unknown_fields = 1;
	c.base.unknown_fields = &u;
	assert_int_equal(ckpt_step_writer_open(&w, f->root, 7, NULL), 0);
	assert_int_equal(ckpt_handler_save(f->h, w, "config", &c), CKPT_EINVAL);
	assert_msg_contains("item config: example.Config: message does not match the description: "
			    "field number 99 at byte offset 0");
	assert_int_equal(ckpt_handler_save(f->h, w, "config", NULL), CKPT_EINVAL);
	ckpt_step_writer_abort(w);
}

static void test_handler_args(void **state)
{
	ckpt_handler *h = NULL;

	assert_int_equal(ckpt_proto_handler_new(&h, "descriptor.json"), CKPT_EINVAL);
	assert_int_equal(ckpt_proto_handler_new(&h, "a/b"), CKPT_EINVAL);
	assert_null(h);
	assert_int_equal(ckpt_proto_handler_new(&h, "cfg.txt"), 0);
	assert_string_equal(ckpt_handler_typestr(h), CKPT_PROTO_TYPESTR);
	ckpt_handler_free(h);
}

/* ---- the item format ---- */

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(ckpt_write_file(path, text, strlen(text)), 0);
}

static int check(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY), rc;

	assert_true(fd >= 0);
	rc = ckpt_proto_format.check_file(dirfd, name, fd, name);
	close(fd);
	return rc;
}

static void test_item_format(void **state)
{
	char *dir = test_tmpdir(), *desc = describe(&example__config__descriptor);
	int dfd;

	assert_non_null(dir);
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(dfd >= 0);
	assert_ptr_equal(item_format_find(CKPT_PROTO_TYPESTR), &ckpt_proto_format);
	write_file(dir, "cfg.pbtxt", "name: \"a\"\nlayers { units: 1 }\n");
	assert_int_equal(check(dfd, "cfg.pbtxt"), ITEM_CHECK_LATER);
	assert_msg_contains("descriptor.json missing");
	assert_int_equal(ckpt_proto_format.check_dir(dfd, "item"), CKPT_EINVAL);
	write_file(dir, "descriptor.json", desc);
	assert_int_equal(check(dfd, "descriptor.json"), 0);
	assert_int_equal(check(dfd, "cfg.pbtxt"), 0);
	assert_int_equal(ckpt_proto_format.check_dir(dfd, "item"), 0);
	assert_int_equal(item_format_check_dir(CKPT_PROTO_TYPESTR, dfd, "item"), 0);

	write_file(dir, "cfg.pbtxt", "name: \"a\"\nlayers { unit: 1 }\n");
	assert_int_equal(check(dfd, "cfg.pbtxt"), CKPT_EINVAL);
	assert_string_equal(ckpt_error_last(),
			    "cfg.pbtxt:2:10: unknown field \"unit\" in example.Config.Layer");
	write_file(dir, "cfg.pbtxt", "");
	write_file(dir, "other.txt", "");
	assert_int_equal(ckpt_proto_format.check_dir(dfd, "item"), CKPT_EINVAL);
	assert_msg_contains("a proto item holds");
	write_file(dir, "descriptor.json", "{\"format\": 1}");
	assert_int_equal(check(dfd, "descriptor.json"), CKPT_EINVAL);
	assert_msg_contains("descriptor.json: description: no valid \"message\"");
	assert_int_equal(check(dfd, "cfg.pbtxt"), CKPT_EINVAL);
	close(dfd);
	ckpt_rmtree(dir);
	free(dir);
	free(desc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_describe),
	    cmocka_unit_test(test_bad_descriptions),
	    cmocka_unit_test(test_render_known),
	    cmocka_unit_test(test_text_roundtrip),
	    cmocka_unit_test(test_parse_liberties),
	    cmocka_unit_test(test_invalid_text),
	    cmocka_unit_test(test_required_and_depth),
	    cmocka_unit_test(test_wire_mismatch),
	    cmocka_unit_test(test_wire_last_wins),
	    cmocka_unit_test_setup_teardown(test_save_restore, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restore_mismatch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_save_unknown_fields, setup, teardown),
	    cmocka_unit_test(test_handler_args),
	    cmocka_unit_test(test_item_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
