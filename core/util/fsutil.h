/*
 * fsutil.h — small file helpers every layer uses (fsutil.c; library only).
 * Each returns 0 or a CKPT_E* code with a message naming the path.
 */
#ifndef CKPT_FSUTIL_H
#define CKPT_FSUTIL_H

#include <stddef.h>
#include <stdint.h>

/* malloc'd printf; NULL when out of memory (message set). */
char *ckpt_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Remove path and everything below it (no error if it, or any part, does not exist). */
int ckpt_rmtree(const char *path);

/*
 * Open directory path and flock(LOCK_EX) it (LOCK_NB if nonblock): the lock of
 * a temporary step directory (root.c invariant 2). *fd receives the descriptor;
 * closing it releases the lock. CKPT_ENOTFOUND if path does not exist (also
 * when it vanished while waiting), CKPT_EBUSY if nonblock and the lock is held,
 * or if path names another inode once locked.
 */
int ckpt_lock_dir(int *fd, const char *path, int nonblock);

/* fsync a directory. */
int ckpt_fsync_dir(const char *path);

/* mkdir -p. */
int ckpt_mkdir_p(const char *path);

/*
 * Read the whole regular file open as fd (at most max bytes, else CKPT_EINVAL
 * naming what; with pread, so the offset stays) into a malloc'd
 * NUL-terminated buffer; *len its length.
 */
int ckpt_read_fd(char **out, size_t *len, int fd, size_t max, const char *what);

/*
 * The same for path (CKPT_ENOTFOUND if it is missing); out_len may be NULL.
 * The file is opened without blocking and must be a regular file (a FIFO is
 * refused, never waited on); symbolic links in path are followed (the path
 * comes from the caller, not from a checkpoint: use ckpt_open_beneath for those).
 */
int ckpt_read_file(char **out, size_t *out_len, const char *path, size_t max);

/* Write a whole file (create or truncate). */
int ckpt_write_file(const char *path, const void *data, size_t len);

/* pread exactly len bytes at off (EINTR retried); a short file is CKPT_EINVAL
 * "<what>: truncated". Messages name what. */
int ckpt_pread_full(int fd, void *buf, size_t len, uint64_t off, const char *what);

/* write all of buf (EINTR and short writes retried); messages name what. */
int ckpt_write_full(int fd, const void *buf, size_t len, const char *what);

/* A relative path of len bytes: non-empty components other than "." and "..", no NUL. */
int ckpt_relpath_ok(const char *p, size_t len);

/*
 * What ckpt_open_beneath may open: a regular file for reading, or a directory.
 */
enum { CKPT_OPEN_FILE = 0, CKPT_OPEN_DIR = 1 };

/*
 * Open name, a relative path below the directory dirfd, for reading as what a
 * checkpoint claims it is (docs/format.md, "What a reader must check"): no
 * symbolic link is followed in any component, the path never leaves dirfd
 * (no "..", not absolute), nothing blocks (a FIFO is never waited on, a
 * device never opened), and the result is a regular file (kind
 * CKPT_OPEN_FILE) or a directory (CKPT_OPEN_DIR). openat2 with
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS where the kernel has it; otherwise
 * each component with O_NOFOLLOW. The type is checked on an O_PATH
 * descriptor before the real open, and the inode compared after it. what
 * names the file in messages. *fd receives a blocking, close-on-exec
 * descriptor the caller closes (-1 on error).
 * Returns 0, CKPT_ENOTFOUND (name or a component is missing), CKPT_ECORRUPT
 * (a symbolic link, a FIFO, a device or socket, a name leaving dirfd, or a
 * file where a directory is expected and back, named in the message), or
 * CKPT_EIO (the open failed otherwise).
 */
int ckpt_open_beneath(int *fd, int dirfd, const char *name, int kind, const char *what);

/* 16 hex digits of randomness for temporary names; buf holds 17 bytes. */
void ckpt_nonce(char buf[17]);

#endif
