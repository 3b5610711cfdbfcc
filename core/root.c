/*
 * root.c — a checkpoint root (ckpt/root.h): listing steps, cleaning up
 * abandoned saves, deleting steps, waiting for new ones; step directory names
 * (root_private.h).
 *
 * Design:
 *   A root holds finalized steps (directories named by their decimal step
 *   number, holding ckpt.db) and temporary directories of saves in progress
 *   or abandoned ("<step>.ckpt-tmp-<nonce>", see step_writer.c). Anything
 *   else is ignored. A CheckpointManager may name its steps
 *   "<prefix>_<zero-padded step>" (ckpt_step_dir_name); the _named variants
 *   list and delete such names, the plain functions only plain names, and
 *   ckpt_root_step_dirs lists every naming at once (for showing a root:
 *   `ckpt ls`, the mount), by the directories' real names.
 *
 * Invariants:
 *   1. A name is a step only if ckpt_step_name_parse() accepts it (no leading
 *      zeros except "0") and the directory contains ckpt.db.
 *   2. A temporary directory is locked by flock() on the directory itself
 *      (ckpt_lock_dir), held by its writer from just after the mkdir until
 *      the writer is freed. Cleanup removes one only while holding that lock,
 *      taken with LOCK_NB, on the inode its name still names: a writer that
 *      is gone (even killed between its mkdir and its flock) holds no lock,
 *      so its directory goes at the next cleanup; a live one is never touched.
 *      Only a lock holder renames a temporary directory.
 *   3. A step is deleted by renaming it to a temporary name first, so a crash
 *      mid-delete leaves something cleanup removes, never half a step.
 *   4. Removing a tree tolerates entries vanishing under it (fsutil.c
 *      invariant 1): a concurrent cleanup may be removing the same tree.
 *   5. A temporary directory holding the directory `files/` is a pending step
 *      (ckpt/pending.h): cleanup never removes it, whether locked or not. The
 *      check is made while holding its lock, and files/ only disappears
 *      under that lock (finalize, remove), so cleanup cannot race it. A
 *      deleted step ("<step>.ckpt-tmp-del-<nonce>") is never pending, even if
 *      a finalize died before removing its files/.
 *   6. A rendezvous directory of a multi-process save
 *      ("<step>.ckpt-tmp-rdv-<prefix>", multiprocess.c) is never removed by
 *      cleanup: it has no lock holder (all the processes of the save write
 *      into it), holds no step, and its primary removes it.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckpt/root.h"
#include "ckpt/step.h"
#include "error_private.h"
#include "root_private.h"
#include "fsutil.h"
#include "multiprocess_private.h"
#include "orbax.h"

int ckpt_dir_is_pending(const char *dir)
{
	struct stat st;
	char *files = strstr(dir, CKPT_TMP_INFIX "del-")
			  ? NULL /* a step being deleted */
			  : ckpt_asprintf("%s/%s", dir, CKPT_PENDING_FILES);
	int yes = files && lstat(files, &st) == 0 && S_ISDIR(st.st_mode);

	free(files);
	return yes;
}

int ckpt_step_name_parse(uint64_t *out, const char *name)
{
	uint64_t v = 0;

	if (!name[0] || (name[0] == '0' && name[1]))
		return 0;
	for (const char *c = name; *c; c++) {
		if (*c < '0' || *c > '9' || v > (UINT64_MAX - (uint64_t)(*c - '0')) / 10)
			return 0;
		v = v * 10 + (uint64_t)(*c - '0');
	}
#ifndef NDEBUG
	char canon[24];
	snprintf(canon, sizeof(canon), "%" PRIu64, v);
	assert(strcmp(canon, name) == 0); /* invariant 1: one spelling per step */
#endif
	*out = v;
	return 1;
}

char *ckpt_step_dir_name(uint64_t step, const char *prefix, unsigned width)
{
	if (prefix && prefix[0])
		return ckpt_asprintf("%s_%0*" PRIu64, prefix, (int)width, step);
	return ckpt_asprintf("%0*" PRIu64, (int)width, step);
}

