/*
 * fs/ckptfs.h — what the parts of the ckptfs daemon share.
 *
 * ckptfs.c parses options and runs the session; ops.c answers FUSE requests
 * from the view (view.h) and hands those on pending steps to passthrough.c;
 * errmap.c is the one place CKPT_E* codes become errno.
 */
#ifndef CKPTFS_CKPTFS_H
#define CKPTFS_CKPTFS_H

/* 3.12+: the fuse_loop_cfg_* API (with 34, fuse_session_loop_mt takes the old struct). */
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include "view.h"

/* Timeouts of kernel caches, seconds (docs/fs.md). */
#define CKPTFS_STEP_TIMEOUT 86400.0 /* entries and attributes inside a finalized step */
#define CKPTFS_ROOT_TIMEOUT 1.0     /* entries of the root (steps come and go) */
/*
 * Pending steps (passthrough.c): a directory below the step's own one is
 * changed only through the mount (the kernel sees it) or with its step (the
 * step's entry has timeout 0, and its next lookup answers another inode), so
 * it is cached; files and the step's directory have 0 (a file may be dropped
 * or replaced at close, a step finalized any time).
 */
#define CKPTFS_PENDING_DIR_TIMEOUT 1.0

/* A kernel entry to invalidate, queued by a request and sent by the rescan thread. */
struct ckptfs_inval {
	fuse_ino_t parent;
	char *name;
	fuse_ino_t child; /* 0, or a pending file let go: sent only if still so named */
	double due;	  /* CLOCK_MONOTONIC seconds; 0: at once */
};

/* The daemon's state, the session's userdata. */
struct ckptfs {
	struct view *view;
	struct pend *pend; /* the pending steps; NULL when mounted -o ro */
	struct fuse_session *se;
	uid_t uid;
	gid_t gid;
	int ro;
	int compression_level; /* -o compression_level=N for finalize; -1: the default */
	pthread_mutex_t bg_lock; /* protects the fields below */
	pthread_cond_t bg_cond;  /* wakes the rescan thread */
	int bg_stop;
	int rescan_now;             /* rescan at the next wake-up even if ROOT looks unchanged */
	struct ckptfs_inval *inval; /* queued invalidations (malloc'd names) */
	size_t ninval, capinval;
	size_t ninval_now;	    /* how many of them are due at once */
};

extern const struct fuse_lowlevel_ops ckptfs_ops;

/*
 * Map a libckpt error code to an errno value. `what` names the file or leaf
 * for the log line written for everything but ENOTFOUND (with the library's
 * message from ckpt_error_last()).
 */
int ckptfs_errno(int code, const char *what);
/*
 * The same for changes to pending steps, where the library's refusals reach
 * the writer: EINVAL, EEXISTS, EBUSY and EUNSUPPORTED keep their meaning
 * (EINVAL, EEXIST, EBUSY, ENOTSUP), logged with the library's message.
 */
int ckptfs_errno_write(int code, const char *what);
/* The errno of a refused check of what a user wrote (not logged: the caller names the file). */
int ckptfs_errno_check(int code);

/*
 * The log (errmap.c). ckptfs_log (view.h) writes a line to stderr in the
 * foreground, else to the file ckptfs_log_open opened (-o log=FILE, or the
 * default when there is no syslog), else to syslog; it also keeps the last
 * lines in memory. ckptfs_log_open returns 0 or an errno.
 */
int ckptfs_log_open(const char *path);
void ckptfs_log_close(void);
/* Where log lines go: the log file's path, "stderr" or "syslog" (static). */
const char *ckptfs_log_where(void);
/*
 * The kept log lines, oldest first, one "TIME MESSAGE\n" each; with step
 * non-NULL only those naming "step <step>". Returns a malloc'd string (the
 * caller frees it; "" if none) or NULL when out of memory.
 */
char *ckptfs_errors(const char *step);

/*
 * MNT/.ckptfs-errors (errfile.c): the kept log lines as a read-only file,
 * found by lookup at the root only. Inode 3 (the root is 1, `latest` 2,
 * inodes inside steps are above 2^32).
 */
#define CKPTFS_ERRFILE_NAME ".ckptfs-errors"
#define CKPTFS_ERRFILE_INO 3u
void ckptfs_errfile_attr(struct stat *st, const struct ckptfs *fs);
void ckptfs_errfile_open(fuse_req_t req, struct fuse_file_info *fi);
void ckptfs_errfile_read(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi);
void ckptfs_errfile_release(fuse_req_t req, struct fuse_file_info *fi);

/*
 * Queue an invalidation of the kernel's entry `name` in directory parent, to
 * be sent by the rescan thread (never from inside a request handler), and
 * wake that thread; with rescan, it also re-reads ROOT.
 */
void ckptfs_inval_later(struct ckptfs *fs, fuse_ino_t parent, const char *name, int rescan);

/*
 * The same for the entry of pending file child, sent CKPTFS_LET_GO_DELAY
 * later (at the rescan thread's next wake-up after that) and only if child
 * is then still so named and not open (pend_may_let_go): the kernel then
 * forgets the inode, and the daemon its fd. The delay keeps the common
 * "write it, then read it back" from racing the invalidation: one that
 * lands while the file is being opened leaves that open file unhashed
 * (shown as "(deleted)" in /proc, though it reads and writes as before).
 */
#define CKPTFS_LET_GO_DELAY 1.0
void ckptfs_let_go_later(struct ckptfs *fs, fuse_ino_t parent, const char *name,
			 fuse_ino_t child);

#endif
