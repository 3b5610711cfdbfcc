/*
 * manager.c — the CheckpointManager (ckpt/manager.h): when to save, saving
 * (through ckpt_async, or ckpt_checkpointer_save when enable_async is 0),
 * deleting what the preservation policies drop (preservation.c), restoring,
 * root metadata, and waiting for steps (evaluators).
 *
 * Design:
 *   The manager caches one ckpt_step_summary per finalized step of its root
 *   (step, commit time, its best_metric), read from each step's
 *   _CHECKPOINT_METADATA at open and by reload; reload reopens only steps it
 *   does not know yet. Steps are named by the options' prefix and padding
 *   (ckpt_step_dir_name); the step writer gets the same naming through its
 *   options, so synchronous and asynchronous saves write the same names.
 *
 *   An asynchronous save is "noticed" by the next manager call that finds
 *   its future done (or waits for it: save, restore, wait_until_finished,
 *   close). Noticing takes the save's error from ckpt_async (reporting it
 *   there exactly once) and keeps it in the manager until save,
 *   wait_until_finished or check_for_errors reports it; on success it reloads
 *   the steps and deletes what no policy keeps. Garbage collection thus runs
 *   on the caller's thread, never concurrently with another manager call.
 *
 * Invariants:
 *   1. m->steps is ascending by step and holds only finalized steps.
 *   2. At most one save is in flight (m->future); a new save first waits for
 *      it and reports its error.
 *   3. Garbage collection never deletes the newest step nor the step just
 *      saved (Orbax excludes its last save), never runs in read_only, and
 *      only runs after a save of this manager finalized.
 *   4. In read_only no call writes, renames or removes anything under root.
 *   5. A non-primary process of a multi-process save (ckpt/multiprocess.h)
 *      never deletes a step or cleans up temporary directories: it applies
 *      the policies to its list of steps only (the primary deletes them), so
 *      every process sees the same steps.
 */
#include <assert.h>
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ckpt/manager.h"
#include "error_private.h"
#include "manager_private.h"
#include "multiprocess_private.h"
#include "root_private.h"
#include "step_private.h"
#include "fsutil.h"

#define ROOT_METADATA	  "_ROOT_METADATA"
#define ROOT_METADATA_MAX (16u << 20)
#define MAX_STEP_WIDTH	  32

struct ckpt_manager {
	char *root;
	char *prefix; /* NULL: plain step names */
	unsigned width;
	uint64_t interval;
	uint64_t *save_on;
	size_t n_save_on;
	ckpt_preservation pres; /* pres.best_metric points into metric */
	char *metric;
	int read_only;
	ckpt_step_writer_options wopts; /* synchronous saves; strings owned below */
	ckpt_async_options aopts;	/* opts->async at the current version */
	char *w_custom, *w_metrics;
	ckpt_mp_options_copy *mp; /* wopts.multiprocess, owned */
	int secondary;		  /* a non-primary process (invariant 5) */
	ckpt_async *async;   /* NULL: synchronous saves */
	ckpt_future *future; /* the last asynchronous save, until noticed (invariant 2) */
	uint64_t future_step;
	int err; /* an error noticed but not yet reported, and its message */
	char *err_msg;
	ckpt_step_summary *steps; /* finalized steps, ascending (invariant 1) */
	size_t n;
};

static int dup_opt(char **out, const char *s)
{
	*out = s ? strdup(s) : NULL;
	return s && !*out ? ckpt_error_nomem() : 0;
}

static char *step_path(const ckpt_manager *m, uint64_t step)
{
	return ckpt_step_dir_path(m->root, step, m->prefix, m->width);
}

static int policy_enabled(const ckpt_preservation *p)
{
	return p->latest_n || p->every_n_steps || p->every_n_seconds || p->best_metric;
}

/* Open a step of the manager's root; CKPT_ENOTFOUND names it. */
static int open_step(ckpt_step **out, const ckpt_manager *m, uint64_t step)
{
	char *dir = step_path(m, step);
	int rc = dir ? ckpt_step_open(out, dir, NULL) : CKPT_ENOMEM;

	free(dir);
	return rc;
}

