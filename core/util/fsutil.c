/*
 * fsutil.c — small file helpers every layer uses (fsutil.h): whole-file
 * reads and writes, mkdir -p, rm -rf, directory locks and fsyncs, relative
 * path checks, random nonces, malloc'd printf.
 *
 * Invariants:
 *   1. Removing a tree tolerates entries vanishing under it (ENOENT is not an
 *      error): a concurrent cleanup may be removing the same tree.
 *   2. Every failure sets a message naming the path.
 *   3. ckpt_open_beneath never follows a symbolic link, never resolves a name
 *      outside its directory, never blocks on open, and never opens (beyond
 *      O_PATH) anything that is not the regular file or directory asked for.
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
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "error_private.h"
#include "fsutil.h"

char *ckpt_asprintf(const char *fmt, ...)
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
		char *sub = ckpt_asprintf("%s/%s", path, n);
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

int ckpt_rmtree(const char *path)
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

int ckpt_lock_dir(int *out, const char *path, int nonblock)
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

int ckpt_fsync_dir(const char *path)
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

int ckpt_mkdir_p(const char *path)
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

int ckpt_read_fd(char **out, size_t *len, int fd, size_t max, const char *what)
{
	struct stat st;
	char *buf;
	size_t n = 0;

	*out = NULL;
	*len = 0;
	if (fstat(fd, &st) != 0)
		return ckpt_error_errno(CKPT_EIO, errno, "stat %s", what);
	if (!S_ISREG(st.st_mode))
		return ckpt_error_set(CKPT_EINVAL, "%s: not a regular file", what);
	if ((uint64_t)st.st_size > max)
		return ckpt_error_set(CKPT_EINVAL, "%s: %lld bytes; at most %zu allowed", what,
				      (long long)st.st_size, max);
	if (!(buf = malloc((size_t)st.st_size + 1)))
		return ckpt_error_nomem();
	while (n < (size_t)st.st_size) {
		ssize_t r = pread(fd, buf + n, (size_t)st.st_size - n, (off_t)n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(buf);
			return ckpt_error_errno(CKPT_EIO, errno, "read %s", what);
		}
		if (r == 0)
			break; /* shrank meanwhile: check what is there */
		n += (size_t)r;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

static const char *type_name(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFREG: return "a regular file";
	case S_IFDIR: return "a directory";
	case S_IFLNK: return "a symbolic link";
	case S_IFIFO: return "a FIFO";
	case S_IFCHR: return "a character device";
	case S_IFBLK: return "a block device";
	case S_IFSOCK: return "a socket";
	default: return "of an unknown type";
	}
}

/* openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS; -1 with errno ENOSYS where absent. */
static int openat2_beneath(int dirfd, const char *name, int flags)
{
	static int absent; /* the kernel or a seccomp filter lacks openat2 */
	struct open_how how = {.flags = (uint64_t)flags,
			       .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
					  RESOLVE_NO_MAGICLINKS};
	int fd;

	if (__atomic_load_n(&absent, __ATOMIC_RELAXED)) {
		errno = ENOSYS;
		return -1;
	}
	do
		fd = (int)syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
	while (fd < 0 && (errno == EINTR || errno == EAGAIN));
	if (fd < 0 && (errno == ENOSYS || errno == EPERM || errno == E2BIG)) {
		__atomic_store_n(&absent, 1, __ATOMIC_RELAXED);
		errno = ENOSYS;
	}
	return fd;
}

/* The fallback: each component below dirfd with O_NOFOLLOW, the last one with flags. */
static int openat_walk(int dirfd, const char *name, int flags)
{
	char comp[256];
	int cur = dirfd, fd = -1;

	for (const char *p = name;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (n >= sizeof(comp)) {
			errno = ENAMETOOLONG;
			break;
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		if (!slash) {
			fd = openat(cur, comp, flags | O_NOFOLLOW);
			break;
		}
		int next = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cur != dirfd)
			close(cur);
		if (next < 0)
			return -1;
		cur = next;
		p = slash + 1;
	}
	if (cur != dirfd) {
		int e = errno;
		close(cur);
		errno = e;
	}
	return fd;
}

static int open_below(int dirfd, const char *name, int flags)
{
	int fd = openat2_beneath(dirfd, name, flags);

	return fd < 0 && errno == ENOSYS ? openat_walk(dirfd, name, flags) : fd;
}

