/*
 * multihost.c — N worker processes train one model and checkpoint it
 * together, as the hosts of a multi-host job do (docs/api.md, "Several
 * processes"): every worker holds a shard of the parameters, all of them
 * save each checkpoint into one step through their CheckpointManager
 * (worker 0 is the primary), and a run resumed with another number of
 * workers restores each worker's new shard from the saved global array.
 *
 * The model: P float32 parameters, sharded in N contiguous slices (as
 * FSDP/ZeRO shard them); each worker trains its slice on its shard of the
 * data: at step t, parameter j moves towards a target drawn from (t, j) by
 * a deterministic hash. Each update depends on (t, j) and the parameter
 * only, so the result is bit-identical whatever N and however often the run
 * is killed and resumed.
 *
 * The checkpointed item "state" (a PyTree):
 *   params   float32[P], given by each worker as its shard (a sharded leaf)
 *   step     int, written by the primary alone
 *
 * Usage: multihost ROOT [--workers N] [--params P] [--steps S] [--every K]
 *                  [--die-at T] [--timeout-ms MS] [--out FILE]
 * --die-at T: at step T every worker but 0 is killed (SIGKILL) before the
 *   save, so worker 0's save fails after --timeout-ms naming a missing
 *   worker and no step T appears; the run exits 1.
 * --out FILE: each worker writes its final slice of params into FILE (raw
 *   float32, at its offset), so FILE holds the whole final array.
 * Prints "worker i: resumed at step s" and, from worker 0, "saved step t".
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ckpt/ckpt.h>

typedef struct config {
	const char *root, *out;
	unsigned workers;
	uint64_t params, steps, every, die_at, timeout_ms;
} config;

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

/* The data of step t for parameter j: a target in [-1, 1). */
static float target(uint64_t t, uint64_t j)
{
	return (float)(mix(t * 0x9e3779b97f4a7c15ull + j) >> 40) / (float)(1u << 23) - 1.0f;
}

static int fail(unsigned me, const char *what)
{
	fprintf(stderr, "worker %u: %s: %s\n", me, what, ckpt_error_last());
	return 1;
}

/* Restore args: the params leaf as this worker's box [lo, hi) of the global array. */
typedef struct slice {
	uint64_t lo, hi;
} slice;

static int slice_args(ckpt_leaf_restore_args *out, const char *path, const ckpt_tree *meta,
		      void *payload)
{
	const slice *s = payload;
	if (strcmp(path, "params") == 0) {
		out->has_box = 1;
		out->box_start[0] = s->lo;
		out->box_shape[0] = s->hi - s->lo;
	}
	return 0;
}