/* The metrics object of a step's metadata (borrowed from meta), or NULL. */
static const cJSON *metrics_of(const cJSON *meta)
{
	const cJSON *mt = cJSON_GetObjectItemCaseSensitive(meta, "metrics");

	return cJSON_IsObject(mt) ? mt : NULL;
}

void ckpt_step_summarize(ckpt_step_summary *out, ckpt_step *s, uint64_t step, const char *metric)
{
	cJSON *meta = NULL;
	const cJSON *v;

	*out = (ckpt_step_summary){step, ckpt_step_commit_time_ns(s), 0, 0};
	if (metric && ckpt_step_metadata_json(s))
		meta = cJSON_Parse(ckpt_step_metadata_json(s));
	v = cJSON_GetObjectItemCaseSensitive(metrics_of(meta), metric);
	if (metric && cJSON_IsNumber(v) && !isnan(v->valuedouble)) {
		out->has_metric = 1;
		out->metric = v->valuedouble;
	}
	cJSON_Delete(meta);
}

/*
 * The summary of a step. A step that cannot be read (damaged, vanished)
 * gets no time and no metric: the policies still see it, nothing fails.
 */
static void summarize(ckpt_step_summary *out, const ckpt_manager *m, uint64_t step)
{
	ckpt_step *s = NULL;

	*out = (ckpt_step_summary){step, 0, 0, 0};
	if (open_step(&s, m, step) != 0)
		return;
	ckpt_step_summarize(out, s, step, m->metric);
	ckpt_step_free(s);
}

static const ckpt_step_summary *find_summary(const ckpt_manager *m, uint64_t step)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->steps[mid].step == step)
			return &m->steps[mid];
		if (m->steps[mid].step < step)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Re-list root; summaries of known steps are reused (finalized steps are immutable). */
static int reload_steps(ckpt_manager *m)
{
	uint64_t *v = NULL;
	size_t cnt = 0;
	ckpt_step_summary *s;
	int rc = ckpt_root_steps_named(&v, &cnt, m->root, m->prefix, m->width);

	if (rc == CKPT_ENOTFOUND && m->read_only) { /* nothing saved yet */
		v = NULL;
		cnt = 0;
		rc = 0;
	}
	if (rc)
		return rc;
	s = malloc((cnt ? cnt : 1) * sizeof(*s));
	if (!s) {
		free(v);
		return ckpt_error_nomem();
	}
	for (size_t i = 0; i < cnt; i++) {
		const ckpt_step_summary *old = find_summary(m, v[i]);
		if (old)
			s[i] = *old;
		else
			summarize(&s[i], m, v[i]);
		assert(i == 0 || s[i - 1].step < s[i].step); /* invariant 1 */
	}
	free(v);
	free(m->steps);
	m->steps = s;
	m->n = cnt;
	assert(ckpt_manager_check(m));
	return 0;
}

static void forget_step(ckpt_manager *m, uint64_t step)
{
	const ckpt_step_summary *s = find_summary(m, step);

	if (!s)
		return;
	size_t i = (size_t)(s - m->steps);
	memmove(&m->steps[i], &m->steps[i + 1], (m->n - i - 1) * sizeof(*m->steps));
	m->n--;
}

/* Delete the steps no policy keeps, never the newest nor the one just saved (invariant 3). */
static int collect_garbage(ckpt_manager *m, uint64_t saved)
{
	int *keep = NULL;
	uint64_t *drop = NULL;
	size_t ndrop = 0;
	int rc = 0;

	if (m->read_only || m->n < 2 || !policy_enabled(&m->pres))
		return 0;
	keep = malloc(m->n * sizeof(*keep));
	drop = malloc(m->n * sizeof(*drop));
	if (!keep || !drop) {
		rc = ckpt_error_nomem();
		goto done;
	}
	rc = ckpt_preservation_apply(keep, m->steps, m->n, &m->pres);
	if (rc)
		goto done;
	keep[m->n - 1] = 1;
	for (size_t i = 0; i < m->n; i++)
		if (!keep[i] && m->steps[i].step != saved) /* a forced save of an older step */
			drop[ndrop++] = m->steps[i].step;
	for (size_t i = 0; i < ndrop; i++) {
		int r = m->secondary ? 0 /* invariant 5: the primary deletes it */
				     : ckpt_root_delete_step_named(m->root, drop[i], m->prefix,
								   m->width);
		if (r == 0 || r == CKPT_ENOTFOUND) /* gone already: another process deleted it */
			forget_step(m, drop[i]);
		else if (rc == 0)
			rc = ckpt_error_wrap(r, "checkpoint manager: deleting step %" PRIu64,
					     drop[i]);
	}
done:
	free(keep);
	free(drop);
	return rc;
}

