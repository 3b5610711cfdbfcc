/*
 * train.c — a training loop that checkpoints like an Orbax user does: a
 * CheckpointManager saving asynchronously every 10 steps, keeping the latest
 * 3 steps and the best 2 by "loss", resuming from latest_step after a crash.
 *
 * The model is linear regression y = x W + b (W: in x out) trained by SGD
 * with momentum on a synthetic, endless data set: each step draws a batch of
 * x ~ U(-1, 1) from a seeded xoshiro256** generator, and the target is a
 * fixed nonlinear function of x (so the loss falls, then plateaus noisily).
 *
 * The checkpointed state is one PyTree item "state":
 *   params/dense/{kernel, bias}          float32 arrays
 *   opt_state/0/{count, mu/dense/{kernel, bias}}  SGD momentum (optax layout)
 *   step                                 int
 *   rng                                  uint64[4], the generator's state
 * with metrics {"loss": <batch loss of the step>}.
 *
 * Determinism: the loop is single-threaded and everything a step depends on
 * is in the state, so a run killed at any moment and resumed from its latest
 * step reaches bit-identical parameters to an uninterrupted run.
 *
 * Build: make build/examples/train (links libckpt.a). Usage:
 *   train ROOT [--steps N] [--in N] [--out N] [--batch N] [--every K]
 *         [--sleep-ms MS] [--save-threads N] [--no-compress] [--no-checkpoint]
 *         [--no-reserve] [--params FILE]
 * --no-reserve skips ckpt_manager_reserve (the first save then copies into
 * fresh memory).
 * --params FILE writes the final kernel and bias (raw float32) to FILE.
 * Prints one line per save and, at the end, "steps=N elapsed=S steps_per_s=R
 * save_block_s=B final_wait_s=W loss=L".
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ckpt/ckpt.h>

typedef struct config {
	const char *root;
	uint64_t steps, every;
	size_t in, out, batch;
	unsigned sleep_ms, save_threads;
	int checkpoint, compress, reserve;
	const char *params_file;
} config;

typedef struct model {
	size_t in, out;
	float *w, *b;	 /* params: w[i * out + j] */
	float *mw, *mb;	 /* momentum */
	float *gw, *gb;	 /* gradient scratch */
	uint64_t step;	 /* steps done */
	uint64_t count;	 /* optimizer updates done (== step) */
	uint64_t rng[4]; /* xoshiro256** */
} model;

static const float LR = 0.05f, MOMENTUM = 0.9f;

