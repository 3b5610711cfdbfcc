/*
 * root.c — a checkpoint root: listing steps, cleaning up abandoned saves,
 * deleting steps; plus the small file-system helpers of the step modules.
 *
 * Design:
 *   A root holds finalized steps (directories named by their decimal step
 *   number, holding ckpt.db) and temporary directories of saves in progress
 *   or abandoned ("<step>.ckpt-tmp-<nonce>", see step_writer.c). Anything
 *   else is ignored. A CheckpointManager may name its steps
 *   "<prefix>_<zero-padded step>" (ckpt_step_dir_name); the _named variants
 *   list and delete such names, the plain functions only plain names.
 *
 * Invariants:
 *   1. A name is a step only if ckpt_step_name_parse() accepts it (no leading
 *      zeros except "0") and the directory contains ckpt.db.
 *   2. A temporary directory is locked by flock() on the directory itself
 *      (ckpt_fs_lock_dir), held by its writer from just after the mkdir until
 *      the writer is freed. Cleanup removes one only while holding that lock,
 *      taken with LOCK_NB, on the inode its name still names: a writer that
 *      is gone (even killed between its mkdir and its flock) holds no lock,
 *      so its directory goes at the next cleanup; a live one is never touched.
 *      Only a lock holder renames a temporary directory.
 *   3. A step is deleted by renaming it to a temporary name first, so a crash
 *      mid-delete leaves something cleanup removes, never half a step.
 *   4. Removing a tree tolerates entries vanishing under it (ENOENT is not an
 *      error): a concurrent cleanup may be removing the same tree.
 *   5. A temporary directory holding the directory `files/` is a pending step
 *      (ckpt/pending.h): cleanup never removes it, whether locked or not. The
 *      check is made while holding its lock, and files/ only disappears
 *      under that lock (finalize, remove), so cleanup cannot race it. A
 *      deleted step ("<step>.ckpt-tmp-del-<nonce>") is never pending, even if
 *      a finalize died before removing its files/.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckpt/pending.h"
#include "error_private.h"
#include "step_private.h"

char *ckpt_fs_printf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		ckpt_error_nomem();
		return NULL;
	}
	return s;
}

/* Remove everything inside the open directory dfd (named path for messages); closes dfd. */
static int rm_inside(int dfd, const char *path)
{
	DIR *d = fdopendir(dfd);
	struct dirent *e;
	int rc = 0;

	if (!d) {
		rc = ckpt_error_errno(CKPT_EIO, errno, "open %s", path);
		close(dfd);
		return rc;
	}
	while (rc == 0 && (errno = 0, e = readdir(d)) != NULL) {
		const char *n = e->d_name;

		if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0 || unlinkat(dfd, n, 0) == 0 ||
		    errno == ENOENT)
			continue;
		if (errno != EISDIR && errno != EPERM) {
			rc = ckpt_error_errno(CKPT_EIO, errno, "remove %s/%s", path, n);
			break;
		}
		char *sub = ckpt_fs_printf("%s/%s", path, n);
		int fd = sub ? openat(dfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
		if (!sub)
			rc = CKPT_ENOMEM;
		else if (fd < 0 && errno != ENOENT)
			rc = ckpt_error_errno(CKPT_EIO, errno, "open %s", sub);
		else if (fd >= 0)
			rc = rm_inside(fd, sub); /* closes fd */
		if (rc == 0 && unlinkat(dfd, n, AT_REMOVEDIR) != 0 && errno != ENOENT)
			rc = ckpt_error_errno(CKPT_EIO, errno, "remove %s", sub);
		free(sub);
	}
	if (rc == 0 && errno != 0 && errno != ENOENT)
		rc = ckpt_error_errno(CKPT_EIO, errno, "read directory %s", path);
	closedir(d);
	return rc;
}

int ckpt_fs_rmtree(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int rc;

	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno != ENOTDIR && errno != ELOOP)
			return ckpt_error_errno(CKPT_EIO, errno, "open %s", path);
		if (unlink(path) != 0 && errno != ENOENT)
			return ckpt_error_errno(CKPT_EIO, errno, "remove %s", path);
		return 0;
	}
	rc = rm_inside(fd, path);
	if (rc == 0 && rmdir(path) != 0 && errno != ENOENT)
		rc = ckpt_error_errno(CKPT_EIO, errno, "remove %s", path);
	return rc;
}

