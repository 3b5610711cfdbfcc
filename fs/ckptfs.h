/*
 * fs/ckptfs.h — what the parts of the ckptfs daemon share.
 *
 * ckptfs.c parses options and runs the session; ops.c answers FUSE requests
 * from the view (view.h); errmap.c is the one place CKPT_E* codes become errno.
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

/* The daemon's state, the session's userdata. */
struct ckptfs {
	struct view *view;
	struct fuse_session *se;
	uid_t uid;
	gid_t gid;
};

extern const struct fuse_lowlevel_ops ckptfs_ops;

/*
 * Map a libckpt error code to an errno value. `what` names the file or leaf
 * for the log line written for everything but ENOTFOUND (with the library's
 * message from ckpt_error_last()).
 */
int ckptfs_errno(int code, const char *what);

#endif
