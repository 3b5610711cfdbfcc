/*
 * async.c — asynchronous saves (ckpt/async.h): Orbax's AsyncCheckpointer.
 *
 * A save is a job that is also its future: ckpt_async_save() copies what the
 * save needs (root, item names, metadata strings; in copy mode a snapshot of
 * each item's args from its handler) into a ckpt_future and hands it to the
 * one background thread of the ckpt_async (started by the first save), which
 * runs ckpt_checkpointer_save(), drops the job's data (the snapshots go back
 * to their handlers as soon as the step is written) and completes the future
 * with the result and a copy of the thread-local error message. The message is set
 * again, with ckpt_error_set(), on the thread that reports the error.
 *
 * Invariants:
 *   1. At most one save is queued or running per ckpt_async: a save waits
 *      for a->last to be done before it queues the next.
 *   2. A future is freed when its last reference goes: the caller's handle
 *      (ckpt_future_free) and the ckpt_async's (a->last, dropped when the
 *      next save replaces it or by ckpt_async_free). The thread holds no
 *      reference of its own: a->last outlives the running job (1. and
 *      ckpt_async_free waits).
 *   3. A failed save's error is reported once: by whichever of its future,
 *      check_for_errors, wait_until_finished or the next save reports it
 *      first (f->reported); ckpt_future_wait always returns the save's result.
 *   4. Locks: a->mu guards a->queued, a->stop; f->mu guards f's done, rc,
 *      msg, reported, refs. A thread never holds both.
 *   5. post_finalization runs exactly once per queued save, on the
 *      background thread, after the step is renamed into place (or the save
 *      failed) and before f->done is set.
 *
 * Performance metrics (StepMetadata.performance_metrics, Orbax's
 * SaveStepStatistics names): ckpt_async_save measures how long it waited
 * for the previous save and how long it blocked its caller, and hands them
 * to the writer as a JSON object with the job (f->perf).
 */
#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "ckpt/async.h"
#include "error_private.h"
#include "multiprocess_private.h"
#include "thread_private.h"

_Static_assert(CKPT_ASYNC_NICE == CKPT_THREAD_NICE, "ckpt/async.h and thread_private.h disagree");

struct ckpt_future {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned refs; /* f->mu */
	int done;      /* f->mu */
	int rc;	       /* f->mu: the save's result once done */
	char *msg;     /* f->mu: its error message (malloc'd) or NULL */
	int reported;  /* f->mu: the error was returned to someone */
	/* The job: owned by the background thread once queued, freed before done. */
	char *root;
	uint64_t step;
	ckpt_item_args *items; /* names strdup'd; args are snapshots in copy mode */
	size_t n;
	int snapshots;
	char *custom_metadata, *metrics;
	char *perf; /* performance_metrics JSON object, or NULL */
};

struct ckpt_async {
	ckpt_async_options opts; /* its writer's strings point at our copies: */
	char *custom_metadata, *metrics, *step_prefix;
	ckpt_mp_options_copy *mp; /* the writer's multiprocess options, owned */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	int started;
	ckpt_future *queued; /* a->mu: handed to the thread, not yet taken */
	int stop;	     /* a->mu */
	ckpt_future *last;   /* the most recent save (one reference); driving thread only */
};

/* ---- futures ---- */

static void job_clear(ckpt_future *f)
{
	for (size_t i = 0; f->items && i < f->n; i++) {
		if (f->snapshots)
			ckpt_handler_snapshot_free(f->items[i].handler, (void *)f->items[i].args);
		free((char *)f->items[i].name);
	}
	free(f->items);
	free(f->root);
	free(f->custom_metadata);
	free(f->metrics);
	free(f->perf);
	f->perf = NULL;
	f->items = NULL;
	f->root = f->custom_metadata = f->metrics = NULL;
	f->n = 0;
}