char *ckpt_step_dir_path(const char *root, uint64_t step, const char *prefix, unsigned width)
{
	char *name = ckpt_step_dir_name(step, prefix, width);
	char *path = name ? ckpt_asprintf("%s/%s", root, name) : NULL;

	free(name);
	return path;
}

int ckpt_step_dir_name_parse(uint64_t *out, const char *name, const char *prefix, unsigned width)
{
	size_t plen = prefix && prefix[0] ? strlen(prefix) : 0;
	char buf[96];
	uint64_t v = 0;
	const char *d = name;

	if (plen == 0 && width == 0)
		return ckpt_step_name_parse(out, name); /* plain names exactly as always */
	if (plen && (strncmp(name, prefix, plen) != 0 || name[plen] != '_'))
		return 0;
	d = name + (plen ? plen + 1 : 0);
	if (!*d || strlen(d) >= sizeof(buf))
		return 0;
	for (const char *c = d; *c; c++) {
		if (*c < '0' || *c > '9' || v > (UINT64_MAX - (uint64_t)(*c - '0')) / 10)
			return 0;
		v = v * 10 + (uint64_t)(*c - '0');
	}
	/* Only the canonical spelling is a step: "ckpt_00000012", not "ckpt_012". */
	snprintf(buf, sizeof(buf), "%0*" PRIu64, (int)width, v);
	if (strcmp(buf, d) != 0)
		return 0;
	*out = v;
	return 1;
}

int ckpt_item_name_check(const char *item)
{
	if (!item || !item[0] || item[0] == '_' || item[0] == '.' || strchr(item, '/'))
		return ckpt_error_set(CKPT_EINVAL,
				      "bad item name '%s': must be non-empty, without '/', and not "
				      "start with '_' or '.'",
				      item ? item : "(null)");
	return 0;
}

/* ---- the root ---- */

int ckpt_root_steps(uint64_t **out, size_t *n, const char *root)
{
	return ckpt_root_steps_named(out, n, root, NULL, 0);
}

int ckpt_step_dir_name_any(uint64_t *out, const char *name)
{
	const char *us = strrchr(name, '_');
	const char *d = us ? us + 1 : name;
	uint64_t v = 0;

	if (strstr(name, ".orbax-checkpoint-tmp") || strstr(name, CKPT_TMP_INFIX) ||
	    strlen(name) >= CKPT_STEP_NAME_MAX || (us && us == name) || !*d)
		return 0;
	for (const char *c = d; *c; c++) {
		if (*c < '0' || *c > '9' || v > (UINT64_MAX - (uint64_t)(*c - '0')) / 10)
			return 0;
		v = v * 10 + (uint64_t)(*c - '0');
	}
	*out = v;
	return 1;
}

/* A directory of root that holds a step: a native one (ckpt.db) or one Orbax wrote. */
static int holds_step(int *yes, const char *root, const char *name)
{
	struct stat st;
	char *db = ckpt_asprintf("%s/%s/ckpt.db", root, name);
	char *sd = NULL;

	*yes = 0;
	if (!db)
		return ckpt_error_nomem();
	*yes = stat(db, &st) == 0 && S_ISREG(st.st_mode);
	free(db);
	if (*yes)
		return 0;
	if (!(sd = ckpt_asprintf("%s/%s", root, name)))
		return ckpt_error_nomem();
	*yes = ckpt_orbax_is_step(sd);
	free(sd);
	return 0;
}

static int cmp_root_step(const void *a, const void *b)
{
	const ckpt_root_step *x = a, *y = b;
	return x->step < y->step ? -1 : x->step > y->step ? 1 : strcmp(x->name, y->name);
}

/*
 * The step directories of root whose names `prefix`/`width` name
 * (ckpt_step_dir_name_parse), or every naming with `any`
 * (ckpt_step_dir_name_any), ascending by step, then name; *out is never NULL
 * on success.
 */