/* Keep an error for the next save / wait_until_finished / check_for_errors. */
static void stash_error(ckpt_manager *m, int rc)
{
	if (m->err)
		return; /* the first one is the one to report */
	m->err = rc;
	free(m->err_msg);
	m->err_msg = strdup(ckpt_error_last());
}

static int take_error(ckpt_manager *m)
{
	int rc = m->err;

	if (rc)
		ckpt_error_set(rc, "%s", m->err_msg ? m->err_msg : "background save failed");
	m->err = 0;
	free(m->err_msg);
	m->err_msg = NULL;
	return rc;
}

/*
 * Notice a finished asynchronous save (waiting for it if block): take its
 * error from ckpt_async, or reload and collect garbage. Errors are stashed.
 */
static void notice(ckpt_manager *m, int block)
{
	int rc;

	if (!m->future || (!block && ckpt_future_done(m->future) != 1))
		return;
	rc = block ? ckpt_async_wait_until_finished(m->async)
		   : ckpt_async_check_for_errors(m->async);
	ckpt_future_free(m->future);
	m->future = NULL;
	if (rc == 0)
		forget_step(m, m->future_step); /* a forced save replaced it: read it again */
	if (rc == 0)
		rc = reload_steps(m);
	if (rc == 0)
		rc = collect_garbage(m, m->future_step);
	if (rc)
		stash_error(m, rc);
}

static int check_options(const char *root, const ckpt_manager_options *o)
{
	const ckpt_preservation *p = &o->preservation;

	if (!root || !root[0])
		return ckpt_error_set(CKPT_EINVAL, "checkpoint manager: no root");
	CKPT_CHECK_VERSION(o, CKPT_MANAGER_OPTIONS_VERSION, "ckpt_manager_options");
	if (o->step_prefix &&
	    (strchr(o->step_prefix, '/') || strstr(o->step_prefix, CKPT_TMP_INFIX) ||
	     !strcmp(o->step_prefix, ".") || !strcmp(o->step_prefix, "..")))
		return ckpt_error_set(CKPT_EINVAL, "checkpoint manager: bad step_prefix '%s'",
				      o->step_prefix);
	if (o->step_format_fixed_length > MAX_STEP_WIDTH)
		return ckpt_error_set(CKPT_EINVAL,
				      "checkpoint manager: step_format_fixed_length %u > %d",
				      o->step_format_fixed_length, MAX_STEP_WIDTH);
	if (o->n_save_on_steps && !o->save_on_steps)
		return ckpt_error_set(CKPT_EINVAL, "checkpoint manager: save_on_steps is NULL");
	if (p->every_n_seconds < 0 ||
	    (p->best_metric && p->best_mode != CKPT_BEST_MIN && p->best_mode != CKPT_BEST_MAX))
		return ckpt_error_set(CKPT_EINVAL, "checkpoint manager: bad preservation policy");
	return 0;
}

