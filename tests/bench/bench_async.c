/*
 * bench_async — how long ckpt_async_save() blocks the caller, against a
 * synchronous ckpt_checkpointer_save() of the same state, and peak memory.
 *
 * Usage: bench_async ROOT [--mib N] [--leaves N] [--cap-mib N] [--modes LIST] [--no-compress]
 *                   [--reserve-wait S]
 *   --mib     state size in MiB (default 1024), split into --leaves float32
 *             leaves (default 64) of pseudo-random values (weights-like: they
 *             hardly compress)
 *   --cap-mib opts.writer.store.max_bytes_in_flight in MiB (default: store default)
 *   --modes   comma-separated, run in this order (default sync,copy,copy,borrow): a
 *             second copy reuses the first one's snapshot buffers (see pytree.c),
 *             as every save but the first of a training loop does; "reserved"
 *             is a first copy-mode save with a new handler after
 *             ckpt_async_reserve has written the state's size (seen in VmRSS;
 *             up to 60 s) and --reserve-wait more seconds (default 1): a
 *             training loop reserves at its start and saves some steps later
 * Each mode saves its own step under ROOT (sync 1, copy 2, borrow 3, reserved 4)
 * and deletes it afterwards.
 * Prints one line per mode, then a summary line:
 *   mode=sync elapsed=<s>
 *   mode=copy block=<s> total=<s>
 *   mode=reserved block=<s> total=<s> reserve=<s until the memory was written>
 *   mode=borrow block=<s> total=<s>
 *   bytes=<n> leaves=<n> copy_block_ratio=<first copy block/sync>
 *     copy_again_block_ratio=<later copy block/sync> reserved_block_ratio=<..>
 *     borrow_block_ratio=<..>
 *   vmhwm_mib=<peak RSS of the process> state_mib=<n>
 * (a ratio is printed only when sync ran). For the memory bar run one mode per
 * process: VmHWM is the process's peak.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ckpt/ckpt.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A "kB" field of /proc/self/status ("VmHWM", "VmRSS"), -1 if not found. */