static int scan_steps(ckpt_root_step **out, size_t *n, const char *root, const char *prefix,
		      unsigned width, int any)
{
	DIR *d = opendir(root);
	ckpt_root_step *v = NULL;
	size_t cnt = 0, cap = 0;
	struct dirent *e;
	int rc = 0;

	*out = NULL;
	*n = 0;
	if (!d)
		return ckpt_error_errno(errno == ENOENT ? CKPT_ENOTFOUND : CKPT_EIO, errno,
					"open root %s", root);
	while ((e = readdir(d)) != NULL) {
		uint64_t step;
		int ok;

		if (!(any ? ckpt_step_dir_name_any(&step, e->d_name)
			  : ckpt_step_dir_name_parse(&step, e->d_name, prefix, width)))
			continue;
		if (strlen(e->d_name) >= CKPT_STEP_NAME_MAX)
			continue;
		if ((rc = holds_step(&ok, root, e->d_name)))
			goto done;
		if (!ok)
			continue;
		if (cnt == cap) {
			size_t ncap = cap ? 2 * cap : 16;
			ckpt_root_step *nv = realloc(v, ncap * sizeof(*v));
			if (!nv) {
				rc = ckpt_error_nomem();
				goto done;
			}
			v = nv;
			cap = ncap;
		}
		v[cnt].step = step;
		snprintf(v[cnt].name, sizeof(v[cnt].name), "%s", e->d_name);
		cnt++;
	}
	if (cnt)
		qsort(v, cnt, sizeof(*v), cmp_root_step);
	*out = v ? v : malloc(1);
	if (!*out) {
		rc = ckpt_error_nomem();
		goto done;
	}
	*n = cnt;
	v = NULL;
done:
	closedir(d);
	free(v);
	return rc;
}

int ckpt_root_step_dirs(ckpt_root_step **out, size_t *n, const char *root)
{
	return scan_steps(out, n, root, NULL, 0, 1);
}

int ckpt_root_steps_named(uint64_t **out, size_t *n, const char *root, const char *prefix,
			  unsigned width)
{
	ckpt_root_step *dirs = NULL;
	size_t cnt = 0;
	int rc = scan_steps(&dirs, &cnt, root, prefix, width, 0);

	*out = NULL;
	*n = 0;
	if (rc)
		return rc;
	uint64_t *v = malloc((cnt ? cnt : 1) * sizeof(*v));
	if (!v) {
		free(dirs);
		return ckpt_error_nomem();
	}
	for (size_t i = 0; i < cnt; i++) {
		v[i] = dirs[i].step;
		assert(i == 0 || v[i - 1] < v[i]); /* invariant 1: canonical names, so no step twice */
	}
	free(dirs);
	*out = v;
	*n = cnt;
	return 0;
}

int ckpt_root_cleanup(const char *root, size_t *removed)
{
	DIR *d = opendir(root);
	struct dirent *e;
	size_t cnt = 0;
	int rc = 0;

	if (removed)
		*removed = 0;
	if (!d)
		return errno == ENOENT ? 0
				       : ckpt_error_errno(CKPT_EIO, errno, "open root %s", root);
	while ((e = readdir(d)) != NULL) {
		int lockfd = -1;

		if (!strstr(e->d_name, CKPT_TMP_INFIX) || strstr(e->d_name, CKPT_MP_RDV_INFIX))
			continue; /* not temporary; a rendezvous (invariant 6) */
		char *path = ckpt_asprintf("%s/%s", root, e->d_name);
		if (!path) {
			rc = CKPT_ENOMEM;
			break;
		}
		/* Abandoned iff its lock is free (invariant 2); hold it while removing. */
		if (ckpt_lock_dir(&lockfd, path, 1) == 0) {
			if (!ckpt_dir_is_pending(path)) { /* invariant 5 */
				assert(lockfd >= 0); /* invariant 2: removed only under its lock */
				rc = ckpt_rmtree(path);
				cnt += rc == 0;
			}
			close(lockfd);
		}
		free(path);
		if (rc)
			break;
	}
	closedir(d);
	if (removed)
		*removed = cnt;
	return rc;
}

