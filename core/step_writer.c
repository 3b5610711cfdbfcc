/*
 * step_writer.c — saving one step atomically (docs/api.md, "Saving
 * protocol").
 *
 * ROOT/<step> below is the step's directory name: the decimal step, or the
 * manager's "<prefix>_<padded step>" when the options ask for it.
 *
 * Protocol:
 *   open:     clean up abandoned temporary directories of the root, then
 *             mkdir ROOT/<step>.ckpt-tmp-<nonce>/ and flock(LOCK_EX) the
 *             directory itself (ckpt_lock_dir) for the writer's whole
 *             life, create the store inside, open one batch. Handlers put
 *             their keys into that batch.
 *   finalize: put _CHECKPOINT_METADATA, commit the batch, seal the store,
 *             write the listing ckpt.list from it (step_list.h), fsync the
 *             temporary directory and ROOT, rename the temporary
 *             directory to ROOT/<step> (with force and an existing step:
 *             exchange the two, after locking the old one), fsync ROOT, then
 *             remove the old step, which now has the temporary name.
 *   abort:    drop the batch and remove the temporary directory.
 *
 * Several processes (ckpt/multiprocess.h, multiprocess.c, docs/format.md
 * "Several processes writing one step"): the primary makes and locks the
 * attempt directory ROOT/<step>.ckpt-tmp-mp-<prefix>-<nonce>/ once every
 * active process has announced itself, and writes ckpt.db there as one
 * process would; every other process writes its tiles into its own index
 * ckpt.<i>.db and data files in the same directory (a tiles-only batch) and
 * never removes, cleans or renames anything. At finalize the primary waits
 * for every index, merges them into ckpt.db, checks the tiles
 * (ckpt_store_close_tiles), removes the per-process index files, seals and
 * renames as above, then publishes the result the others return.
 *
 * A writer opened on an existing directory (ckpt_step_writer_open_dir, the
 * finalize of a pending step) borrows the caller's lock, keeps one entry of
 * the directory (`files/`): abort removes everything else (what the writer
 * created), and finalize removes the kept entry only after the rename, so a
 * failure at any point before the rename leaves the entry untouched.
 *
 * Invariants:
 *   1. ROOT/<step> only ever names a complete, sealed store: the rename is
 *      the commit point and happens after every byte is durable.
 *   2. While the writer lives, it holds the lock of its temporary directory
 *      (the lock belongs to the inode, so it follows the rename and is
 *      released by writer_free). Cleanup by any process, this one included,
 *      sees the save as alive; once the writer is gone, killed or not, the
 *      directory is unlocked and the next cleanup removes it. There is no
 *      window where a live writer's directory is unlocked: a cleanup that
 *      removes it between the mkdir and the flock makes the writer retry.
 *   3. Without force, an existing step is never replaced (renameat2
 *      RENAME_NOREPLACE), even if it appeared during the save.
 *   4. A forced save replaces a step with one RENAME_EXCHANGE: ROOT/<step>
 *      is never missing. The old step is locked from before the exchange
 *      until it is removed; if the writer dies in between, it is an unlocked
 *      temporary directory that the next cleanup removes.
 *   5. A non-primary writer owns nothing outside its own index and data
 *      files: it holds no lock, removes no directory and renames nothing;
 *      the attempt directory belongs to the primary (invariants 1-4 hold for
 *      the primary's writer). The step is merged only from indexes whose
 *      writers said they are complete (multiprocess.c invariant 2).
 */
#include <assert.h>
#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error_private.h"
#include "multiprocess_private.h"
#include "step_list.h"
#include "step_private.h"
#include "store_private.h"
#include "root_private.h"
#include "fsutil.h"