static long status_kib(const char *field)
{
	char line[256];
	long kib = -1;
	size_t n = strlen(field);
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && sscanf(line + n, ": %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

/* {params: {w00: f32[n], w01: ...}} with values from an LCG. */
static ckpt_tree *make_state(uint64_t bytes, unsigned leaves)
{
	ckpt_tree *t = NULL, *params = NULL;
	uint64_t n = bytes / leaves / 4, x = 88172645463325252ull;
	int rc = ckpt_tree_new(&t, CKPT_TREE_DICT) | ckpt_tree_new(&params, CKPT_TREE_DICT);

	for (unsigned i = 0; rc == 0 && i < leaves; i++) {
		float *d = malloc(n * 4);
		ckpt_tree *a = NULL;
		char key[16];

		if (!d)
			return NULL;
		for (uint64_t j = 0; j < n; j++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			d[j] = (float)((int32_t)(x >> 32)) * 1e-9f;
		}
		snprintf(key, sizeof(key), "w%02u", i);
		rc = ckpt_tree_new_array(&a, CKPT_DTYPE_FLOAT32, 1, &n, d, CKPT_TREE_OWN);
		if (rc == 0)
			rc = ckpt_tree_add(params, key, a);
	}
	if (rc == 0)
		rc = ckpt_tree_add(t, "params", params);
	else
		ckpt_tree_free(params);
	if (rc) {
		ckpt_tree_free(t);
		return NULL;
	}
	return t;
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "bench_async: %s: %s (%s)\n", what, ckpt_error_last(), ckpt_error_name(rc));
	return 1;
}

int main(int argc, char **argv)
{
	uint64_t mib = 1024, cap_mib = 0;
	unsigned leaves = 64;
	const char *root = NULL, *modes = "sync,copy,copy,borrow";
	int no_compress = 0, rc;
	double sync_s = 0, copy_first = -1, copy_again = -1, borrow_b = -1, reserved_b = -1;
	double reserve_wait = 1, reserve_s = -1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--mib") && i + 1 < argc)
			mib = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--leaves") && i + 1 < argc)
			leaves = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--cap-mib") && i + 1 < argc)
			cap_mib = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--modes") && i + 1 < argc)
			modes = argv[++i];
		else if (!strcmp(argv[i], "--reserve-wait") && i + 1 < argc)
			reserve_wait = strtod(argv[++i], NULL);
		else if (!strcmp(argv[i], "--no-compress"))
			no_compress = 1;
		else if (argv[i][0] != '-' && !root)
			root = argv[i];
		else
			root = NULL, i = argc;
	}
	if (!root || !leaves || !mib) {
		fprintf(stderr, "usage: bench_async ROOT [--mib N] [--leaves N] [--cap-mib N] "
				"[--modes sync,copy,reserved,borrow] [--no-compress] [--reserve-wait S]\n");
		return 2;
	}
	ckpt_tree *state = make_state(mib << 20, leaves);
	ckpt_handler *py = NULL;
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_async_options ao = CKPT_ASYNC_OPTIONS_INIT;

	if (!state)
		return fail("make state", CKPT_ENOMEM);
	if ((rc = ckpt_pytree_handler_new(&py)))
		return fail("handler", rc);
	sa.item = state;
	ao.writer.store.max_bytes_in_flight = cap_mib << 20;
	if (no_compress)
		ao.writer.store.compression_level = 0;
	ckpt_item_args item = {"state", py, &sa};
	char *list = strdup(modes), *save = NULL;

	for (char *m = strtok_r(list, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
		uint64_t step = !strcmp(m, "sync")	 ? 1
				: !strcmp(m, "copy")	 ? 2
				: !strcmp(m, "borrow")	 ? 3
				: !strcmp(m, "reserved") ? 4
							 : 0;
		double t0 = now(), block;
		ckpt_item_args it = item;
		ckpt_handler *fresh = NULL;

		if (!step) {
			fprintf(stderr, "bench_async: unknown mode '%s'\n", m);
			return 2;
		}

		if (step == 1) {
			if ((rc = ckpt_checkpointer_save(root, step, &item, 1, &ao.writer)))
				return fail("sync save", rc);
			sync_s = now() - t0;
			printf("mode=sync elapsed=%.3f\n", sync_s);
		} else {
			ckpt_async *a = NULL;
			ckpt_future *f = NULL;

			ao.borrow = step == 3;
			if ((rc = ckpt_async_new(&a, &ao)))
				return fail("ckpt_async_new", rc);
			if (step == 4) { /* reserved: a handler with no spare buffers yet */
				if ((rc = ckpt_pytree_handler_new(&fresh)))
					return fail("handler", rc);
				it.handler = fresh;
				long rss0 = status_kib("VmRSS");
				double r0 = now();
				if ((rc = ckpt_async_reserve(a, &it, 1)))
					return fail("reserve", rc);
				while (status_kib("VmRSS") - rss0 < (long)(mib * 1024 * 99 / 100) &&
				       now() - r0 < 60)
					nanosleep(&(struct timespec){0, 10000000}, NULL);
				reserve_s = now() - r0;
				struct timespec ts = {(time_t)reserve_wait,
						      (long)((reserve_wait - (time_t)reserve_wait) * 1e9)};
				nanosleep(&ts, NULL);
			}
			t0 = now();
			if ((rc = ckpt_async_save(a, &f, root, step, &it, 1, NULL, NULL)))
				return fail("async save", rc);
			block = now() - t0;
			if ((rc = ckpt_future_wait(f)))
				return fail("async save (background)", rc);
			printf("mode=%s block=%.3f total=%.3f", m, block, now() - t0);
			if (step == 4)
				printf(" reserve=%.3f", reserve_s);
			printf("\n");
			if (step == 3)
				borrow_b = block;
			else if (step == 4)
				reserved_b = block;
			else
				*(copy_first < 0 ? &copy_first : &copy_again) = block;
			ckpt_future_free(f);
			ckpt_async_free(a);
			ckpt_handler_free(fresh);
		}
		fflush(stdout);
		if ((rc = ckpt_root_delete_step(root, step)))
			return fail("delete step", rc);
	}
	printf("bytes=%" PRIu64 " leaves=%u", (mib << 20) / leaves / 4 * 4 * leaves, leaves);
	if (sync_s > 0 && copy_first >= 0)
		printf(" copy_block_ratio=%.3f", copy_first / sync_s);
	if (sync_s > 0 && copy_again >= 0)
		printf(" copy_again_block_ratio=%.3f", copy_again / sync_s);
	if (sync_s > 0 && reserved_b >= 0)
		printf(" reserved_block_ratio=%.3f", reserved_b / sync_s);
	if (sync_s > 0 && borrow_b >= 0)
		printf(" borrow_block_ratio=%.4f", borrow_b / sync_s);
	printf("\nvmhwm_mib=%ld state_mib=%" PRIu64 "\n", status_kib("VmHWM") / 1024, mib);
	free(list);
	ckpt_handler_free(py);
	ckpt_tree_free(state);
	return 0;
}