/* Delete the finalized step directory `from` of root: rename it to a temporary name, then remove it. */
static int delete_dir(const char *from, const char *root)
{
	char nonce[17];
	char *to = NULL;
	int rc = 0;

	ckpt_nonce(nonce);
	if (!(to = ckpt_asprintf("%s%sdel-%s", from, CKPT_TMP_INFIX, nonce)))
		return ckpt_error_nomem();
	if (rename(from, to) != 0) {
		rc = ckpt_error_errno(errno == ENOENT ? CKPT_ENOTFOUND : CKPT_EIO, errno,
				      "delete step %s", from);
		goto done;
	}
	assert(!ckpt_dir_is_pending(to)); /* invariant 5: a deleted step is never pending */
	rc = ckpt_fsync_dir(root);
	if (rc == 0)
		rc = ckpt_rmtree(to);
done:
	free(to);
	return rc;
}

int ckpt_root_delete_step(const char *root, uint64_t step)
{
	return ckpt_root_delete_step_named(root, step, NULL, 0);
}

int ckpt_root_delete_step_named(const char *root, uint64_t step, const char *prefix, unsigned width)
{
	char *from = ckpt_step_dir_path(root, step, prefix, width);
	int rc;

	if (!from)
		return ckpt_error_nomem();
	rc = delete_dir(from, root);
	free(from);
	return rc;
}

int ckpt_root_delete_step_dir(const char *root, const char *name)
{
	uint64_t step;
	char *from;
	int rc;

	if (!ckpt_step_dir_name_any(&step, name) || strchr(name, '/'))
		return ckpt_error_set(CKPT_EINVAL, "'%s' is not a step directory name", name);
	if (!(from = ckpt_asprintf("%s/%s", root, name)))
		return ckpt_error_nomem();
	rc = delete_dir(from, root);
	free(from);
	return rc;
}

/* ---- waiting for steps ---- */

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 1 and *out = the newest step (any naming) if it is newer than after, else 0; or an error. */
static int newest_after(uint64_t *out, const char *root, int64_t after)
{
	ckpt_root_step *v = NULL;
	size_t n = 0;
	int rc = ckpt_root_step_dirs(&v, &n, root); /* every naming, ascending by step */

	if (rc == CKPT_ENOTFOUND) /* not created yet */
		return 0;
	if (rc == 0 && n && (after < 0 || v[n - 1].step > (uint64_t)after)) {
		*out = v[n - 1].step;
		rc = 1;
	}
	free(v);
	return rc;
}

int ckpt_root_wait_for_step(uint64_t *out, const char *root, int64_t after, int timeout_ms)
{
	const int64_t deadline = mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	const uint32_t mask = IN_MOVED_TO | IN_CREATE | IN_ONLYDIR;
	int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	int wd = -1, rc;

	for (;;) {
		if (fd >= 0 && wd < 0) /* the root may appear later: watch it once it does */
			wd = inotify_add_watch(fd, root, mask);
		/* Look after adding the watch: a step finalized in between is seen either way. */
		rc = newest_after(out, root, after);
		if (rc)
			break;
		int64_t left = timeout_ms < 0 ? INT64_MAX : deadline - mono_ms();
		if (left <= 0) {
			rc = ckpt_error_set(CKPT_EBUSY,
					    "no step newer than %" PRId64 " in %s within %d ms",
					    after, root, timeout_ms);
			break;
		}
		/* inotify wakes us at once; without it, poll the directory every 200 ms. */
		const int64_t cap = wd >= 0 ? 1000 : 200;
		int wait = (int)(left < cap ? left : cap);
		struct pollfd p = {wd >= 0 ? fd : -1, POLLIN, 0};
		if (poll(&p, 1, wait) > 0) {
			char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
			while (read(fd, buf, sizeof(buf)) > 0)
				; /* drain: we only need to know something changed */
		}
	}
	if (fd >= 0)
		close(fd);
	return rc < 0 ? rc : 0;
}