static void future_unref(ckpt_future *f)
{
	unsigned left;

	if (!f)
		return;
	pthread_mutex_lock(&f->mu);
	assert(f->refs > 0);
	left = --f->refs;
	pthread_mutex_unlock(&f->mu);
	if (left)
		return;
	job_clear(f);
	free(f->msg);
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

/* The error of f if it is done, failed and not reported yet (then reported), else 0. */
static int take_error(ckpt_future *f, int block)
{
	int rc = 0;

	if (!f)
		return 0;
	pthread_mutex_lock(&f->mu);
	while (block && !f->done)
		pthread_cond_wait(&f->cv, &f->mu);
	if (f->done && f->rc && !f->reported) {
		rc = f->rc;
		f->reported = 1;
		ckpt_error_set(rc, "%s", f->msg ? f->msg : "asynchronous save failed");
	}
	pthread_mutex_unlock(&f->mu);
	return rc;
}

int ckpt_future_wait(ckpt_future *f)
{
	int rc;

	if (!f)
		return ckpt_error_set(CKPT_EINVAL, "ckpt_future_wait: NULL future");
	pthread_mutex_lock(&f->mu);
	while (!f->done)
		pthread_cond_wait(&f->cv, &f->mu);
	rc = f->rc;
	if (rc) {
		f->reported = 1;
		ckpt_error_set(rc, "%s", f->msg ? f->msg : "asynchronous save failed");
	}
	pthread_mutex_unlock(&f->mu);
	return rc;
}

int ckpt_future_done(const ckpt_future *f)
{
	ckpt_future *m = (ckpt_future *)f; /* locking is not a change */
	int done;

	if (!f)
		return 0;
	pthread_mutex_lock(&m->mu);
	done = m->done;
	pthread_mutex_unlock(&m->mu);
	return done;
}

void ckpt_future_free(ckpt_future *f)
{
	future_unref(f);
}

/* ---- the background thread ---- */

static void run_job(const ckpt_async *a, ckpt_future *f)
{
	ckpt_step_writer_options wo = a->opts.writer;
	char *msg = NULL;
	int rc;

	if (f->custom_metadata)
		wo.custom_metadata = f->custom_metadata;
	if (f->metrics)
		wo.metrics = f->metrics;
	wo.performance_metrics = f->perf; /* a->opts.writer is at the current version */
	if (wo.timeout_secs <= 0)
		wo.timeout_secs = a->opts.timeout_secs;
	rc = ckpt_checkpointer_save(f->root, f->step, f->items, f->n, &wo);
	if (rc) {
		ckpt_error_wrap(rc, "asynchronous save of step %" PRIu64 " in %s", f->step,
				f->root);
		msg = strdup(ckpt_error_last()); /* NULL: the generic message */
	}
	job_clear(f); /* the snapshots go before anyone is told */
	if (a->opts.post_finalization) /* invariant 5 */
		a->opts.post_finalization(f->step, rc, a->opts.post_finalization_payload);
	pthread_mutex_lock(&f->mu);
	f->rc = rc;
	f->msg = msg;
	f->done = 1;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

static void *worker(void *arg)
{
	ckpt_async *a = arg;

	ckpt_thread_background(); /* and so the compression threads the save starts */

	for (;;) {
		ckpt_future *f;

		pthread_mutex_lock(&a->mu);
		while (!a->queued && !a->stop)
			pthread_cond_wait(&a->cv, &a->mu);
		f = a->queued;
		a->queued = NULL;
		pthread_mutex_unlock(&a->mu);
		if (!f)
			return NULL; /* stop, nothing queued */
		run_job(a, f);
	}
}

/* ---- the checkpointer ---- */

/* *field = a copy of *field, kept in *own. */
static int own_string(char **own, const char **field)
{
	if (*field && !(*own = strdup(*field)))
		return ckpt_error_nomem();
	*field = *own;
	return 0;
}

int ckpt_async_new(ckpt_async **out, const ckpt_async_options *opts)
{
	const ckpt_async_options def = CKPT_ASYNC_OPTIONS_INIT;
	ckpt_async *a;

	*out = NULL;
	CKPT_CHECK_VERSION(opts, CKPT_ASYNC_OPTIONS_VERSION, "ckpt_async_options");
	if (!(a = calloc(1, sizeof(*a))))
		return ckpt_error_nomem();
	a->opts = def;
	if (opts) /* a version 1 struct ends inside its version 1 writer */
		memcpy(&a->opts, opts,
		       opts->version >= 2 ? sizeof(*opts)
					  : offsetof(ckpt_async_options, writer) +
						offsetof(ckpt_step_writer_options, performance_metrics));
	a->opts.writer.version = CKPT_STEP_WRITER_OPTIONS_VERSION; /* the rest is defaults */
	a->opts.writer.performance_metrics = NULL; /* each save measures its own */
	if (!(a->opts.timeout_secs >= 0)) {
		free(a);
		return ckpt_error_set(CKPT_EINVAL, "async timeout_secs must be >= 0, not %g",
				      opts->timeout_secs);
	}
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	if (own_string(&a->custom_metadata, &a->opts.writer.custom_metadata) ||
	    own_string(&a->metrics, &a->opts.writer.metrics) ||
	    own_string(&a->step_prefix, &a->opts.writer.step_prefix)) {
		ckpt_async_free(a);
		return CKPT_ENOMEM;
	}
	/* multiprocess is NULL unless the caller's struct had it (copied above) */
	int rc = ckpt_mp_options_dup(&a->mp, a->opts.writer.multiprocess);
	if (rc < 0) {
		ckpt_async_free(a);
		return rc;
	}
	a->opts.writer.multiprocess = ckpt_mp_options_of(a->mp);
	*out = a;
	return 0;
}

void ckpt_async_free(ckpt_async *a)
{
	if (!a)
		return;
	if (a->started) {
		pthread_mutex_lock(&a->mu);
		a->stop = 1;
		pthread_cond_signal(&a->cv);
		pthread_mutex_unlock(&a->mu);
		pthread_join(a->thread, NULL); /* runs the queued save first */
	}
	future_unref(a->last);
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->mu);
	free(a->custom_metadata);
	free(a->metrics);
	free(a->step_prefix);
	ckpt_mp_options_free(a->mp);
	free(a);
}

/* Copy the job's data into f (snapshots in copy mode). */
static int job_fill(ckpt_future *f, const ckpt_async *a, const char *root,
		    const ckpt_item_args *items, size_t n, const char *custom_metadata,
		    const char *metrics)
{
	int rc;

	f->snapshots = !a->opts.borrow;
	if (!(f->root = strdup(root)) || (n && !(f->items = calloc(n, sizeof(*f->items)))) ||
	    (custom_metadata && !(f->custom_metadata = strdup(custom_metadata))) ||
	    (metrics && !(f->metrics = strdup(metrics))))
		return ckpt_error_nomem();
	for (size_t i = 0; i < n; i++) {
		if (!items[i].name || !items[i].handler)
			return ckpt_error_set(CKPT_EINVAL, "item %zu: no name or handler", i);
		f->items[i].handler = items[i].handler;
		if (!(f->items[i].name = strdup(items[i].name)))
			return ckpt_error_nomem();
		f->n = i + 1; /* job_clear frees what is set so far */
		if (!f->snapshots) {
			f->items[i].args = items[i].args;
			continue;
		}
		void *snap = NULL;
		rc = ckpt_handler_snapshot(&snap, items[i].handler, items[i].args);
		f->items[i].args = snap;
		if (rc)
			return ckpt_error_wrap(rc, "asynchronous save of item %s", items[i].name);
	}
	return 0;
}

static double now_secs(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* f->perf: Orbax's SaveStepStatistics of this save. start: wall clock at
 * the call; mono0, mono1: monotonic at the call and after waiting for the
 * previous save. */
static int perf_fill(ckpt_future *f, const char *root, double start, double mono0,
		     double mono1)
{
	cJSON *o = cJSON_CreateObject();
	double now = now_secs(CLOCK_MONOTONIC);
	int ok = o && cJSON_AddNumberToObject(o, "step", (double)f->step) &&
		 cJSON_AddStringToObject(o, "event_type", "save") &&
		 cJSON_AddStringToObject(o, "directory", root) &&
		 cJSON_AddBoolToObject(o, "synchronous", 0) &&
		 cJSON_AddNumberToObject(o, "wait_for_prev_start_time", start) &&
		 cJSON_AddNumberToObject(o, "wait_for_prev_duration_secs", mono1 - mono0) &&
		 cJSON_AddNumberToObject(o, "checkpointer_blocking_start_time",
					 start + (mono1 - mono0)) &&
		 cJSON_AddNumberToObject(o, "checkpointer_blocking_duration_secs", now - mono1);

	f->perf = ok ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	return f->perf ? 0 : ckpt_error_nomem();
}

int ckpt_async_save(ckpt_async *a, ckpt_future **future, const char *root, uint64_t step,
		    const ckpt_item_args *items, size_t n, const char *custom_metadata,
		    const char *metrics)
{
	double start = now_secs(CLOCK_REALTIME), mono0 = now_secs(CLOCK_MONOTONIC), mono1;
	ckpt_future *f = NULL;
	int rc;

	if (future)
		*future = NULL;
	if (!a || !root || (n && !items))
		return ckpt_error_set(CKPT_EINVAL,
				      "ckpt_async_save: NULL checkpointer, root or items");
	rc = take_error(a->last, 1); /* invariant 1: the previous save is done */
	mono1 = now_secs(CLOCK_MONOTONIC);
	if (rc)
		return rc;
	if (!(f = calloc(1, sizeof(*f))))
		return ckpt_error_nomem();
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	f->refs = 1;
	f->step = step;
	rc = job_fill(f, a, root, items, n, custom_metadata, metrics);
	if (rc == 0 && !a->started) {
		int err = pthread_create(&a->thread, NULL, worker, a);
		if (err)
			rc = ckpt_error_errno(CKPT_ERROR, err, "asynchronous save: start thread");
		a->started = !err;
	}
	if (rc == 0) /* last: the blocking time ends here */
		rc = perf_fill(f, root, start, mono0, mono1);
	if (rc) {
		future_unref(f);
		return rc;
	}
	f->refs = future ? 2 : 1;
	future_unref(a->last);
	a->last = f;
	pthread_mutex_lock(&a->mu);
	assert(!a->queued);
	a->queued = f;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
	if (future)
		*future = f;
	return 0;
}

int ckpt_async_reserve(ckpt_async *a, const ckpt_item_args *items, size_t n)
{
	if (!a || (n && !items))
		return ckpt_error_set(CKPT_EINVAL, "ckpt_async_reserve: NULL checkpointer or items");
	for (size_t i = 0; !a->opts.borrow && i < n; i++) {
		int rc;
		if (!items[i].handler)
			return ckpt_error_set(CKPT_EINVAL, "item %zu: no handler", i);
		rc = ckpt_handler_snapshot_reserve(items[i].handler, items[i].args);
		if (rc)
			return ckpt_error_wrap(rc, "reserve memory for item %s",
					       items[i].name ? items[i].name : "(unnamed)");
	}
	return 0;
}

int ckpt_async_wait_until_finished(ckpt_async *a)
{
	return a ? take_error(a->last, 1) : 0;
}

int ckpt_async_check_for_errors(ckpt_async *a)
{
	return a ? take_error(a->last, 0) : 0;
}

int ckpt_composite_async_save(ckpt_async *a, ckpt_future **future, const char *root,
			      uint64_t step, ckpt_registry *r, const ckpt_composite_arg *items,
			      size_t n, const char *custom_metadata, const char *metrics)
{
	ckpt_item_args *ia = calloc(n ? n : 1, sizeof(*ia));
	int rc = ia ? 0 : ckpt_error_nomem();

	if (future)
		*future = NULL;
	if (rc == 0)
		rc = ckpt_composite_item_args(ia, r, items, n);
	if (rc == 0)
		rc = ckpt_async_save(a, future, root, step, ia, n, custom_metadata, metrics);
	free(ia);
	return rc;
}