int ckpt_manager_open(ckpt_manager **out, const char *root, const ckpt_manager_options *opts)
{
	static const ckpt_manager_options defaults = CKPT_MANAGER_OPTIONS_INIT;
	ckpt_manager *m = NULL;
	int rc;

	*out = NULL;
	if (!opts)
		opts = &defaults;
	rc = check_options(root, opts);
	if (rc)
		return rc;
	m = calloc(1, sizeof(*m));
	if (!m)
		return ckpt_error_nomem();
	m->width = opts->step_format_fixed_length;
	m->interval = opts->save_interval_steps;
	m->read_only = opts->read_only;
	m->pres = opts->preservation;
	m->aopts = (ckpt_async_options)CKPT_ASYNC_OPTIONS_INIT;
	memcpy(&m->aopts, &opts->async, /* version 1 ends inside its version 1 writer */
	       opts->async.version >= 2 ? sizeof(m->aopts)
					: offsetof(ckpt_async_options, writer) +
						  offsetof(ckpt_step_writer_options,
							   performance_metrics));
	m->aopts.writer.version = CKPT_STEP_WRITER_OPTIONS_VERSION; /* the rest is defaults */
	m->wopts = m->aopts.writer;
	m->wopts.performance_metrics = NULL;
	m->n_save_on = opts->n_save_on_steps;
	m->save_on = malloc((m->n_save_on ? m->n_save_on : 1) * sizeof(*m->save_on));
	if (!m->save_on) {
		rc = ckpt_error_nomem();
		goto fail;
	}
	if (m->n_save_on)
		memcpy(m->save_on, opts->save_on_steps, m->n_save_on * sizeof(*m->save_on));
	if ((rc = dup_opt(&m->root, root)) ||
	    (rc = dup_opt(&m->prefix,
			  opts->step_prefix && opts->step_prefix[0] ? opts->step_prefix : NULL)) ||
	    (rc = dup_opt(&m->metric, opts->preservation.best_metric)) ||
	    (rc = dup_opt(&m->w_custom, opts->async.writer.custom_metadata)) ||
	    (rc = dup_opt(&m->w_metrics, opts->async.writer.metrics)))
		goto fail;
	m->pres.best_metric = m->metric;
	m->wopts.custom_metadata = m->w_custom;
	m->wopts.metrics = m->w_metrics;
	m->wopts.step_prefix = m->prefix;
	m->wopts.step_format_fixed_length = m->width;
	/* multiprocess is NULL unless the caller's struct had it (copied above) */
	if ((rc = ckpt_mp_options_dup(&m->mp, m->wopts.multiprocess)) < 0)
		goto fail;
	m->wopts.multiprocess = ckpt_mp_options_of(m->mp);
	m->secondary = ckpt_multiprocess_is_secondary(m->wopts.multiprocess);
	if (!m->read_only) {
		rc = ckpt_mkdir_p(root);
		if (rc == 0 && !m->secondary) /* never removes pending steps (root.c invariant 5) */
			rc = ckpt_root_cleanup(root, NULL);
		if (rc == 0 && opts->enable_async) {
			ckpt_async_options ao = m->aopts;
			ao.writer = m->wopts;
			rc = ckpt_async_new(&m->async, &ao);
		}
		if (rc)
			goto fail;
	}
	rc = reload_steps(m);
	if (rc)
		goto fail;
	*out = m;
	return 0;
fail:
	ckpt_error_wrap(rc, "checkpoint manager of %s", root);
	ckpt_manager_free(m);
	return rc;
}

void ckpt_manager_free(ckpt_manager *m)
{
	if (!m)
		return;
	notice(m, 1);
	ckpt_future_free(m->future);
	ckpt_async_free(m->async);
	free(m->root);
	free(m->prefix);
	free(m->save_on);
	free(m->metric);
	free(m->w_custom);
	free(m->w_metrics);
	ckpt_mp_options_free(m->mp);
	free(m->err_msg);
	free(m->steps);
	free(m);
}

int ckpt_manager_should_save(ckpt_manager *m, uint64_t step)
{
	if (m->read_only)
		return 0;
	notice(m, 0);
	if ((m->n && step <= m->steps[m->n - 1].step) || (m->future && step <= m->future_step))
		return 0;
	if (m->interval <= 1 || step % m->interval == 0)
		return 1;
	for (size_t i = 0; i < m->n_save_on; i++)
		if (m->save_on[i] == step)
			return 1;
	return 0;
}

int ckpt_manager_reserve(ckpt_manager *m, const ckpt_item_args *items, size_t n)
{
	return m->async && !m->read_only ? ckpt_async_reserve(m->async, items, n) : 0;
}