/* The state to save: this worker's shard of params and the step. */
static int make_state(ckpt_tree **out, const config *c, const slice *s, float *w, uint64_t step)
{
	ckpt_tree *t = NULL, *p = NULL, *st = NULL;
	uint64_t global[1] = {c->params}, start[1] = {s->lo}, shape[1] = {s->hi - s->lo};
	int rc = ckpt_tree_new(&t, CKPT_TREE_DICT);

	if (rc == 0)
		rc = ckpt_tree_new_sharded_array(&p, CKPT_DTYPE_FLOAT32, 1, global);
	if (rc == 0 && shape[0] > 0) /* replica 0 of its box: this worker writes it */
		rc = ckpt_tree_add_shard(p, start, shape, 0, w);
	if (rc == 0 && (rc = ckpt_tree_add(t, "params", p)) == 0)
		p = NULL;
	if (rc == 0)
		rc = ckpt_tree_new_int(&st, (int64_t)step);
	if (rc == 0 && (rc = ckpt_tree_add(t, "step", st)) == 0)
		st = NULL;
	ckpt_tree_free(p);
	ckpt_tree_free(st);
	if (rc) {
		ckpt_tree_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

static int worker(const config *c, unsigned me)
{
	ckpt_multiprocess_options mp = CKPT_MULTIPROCESS_OPTIONS_INIT;
	ckpt_manager_options mo = CKPT_MANAGER_OPTIONS_INIT;
	ckpt_pytree_restore_args ra = CKPT_PYTREE_RESTORE_ARGS_INIT;
	ckpt_manager *mgr = NULL;
	ckpt_handler *pytree = NULL;
	ckpt_tree *restored = NULL;
	slice s = {c->params * me / c->workers, c->params * (me + 1) / c->workers};
	float *w = calloc(s.hi - s.lo + 1, sizeof(float));
	uint64_t step = 0, latest;
	int rc = 1;

	mp.process_index = me;
	mp.process_count = c->workers;
	mp.primary_host = 0;
	mp.barrier_sync_key_prefix = "train";
	mp.barrier_timeout_ms = c->timeout_ms;
	mo.async.writer.multiprocess = &mp; /* every save is one step of all workers */
	mo.save_interval_steps = c->every;
	mo.preservation.latest_n = 2; /* the primary deletes older steps */
	mo.enable_async = 0;
	if (!w || ckpt_pytree_handler_new(&pytree) < 0 || ckpt_manager_open(&mgr, c->root, &mo) < 0) {
		fail(me, "open");
		goto done;
	}
	if (ckpt_manager_latest_step(&latest, mgr) == 0) { /* resume: this worker's slice only */
		ra.leaf_args = slice_args;
		ra.payload = &s;
		const ckpt_item_args item = {"state", pytree, &ra};
		if (ckpt_manager_restore((void **)&restored, mgr, -1, &item, 1) < 0) {
			fail(me, "restore");
			goto done;
		}
		const ckpt_tree *p = ckpt_tree_find(restored, "params");
		step = (uint64_t)ckpt_tree_int(ckpt_tree_find(restored, "step"));
		if (!p || ckpt_tree_nelems(p) != s.hi - s.lo) {
			fprintf(stderr, "worker %u: restored params have the wrong size\n", me);
			goto done;
		}
		memcpy(w, ckpt_tree_data(p), (s.hi - s.lo) * sizeof(float));
		printf("worker %u: resumed at step %" PRIu64 "\n", me, step);
	}
	for (uint64_t t = step + 1; t <= c->steps; t++) {
		for (uint64_t j = s.lo; j < s.hi; j++) /* train on this worker's shard */
			w[j - s.lo] += 0.125f * (target(t, j) - w[j - s.lo]);
		if (t == c->die_at && me != 0)
			raise(SIGKILL); /* a host lost in the middle of the job */
		if (!ckpt_manager_should_save(mgr, t))
			continue;
		ckpt_tree *state = NULL;
		if (make_state(&state, c, &s, w, t) < 0) {
			fail(me, "state");
			goto done;
		}
		const ckpt_item_args item = {"state", pytree, &(ckpt_pytree_save_args){
								  .version = CKPT_PYTREE_SAVE_ARGS_VERSION,
								  .item = state,
								  .save_concurrent_bytes = 0}};
		int r = ckpt_manager_save(mgr, t, &item, 1, NULL, NULL, 0);
		ckpt_tree_free(state);
		if (r < 0) {
			fail(me, "save");
			goto done;
		}
		if (me == 0)
			printf("saved step %" PRIu64 "\n", t);
	}
	if (c->out) { /* each worker writes its slice at its place */
		int fd = open(c->out, O_WRONLY | O_CREAT, 0644);
		size_t n = (s.hi - s.lo) * sizeof(float);
		if (fd < 0 || pwrite(fd, w, n, (off_t)(s.lo * sizeof(float))) != (ssize_t)n) {
			fprintf(stderr, "worker %u: write %s: %s\n", me, c->out, strerror(errno));
			if (fd >= 0)
				close(fd);
			goto done;
		}
		close(fd);
	}
	rc = 0;
done:
	ckpt_tree_free(restored);
	ckpt_manager_free(mgr);
	ckpt_handler_free(pytree);
	free(w);
	return rc;
}

int main(int argc, char **argv)
{
	config c = {NULL, NULL, 4, 1000, 50, 10, 0, 60000};
	pid_t pids[64];
	int bad = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (a[0] != '-') {
			c.root = a;
			continue;
		}
		if (!v) {
			fprintf(stderr, "%s needs a value\n", a);
			return 2;
		}
		i++;
		if (!strcmp(a, "--workers"))
			c.workers = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--params"))
			c.params = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--steps"))
			c.steps = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--every"))
			c.every = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--die-at"))
			c.die_at = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--timeout-ms"))
			c.timeout_ms = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--out"))
			c.out = v;
		else {
			fprintf(stderr, "unknown option %s\n", a);
			return 2;
		}
	}
	if (!c.root || c.workers == 0 || c.workers > 64 || c.params == 0) {
		fprintf(stderr, "usage: multihost ROOT [--workers N] [--params P] [--steps S] "
				"[--every K] [--die-at T] [--timeout-ms MS] [--out FILE]\n");
		return 2;
	}
	fflush(stdout);
	for (unsigned i = 0; i < c.workers; i++) { /* one process per "host" */
		pids[i] = fork();
		if (pids[i] < 0) {
			perror("fork");
			return 1;
		}
		if (pids[i] == 0) {
			int rc = worker(&c, i);
			fflush(stdout);
			_exit(rc);
		}
	}
	for (unsigned i = 0; i < c.workers; i++) {
		int st = 0;
		waitpid(pids[i], &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			if (WIFSIGNALED(st))
				fprintf(stderr, "worker %u: killed by signal %d\n", i, WTERMSIG(st));
			bad = 1;
		}
	}
	return bad;
}
