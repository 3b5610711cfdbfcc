/*
 * preservation.c — which finalized steps a ckpt_preservation keeps
 * (ckpt/manager.h). Pure functions over ckpt_step_summary arrays: the
 * manager, `ckpt gc` and `ckpt ls` share them.
 *
 * Policies (Orbax's preservation policies, combined as AnyPreservationPolicy):
 *   latest_n          the latest_n highest step numbers;
 *   every_n_steps     steps divisible by N (Orbax keep_period);
 *   every_n_seconds   in commit-time order (then by step), the first step is
 *                     kept, then each step committed at least N seconds after
 *                     the last kept one (Orbax's EveryNSeconds and
 *                     keep_time_interval): kept steps are N seconds apart;
 *   best_metric       the best_n steps by their metric (smallest for
 *                     CKPT_BEST_MIN, largest for CKPT_BEST_MAX; among equal
 *                     metrics the newer step is better); a step without the
 *                     metric (or with NaN) is kept iff keep_without_metrics.
 *
 * Invariants:
 *   1. keep[i] is 1 iff some enabled policy keeps steps[i]; with no policy
 *      enabled every step is kept.
 *   2. The result does not depend on the order of steps[] (ties are broken
 *      by step number, never by position).
 */
#include <assert.h>
#include <math.h>
#include <stdlib.h>

#include "ckpt/manager.h"
#include "error_private.h"

typedef struct ranked {
	double key; /* the metric, negated for CKPT_BEST_MAX: smaller is better */
	int64_t t;  /* commit time */
	uint64_t step;
	size_t idx;
} ranked;

/* Ascending key; equal keys: the newer (higher) step first. */
static int cmp_key_newer_first(const void *a, const void *b)
{
	const ranked *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->step > y->step ? -1 : x->step < y->step;
}

/* By commit time, then by step (ascending). */
static int cmp_time(const void *a, const void *b)
{
	const ranked *x = a, *y = b;

	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return x->step < y->step ? -1 : x->step > y->step;
}

static int cmp_step_desc(const void *a, const void *b)
{
	const ranked *x = a, *y = b;

	return x->step > y->step ? -1 : x->step < y->step;
}

static int has_metric(const ckpt_step_summary *s)
{
	return s->has_metric && !isnan(s->metric);
}

static int check_args(const void *out, const ckpt_step_summary *steps, size_t n,
		      const ckpt_preservation *p)
{
	if (!out || (n && !steps) || !p)
		return ckpt_error_set(CKPT_EINVAL, "preservation: NULL argument");
	if (p->best_metric && p->best_mode != CKPT_BEST_MIN && p->best_mode != CKPT_BEST_MAX)
		return ckpt_error_set(
		    CKPT_EINVAL, "preservation: best_mode %d is neither min nor max", p->best_mode);
	if (p->every_n_seconds < 0)
		return ckpt_error_set(CKPT_EINVAL, "preservation: every_n_seconds %lld < 0",
				      (long long)p->every_n_seconds);
	return 0;
}

/* The best steps by p's metric, best first: *out malloc'd, *cnt of them. */
static int rank_by_metric(ranked **out, size_t *cnt, const ckpt_step_summary *steps, size_t n,
			  const ckpt_preservation *p)
{
	ranked *r = malloc((n ? n : 1) * sizeof(*r));
	size_t m = 0;

	*out = NULL;
	*cnt = 0;
	if (!r)
		return ckpt_error_nomem();
	for (size_t i = 0; i < n; i++)
		if (has_metric(&steps[i]))
			r[m++] = (ranked){p->best_mode == CKPT_BEST_MAX ? -steps[i].metric
									: steps[i].metric,
					  0, steps[i].step, i};
	qsort(r, m, sizeof(*r), cmp_key_newer_first);
	*out = r;
	*cnt = m;
	return 0;
}

static void keep_every_n_seconds(int *keep, const ckpt_step_summary *steps, size_t n, int64_t secs,
				 ranked *r)
{
	const uint64_t span = (uint64_t)secs * 1000000000u;
	int64_t last = 0; /* commit time of the last kept step */

	assert(secs > 0 && secs <= INT64_MAX / 1000000000);
	for (size_t i = 0; i < n; i++)
		r[i] = (ranked){0, steps[i].commit_time_ns, steps[i].step, i};
	qsort(r, n, sizeof(*r), cmp_time);
	for (size_t i = 0; i < n; i++) {
		if (i == 0 || (uint64_t)r[i].t - (uint64_t)last >= span) { /* sorted: t >= last */
			keep[r[i].idx] = 1;
			last = r[i].t;
		}
	}
}

int ckpt_preservation_apply(int *keep, const ckpt_step_summary *steps, size_t n,
			    const ckpt_preservation *p)
{
	int rc = check_args(keep, steps, n, p);
	int any = 0;
	ranked *r = NULL;
	size_t m = 0;

	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++)
		keep[i] = 0;
	if (n == 0)
		return 0;
	r = malloc(n * sizeof(*r));
	if (!r)
		return ckpt_error_nomem();
	if (p->latest_n) {
		any = 1;
		for (size_t i = 0; i < n; i++)
			r[i] = (ranked){0, 0, steps[i].step, i};
		qsort(r, n, sizeof(*r), cmp_step_desc);
		for (size_t i = 0; i < n && i < p->latest_n; i++)
			keep[r[i].idx] = 1;
	}
	if (p->every_n_steps) {
		any = 1;
		for (size_t i = 0; i < n; i++)
			keep[i] |= steps[i].step % p->every_n_steps == 0;
	}
	if (p->every_n_seconds > 0) {
		any = 1;
		if (p->every_n_seconds > INT64_MAX / 1000000000) /* one interval holds all */
			keep_every_n_seconds(keep, steps, n, INT64_MAX / 1000000000, r);
		else
			keep_every_n_seconds(keep, steps, n, p->every_n_seconds, r);
	}
	free(r);
	r = NULL;
	if (p->best_metric) {
		any = 1;
		rc = rank_by_metric(&r, &m, steps, n, p);
		if (rc)
			goto done;
		for (size_t i = 0; i < m && i < p->best_n; i++)
			keep[r[i].idx] = 1;
		for (size_t i = 0; i < n; i++)
			keep[i] |= p->keep_without_metrics && !has_metric(&steps[i]);
	}
	if (!any)
		for (size_t i = 0; i < n; i++)
			keep[i] = 1;
done:
	free(r);
	return rc;
}

int ckpt_preservation_best(size_t *out, const ckpt_step_summary *steps, size_t n,
			   const ckpt_preservation *p)
{
	int rc = check_args(out, steps, n, p);
	ranked *r = NULL;
	size_t m = 0;

	if (rc)
		return rc;
	if (!p->best_metric)
		return ckpt_error_set(CKPT_ENOTFOUND, "no best_metric set");
	rc = rank_by_metric(&r, &m, steps, n, p);
	if (rc == 0 && m == 0)
		rc = ckpt_error_set(CKPT_ENOTFOUND, "no step has the metric '%s'", p->best_metric);
	if (rc == 0)
		*out = r[0].idx;
	free(r);
	return rc;
}