int ckpt_fs_lock_dir(int *out, const char *path, int nonblock)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat a, b;
	int rc = 0, r;

	*out = -1;
	if (fd < 0)
		return ckpt_error_errno(errno == ENOENT ? CKPT_ENOTFOUND : CKPT_EIO, errno,
					"open %s", path);
	while ((r = flock(fd, LOCK_EX | (nonblock ? LOCK_NB : 0))) != 0 && errno == EINTR)
		;
	if (r != 0)
		rc = ckpt_error_errno(errno == EWOULDBLOCK ? CKPT_EBUSY : CKPT_EIO, errno,
				      "lock %s", path);
	else if (fstat(fd, &a) != 0 || lstat(path, &b) != 0)
		rc = ckpt_error_errno(errno == ENOENT ? CKPT_ENOTFOUND : CKPT_EIO, errno, "stat %s",
				      path);
	else if (a.st_dev != b.st_dev || a.st_ino != b.st_ino)
		rc = ckpt_error_set(CKPT_EBUSY, "%s was replaced while being locked", path);
	if (rc)
		close(fd);
	else
		*out = fd;
	return rc;
}

int ckpt_fs_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return ckpt_error_errno(CKPT_EIO, errno, "open %s", path);
	if (fsync(fd) != 0)
		rc = ckpt_error_errno(CKPT_EIO, errno, "fsync %s", path);
	close(fd);
	return rc;
}

int ckpt_fs_mkdir_p(const char *path)
{
	char *p = strdup(path);
	int rc = 0;

	if (!p)
		return ckpt_error_nomem();
	for (char *c = p + 1;; c++) {
		if (*c != '/' && *c != '\0')
			continue;
		char save = *c;
		*c = '\0';
		if (mkdir(p, 0777) != 0 && errno != EEXIST) {
			rc = ckpt_error_errno(CKPT_EIO, errno, "mkdir %s", p);
			break;
		}
		*c = save;
		if (save == '\0')
			break;
	}
	free(p);
	if (rc == 0) {
		struct stat st;
		if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
			rc = ckpt_error_set(CKPT_EIO, "mkdir %s: not a directory", path);
	}
	return rc;
}

int ckpt_fs_read_file(char **out, size_t *out_len, const char *path, size_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf = NULL;
	size_t n = 0;
	int rc = 0;

	*out = NULL;
	if (fd < 0)
		return ckpt_error_errno(errno == ENOENT ? CKPT_ENOTFOUND : CKPT_EIO, errno,
					"open %s", path);
	if (fstat(fd, &st) != 0) {
		rc = ckpt_error_errno(CKPT_EIO, errno, "stat %s", path);
		goto done;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		rc = ckpt_error_set(CKPT_EINVAL, "%s: not a regular file of at most %zu bytes",
				    path, max);
		goto done;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = ckpt_error_nomem();
		goto done;
	}
	while (n < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = ckpt_error_errno(CKPT_EIO, errno, "read %s", path);
			goto done;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*out = buf;
	buf = NULL;
	if (out_len)
		*out_len = n;
done:
	free(buf);
	close(fd);
	return rc;
}

int ckpt_fs_write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	const char *p = data;
	int rc = 0;

	if (fd < 0)
		return ckpt_error_errno(CKPT_EIO, errno, "create %s", path);
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			rc = ckpt_error_errno(CKPT_EIO, errno, "write %s", path);
			break;
		}
		p += w;
		len -= (size_t)w;
	}
	if (close(fd) != 0 && rc == 0)
		rc = ckpt_error_errno(CKPT_EIO, errno, "close %s", path);
	return rc;
}

int ckpt_fs_is_pending(const char *dir)
{
	struct stat st;
	char *files = strstr(dir, CKPT_TMP_INFIX "del-")
			  ? NULL /* a step being deleted */
			  : ckpt_fs_printf("%s/%s", dir, CKPT_PENDING_FILES);
	int yes = files && lstat(files, &st) == 0 && S_ISDIR(st.st_mode);

	free(files);
	return yes;
}