int ckpt_manager_save(ckpt_manager *m, uint64_t step, const ckpt_item_args *items, size_t n,
		      const char *metrics, const char *custom_metadata, int force)
{
	int rc;

	if (m->read_only)
		return ckpt_error_set(CKPT_EREADONLY, "checkpoint manager of %s is read-only",
				      m->root);
	if (n && !items)
		return ckpt_error_set(CKPT_EINVAL, "checkpoint manager: items is NULL");
	notice(m, 1); /* invariant 2 */
	rc = take_error(m);
	if (rc || (!force && !ckpt_manager_should_save(m, step)))
		return rc; /* not due (Orbax returns False): nothing saved */
	if (m->async) {
		rc = ckpt_async_save(m->async, &m->future, m->root, step, items, n, custom_metadata,
				     metrics);
		m->future_step = step;
		return rc;
	}
	ckpt_step_writer_options wo = m->wopts;
	if (custom_metadata)
		wo.custom_metadata = custom_metadata;
	if (metrics)
		wo.metrics = metrics;
	if (wo.timeout_secs <= 0)
		wo.timeout_secs = m->aopts.timeout_secs;
	rc = ckpt_checkpointer_save(m->root, step, items, n, &wo);
	if (m->aopts.post_finalization) /* as the asynchronous saves do (ckpt/async.h) */
		m->aopts.post_finalization(step, rc, m->aopts.post_finalization_payload);
	if (rc == 0)
		forget_step(m, step); /* a forced save replaced it: read it again */
	if (rc == 0)
		rc = reload_steps(m);
	if (rc == 0)
		rc = collect_garbage(m, step);
	return rc;
}

int ckpt_manager_restore(void **outs, ckpt_manager *m, int64_t step, const ckpt_item_args *items,
			 size_t n)
{
	uint64_t s;
	char *dir;
	int rc = 0;

	notice(m, 1);
	if (step < 0)
		rc = ckpt_manager_latest_step(&s, m);
	else
		s = (uint64_t)step;
	if (rc)
		return rc;
	dir = step_path(m, s);
	rc = dir ? ckpt_checkpointer_restore(outs, dir, items, n) : CKPT_ENOMEM;
	free(dir);
	return rc;
}

int ckpt_manager_latest_step(uint64_t *out, ckpt_manager *m)
{
	notice(m, 0);
	if (m->n == 0)
		return ckpt_error_set(CKPT_ENOTFOUND, "no finalized step in %s", m->root);
	*out = m->steps[m->n - 1].step;
	return 0;
}

int ckpt_manager_best_step(uint64_t *out, ckpt_manager *m)
{
	size_t i;
	int rc;

	notice(m, 0);
	rc = ckpt_preservation_best(&i, m->steps, m->n, &m->pres);
	if (rc == 0)
		*out = m->steps[i].step;
	return rc;
}

int ckpt_manager_all_steps(uint64_t **out, size_t *n, ckpt_manager *m)
{
	notice(m, 0);
	*n = 0;
	*out = malloc((m->n ? m->n : 1) * sizeof(**out));
	if (!*out)
		return ckpt_error_nomem();
	for (size_t i = 0; i < m->n; i++)
		(*out)[i] = m->steps[i].step;
	*n = m->n;
	return 0;
}

/* whole: the step's _CHECKPOINT_METADATA; else its metrics. */
static int step_json(char **out, ckpt_manager *m, uint64_t step, int whole)
{
	ckpt_step *s = NULL;
	cJSON *meta = NULL;
	const char *text;
	int rc = open_step(&s, m, step);

	*out = NULL;
	if (rc)
		return rc;
	text = ckpt_step_metadata_json(s);
	if (!text)
		text = "{}";
	if (whole) {
		*out = strdup(text);
	} else {
		meta = cJSON_Parse(text);
		const cJSON *mt = metrics_of(meta);
		*out = mt ? ckpt_json_print_exact(mt) : strdup("{}");
	}
	if (!*out)
		rc = ckpt_error_nomem();
	cJSON_Delete(meta);
	ckpt_step_free(s);
	return rc;
}

int ckpt_manager_metrics(char **out, ckpt_manager *m, uint64_t step)
{
	return step_json(out, m, step, 0);
}

int ckpt_manager_metadata(char **out, ckpt_manager *m, uint64_t step)
{
	return step_json(out, m, step, 1);
}

