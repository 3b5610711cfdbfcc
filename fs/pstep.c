/*
 * fs/pstep.c — pending steps as a whole: adoption, the root's entries,
 * mkdir/rmdir at the root, step xattrs, custom metadata and finalize.
 * Design, locks and invariants: passthrough.c (4 and 5 are kept here).
 */
#include "passthrough_private.h"

#include <cJSON.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define META_MAX (16u << 20)
#define STEPMETA "_CHECKPOINT_METADATA"

/* ---- the step: xattrs, finalize, custom metadata ---- */

/* _CHECKPOINT_METADATA of the step parsed ({} if empty, ENOENT if absent): *out to
 * cJSON_Delete. */
static int read_stepmeta(cJSON **out, const struct pstep *ps)
{
	char *buf = NULL;
	struct stat st;
	int err = 0, fd = openat(ps->files_fd, STEPMETA, O_RDONLY | O_CLOEXEC);
	*out = NULL;
	if (fd < 0)
		return errno;
	if (fstat(fd, &st)) {
		err = errno;
		goto done;
	}
	if (st.st_size > META_MAX || !(buf = malloc((size_t)st.st_size + 1))) {
		err = st.st_size > META_MAX ? EFBIG : ENOMEM;
		goto done;
	}
	ssize_t n = pread(fd, buf, (size_t)st.st_size, 0);
	if (n < 0) {
		err = errno;
		goto done;
	}
	*out = n ? cJSON_ParseWithLength(buf, (size_t)n) : cJSON_CreateObject();
	if (!cJSON_IsObject(*out)) {
		ckptfs_log("step %s: %s is not a JSON object", ps->name, STEPMETA);
		cJSON_Delete(*out);
		*out = NULL;
		err = EINVAL;
	}
done:
	free(buf);
	close(fd);
	return err;
}

int pend_xattrs(struct pend *p, fuse_ino_t ino, pend_xattr_cb cb, void *arg)
{
	struct pinode *pi = pend_pin(p, ino, 0);
	cJSON *doc = NULL;
	char *cm = NULL, *errors = NULL;
	int rc;
	if (!pi)
		return ENOENT;
	if (!pi->is_top)
		return 0;
	if ((rc = cb(XATTR_PREFIX "state", "pending", 7, arg)) ||
	    (rc = cb(XATTR_PREFIX "step", pi->ps->name, strlen(pi->ps->name), arg)))
		goto done;
	/* Why the last changes to it failed (docs/fs.md, "Where errors go"). */
	if (!(errors = ckptfs_errors(pi->ps->name))) {
		rc = -ENOMEM;
		goto done;
	}
	if ((rc = cb(XATTR_PREFIX "errors", errors, strlen(errors), arg)))
		goto done;
	if (read_stepmeta(&doc, pi->ps) == 0) {
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(doc, "custom_metadata");
		if (c && !cJSON_IsNull(c) && (cm = cJSON_PrintUnformatted(c)))
			rc = cb(XATTR_PREFIX "custom_metadata", cm, strlen(cm), arg);
	}
done:
	free(errors);
	cJSON_free(cm);
	cJSON_Delete(doc);
	return rc < 0 ? -rc : 0;
}

/*
 * Replace custom_metadata in _CHECKPOINT_METADATA: the new document goes to a
 * temporary file renamed over the old one, so a full disk or a crash leaves
 * the old file whole (its item handlers and metrics are not lost).
 */