struct ckpt_step_writer {
	char *root;
	char *tmpdir;
	char *final;
	int lockfd;	   /* the flock()ed temporary directory (invariant 2) */
	int borrowed_lock; /* lockfd is the caller's (open_dir) */
	char *keep;	   /* open_dir: the entry of tmpdir that is not ours */
	int force;
	ckpt_store_options store_opts;
	ckpt_store *store;
	ckpt_batch *batch;
	cJSON *handlers;	/* {item: typestr} */
	cJSON *custom_metadata; /* object */
	cJSON *metrics;		/* object */
	int64_t init_ns;
	cJSON *perf;		/* object: performance_metrics (options version 2) */
	int64_t deadline_ns;	/* CLOCK_MONOTONIC; 0: no timeout_secs */
	ckpt_mp *mp;	   /* a shared multi-process step, else NULL */
	int mp_published;  /* primary: the attempt is published (failures go to `result`) */
	int mp_reported;   /* the result (primary) or the outcome (others) is written */
	int fail_rc;	   /* why the writer is freed unfinished (0: aborted) */
};

/* A non-primary process's writer (invariant 5). */
static int secondary(const ckpt_step_writer *w)
{
	return w->mp && !ckpt_mp_is_primary(w->mp);
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int parse_object(cJSON **out, const char *json, const char *what)
{
	*out = json ? cJSON_Parse(json) : cJSON_CreateObject();
	if (!*out || !cJSON_IsObject(*out)) {
		cJSON_Delete(*out);
		*out = NULL;
		return ckpt_error_set(CKPT_EINVAL, "%s must be a JSON object", what);
	}
	return 0;
}

/* Remove every entry of dir but `keep` (a writer's store inside a pending step). */
static int rm_except(const char *dir, const char *keep)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int rc = 0;

	if (!d)
		return ckpt_error_errno(CKPT_EIO, errno, "open %s", dir);
	while (rc == 0 && (e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, keep))
			continue;
		char *p = ckpt_asprintf("%s/%s", dir, e->d_name);
		rc = p ? ckpt_rmtree(p) : CKPT_ENOMEM;
		free(p);
	}
	closedir(d);
	return rc;
}

static void writer_free(ckpt_step_writer *w)
{
	if (!w)
		return;
	if (w->mp && !w->mp_reported) { /* failed or aborted: tell the other processes */
		const int rc = w->fail_rc < 0 ? w->fail_rc : CKPT_ERROR;
		if (secondary(w))
			ckpt_mp_failed(w->mp, rc);
		else
			ckpt_mp_primary_result(w->mp, rc, w->mp_published);
	}
	ckpt_batch_abort(w->batch);
	ckpt_store_free(w->store);
	if (secondary(w))
		; /* the attempt directory is the primary's (invariant 5) */
	else if (w->tmpdir && w->keep)
		rm_except(w->tmpdir, w->keep);
	else if (w->tmpdir)
		ckpt_rmtree(w->tmpdir);
	if (w->lockfd >= 0 && !w->borrowed_lock)
		close(w->lockfd);
	free(w->keep);
	cJSON_Delete(w->handlers);
	cJSON_Delete(w->custom_metadata);
	cJSON_Delete(w->metrics);
	cJSON_Delete(w->perf);
	free(w->root);
	free(w->tmpdir);
	free(w->final);
	ckpt_mp_free(w->mp);
	free(w);
}

/*
 * mkdir and lock the temporary directory. A concurrent cleanup may remove it
 * between the two (it is then empty and unlocked): try again with a new name.
 */
static int make_tmpdir(ckpt_step_writer *w, const char *fixed)
{
	char nonce[17];
	int rc = 0;

	for (int tries = 0; tries < 8; tries++) {
		ckpt_nonce(nonce);
		w->tmpdir = fixed ? strdup(fixed) : ckpt_asprintf("%s%s%s", w->final, CKPT_TMP_INFIX, nonce);
		if (!w->tmpdir)
			return CKPT_ENOMEM;
		if (mkdir(w->tmpdir, 0777) != 0) {
			rc = ckpt_error_errno(CKPT_EIO, errno, "mkdir %s", w->tmpdir);
			free(w->tmpdir);
			w->tmpdir = NULL;
			return rc;
		}
		rc = ckpt_lock_dir(&w->lockfd, w->tmpdir, 0);
		if (rc != CKPT_ENOTFOUND && rc != CKPT_EBUSY)
			return rc; /* on failure writer_free removes the directory */
		free(w->tmpdir);   /* removed (or replaced) by a cleanup: not ours */
		w->tmpdir = NULL;
	}
	return rc;
}