int ckpt_fs_relpath_ok(const char *p, size_t len)
{
	size_t start = 0;

	if (memchr(p, '\0', len))
		return 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && p[i] != '/')
			continue;
		size_t n = i - start;
		if (n == 0 || (n == 1 && p[start] == '.') ||
		    (n == 2 && p[start] == '.' && p[start + 1] == '.'))
			return 0;
		start = i + 1;
	}
	return 1;
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
	*out = v;
	return 1;
}

char *ckpt_step_dir_name(uint64_t step, const char *prefix, unsigned width)
{
	if (prefix && prefix[0])
		return ckpt_fs_printf("%s_%0*" PRIu64, prefix, (int)width, step);
	return ckpt_fs_printf("%0*" PRIu64, (int)width, step);
}

char *ckpt_step_dir_path(const char *root, uint64_t step, const char *prefix, unsigned width)
{
	char *name = ckpt_step_dir_name(step, prefix, width);
	char *path = name ? ckpt_fs_printf("%s/%s", root, name) : NULL;

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

void ckpt_fs_nonce(char buf[17])
{
	uint64_t r = 0;

	if (getrandom(&r, sizeof(r), 0) != sizeof(r)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		r = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ ((uint64_t)getpid() << 48);
	}
	snprintf(buf, 17, "%016" PRIx64, r);
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

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int ckpt_root_steps(uint64_t **out, size_t *n, const char *root)
{
	return ckpt_root_steps_named(out, n, root, NULL, 0);
}

int ckpt_root_steps_named(uint64_t **out, size_t *n, const char *root, const char *prefix,
			  unsigned width)
{
	DIR *d = opendir(root);
	uint64_t *v = NULL;
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
		struct stat st;

		if (!ckpt_step_dir_name_parse(&step, e->d_name, prefix, width))
			continue;
		char *db = ckpt_fs_printf("%s/%s/ckpt.db", root, e->d_name);
		if (!db) {
			rc = CKPT_ENOMEM;
			goto done;
		}
		int ok = stat(db, &st) == 0 && S_ISREG(st.st_mode);
		free(db);
		if (!ok)
			continue;
		if (cnt == cap) {
			size_t ncap = cap ? 2 * cap : 16;
			uint64_t *nv = realloc(v, ncap * sizeof(*v));
			if (!nv) {
				rc = ckpt_error_nomem();
				goto done;
			}
			v = nv;
			cap = ncap;
		}
		v[cnt++] = step;
	}
	if (cnt)
		qsort(v, cnt, sizeof(*v), cmp_u64);
	*out = v ? v : malloc(1);
	if (!*out) {
		rc = ckpt_error_nomem();
		goto done;
	}
	*n = cnt;
	v = NULL;
done:
	free(v);
	closedir(d);
	return rc;
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

		if (!strstr(e->d_name, CKPT_TMP_INFIX))
			continue;
		char *path = ckpt_fs_printf("%s/%s", root, e->d_name);
		if (!path) {
			rc = CKPT_ENOMEM;
			break;
		}
		/* Abandoned iff its lock is free (invariant 2); hold it while removing. */
		if (ckpt_fs_lock_dir(&lockfd, path, 1) == 0) {
			if (!ckpt_fs_is_pending(path)) { /* invariant 5 */
				rc = ckpt_fs_rmtree(path);
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

int ckpt_root_delete_step(const char *root, uint64_t step)
{
	return ckpt_root_delete_step_named(root, step, NULL, 0);
}

int ckpt_root_delete_step_named(const char *root, uint64_t step, const char *prefix, unsigned width)
{
	char nonce[17];
	char *from = NULL, *to = NULL;
	int rc = 0;

	ckpt_fs_nonce(nonce);
	from = ckpt_step_dir_path(root, step, prefix, width);
	to = from ? ckpt_fs_printf("%s%sdel-%s", from, CKPT_TMP_INFIX, nonce) : NULL;
	if (!from || !to) {
		rc = CKPT_ENOMEM;
		goto done;
	}
	if (rename(from, to) != 0) {
		rc = ckpt_error_errno(errno == ENOENT ? CKPT_ENOTFOUND : CKPT_EIO, errno,
				      "delete step %s", from);
		goto done;
	}
	rc = ckpt_fs_fsync_dir(root);
	if (rc == 0)
		rc = ckpt_fs_rmtree(to);
done:
	free(from);
	free(to);
	return rc;
}