/* ---- random numbers: xoshiro256** seeded by splitmix64 ---- */

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(uint64_t s[4])
{
	const uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

static void rng_seed(uint64_t s[4], uint64_t seed)
{
	for (int i = 0; i < 4; i++) {
		uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		s[i] = z ^ (z >> 31);
	}
}

/* uniform in [-1, 1) */
static float rng_uniform(uint64_t s[4])
{
	return (float)(rng_next(s) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- the model ---- */

static int model_init(model *m, size_t in, size_t out)
{
	memset(m, 0, sizeof(*m));
	m->in = in;
	m->out = out;
	m->w = calloc(in * out, sizeof(float));
	m->mw = calloc(in * out, sizeof(float));
	m->gw = calloc(in * out, sizeof(float));
	m->b = calloc(out, sizeof(float));
	m->mb = calloc(out, sizeof(float));
	m->gb = calloc(out, sizeof(float));
	if (!m->w || !m->mw || !m->gw || !m->b || !m->mb || !m->gb)
		return -1;
	rng_seed(m->rng, 42);
	for (size_t i = 0; i < in * out; i++) /* small random init */
		m->w[i] = 0.01f * rng_uniform(m->rng);
	return 0;
}

static void model_free(model *m)
{
	free(m->w), free(m->mw), free(m->gw), free(m->b), free(m->mb), free(m->gb);
}

/* The function to learn: fixed, nonlinear, cheap (O(out) per sample). */
static float target(const float *x, size_t in, size_t j)
{
	return 0.5f * x[j % in] - 0.25f * x[(j * 7 + 3) % in] +
	       0.1f * x[(j * 13 + 1) % in] * x[(j * 13 + 1) % in];
}

/* One SGD step on a fresh batch; returns the batch's mean squared error. */
static double train_step(model *m, size_t batch, float *x, float *err)
{
	const size_t in = m->in, out = m->out;
	double loss = 0;

	memset(m->gw, 0, in * out * sizeof(float));
	memset(m->gb, 0, out * sizeof(float));
	for (size_t s = 0; s < batch; s++) {
		for (size_t i = 0; i < in; i++)
			x[i] = rng_uniform(m->rng);
		for (size_t j = 0; j < out; j++)
			err[j] = m->b[j] - target(x, in, j);
		for (size_t i = 0; i < in; i++) {
			const float xi = x[i], *wi = m->w + i * out;
			for (size_t j = 0; j < out; j++)
				err[j] += xi * wi[j];
		}
		for (size_t j = 0; j < out; j++) {
			loss += (double)err[j] * err[j];
			err[j] *= 2.0f / (float)(batch * out);
			m->gb[j] += err[j];
		}
		for (size_t i = 0; i < in; i++) {
			const float xi = x[i];
			float *gi = m->gw + i * out;
			for (size_t j = 0; j < out; j++)
				gi[j] += xi * err[j];
		}
	}
	for (size_t k = 0; k < in * out; k++) {
		m->mw[k] = MOMENTUM * m->mw[k] + m->gw[k];
		m->w[k] -= LR * m->mw[k];
	}
	for (size_t j = 0; j < out; j++) {
		m->mb[j] = MOMENTUM * m->mb[j] + m->gb[j];
		m->b[j] -= LR * m->mb[j];
	}
	m->step++;
	m->count++;
	return loss / (double)(batch * out);
}

/* ---- the model as a PyTree ---- */

/* Add an array (borrowing data) or a scalar under key; frees nothing on failure (the parent owns).
 */
static int add_array(ckpt_tree *parent, const char *key, ckpt_dtype dt, unsigned ndim,
		     const uint64_t *shape, void *data)
{
	ckpt_tree *a = NULL;
	int rc = ckpt_tree_new_array(&a, dt, ndim, shape, data, CKPT_TREE_BORROW);
	return rc < 0 ? rc : ckpt_tree_add(parent, key, a);
}

static int add_node(ckpt_tree **out, ckpt_tree *parent, const char *key, ckpt_tree_kind kind)
{
	int rc = ckpt_tree_new(out, kind);
	return rc < 0 ? rc : ckpt_tree_add(parent, key, *out);
}

static int add_dense(ckpt_tree *parent, const model *m, float *w, float *b)
{
	const uint64_t ws[2] = {m->in, m->out}, bs[1] = {m->out};
	ckpt_tree *dense;
	int rc;

	if ((rc = add_node(&dense, parent, "dense", CKPT_TREE_DICT)) < 0 ||
	    (rc = add_array(dense, "kernel", CKPT_DTYPE_FLOAT32, 2, ws, w)) < 0)
		return rc;
	return add_array(dense, "bias", CKPT_DTYPE_FLOAT32, 1, bs, b);
}

/* The state tree, borrowing the model's arrays (valid while m is unchanged, or copied by the save).
 */
static int state_tree(ckpt_tree **out, model *m)
{
	const uint64_t rs[1] = {4};
	ckpt_tree *root = NULL, *params, *opt, *opt0, *mu, *leaf;
	int rc;

	if ((rc = ckpt_tree_new(&root, CKPT_TREE_DICT)) < 0)
		return rc;
	if ((rc = add_node(&params, root, "params", CKPT_TREE_DICT)) < 0 ||
	    (rc = add_dense(params, m, m->w, m->b)) < 0 ||
	    (rc = add_node(&opt, root, "opt_state", CKPT_TREE_LIST)) < 0 ||
	    (rc = add_node(&opt0, opt, NULL, CKPT_TREE_DICT)) < 0 ||
	    (rc = ckpt_tree_new_int(&leaf, (int64_t)m->count)) < 0 ||
	    (rc = ckpt_tree_add(opt0, "count", leaf)) < 0 ||
	    (rc = add_node(&mu, opt0, "mu", CKPT_TREE_DICT)) < 0 ||
	    (rc = add_dense(mu, m, m->mw, m->mb)) < 0 ||
	    (rc = ckpt_tree_new_int(&leaf, (int64_t)m->step)) < 0 ||
	    (rc = ckpt_tree_add(root, "step", leaf)) < 0 ||
	    (rc = add_array(root, "rng", CKPT_DTYPE_UINT64, 1, rs, m->rng)) < 0) {
		ckpt_tree_free(root);
		return rc;
	}
	*out = root;
	return 0;
}

/* Copy array leaf `path` of t into dst (n bytes), checking its dtype and size. */
static int load_array(const ckpt_tree *t, const char *path, ckpt_dtype dt, void *dst, size_t n)
{
	ckpt_tree *leaf = NULL;

	if (ckpt_tree_lookup(&leaf, t, path) < 0 || ckpt_tree_get_kind(leaf) != CKPT_TREE_ARRAY ||
	    ckpt_tree_dtype(leaf) != dt || ckpt_tree_nbytes(leaf) != n || !ckpt_tree_data(leaf)) {
		fprintf(stderr,
			"train: checkpoint leaf %s missing or of another size "
			"(was it saved with other --in/--out?)\n",
			path);
		return -1;
	}
	memcpy(dst, ckpt_tree_data(leaf), n);
	return 0;
}

static int load_int(const ckpt_tree *t, const char *path, uint64_t *out)
{
	ckpt_tree *leaf = NULL;

	if (ckpt_tree_lookup(&leaf, t, path) < 0 || ckpt_tree_get_kind(leaf) != CKPT_TREE_INT ||
	    ckpt_tree_int(leaf) < 0) {
		fprintf(stderr, "train: checkpoint leaf %s missing or not a step count\n", path);
		return -1;
	}
	*out = (uint64_t)ckpt_tree_int(leaf);
	return 0;
}

static int model_load(model *m, const ckpt_tree *t)
{
	const size_t wn = m->in * m->out * sizeof(float), bn = m->out * sizeof(float);

	if (load_array(t, "params/dense/kernel", CKPT_DTYPE_FLOAT32, m->w, wn) < 0 ||
	    load_array(t, "params/dense/bias", CKPT_DTYPE_FLOAT32, m->b, bn) < 0 ||
	    load_array(t, "opt_state/0/mu/dense/kernel", CKPT_DTYPE_FLOAT32, m->mw, wn) < 0 ||
	    load_array(t, "opt_state/0/mu/dense/bias", CKPT_DTYPE_FLOAT32, m->mb, bn) < 0 ||
	    load_array(t, "rng", CKPT_DTYPE_UINT64, m->rng, sizeof(m->rng)) < 0 ||
	    load_int(t, "step", &m->step) < 0 || load_int(t, "opt_state/0/count", &m->count) < 0)
		return -1;
	return 0;
}

/* ---- the loop ---- */

static int usage(void)
{
	fprintf(stderr, "usage: train ROOT [--steps N] [--in N] [--out N] [--batch N] [--every K]\n"
			"             [--sleep-ms MS] [--save-threads N] [--no-compress]\n"
			"             [--no-checkpoint] [--no-reserve] [--params FILE]\n");
	return 2;
}

static int parse_args(config *c, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		char *end = NULL;
		unsigned long long n = v ? strtoull(v, &end, 10) : 0;
		int num = v && end != v && !*end;

		if (!strcmp(a, "--no-checkpoint")) {
			c->checkpoint = 0;
			continue;
		}
		if (!strcmp(a, "--no-reserve")) {
			c->reserve = 0;
			continue;
		}
		if (!strcmp(a, "--no-compress")) {
			c->compress = 0;
			continue;
		}
		if (a[0] != '-') {
			if (c->root)
				return -1;
			c->root = a;
			continue;
		}
		if (!v)
			return -1;
		i++;
		if (!strcmp(a, "--params"))
			c->params_file = v;
		else if (!num || n == 0 || n > (1ull << 40))
			return -1;
		else if (!strcmp(a, "--steps"))
			c->steps = n;
		else if (!strcmp(a, "--in"))
			c->in = (size_t)n;
		else if (!strcmp(a, "--out"))
			c->out = (size_t)n;
		else if (!strcmp(a, "--batch"))
			c->batch = (size_t)n;
		else if (!strcmp(a, "--every"))
			c->every = n;
		else if (!strcmp(a, "--sleep-ms"))
			c->sleep_ms = (unsigned)n;
		else if (!strcmp(a, "--save-threads"))
			c->save_threads = (unsigned)n;
		else
			return -1;
	}
	if (c->in > SIZE_MAX / sizeof(float) / c->out) /* the kernel's bytes must fit */
		return -1;
	return c->root || !c->checkpoint ? 0 : -1;
}

static int write_params(const model *m, const char *file)
{
	FILE *f = fopen(file, "wb");
	int ok = f && fwrite(m->w, sizeof(float), m->in * m->out, f) == m->in * m->out &&
		 fwrite(m->b, sizeof(float), m->out, f) == m->out;

	if (f && fclose(f) != 0)
		ok = 0;
	if (!ok)
		fprintf(stderr, "train: cannot write %s\n", file);
	return ok ? 0 : -1;
}

/* Print the library's message for a failed call and return 1. */
static int fail(const char *what)
{
	fprintf(stderr, "train: %s: %s\n", what, ckpt_error_last());
	return 1;
}

/* Save the state as step m->step with its loss; adds the time the call blocked to *block. */
static int save(ckpt_manager *mgr, ckpt_handler *pytree, model *m, double loss, int force,
		double *block)
{
	ckpt_pytree_save_args args = CKPT_PYTREE_SAVE_ARGS_INIT;
	const ckpt_item_args item = {"state", pytree, &args};
	ckpt_tree *tree = NULL;
	char metrics[64];
	double t0;
	int e;

	snprintf(metrics, sizeof(metrics), "{\"loss\": %.17g}", loss);
	if (state_tree(&tree, m) < 0)
		return fail("state tree");
	args.item = tree;
	t0 = now();
	/* Returns once the state is copied; writing goes on in the background. */
	e = ckpt_manager_save(mgr, m->step, &item, 1, metrics, NULL, force);
	*block += now() - t0;
	ckpt_tree_free(tree);
	if (e < 0)
		return fail("save");
	printf("saved step %" PRIu64 " loss=%.17g\n", m->step, loss);
	fflush(stdout);
	return 0;
}

/* Get the memory of the first save's snapshot ready in the background. */
static int reserve(ckpt_manager *mgr, ckpt_handler *pytree, model *m)
{
	ckpt_pytree_save_args args = CKPT_PYTREE_SAVE_ARGS_INIT;
	const ckpt_item_args item = {"state", pytree, &args};
	ckpt_tree *tree = NULL;
	int e;

	if (state_tree(&tree, m) < 0)
		return fail("state tree");
	args.item = tree;
	e = ckpt_manager_reserve(mgr, &item, 1);
	ckpt_tree_free(tree);
	return e < 0 ? fail("reserve") : 0;
}

int main(int argc, char **argv)
{
	config c = {NULL, 300, 10, 64, 16, 32, 0, 0, 1, 1, 1, NULL};
	ckpt_manager_options mo = CKPT_MANAGER_OPTIONS_INIT;
	ckpt_manager *mgr = NULL;
	ckpt_handler *pytree = NULL;
	ckpt_tree *restored = NULL;
	model m;
	float *x = NULL, *err = NULL;
	double loss = 0, t0, t_loop, block = 0, wait = 0;
	uint64_t latest, start, saved = 0;
	int rc = 1;

	if (parse_args(&c, argc, argv) < 0)
		return usage();
	if (model_init(&m, c.in, c.out) < 0 || !(x = malloc(c.in * sizeof(float))) ||
	    !(err = malloc(c.out * sizeof(float)))) {
		fprintf(stderr, "train: out of memory\n");
		goto done;
	}
	if (ckpt_pytree_handler_new(&pytree) < 0) {
		rc = fail("pytree handler");
		goto done;
	}
	if (c.checkpoint) {
		/* Orbax: CheckpointManager(root, options=CheckpointManagerOptions(
		 *   save_interval_steps=10, max_to_keep=3, best_fn=loss, best_mode='min')) */
		mo.save_interval_steps = c.every;
		mo.preservation.latest_n = 3;
		mo.preservation.best_metric = "loss";
		mo.preservation.best_mode = CKPT_BEST_MIN;
		mo.preservation.best_n = 2;
		/* the background save's compression workers (0: one per CPU) and zstd level */
		mo.async.writer.store.threads = c.save_threads;
		mo.async.writer.store.compression_level = c.compress ? 1 : 0;
		if (ckpt_manager_open(&mgr, c.root, &mo) < 0) {
			rc = fail(c.root);
			goto done;
		}
		if (ckpt_manager_latest_step(&latest, mgr) == 0) {
			const ckpt_item_args item = {"state", pytree, NULL};
			if (ckpt_manager_restore((void **)&restored, mgr, -1, &item, 1) < 0) {
				rc = fail("restore");
				goto done;
			}
			if (model_load(&m, restored) < 0)
				goto done;
			if (m.step != latest) {
				fprintf(stderr,
					"train: step %" PRIu64 " holds state of step %" PRIu64 "\n",
					latest, m.step);
				goto done;
			}
			printf("restored step %" PRIu64 "\n", latest);
		}
	}
	/* The first save copies into memory made ready while the first steps run. */
	if (mgr && c.reserve && (rc = reserve(mgr, pytree, &m)) != 0)
		goto done;
	start = m.step;
	t0 = now();
	while (m.step < c.steps) {
		loss = train_step(&m, c.batch, x, err);
		if (c.sleep_ms) {
			struct timespec ts = {c.sleep_ms / 1000,
					      (long)(c.sleep_ms % 1000) * 1000000};
			nanosleep(&ts, NULL);
		}
		if (!mgr || !ckpt_manager_should_save(mgr, m.step))
			continue;
		if ((rc = save(mgr, pytree, &m, loss, 0, &block)) != 0)
			goto done;
		saved = m.step;
	}
	t_loop = now() - t0;
	/* the last step is saved even off the interval (Orbax: force=True) */
	if (mgr && m.step > start && saved != m.step &&
	    (rc = save(mgr, pytree, &m, loss, 1, &block)) != 0)
		goto done;
	rc = 1;
	if (mgr) {
		double tw = now();
		if (ckpt_manager_wait_until_finished(mgr) < 0) {
			rc = fail("background save");
			goto done;
		}
		wait = now() - tw;
	}
	if (c.params_file && write_params(&m, c.params_file) < 0)
		goto done;
	printf("steps=%" PRIu64 " elapsed=%.6f steps_per_s=%.3f save_block_s=%.6f "
	       "final_wait_s=%.6f loss=%.9g\n",
	       m.step - start, t_loop, t_loop > 0 ? (double)(m.step - start) / t_loop : 0, block,
	       wait, loss);
	rc = 0;
done:
	ckpt_manager_free(mgr);
	ckpt_tree_free(restored);
	ckpt_handler_free(pytree);
	model_free(&m);
	free(x);
	free(err);
	return rc;
}
