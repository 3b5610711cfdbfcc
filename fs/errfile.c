/*
 * fs/errfile.c — MNT/.ckptfs-errors: the daemon's last log lines as a file.
 *
 * A shell user whose mkdir, cp or setfattr failed with a bare errno reads
 * why with `cat MNT/.ckptfs-errors` (docs/fs.md, "Where errors go"). The
 * file is found by lookup only (not listed: `ls`, `cp -r MNT/.` and rsync
 * never see it), is 0444, and each open reads a snapshot of the kept lines
 * (ckptfs_errors): the handle is direct_io, so its size may change between
 * stat and read without a reader seeing stale or cut text.
 */
#include "ckptfs.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

void ckptfs_errfile_attr(struct stat *st, const struct ckptfs *fs)
{
	char *text = ckptfs_errors(NULL);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	memset(st, 0, sizeof(*st));
	st->st_ino = CKPTFS_ERRFILE_INO;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_atim = st->st_mtim = st->st_ctim = now;
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_size = text ? (off_t)strlen(text) : 0;
	free(text);
}

void ckptfs_errfile_open(fuse_req_t req, struct fuse_file_info *fi)
{
	char *text;
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EACCES);
		return;
	}
	if (!(text = ckptfs_errors(NULL))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)text;
	fi->direct_io = 1;
	if (fuse_reply_open(req, fi) != 0)
		free(text); /* interrupted: no release will come */
}

void ckptfs_errfile_read(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi)
{
	const char *text = (const char *)(uintptr_t)fi->fh;
	size_t len = strlen(text);
	size_t start = off >= 0 && (uint64_t)off < len ? (size_t)off : len;
	fuse_reply_buf(req, text + start, len - start < size ? len - start : size);
}

void ckptfs_errfile_release(fuse_req_t req, struct fuse_file_info *fi)
{
	free((char *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}