/*
 * Numbers of a JSON tree made raw text, the shortest that reads back as the
 * same double: cJSON prints 15 digits when they compare equal within an
 * epsilon, so 2.3000000000000003 (a metric) came back as 2.3.
 */
static int exact_numbers(cJSON *node)
{
	for (cJSON *c = node ? node->child : NULL; c; c = c->next) {
		if (cJSON_IsNumber(c)) {
			char buf[32];
			double d = c->valuedouble;
			if (!isfinite(d))
				continue; /* cJSON prints null for these */
			for (int prec = 15; prec <= 17; prec++) {
				snprintf(buf, sizeof(buf), "%.*g", prec, d);
				if (strtod(buf, NULL) == d)
					break;
			}
			char *text = strdup(buf);
			if (!text)
				return ckpt_error_nomem();
			c->type = cJSON_Raw;
			c->valuestring = text;
		} else if (exact_numbers(c) < 0) {
			return CKPT_ENOMEM;
		}
	}
	return 0;
}

char *ckpt_json_print_exact(const cJSON *obj)
{
	cJSON *c = cJSON_Duplicate(obj, 1);
	char *text = c && exact_numbers(c) == 0 ? cJSON_PrintUnformatted(c) : NULL;
	cJSON_Delete(c);
	return text;
}

/* Steal `obj` into `parent` under `name` (a copy, since the writer keeps its own). */
static int add_copy(cJSON *parent, const char *name, const cJSON *obj)
{
	cJSON *c = cJSON_Duplicate(obj, 1);

	if (c && exact_numbers(c) < 0) {
		cJSON_Delete(c);
		return CKPT_ENOMEM;
	}
	if (!c || !cJSON_AddItemToObject(parent, name, c)) {
		cJSON_Delete(c);
		return ckpt_error_nomem();
	}
	return 0;
}

/* Integers as raw JSON text: cJSON numbers are doubles and would round nanoseconds. */
static int add_int(cJSON *parent, const char *name, int64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRId64, v);
	return cJSON_AddRawToObject(parent, name, buf) ? 0 : ckpt_error_nomem();
}

/* StepMetadata as JSON; commit: with the commit timestamp (now). */
static int metadata_json(char **out, const ckpt_step_writer *w, int commit)
{
	cJSON *m = cJSON_CreateObject();
	int rc = m ? 0 : ckpt_error_nomem();

	*out = NULL;
	if (rc == 0)
		rc = add_copy(m, "item_handlers", w->handlers);
	if (rc == 0)
		rc = add_copy(m, "metrics", w->metrics);
	if (rc == 0)
		rc = add_copy(m, "performance_metrics", w->perf);
	if (rc == 0)
		rc = add_int(m, "init_timestamp_nsecs", w->init_ns);
	if (rc == 0 && commit)
		rc = add_int(m, "commit_timestamp_nsecs", now_ns());
	if (rc == 0)
		rc = add_copy(m, "custom_metadata", w->custom_metadata);
	if (rc == 0 && !(*out = cJSON_PrintUnformatted(m)))
		rc = ckpt_error_nomem();
	cJSON_Delete(m);
	return rc;
}

/*
 * The save in progress as a plain file tmpdir/_CHECKPOINT_METADATA (no
 * commit timestamp), replaced whole at each change, for readers of the
 * temporary directory (ckpt_composite_metadata_from_temporary_paths).
 * Removed before the rename. A pending step keeps its own in files/.
 */
