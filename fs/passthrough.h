/*
 * fs/passthrough.h — the write side of the mount: pending steps (ckpt/pending.h)
 * shown as passthrough directories onto their files/ (design: passthrough.c).
 *
 * ops.c dispatches every request whose inode is a pending inode
 * (pend_is_ino) here, and the root's mkdir/rmdir/lookup of step names that
 * are not finalized steps. Every pend_* function taking a fuse_req_t replies
 * exactly once.
 */
#ifndef CKPTFS_PENDING_H
#define CKPTFS_PENDING_H

#include "ckptfs.h"

/* Pending inode numbers: this bit, a generation << 32 and a table index. */
#define PEND_INO_BIT (1ull << 63)

static inline int pend_is_ino(fuse_ino_t ino)
{
	return (ino & PEND_INO_BIT) != 0;
}

struct pend;

/*
 * A source of copy_file_range outside the pending steps (a file of a
 * finalized step). node is the leaf's tree node when the file is a VN_LEAF
 * (then the copy may become a clone stub of (step, item, node)), else NULL;
 * safetensors is 1 when the file is the item's <item>.safetensors with names
 * joined by '.' (then the copy may become a clone stub of it, ckpt/clone.h).
 * pread returns 0 or an errno; *got 0 at end of file.
 */
struct pend_src {
	uint64_t step;
	const char *item;
	const ckpt_tree *node;
	int safetensors;
	uint64_t size;
	int (*pread)(void *ctx, void *buf, size_t len, uint64_t off, size_t *got);
	void *ctx;
};

/* Called per extended attribute; non-zero stops (a negative errno is an error). */
typedef int (*pend_xattr_cb)(const char *name, const char *value, size_t len, void *p);

int pend_new(struct pend **out, struct ckptfs *fs);
/* Closes every handle and releases the locks of the adopted steps. Accepts NULL. */
void pend_free(struct pend *p);

/*
 * Adopt ROOT's pending steps not held yet (lock them; skip those another
 * process holds and those whose number is a finalized step). Returns how
 * many were skipped because another process holds them, or a CKPT_E* code.
 */
int pend_adopt(struct pend *p);

/* The adopted steps not hidden by a finalized step, ascending: *out malloc'd. */
int pend_list(struct view_entry **out, size_t *n, struct pend *p);

/*
 * Whether the kernel's entry name in parent may be dropped to let pending
 * file child go (ckptfs_let_go_later): child still has that name and no
 * handle open. Accepts NULL p (then 0).
 */
int pend_may_let_go(struct pend *p, fuse_ino_t child, fuse_ino_t parent, const char *name);

/* Requests on the root's names that are not finalized steps. */
void pend_root_lookup(fuse_req_t req, const char *name);
void pend_root_mkdir(fuse_req_t req, const char *name);
void pend_root_rmdir(fuse_req_t req, const char *name);

/* Requests on pending inodes (same meaning as struct fuse_lowlevel_ops). */
void pend_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void pend_forget(struct pend *p, fuse_ino_t ino, uint64_t nlookup);
void pend_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void pend_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		  struct fuse_file_info *fi);
void pend_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void pend_unlink(fuse_req_t req, fuse_ino_t parent, const char *name, int dir);
void pend_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		 const char *newname, unsigned int flags);
void pend_create(fuse_req_t req, fuse_ino_t parent, const char *name, struct fuse_file_info *fi);
void pend_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void pend_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void pend_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
		    struct fuse_file_info *fi);
void pend_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void pend_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void pend_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void pend_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void pend_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi,
		  int plus);
void pend_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void pend_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		   size_t size);
/* Enumerate the user.ckpt.* xattrs of a pending inode; returns an errno. */
int pend_xattrs(struct pend *p, fuse_ino_t ino, pend_xattr_cb cb, void *arg);
/*
 * copy_file_range into the pending file ino_out. src describes a source in
 * a finalized step, or is NULL when ino_in is a pending file too.
 */
void pend_copy_file_range(fuse_req_t req, const struct pend_src *src, fuse_ino_t ino_in,
			  off_t off_in, struct fuse_file_info *fi_in, fuse_ino_t ino_out,
			  off_t off_out, struct fuse_file_info *fi_out, size_t len);

#endif
