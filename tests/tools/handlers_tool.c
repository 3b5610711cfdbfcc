/*
 * handlers_tool.c — the library side of the handler end-to-end tests
 * (tests/e2e/handlers_*.sh): saves a composite step with every handler kind,
 * restores steps and compares them item by item, restores subsets, and
 * prints NumPy and JAX keys as the library parsed them.
 *
 *   handlers_tool save ROOT STEP              one step with items state, meta, w, s,
 *                                             cfg, jk, jku, nk, nkp
 *   handlers_tool compare STEPDIR_A STEPDIR_B exit 1 naming the first difference
 *   handlers_tool subset STEPDIR ITEM...      "bytes_read N", then "ITEM value|null"
 *   handlers_tool np-get STEPDIR ITEM         the state as JSON (legacy: the tuple)
 *   handlers_tool jax-get STEPDIR ITEM        "impl I" (or "untyped"), "shape a,b",
 *                                             "words w0 w1 ..."
 *
 * Exit status: 0 success, 1 failure or difference, 2 usage.
 *
 * Invariants:
 *  1. Every value is generated from fixed seeds: two runs of `save` give equal steps.
 *  2. Restores go through ckpt_composite_restore only; a proto item is restored
 *     with example.Config's descriptor, every other item with NULL args.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/ckpt.h"
#include "example.pb-c.h"

#include "../unit/treecmp.h"

#define BIG_ROWS 1024u
#define BIG_COLS 1280u /* float32: 5 MiB, random bits (zstd cannot shrink it below 4 MiB) */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rng_next(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

static int die(const char *what, int rc)
{
	fprintf(stderr, "handlers_tool: %s: %s (%s)\n", what, ckpt_error_last(),
		ckpt_error_name(rc));
	return 1;
}

/* ---- save ---- */

static int add_leaf(ckpt_tree *parent, const char *key, int rc, ckpt_tree *leaf)
{
	if (rc)
		return rc;
	return ckpt_tree_add(parent, key, leaf);
}

/* state: {params: {w: f32[1024,1280], b: f32[3]}, ids: i64[6], step: 1000, name: "run-α/1"} */
static int make_state(ckpt_tree **out)
{
	ckpt_tree *t = NULL, *params = NULL, *x = NULL;
	uint64_t big[2] = {BIG_ROWS, BIG_COLS}, three = 3, six = 6;
	float *w = malloc((size_t)BIG_ROWS * BIG_COLS * sizeof(float));
	const float b[3] = {0.5f, -1.25f, 3e-8f};
	const int64_t ids[6] = {0, -1, INT64_MIN, INT64_MAX, 42, -9000000000LL};
	int rc = 0;

	if (!w)
		return CKPT_ENOMEM;
	for (size_t i = 0; i < (size_t)BIG_ROWS * BIG_COLS; i++) {
		/* Clearing the exponent's top bit keeps every value finite (|v| < 2). */
		uint32_t bits = rng_next() & ~(UINT32_C(1) << 30);
		memcpy(&w[i], &bits, sizeof(bits));
	}
	if ((rc = ckpt_tree_new(&t, CKPT_TREE_DICT))) {
		free(w);
		return rc;
	}
	/* add_leaf: the parent owns the child from here, also on failure. */
	rc = ckpt_tree_new(&params, CKPT_TREE_DICT);
	rc = add_leaf(t, "params", rc, params);
	rc = rc ? (free(w), rc)
		: ckpt_tree_new_array(&x, CKPT_DTYPE_FLOAT32, 2, big, w, CKPT_TREE_OWN);
	rc = add_leaf(params, "w", rc, x);
	rc = rc ? rc
		: ckpt_tree_new_array(&x, CKPT_DTYPE_FLOAT32, 1, &three, (void *)b, CKPT_TREE_COPY);
	rc = add_leaf(params, "b", rc, x);
	rc = rc ? rc
		: ckpt_tree_new_array(&x, CKPT_DTYPE_INT64, 1, &six, (void *)ids, CKPT_TREE_COPY);
	rc = add_leaf(t, "ids", rc, x);
	rc = rc ? rc : ckpt_tree_new_int(&x, 1000);
	rc = add_leaf(t, "step", rc, x);
	rc = rc ? rc : ckpt_tree_new_string(&x, "run-\xce\xb1/1", 8);
	rc = add_leaf(t, "name", rc, x);
	if (rc) {
		ckpt_tree_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

/* Knuth's MT19937 seeding (init_genrand), as numpy's RandomState(seed) does. */
static void mt_seed(uint32_t key[624], uint32_t seed)
{
	key[0] = seed;
	for (uint32_t i = 1; i < 624; i++)
		key[i] = 1812433253u * (key[i - 1] ^ (key[i - 1] >> 30)) + i;
}

static const char PCG64_STATE[] =
    "{\"bit_generator\": \"PCG64\", \"state\": {\"state\": "
    "198759536914418991882705689078033079226, \"inc\": "
    "263843294879837360010514471918415607657}, \"has_uint32\": 1, \"uinteger\": 3433680739}";

static const char META_JSON[] =
    "{\"lr\": 0.001, \"big\": 123456789012345678901234567890, \"tags\": [\"a\", \"b\"],\n"
    " \"nested\": {\"x\": null, \"ok\": true}, \"unicode\": \"caf\xc3\xa9\"}\n";

static int cmd_save(const char *root, const char *step_s)
{
	Example__Config cfg = EXAMPLE__CONFIG__INIT;
	Example__Config__Layer l0 = EXAMPLE__CONFIG__LAYER__INIT, l1 = EXAMPLE__CONFIG__LAYER__INIT;
	Example__Config__Layer *layers[2] = {&l0, &l1};
	Example__Config__Schedule sched = EXAMPLE__CONFIG__SCHEDULE__INIT;
	Example__Config__CountsEntry c0 = EXAMPLE__CONFIG__COUNTS_ENTRY__INIT,
				     c1 = EXAMPLE__CONFIG__COUNTS_ENTRY__INIT;
	Example__Config__CountsEntry *counts[2] = {&c0, &c1};
	int64_t shape0[2] = {784, 512}, shape1[1] = {-1};
	float bounds[3] = {0.25f, 0.5f, 0.75f};
	char *tags[3] = {"baseline", "with space", "\xc3\xbcn\xc3\xaf"};
	int32_t dims[4] = {1, -2, 3, 2147483647};
	double losses[3] = {2.5, 1.0 / 3.0, -0.0};
	Example__Config__Mode modes[3] = {EXAMPLE__CONFIG__MODE__TRAIN, EXAMPLE__CONFIG__MODE__EVAL,
					  EXAMPLE__CONFIG__MODE__TRAIN};
	static const uint8_t blob[10] = {0x00, 0x01, 0xff, '"', '\\', '\n', 0x7f, 'A', 0x80, 0x1b};

	ckpt_registry *reg = NULL;
	ckpt_handler *h = NULL;
	ckpt_tree *state = NULL, *w = NULL, *s = NULL, *jkd = NULL, *jkud = NULL;
	ckpt_pytree_save_args pargs = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_jax_key jk = {0}, jku = {0};
	ckpt_np_key *nk = NULL;
	ckpt_np_key nkp = {0};
	uint64_t wshape[2] = {7, 13}, jkshape[1] = {2}, jkushape[2] = {3, 2};
	double wdata[7 * 13];
	uint32_t jkdata[2] = {0, 42}, jkudata[6] = {0, 1, 0xffffffffu, 7, 123456789, 0x80000000u};
	char *end = NULL;
	unsigned long long step = strtoull(step_s, &end, 10);
	int rc = 0, ret = 1;

	if (!*step_s || *end) {
		fprintf(stderr, "handlers_tool: bad step '%s'\n", step_s);
		return 2;
	}

	l0.name = "dense_0";
	l0.units = 512;
	l0.dropout = 0.1f;
	l0.n_shape = 2;
	l0.shape = shape0;
	l1.name = "";
	l1.units = -7;
	l1.n_shape = 1;
	l1.shape = shape1;
	sched.learning_rate = 3e-4;
	sched.warmup_steps = UINT64_MAX;
	sched.n_boundaries = 3;
	sched.boundaries = bounds;
	c0.key = "x";
	c0.value = 1;
	c1.key = "y z";
	c1.value = -2;
	cfg.name = "cfg \"test\"\tüber";
	cfg.step = -1234567890123LL;
	cfg.seed = 18446744073709551615ULL;
	cfg.offset = -7;
	cfg.batch_size = 256;
	cfg.epochs = 4000000000u;
	cfg.delta = -3;
	cfg.tokens = 1ULL << 40;
	cfg.shift = -9;
	cfg.dropout = 0.1f;
	cfg.learning_rate = 1e-300;
	cfg.use_bf16 = 1;
	cfg.blob.len = sizeof(blob);
	cfg.blob.data = (uint8_t *)blob;
	cfg.mode = EXAMPLE__CONFIG__MODE__EVAL;
	cfg.optimizer = EXAMPLE__OPTIMIZER__ADAMW;
	cfg.n_layers = 2;
	cfg.layers = layers;
	cfg.schedule = &sched;
	cfg.n_tags = 3;
	cfg.tags = tags;
	cfg.n_dims = 4;
	cfg.dims = dims;
	cfg.n_losses = 3;
	cfg.losses = losses;
	cfg.n_counts = 2;
	cfg.counts = counts;
	cfg.source_case = EXAMPLE__CONFIG__SOURCE_PATH;
	cfg.path = "/data/train-*.tfrecord";
	cfg.checksum = 0xdeadbeefu;
	cfg.origin = INT64_MIN;
	cfg.n_modes = 3;
	cfg.modes = modes;

	for (size_t i = 0; i < 7 * 13; i++)
		wdata[i] = (double)i * 0.5 - 3.25;

	nk = calloc(1, sizeof(*nk));
	if (!nk)
		goto done;
	nk->legacy = 1;
	mt_seed(nk->mt.key, 1234);
	nk->mt.pos = 17;
	nk->mt.has_gauss = 1;
	nk->mt.cached_gaussian = -0.12345678901234566;
	nkp.legacy = 0;
	nkp.state_json = (char *)PCG64_STATE;

	if ((rc = make_state(&state)) ||
	    (rc = ckpt_tree_new_array(&w, CKPT_DTYPE_FLOAT64, 2, wshape, wdata, CKPT_TREE_COPY)) ||
	    (rc = ckpt_tree_new_float(&s, 0.001)) ||
	    (rc = ckpt_tree_new_array(&jkd, CKPT_DTYPE_UINT32, 1, jkshape, jkdata,
				      CKPT_TREE_COPY)) ||
	    (rc = ckpt_tree_new_array(&jkud, CKPT_DTYPE_UINT32, 2, jkushape, jkudata,
				      CKPT_TREE_COPY))) {
		die("building the items", rc);
		goto done;
	}
	jk.impl = "threefry2x32";
	jk.data = jkd;
	jku.impl = NULL;
	jku.data = jkud;
	pargs.item = state;

	/* Some items registered explicitly, the others resolved from their args' type. */
	if ((rc = ckpt_registry_new(&reg))) {
		die("ckpt_registry_new", rc);
		goto done;
	}
	if ((rc = ckpt_pytree_handler_new(&h)) || (rc = ckpt_registry_add(reg, "state", h))) {
		die("registering state", rc);
		goto done;
	}
	if ((rc = ckpt_proto_handler_new(&h, NULL)) || (rc = ckpt_registry_add(reg, "cfg", h))) {
		die("registering cfg", rc);
		goto done;
	}
	if ((rc = ckpt_np_key_handler_new(&h, NULL)) || (rc = ckpt_registry_add(reg, "nk", h))) {
		die("registering nk", rc);
		goto done;
	}

	const ckpt_composite_arg items[] = {
	    {"state", NULL, &pargs},
	    {"meta", CKPT_JSON_TYPESTR, META_JSON},
	    {"w", CKPT_ARRAY_TYPESTR, w},
	    {"s", CKPT_ARRAY_TYPESTR, s},
	    {"cfg", CKPT_PROTO_TYPESTR, &cfg},
	    {"jk", CKPT_JAX_KEY_TYPESTR, &jk},
	    {"jku", CKPT_JAX_KEY_TYPESTR, &jku},
	    {"nk", NULL, nk},
	    {"nkp", CKPT_NP_KEY_TYPESTR, &nkp},
	};
	rc = ckpt_composite_save_step(root, step, reg, items, sizeof(items) / sizeof(items[0]),
				      NULL);
	if (rc) {
		die("ckpt_composite_save_step", rc);
		goto done;
	}
	ret = 0;
done:
	ckpt_registry_free(reg);
	ckpt_tree_free(state);
	ckpt_tree_free(w);
	ckpt_tree_free(s);
	ckpt_tree_free(jkd);
	ckpt_tree_free(jkud);
	free(nk);
	return ret;
}

/* ---- restore ---- */

/* A step's items restored through a registry of its own; restored_free frees all. */
struct restored {
	ckpt_registry *reg;
	ckpt_step *s;
	ckpt_composite_result *res;
};

static void restored_free(struct restored *r)
{
	ckpt_composite_result_free(r->res);
	ckpt_step_free(r->s);
	ckpt_registry_free(r->reg);
}

/*
 * Restore the chosen items of the step in dir (all of them: names NULL) into
 * *r, which restored_free frees whether this succeeds or not.
 */
static int restore(struct restored *r, const char *dir, char *const *names, size_t n)
{
	ckpt_composite_arg *items;
	int rc;

	memset(r, 0, sizeof(*r));
	if ((rc = ckpt_registry_new(&r->reg)))
		return die("ckpt_registry_new", rc);
	if ((rc = ckpt_step_open(&r->s, dir, NULL)))
		return die(dir, rc);
	if (!names)
		n = ckpt_step_item_count(r->s);
	if (!(items = calloc(n ? n : 1, sizeof(*items))))
		return 1;
	for (size_t i = 0; i < n; i++) {
		size_t idx = 0;
		items[i].item = names ? names[i] : ckpt_step_item_name(r->s, i);
		if (ckpt_step_item_find(&idx, r->s, items[i].item) == 0 &&
		    !strcmp(ckpt_step_item_typestr(r->s, idx), CKPT_PROTO_TYPESTR))
			items[i].args = &example__config__descriptor;
	}
	rc = ckpt_composite_restore(&r->res, r->reg, r->s, items, n);
	free(items);
	return rc ? die(dir, rc) : 0;
}

static int differ(const char *item, const char *why)
{
	fprintf(stderr, "handlers_tool: item %s differs: %s\n", item, why);
	return 1;
}

static int cmp_proto(const char *item, const ProtobufCMessage *a, const ProtobufCMessage *b)
{
	size_t la = protobuf_c_message_get_packed_size(a);
	size_t lb = protobuf_c_message_get_packed_size(b);
	uint8_t *pa = malloc(la + 1), *pb = malloc(lb + 1);
	int ret = 1;

	if (!pa || !pb)
		goto done;
	if (protobuf_c_message_pack(a, pa) != la || protobuf_c_message_pack(b, pb) != lb)
		goto done;
	if (la != lb || memcmp(pa, pb, la)) {
		fprintf(stderr, "handlers_tool: item %s differs: packed %zu vs %zu bytes\n", item,
			la, lb);
		goto done;
	}
	ret = 0;
done:
	free(pa);
	free(pb);
	return ret;
}

static int cmp_value(const char *item, const char *typestr, const void *a, const void *b)
{
	if (!a || !b)
		return differ(item, a ? "missing in B" : "missing in A");
	if (!strcmp(typestr, CKPT_PYTREE_TYPESTR) || !strcmp(typestr, CKPT_STANDARD_TYPESTR) ||
	    !strcmp(typestr, CKPT_ARRAY_TYPESTR))
		return test_tree_cmp(a, b, item) ? differ(item, "trees differ") : 0;
	if (!strcmp(typestr, CKPT_JSON_TYPESTR))
		return strcmp(a, b) ? differ(item, "JSON text") : 0;
	if (!strcmp(typestr, CKPT_PROTO_TYPESTR))
		return cmp_proto(item, a, b);
	if (!strcmp(typestr, CKPT_JAX_KEY_TYPESTR)) {
		const ckpt_jax_key *ka = a, *kb = b;
		if (!ka->impl != !kb->impl || (ka->impl && strcmp(ka->impl, kb->impl)))
			return differ(item, "impl");
		return test_tree_cmp(ka->data, kb->data, item) ? differ(item, "key data") : 0;
	}
	if (!strcmp(typestr, CKPT_NP_KEY_TYPESTR)) {
		const ckpt_np_key *ka = a, *kb = b;
		if (ka->legacy != kb->legacy)
			return differ(item, "legacy flag");
		if (!ka->legacy)
			return strcmp(ka->state_json, kb->state_json) ? differ(item, "state JSON")
								      : 0;
		if (memcmp(ka->mt.key, kb->mt.key, sizeof(ka->mt.key)))
			return differ(item, "MT19937 key");
		if (ka->mt.pos != kb->mt.pos || ka->mt.has_gauss != kb->mt.has_gauss)
			return differ(item, "pos or has_gauss");
		if (memcmp(&ka->mt.cached_gaussian, &kb->mt.cached_gaussian, sizeof(double)))
			return differ(item, "cached_gaussian");
		return 0;
	}
	return differ(item, "unknown handler");
}

static int cmd_compare(const char *da, const char *db)
{
	struct restored ra, rb = {0};
	ckpt_composite_result *a, *b;
	int ret = 1;

	if (restore(&ra, da, NULL, 0) || restore(&rb, db, NULL, 0))
		goto done;
	a = ra.res;
	b = rb.res;
	size_t n = ckpt_composite_result_count(a);
	if (n != ckpt_composite_result_count(b)) {
		fprintf(stderr, "handlers_tool: %zu items vs %zu\n", n,
			ckpt_composite_result_count(b));
		goto done;
	}
	if (n == 0) {
		fprintf(stderr, "handlers_tool: no items in %s\n", da);
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		const char *item = ckpt_composite_result_item(a, i);
		const char *ts = ckpt_composite_result_typestr(a, i);
		size_t j = 0;
		while (j < n && strcmp(ckpt_composite_result_item(b, j), item))
			j++;
		if (j == n) {
			fprintf(stderr, "handlers_tool: item %s missing in %s\n", item, db);
			goto done;
		}
		if (strcmp(ts, ckpt_composite_result_typestr(b, j))) {
			differ(item, "handler typestr");
			goto done;
		}
		if (cmp_value(item, ts, ckpt_composite_result_value(a, i),
			      ckpt_composite_result_value(b, j)))
			goto done;
	}
	printf("equal: %zu items\n", n);
	ret = 0;
done:
	restored_free(&ra);
	restored_free(&rb);
	return ret;
}

static int cmd_subset(const char *dir, char *const *names, size_t n)
{
	struct restored r;
	int ret = 1;

	if (restore(&r, dir, names, n))
		goto done;
	printf("bytes_read %" PRIu64 "\n", ckpt_store_bytes_read(ckpt_step_store(r.s)));
	for (size_t i = 0; i < ckpt_composite_result_count(r.res); i++)
		printf("%s %s\n", ckpt_composite_result_item(r.res, i),
		       ckpt_composite_result_value(r.res, i) ? "value" : "null");
	ret = 0;
done:
	restored_free(&r);
	return ret;
}

/* Restore one item, check its handler, and print it with show(). */
static int cmd_get(const char *dir, char *item, const char *typestr, void (*show)(const void *))
{
	struct restored r;
	ckpt_composite_result *res;
	int ret = 1;

	if (restore(&r, dir, &item, 1))
		goto done;
	res = r.res;
	const void *v = ckpt_composite_result_get(res, item);
	for (size_t i = 0; i < ckpt_composite_result_count(res); i++)
		if (!strcmp(ckpt_composite_result_item(res, i), item) &&
		    strcmp(ckpt_composite_result_typestr(res, i), typestr)) {
			fprintf(stderr, "handlers_tool: item %s has handler %s\n", item,
				ckpt_composite_result_typestr(res, i));
			goto done;
		}
	if (!v) {
		fprintf(stderr, "handlers_tool: item %s not restored\n", item);
		goto done;
	}
	show(v);
	ret = 0;
done:
	restored_free(&r);
	return ret;
}

static void show_np(const void *v)
{
	const ckpt_np_key *k = v;
	if (!k->legacy) {
		printf("%s\n", k->state_json);
		return;
	}
	printf("[\"MT19937\", [");
	for (int i = 0; i < 624; i++)
		printf("%s%" PRIu32, i ? ", " : "", k->mt.key[i]);
	printf("], %d, %d, %.17g]\n", k->mt.pos, k->mt.has_gauss, k->mt.cached_gaussian);
}

static void show_jax(const void *v)
{
	const ckpt_jax_key *k = v;
	const uint32_t *d = ckpt_tree_data(k->data);
	printf("impl %s\nshape ", k->impl ? k->impl : "untyped");
	for (unsigned i = 0; i < ckpt_tree_ndim(k->data); i++)
		printf("%s%" PRIu64, i ? "," : "", ckpt_tree_shape(k->data)[i]);
	printf("\ndtype %s\nwords", ckpt_dtype_name(ckpt_tree_dtype(k->data)));
	for (uint64_t i = 0; d && i < ckpt_tree_nelems(k->data); i++)
		printf(" %" PRIu32, d[i]);
	printf("\n");
}

static int usage(void)
{
	fprintf(stderr,
		"usage: handlers_tool save ROOT STEP | compare STEPDIR_A STEPDIR_B |\n"
		"       subset STEPDIR ITEM... | np-get STEPDIR ITEM | jax-get STEPDIR ITEM\n");
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	const char *cmd = argv[1];
	if (!strcmp(cmd, "save") && argc == 4)
		return cmd_save(argv[2], argv[3]);
	if (!strcmp(cmd, "compare") && argc == 4)
		return cmd_compare(argv[2], argv[3]);
	if (!strcmp(cmd, "subset") && argc >= 4)
		return cmd_subset(argv[2], argv + 3, (size_t)argc - 3);
	if (!strcmp(cmd, "np-get") && argc == 4)
		return cmd_get(argv[2], argv[3], CKPT_NP_KEY_TYPESTR, show_np);
	if (!strcmp(cmd, "jax-get") && argc == 4)
		return cmd_get(argv[2], argv[3], CKPT_JAX_KEY_TYPESTR, show_jax);
	return usage();
}