static int set_custom_metadata(struct pstep *ps, const char *value, size_t size)
{
	static unsigned counter;
	cJSON *doc = NULL, *cm = cJSON_ParseWithLength(value, size);
	char *text = NULL, tmp[64];
	int fd = -1, err;
	if (!cJSON_IsObject(cm)) {
		ckptfs_log("step %s: custom_metadata must be a JSON object", ps->name);
		err = EINVAL;
		goto done;
	}
	if ((err = read_stepmeta(&doc, ps)) == ENOENT && (doc = cJSON_CreateObject()))
		err = 0;
	if (err)
		goto done;
	cJSON_DeleteItemFromObjectCaseSensitive(doc, "custom_metadata");
	cJSON_AddItemToObject(doc, "custom_metadata", cm);
	cm = NULL;
	if (!(text = cJSON_Print(doc))) {
		err = ENOMEM;
		goto done;
	}
	snprintf(tmp, sizeof(tmp), ".ckptfs-%d-cm%u", (int)getpid(),
		 __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
	if ((fd = openat(ps->files_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0) {
		err = errno;
		goto done;
	}
	for (size_t len = strlen(text), off = 0; off < len && !err;) {
		ssize_t n = pwrite(fd, text + off, len - off, (off_t)off);
		if (n <= 0)
			err = n < 0 ? errno : ENOSPC;
		else
			off += (size_t)n;
	}
	if (!err && renameat(ps->files_fd, tmp, ps->files_fd, STEPMETA))
		err = errno;
	if (err)
		unlinkat(ps->files_fd, tmp, 0);
done:
	if (fd >= 0)
		close(fd);
	cJSON_free(text);
	cJSON_Delete(cm);
	cJSON_Delete(doc);
	return err;
}

static void inval_root(const char *name, void *arg)
{
	ckptfs_inval_later(arg, VIEW_ROOT_INO, name, 0);
}

/*
 * Release a step that was finalized or removed (invariant 4). Under ps->rw
 * (write). files_fd stays open until unmount: lookups and getxattr that saw
 * the step live use it without ps->rw (its files/ is gone: they get ENOENT,
 * never a reused fd number).
 */
static void pstep_gone(struct pend *p, struct pstep *ps)
{
	pthread_mutex_lock(&p->lock);
	ps->gone = 1;
	pthread_mutex_unlock(&p->lock);
	close(ps->lock_fd);
	ps->lock_fd = -1;
}

/* How long finalize and remove wait for the releases of a step's writers. */
#define RELEASE_WAIT_MS 3000

/*
 * Hold ps exclusively: EBUSY while a file is open for writing. A writer
 * whose close() returned may not be released yet (the kernel's RELEASE
 * follows the close, and can come after a request the writer's process sent
 * next): wait for the step's writers to go, up to RELEASE_WAIT_MS, without
 * holding rw (a release may need it). A file held open longer is EBUSY.
 */
static int pstep_exclusive(struct pend *p, struct pstep *ps)
{
	struct timespec until;
	int err = 0;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += RELEASE_WAIT_MS / 1000;
	until.tv_nsec += (long)(RELEASE_WAIT_MS % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&p->lock);
	while (!ps->gone && ps->writers &&
	       pthread_cond_timedwait(&p->released, &p->lock, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&p->lock);
	pthread_rwlock_wrlock(&ps->rw);
	pthread_mutex_lock(&p->lock);
	if (ps->gone)
		err = ENOENT;
	else if (ps->writers)
		err = EBUSY;
	pthread_mutex_unlock(&p->lock);
	if (err == EBUSY)
		ckptfs_log("step %s: a file is open for writing", ps->name);
	if (err)
		pthread_rwlock_unlock(&ps->rw);
	return err;
}

static int finalize(struct pend *p, struct pstep *ps)
{
	struct ckptfs *fs = p->fs;
	char what[64];
	int err = pstep_exclusive(p, ps);
	if (err)
		return err;
	ckpt_step_writer_options opts = CKPT_STEP_WRITER_OPTIONS_INIT;
	if (fs->compression_level >= 0)
		opts.store.compression_level = fs->compression_level;
	int rc = ckpt_pending_finalize(ps->dir, ps->lock_fd, &opts);
	/* Renamed into place, the step is finalized even if a later part failed (removing
	 * files/): its files (adopted .npy files are its data files) must not change. */
	int finalized = rc == 0 || (access(ps->dir, F_OK) != 0 && errno == ENOENT);
	if (rc) {
		snprintf(what, sizeof(what), "finalize step %s", ps->name);
		err = ckptfs_errno_write(rc, what);
	}
	if (finalized)
		pstep_gone(p, ps);
	pthread_rwlock_unlock(&ps->rw);
	if (finalized && (rc = view_rescan(fs->view, 1, inval_root, fs)))
		ckptfs_log("rescan %s: %s", view_root_path(fs->view), ckpt_error_last());
	return err;
}

void pend_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size)
{
	struct pend *p = pend_of(req);
	struct pinode *pi = pend_pin(p, ino, 0);
	int err = ENOTSUP;
	if (!pi) {
		err = ENOENT;
	} else if (!pi->is_top) {
		err = ENOTSUP;
	} else if (strcmp(name, XATTR_PREFIX "finalize") == 0) {
		if (size != 1 || value[0] != '1') {
			ckptfs_log("step %s: user.ckpt.finalize takes the value 1", pi->ps->name);
			err = EINVAL;
		} else {
			err = finalize(p, pi->ps);
		}
	} else if (strcmp(name, XATTR_PREFIX "custom_metadata") == 0) {
		if (!(err = pend_step_begin(p, pi->ps))) {
			err = set_custom_metadata(pi->ps, value, size);
			pend_step_end(pi->ps);
		}
	}
	fuse_reply_err(req, err);
}

/* ---- the root: adopting, creating and removing steps ---- */

static int parse_step(uint64_t *out, const char *name)
{
	char *end;
	if (name[0] < '0' || name[0] > '9' || (name[0] == '0' && name[1]))
		return -1;
	errno = 0;
	*out = strtoull(name, &end, 10);
	return *end || errno ? -1 : 0;
}

/* The live step numbered n, or NULL. Under p->lock. */
static struct pstep *step_find(struct pend *p, uint64_t n)
{
	for (struct pstep *ps = p->steps; ps; ps = ps->next)
		if (!ps->gone && ps->number == n)
			return ps;
	return NULL;
}

/* Add a step held by lock_fd (taken over, also on failure); logs. Returns an errno. */
static int pstep_add(struct pend *p, uint64_t number, const char *dir, int lock_fd)
{
	char path[4096];
	struct pstep *ps = calloc(1, sizeof(*ps));
	if (!ps || !(ps->dir = strdup(dir))) {
		free(ps);
		close(lock_fd);
		return ENOMEM;
	}
	ps->number = number;
	snprintf(ps->name, sizeof(ps->name), "%" PRIu64, number);
	ps->lock_fd = lock_fd;
	snprintf(path, sizeof(path), "%s/" CKPT_PENDING_FILES, dir);
	if ((ps->files_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
		int err = errno;
		ckptfs_log("pending step %s: %s", path, strerror(err));
		close(lock_fd);
		free(ps->dir);
		free(ps);
		return err;
	}
	pthread_rwlock_init(&ps->rw, NULL);
	pthread_mutex_lock(&p->lock);
	ps->next = p->steps;
	p->steps = ps;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

int pend_adopt(struct pend *p)
{
	ckpt_pending_info *list = NULL;
	size_t n = 0;
	uint32_t slot;
	int busy = 0, rc;

	pthread_mutex_lock(&p->steps_lock);
	rc = ckpt_pending_list(&list, &n, view_root_path(p->fs->view));
	if (rc == CKPT_ENOTFOUND)
		rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		int held = 0, lock_fd;
		pthread_mutex_lock(&p->lock);
		for (struct pstep *ps = p->steps; ps; ps = ps->next)
			if (!ps->gone && (ps->number == list[i].step ||
					  strcmp(base_name(ps->dir), base_name(list[i].dir)) == 0))
				held = 1;
		pthread_mutex_unlock(&p->lock);
		if (held)
			continue;
		char name[24];
		snprintf(name, sizeof(name), "%" PRIu64, list[i].step);
		if (view_find(&slot, p->fs->view, name) == 0)
			continue; /* hidden by the finalized step */
		int lrc = ckpt_pending_lock(&lock_fd, list[i].dir);
		if (lrc == CKPT_EBUSY || lrc == CKPT_ENOTFOUND) {
			busy += lrc == CKPT_EBUSY;
			continue;
		}
		if (lrc)
			ckptfs_log("pending step %s: %s", list[i].dir, ckpt_error_last());
		else
			pstep_add(p, list[i].step, list[i].dir, lock_fd);
	}
	ckpt_pending_list_free(list, n);
	pthread_mutex_unlock(&p->steps_lock);
	return rc ? rc : busy;
}

int pend_list(struct view_entry **out, size_t *n, struct pend *p)
{
	size_t cnt = 0, k = 0;
	uint32_t slot;
	pthread_mutex_lock(&p->lock);
	for (struct pstep *ps = p->steps; ps; ps = ps->next)
		cnt++;
	struct view_entry *e = calloc(cnt + 1, sizeof(*e));
	for (struct pstep *ps = p->steps; e && ps; ps = ps->next) {
		if (ps->gone)
			continue;
		snprintf(e[k].name, sizeof(e[k].name), "%s", ps->name);
		e[k++].ino = ps->top ? pin_ino(ps->top) : PEND_INO_BIT | 1ull << 62 | ps->number;
	}
	pthread_mutex_unlock(&p->lock);
	if (!e)
		return CKPT_ENOMEM;
	/* Hidden by a finalized step (view_find takes the view's lock: not under ours). */
	size_t m = 0;
	for (size_t i = 0; i < k; i++)
		if (view_find(&slot, p->fs->view, e[i].name))
			e[m++] = e[i];
	/* Ascending by number (names are decimal without leading zeros). */
	for (size_t i = 1; i < m; i++)
		for (size_t j = i; j > 0; j--) {
			size_t a = strlen(e[j - 1].name), b = strlen(e[j].name);
			if (a < b || (a == b && strcmp(e[j - 1].name, e[j].name) <= 0))
				break;
			struct view_entry t = e[j];
			e[j] = e[j - 1];
			e[j - 1] = t;
		}
	*out = e;
	*n = m;
	return 0;
}

/* The live step named name (its pointer stays valid: invariant 4), or NULL. */
static struct pstep *step_named(struct pend *p, const char *name)
{
	uint64_t n;
	uint32_t slot;
	if (parse_step(&n, name) || view_find(&slot, p->fs->view, name) == 0)
		return NULL;
	pthread_mutex_lock(&p->lock);
	struct pstep *ps = step_find(p, n);
	pthread_mutex_unlock(&p->lock);
	return ps;
}

void pend_root_lookup(fuse_req_t req, const char *name)
{
	struct pend *p = pend_of(req);
	struct fuse_entry_param e;
	struct pstep *ps = step_named(p, name);
	pend_reply_entry(req, ps ? pend_top_lookup(p, ps, &e) : ENOENT, &e);
}

void pend_root_mkdir(fuse_req_t req, const char *name)
{
	struct pend *p = pend_of(req);
	struct ckptfs *fs = p->fs;
	struct fuse_entry_param e;
	char *dir = NULL;
	uint64_t n;
	uint32_t slot;
	int err = 0, lock_fd, rc;

	if (parse_step(&n, name)) {
		ckptfs_log("mkdir %s: only steps (decimal numbers) can be made at the root", name);
		fuse_reply_err(req, EINVAL);
		return;
	}
	pthread_mutex_lock(&p->steps_lock);
	pthread_mutex_lock(&p->lock);
	int held = step_find(p, n) != NULL;
	pthread_mutex_unlock(&p->lock);
	if (held || view_find(&slot, fs->view, name) == 0) {
		err = EEXIST;
	} else if ((rc = ckpt_pending_create(&dir, &lock_fd, view_root_path(fs->view), n))) {
		char what[64];
		snprintf(what, sizeof(what), "mkdir step %s", name);
		err = ckptfs_errno_write(rc, what);
	} else {
		err = pstep_add(p, n, dir, lock_fd);
	}
	pthread_mutex_unlock(&p->steps_lock);
	free(dir);
	struct pstep *ps = err ? NULL : step_named(p, name);
	if (!err && !ps)
		err = ENOENT; /* a finalized step of that number appeared meanwhile */
	pend_reply_entry(req, err ? err : pend_top_lookup(p, ps, &e), &e);
}

void pend_root_rmdir(fuse_req_t req, const char *name)
{
	struct pend *p = pend_of(req);
	struct pstep *ps = step_named(p, name);
	struct dirent *de;
	DIR *dp = NULL;
	int err, fd;
	char what[64];

	if (!ps) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if ((err = pstep_exclusive(p, ps))) {
		fuse_reply_err(req, err);
		return;
	}
	if ((fd = openat(ps->files_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    !(dp = fdopendir(fd))) {
		err = errno;
		if (fd >= 0)
			close(fd);
		goto done;
	}
	while ((de = readdir(dp)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			err = ENOTEMPTY;
			goto done;
		}
	snprintf(what, sizeof(what), "rmdir step %s", name);
	int rc = ckpt_pending_remove(ps->dir, ps->lock_fd);
	if (rc)
		err = ckptfs_errno_write(rc, what);
	else
		pstep_gone(p, ps);
done:
	if (dp)
		closedir(dp);
	pthread_rwlock_unlock(&ps->rw);
	fuse_reply_err(req, err);
}

/* ---- life ---- */

/*
 * Whether direct writes keep the kernel's page cache of the inode coherent:
 * Linux invalidates cached pages over a FOPEN_DIRECT_IO write since 6.6;
 * before, a reader of the same file could keep stale pages.
 */
static int direct_writes_coherent(void)
{
	struct utsname u;
	int major = 0, minor = 0;

	if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &major, &minor) != 2)
		return 0;
	return major > 6 || (major == 6 && minor >= 6);
}

int pend_new(struct pend **out, struct ckptfs *fs)
{
	struct pend *p = calloc(1, sizeof(*p));
	if (!p)
		return CKPT_ENOMEM;
	p->fs = fs;
	p->write_dio = direct_writes_coherent();
	pthread_condattr_t ca;
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->steps_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->released, &ca);
	pthread_condattr_destroy(&ca);
	*out = p;
	return 0;
}

void pend_free(struct pend *p)
{
	if (!p)
		return;
	for (uint32_t i = 0; i < p->nnodes; i++) {
		struct pinode *pi = p->nodes[i];
		if (!pi)
			continue;
		close(pi->fd);
		pend_stub_clear(p, pi);
		pthread_mutex_destroy(&pi->lock);
		free(pi->name);
		free(pi);
	}
	while (p->steps) {
		struct pstep *ps = p->steps;
		p->steps = ps->next;
		/* Unmounting does not finalize: say so where the log goes. */
		if (!ps->gone)
			ckptfs_log("step %s stays pending (%s): finalize it with `ckpt finalize "
				   "%s/%s` or after the next mount",
				   ps->name, ps->dir, view_root_path(p->fs->view), ps->name);
		if (ps->lock_fd >= 0)
			close(ps->lock_fd);
		if (ps->files_fd >= 0)
			close(ps->files_fd);
		pthread_rwlock_destroy(&ps->rw);
		free(ps->dir);
		free(ps);
	}
	free(p->nodes);
	free(p->gens);
	free(p->freeslots);
	pthread_mutex_destroy(&p->steps_lock);
	pthread_cond_destroy(&p->released);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