/* Write a temporary file, fsync it, link() it into place (fails if set), fsync root. */
int ckpt_manager_set_root_metadata(ckpt_manager *m, const char *json)
{
	char nonce[17];
	char *tmp = NULL, *path = NULL;
	cJSON *obj = NULL;
	int fd, rc = 0;

	if (m->read_only)
		return ckpt_error_set(CKPT_EREADONLY, "checkpoint manager of %s is read-only",
				      m->root);
	obj = json ? cJSON_ParseWithOpts(json, NULL, 1) : NULL; /* nothing after the object */
	if (!cJSON_IsObject(obj)) {
		rc = ckpt_error_set(CKPT_EINVAL, "root metadata must be a JSON object");
		goto done;
	}
	ckpt_nonce(nonce);
	path = ckpt_asprintf("%s/%s", m->root, ROOT_METADATA);
	tmp = path ? ckpt_asprintf("%s.tmp-%s", path, nonce) : NULL;
	if (!tmp) {
		rc = CKPT_ENOMEM;
		goto done;
	}
	rc = ckpt_write_file(tmp, json, strlen(json));
	if (rc)
		goto done;
	fd = open(tmp, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0)
		rc = ckpt_error_errno(CKPT_EIO, errno, "fsync %s", tmp);
	if (fd >= 0)
		close(fd);
	if (rc == 0 && link(tmp, path) != 0)
		rc = ckpt_error_errno(errno == EEXIST ? CKPT_EEXISTS : CKPT_EIO, errno,
				      "root metadata %s%s", path,
				      errno == EEXIST ? " is already set" : "");
	if (rc == 0)
		rc = ckpt_fsync_dir(m->root);
done:
	if (tmp)
		unlink(tmp);
	cJSON_Delete(obj);
	free(tmp);
	free(path);
	return rc;
}

int ckpt_manager_root_metadata(char **out, ckpt_manager *m)
{
	char *path = ckpt_asprintf("%s/%s", m->root, ROOT_METADATA);
	cJSON *obj = NULL;
	int rc = path ? ckpt_read_file(out, NULL, path, ROOT_METADATA_MAX) : CKPT_ENOMEM;

	if (rc == CKPT_ENOTFOUND) {
		*out = strdup("{}");
		rc = *out ? 0 : ckpt_error_nomem();
	} else if (rc == 0 && !cJSON_IsObject(obj = cJSON_ParseWithOpts(*out, NULL, 1))) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s is not a JSON object", path);
		free(*out);
		*out = NULL;
	}
	cJSON_Delete(obj);
	free(path);
	return rc;
}

int ckpt_manager_delete(ckpt_manager *m, uint64_t step)
{
	int rc;

	if (m->read_only)
		return ckpt_error_set(CKPT_EREADONLY, "checkpoint manager of %s is read-only",
				      m->root);
	rc = m->secondary ? 0 /* invariant 5 */
			  : ckpt_root_delete_step_named(m->root, step, m->prefix, m->width);
	if (rc == 0 || rc == CKPT_ENOTFOUND)
		forget_step(m, step);
	return rc;
}

int ckpt_manager_reload(ckpt_manager *m)
{
	notice(m, 0);
	return reload_steps(m);
}

int ckpt_manager_wait_until_finished(ckpt_manager *m)
{
	notice(m, 1);
	return take_error(m);
}

int ckpt_manager_check_for_errors(ckpt_manager *m)
{
	notice(m, 0);
	return take_error(m);
}

/* ---- the invariants, checked in one call (manager_private.h) ---------- */

int ckpt_manager_check(const ckpt_manager *m)
{
	assert(m->root && m->root[0]);
	assert(m->n == 0 || m->steps); /* invariant 1: ascending, hence unique */
	for (size_t i = 1; i < m->n; i++)
		assert(m->steps[i - 1].step < m->steps[i].step);
	/* invariant 2: at most one save in flight, and only with an async saver */
	assert(m->future == NULL || m->async != NULL);
	/* invariant 4: a read-only manager never saves */
	assert(!m->read_only || (m->async == NULL && m->future == NULL));
	assert(m->err <= 0 && (m->err != 0 || m->err_msg == NULL)); /* no message without an error */
	assert(m->pres.best_metric == NULL || m->pres.best_metric == m->metric);
	assert(m->n_save_on == 0 || m->save_on);
	return 1;
}