static int write_temp_metadata(const ckpt_step_writer *w)
{
	char *json = NULL, *path = NULL, *tmp = NULL;
	int rc, fd = -1;

	if (w->keep || secondary(w))
		return 0;
	rc = metadata_json(&json, w, 0);
	if (rc == 0 && (!(path = ckpt_asprintf("%s/%s", w->tmpdir, CKPT_STEP_METADATA_KEY)) ||
			!(tmp = ckpt_asprintf("%s.tmp", path))))
		rc = ckpt_error_nomem();
	if (rc == 0 && (fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
		rc = ckpt_error_errno(CKPT_EIO, errno, "create %s", tmp);
	if (rc == 0 && write(fd, json, strlen(json)) != (ssize_t)strlen(json))
		rc = ckpt_error_errno(CKPT_EIO, errno, "write %s", tmp);
	if (fd >= 0 && close(fd) != 0 && rc == 0)
		rc = ckpt_error_errno(CKPT_EIO, errno, "write %s", tmp);
	if (rc == 0 && rename(tmp, path) != 0)
		rc = ckpt_error_errno(CKPT_EIO, errno, "rename %s", tmp);
	free(json);
	free(path);
	free(tmp);
	return rc;
}

int ckpt_step_writer_add_item(ckpt_step_writer *w, const char *item, const char *typestr)
{
	int rc = ckpt_item_name_check(item);
	const cJSON *old;

	if (rc)
		return rc;
	old = cJSON_GetObjectItemCaseSensitive(w->handlers, item);
	if (old) {
		if (strcmp(old->valuestring, typestr) == 0)
			return 0;
		return ckpt_error_set(CKPT_EEXISTS, "item '%s' is already saved by %s, not %s",
				      item, old->valuestring, typestr);
	}
	if (!cJSON_AddStringToObject(w->handlers, item, typestr))
		return ckpt_error_nomem();
	return write_temp_metadata(w);
}

/* Create the store in w->tmpdir and open the batch. */
static int open_store(ckpt_step_writer *w)
{
	char index[32];
	int rc;

	if (secondary(w)) { /* its own index ckpt.<i>.db, tiles only */
		snprintf(index, sizeof(index), "ckpt.%u.db", ckpt_mp_index(w->mp));
		rc = ckpt_store_open_index(&w->store, w->tmpdir, index, CKPT_STORE_CREATE,
					   &w->store_opts);
	} else {
		rc = ckpt_store_open(&w->store, w->tmpdir, CKPT_STORE_CREATE, &w->store_opts);
	}
	if (rc == 0)
		rc = ckpt_batch_begin(&w->batch, w->store);
	if (rc == 0 && secondary(w))
		ckpt_batch_set_tiles_only(w->batch, 1);
	if (rc)
		ckpt_error_wrap(rc, "step %s", w->tmpdir);
	return rc;
}

/* Both entry points: dir NULL makes a new temporary directory (open), else
 * the store goes into dir, a pending step locked by the caller (open_dir). */
static int writer_open(ckpt_step_writer **out, const char *root, uint64_t step, const char *dir,
		       int lockfd, const char *keep, const ckpt_step_writer_options *opts)
{
	static const ckpt_step_writer_options defaults = CKPT_STEP_WRITER_OPTIONS_INIT;
	ckpt_step_writer *w;
	struct stat st;
	int rc;

	*out = NULL;
	CKPT_CHECK_VERSION(opts, CKPT_STEP_WRITER_OPTIONS_VERSION, "ckpt_step_writer_options");
	if (!opts)
		opts = &defaults;
	CKPT_CHECK_VERSION(&opts->store, CKPT_STORE_OPTIONS_VERSION, "ckpt_step_writer_options.store");
	const ckpt_multiprocess_options *mpo = opts->version >= 3 ? opts->multiprocess : NULL;
	if ((rc = ckpt_multiprocess_check(mpo)) < 0)
		return rc;
	if (dir && ckpt_mp_shared(mpo))
		return ckpt_error_set(CKPT_EINVAL, "a pending step is finalized by one process, "
						   "not with multiprocess options");
	w = calloc(1, sizeof(*w));
	if (!w)
		return ckpt_error_nomem();
	w->lockfd = -1;
	w->force = opts->force;
	w->store_opts = opts->store;
	w->init_ns = now_ns();
	rc = parse_object(&w->custom_metadata, opts->custom_metadata, "custom_metadata");
	if (rc == 0)
		rc = parse_object(&w->metrics, opts->metrics, "metrics");
	if (rc == 0) /* version 1 ends before performance_metrics */
		rc = parse_object(&w->perf, opts->version >= 2 ? opts->performance_metrics : NULL,
				  "performance_metrics");
	if (rc == 0 && opts->version >= 2 && !(opts->timeout_secs >= 0))
		rc = ckpt_error_set(CKPT_EINVAL, "timeout_secs must be >= 0, not %g",
				    opts->timeout_secs);
	if (rc == 0 && opts->version >= 2 && opts->timeout_secs > 0)
		w->deadline_ns = mono_ns() + (int64_t)(opts->timeout_secs * 1e9);
	if (rc)
		goto fail;
	w->handlers = cJSON_CreateObject();
	w->root = strdup(root);
	w->final =
	    ckpt_step_dir_path(root, step, opts->step_prefix, opts->step_format_fixed_length);
	if (dir) {
		assert(lockfd >= 0 && keep);
		w->force = 0; /* a pending step never replaces a step */
		w->lockfd = lockfd;
		w->borrowed_lock = 1;
		w->keep = strdup(keep); /* first: with tmpdir but no keep, free removes dir */
		w->tmpdir = w->keep ? strdup(dir) : NULL;
		if (!w->tmpdir)
			rc = ckpt_error_nomem();
	}
	if (rc == 0 && (!w->handlers || !w->root || !w->final))
		rc = ckpt_error_nomem();
	if (rc == 0 && ckpt_mp_shared(mpo))
		rc = ckpt_mp_new(&w->mp, mpo, w->final, step);
	if (rc == 0 && !dir)
		rc = ckpt_mkdir_p(root);
	if (rc == 0 && !dir && !secondary(w)) /* only the primary cleans up */
		rc = ckpt_root_cleanup(root, NULL);
	if (rc == 0 && !w->force && lstat(w->final, &st) == 0)
		rc = ckpt_error_set(CKPT_EEXISTS, "step %s already exists", w->final);
	if (rc == 0 && w->mp) {
		char *attempt = NULL;
		if (secondary(w)) {
			rc = ckpt_mp_join(w->mp, &w->tmpdir);
		} else {
			rc = ckpt_mp_primary_gather(w->mp, &attempt);
			if (rc == 0)
				rc = make_tmpdir(w, attempt);
		}
		free(attempt);
	} else if (rc == 0) { /* with dir: leftovers of an earlier failed or killed finalize */
		rc = dir ? rm_except(w->tmpdir, w->keep) : make_tmpdir(w, NULL);
	}
	if (rc == 0)
		rc = open_store(w);
	if (rc == 0)
		rc = write_temp_metadata(w);
	if (rc == 0 && w->mp && !secondary(w)) {
		w->mp_published = 1; /* from here on, a failure is published as the result */
		rc = ckpt_mp_primary_publish(w->mp);
	}
	if (rc)
		goto fail;
	*out = w;
	return 0;
fail:
	w->fail_rc = rc;
	writer_free(w);
	return rc;
}

int ckpt_step_writer_open(ckpt_step_writer **out, const char *root, uint64_t step,
			  const ckpt_step_writer_options *opts)
{
	return writer_open(out, root, step, NULL, -1, NULL, opts);
}

int ckpt_step_writer_open_dir(ckpt_step_writer **out, const char *root, uint64_t step,
			      const char *dir, int lockfd, const char *keep,
			      const ckpt_step_writer_options *opts)
{
	return writer_open(out, root, step, dir, lockfd, keep, opts);
}

void ckpt_step_writer_set_init_time(ckpt_step_writer *w, int64_t ns)
{
	w->init_ns = ns;
}

ckpt_batch *ckpt_step_writer_batch(ckpt_step_writer *w)
{
	return w->batch;
}

const char *ckpt_step_writer_dir(const ckpt_step_writer *w)
{
	return w->tmpdir;
}

const ckpt_store_options *ckpt_step_writer_store_options(const ckpt_step_writer *w)
{
	return &w->store_opts;
}

/*
 * A non-primary's finalize: its index is complete and durable, then the
 * primary's result is ours (invariant 5).
 */
static int finalize_secondary(ckpt_step_writer *w)
{
	int rc = ckpt_batch_commit(w->batch, NULL);

	w->batch = NULL;
	ckpt_store_free(w->store); /* closes ckpt.<i>.db: committed, durable */
	w->store = NULL;
	if (rc == 0)
		rc = ckpt_fsync_dir(w->tmpdir);
	if (rc) {
		ckpt_error_wrap(rc, "process %u: finalize %s", ckpt_mp_index(w->mp), w->tmpdir);
		w->fail_rc = rc;
	} else {
		w->mp_reported = 1;
		rc = ckpt_mp_done(w->mp);
	}
	writer_free(w);
	return rc;
}

#ifndef NDEBUG
/* Tests only (debug builds): CKPT_TEST_MP_DIE=merge kills the primary in the
 * middle of the merge, after the first per-process index is merged. */
static void test_die_at(const char *point)
{
	const char *v = getenv("CKPT_TEST_MP_DIE");
	if (v && strcmp(v, point) == 0)
		raise(SIGKILL);
}
#else
#define test_die_at(point) ((void)0)
#endif

/* Primary: wait for the others' indexes, merge them into ours, then remove them. */
static int merge_others(ckpt_step_writer *w)
{
	size_t n;
	const unsigned *others = ckpt_mp_others(w->mp, &n);
	int rc = ckpt_mp_primary_wait_saved(w->mp);

	for (size_t k = 0; rc == 0 && k < n; k++) {
		char index[32];
		snprintf(index, sizeof(index), "ckpt.%u.db", others[k]);
		rc = ckpt_store_merge_index(w->store, index);
		ckpt_mp_primary_beat(w->mp);
		test_die_at("merge");
	}
	for (size_t k = 0; rc == 0 && k < n; k++) { /* merged: only ckpt.db indexes the step */
		for (int j = 0; rc == 0 && j < 2; j++) {
			char *p = j ? ckpt_asprintf("%s/claim.%u", w->tmpdir, others[k])
				    : ckpt_asprintf("%s/ckpt.%u.db", w->tmpdir, others[k]);
			if (!p || (unlink(p) != 0 && errno != ENOENT))
				rc = p ? ckpt_error_errno(CKPT_EIO, errno, "remove %s", p)
				       : ckpt_error_nomem();
			free(p);
		}
	}
	return rc;
}

int ckpt_step_writer_finalize(ckpt_step_writer *w)
{
	char *json = NULL;
	int oldfd = -1, rc;

	if (secondary(w))
		return finalize_secondary(w);
	assert(w->batch && w->store && w->tmpdir && w->lockfd >= 0); /* invariant 2 */
	rc = metadata_json(&json, w, 1);
	if (rc == 0)
		rc = ckpt_batch_put(w->batch, CKPT_STEP_METADATA_KEY,
				    strlen(CKPT_STEP_METADATA_KEY), json, strlen(json), NULL);
	if (rc)
		goto done;
	rc = ckpt_batch_commit(w->batch, NULL);
	w->batch = NULL;
	if (rc == 0 && w->mp)
		rc = merge_others(w);
	if (rc == 0) /* every tiled key, from every process: complete, once */
		rc = ckpt_store_close_tiles(w->store);
	if (rc == 0)
		rc = ckpt_store_seal(w->store);
	if (rc) {
		ckpt_error_wrap(rc, "finalize %s", w->tmpdir);
		goto done;
	}
	ckpt_store_free(w->store);
	w->store = NULL;
	/* The listing (format 1.3): read back from the sealed store, before the step is visible. */
	if ((rc = step_list_write(w->tmpdir))) {
		ckpt_error_wrap(rc, "finalize %s: its listing", w->tmpdir);
		goto done;
	}
	if (!w->keep) {
		char *tm = ckpt_asprintf("%s/%s", w->tmpdir, CKPT_STEP_METADATA_KEY);
		if (!tm || (unlink(tm) != 0 && errno != ENOENT))
			rc = tm ? ckpt_error_errno(CKPT_EIO, errno, "remove %s", tm)
				: ckpt_error_nomem();
		free(tm);
		if (rc)
			goto done;
	}
	rc = ckpt_fsync_dir(w->tmpdir);
	if (rc)
		goto done;
	if (w->force) { /* lock the old step before replacing it (invariant 4) */
		rc = ckpt_lock_dir(&oldfd, w->final, 0);
		if (rc == CKPT_ENOTFOUND)
			rc = 0; /* nothing to replace */
		if (rc)
			goto done;
	}
	rc = ckpt_fsync_dir(w->root);
	if (rc == 0 && w->deadline_ns && mono_ns() > w->deadline_ns) /* the last moment */
		rc = ckpt_error_set(CKPT_ETIMEDOUT,
				    "step %s: the save took longer than its timeout; not finalized",
				    w->final);
	if (rc)
		goto done;
	/*
	 * The commit point. With an old step, swap the two directories in one
	 * atomic rename: ROOT/<step> is the old step or the new one, never
	 * missing, and the old one takes our temporary name, which cleanup
	 * removes should we die before we do (invariant 4).
	 */
	if (renameat2(AT_FDCWD, w->tmpdir, AT_FDCWD, w->final,
		      oldfd >= 0 ? RENAME_EXCHANGE : RENAME_NOREPLACE) != 0) {
		int err = errno;
		rc = ckpt_error_errno(err == EEXIST || err == ENOTEMPTY ? CKPT_EEXISTS : CKPT_EIO,
				      err, "rename %s to %s", w->tmpdir, w->final);
		goto done;
	}
	rc = ckpt_fsync_dir(w->root);
	if (oldfd >= 0)
		ckpt_rmtree(w->tmpdir); /* the old step; cleanup removes it if this fails */
	free(w->tmpdir);
	w->tmpdir = NULL; /* committed: nothing to remove any more */
	if (w->keep) {	  /* the pending step's files/, now inside the finalized step */
		char *kept = ckpt_asprintf("%s/%s", w->final, w->keep);
		int r = kept ? ckpt_rmtree(kept) : CKPT_ENOMEM;
		if (r == 0)
			r = ckpt_fsync_dir(w->final);
		if (r && rc == 0)
			rc = ckpt_error_wrap(r, "step %s is finalized, but removing its %s failed",
					     w->final, w->keep);
		free(kept);
	}
done:
	if (oldfd >= 0)
		close(oldfd);
	free(json);
	if (w->mp && !w->tmpdir) { /* committed (invariant 4 of multiprocess.c) */
		w->mp_reported = 1;
		ckpt_mp_primary_result(w->mp, 0, 1);
	}
	w->fail_rc = rc;
	writer_free(w);
	return rc;
}

void ckpt_step_writer_abort(ckpt_step_writer *w)
{
	writer_free(w);
}