int ckpt_open_beneath(int *out, int dirfd, const char *name, int kind, const char *what)
{
	int want = kind == CKPT_OPEN_DIR ? S_IFDIR : S_IFREG;
	int pfd = -1, fd = -1, rc = 0;
	struct stat a, b;

	*out = -1;
	if (!ckpt_relpath_ok(name, strlen(name)) || strlen(name) >= 4096)
		return ckpt_error_set(CKPT_ECORRUPT, "%s: not a name inside its directory", what);
	/* An O_PATH descriptor opens nothing: look at the type before opening. */
	if ((pfd = open_below(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		int e = errno;
		if (e == ENOENT)
			rc = ckpt_error_errno(CKPT_ENOTFOUND, e, "%s", what);
		else if (e == ELOOP || e == EXDEV || e == ENOTDIR)
			rc = ckpt_error_set(CKPT_ECORRUPT,
					    "%s: refused: a symbolic link, a name leaving its "
					    "directory or a file where a directory should be (%s)",
					    what, strerror(e));
		else
			rc = ckpt_error_errno(CKPT_EIO, e, "open %s", what);
		goto done;
	}
	if (fstat(pfd, &a) != 0) {
		rc = ckpt_error_errno(CKPT_EIO, errno, "stat %s", what);
		goto done;
	}
	if ((int)(a.st_mode & S_IFMT) != want) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: refused: %s, not %s", what,
				    type_name(a.st_mode), type_name((mode_t)want));
		goto done;
	}
	/* Open the same name for real, never blocking, and make sure it is the same inode. */
	fd = open_below(dirfd, name,
			O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC |
			    (kind == CKPT_OPEN_DIR ? O_DIRECTORY : 0));
	if (fd < 0 || fstat(fd, &b) != 0) {
		rc = ckpt_error_errno(errno == ENOENT ? CKPT_ENOTFOUND : CKPT_EIO, errno, "open %s",
				      what);
		goto done;
	}
	if (a.st_dev != b.st_dev || a.st_ino != b.st_ino || (int)(b.st_mode & S_IFMT) != want) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: refused: replaced while being opened",
				    what);
		goto done;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) {
		rc = ckpt_error_errno(CKPT_EIO, errno, "fcntl %s", what);
		goto done;
	}
	*out = fd;
	fd = -1;
done:
	if (pfd >= 0)
		close(pfd);
	if (fd >= 0)
		close(fd);
	return rc;
}

int ckpt_read_file(char **out, size_t *out_len, const char *path, size_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK), rc;
	size_t n;
	struct stat st;

	*out = NULL;
	if (fd < 0)
		return ckpt_error_errno(errno == ENOENT ? CKPT_ENOTFOUND : CKPT_EIO, errno,
					"open %s", path);
	/* ckpt_read_fd refuses anything but a regular file; reads of one never block. */
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	rc = ckpt_read_fd(out, &n, fd, max, path);
	close(fd);
	if (rc == 0 && out_len)
		*out_len = n;
	return rc;
}

int ckpt_pread_full(int fd, void *buf, size_t len, uint64_t off, const char *what)
{
	for (size_t got = 0; got < len;) {
		ssize_t r = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return ckpt_error_errno(CKPT_EIO, errno, "read %s", what);
		if (r == 0)
			return ckpt_error_set(CKPT_EINVAL, "%s: truncated", what);
		got += (size_t)r;
	}
	return 0;
}

int ckpt_write_full(int fd, const void *buf, size_t len, const char *what)
{
	for (size_t done = 0; done < len;) {
		ssize_t w = write(fd, (const char *)buf + done, len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return ckpt_error_errno(CKPT_EIO, errno, "write %s", what);
		done += (size_t)w;
	}
	return 0;
}

int ckpt_write_file(const char *path, const void *data, size_t len)
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

int ckpt_relpath_ok(const char *p, size_t len)
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

void ckpt_nonce(char buf[17])
{
	uint64_t r = 0;

	if (getrandom(&r, sizeof(r), 0) != sizeof(r)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		r = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ ((uint64_t)getpid() << 48);
	}
	snprintf(buf, 17, "%016" PRIx64, r);
}

