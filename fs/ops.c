/*
 * fs/ops.c — the FUSE low-level operations of ckptfs.
 *
 * The read side is answered here; requests on pending inodes (pend_is_ino)
 * and the root's step names that are not finalized steps are handed to
 * passthrough.c (the write side). Finalized steps refuse every change (EROFS),
 * and so does everything with -o ro.
 *
 * Every handler replies exactly once: it computes an errno (0 on success)
 * through one exit path and the reply is the last thing it does. Requests
 * that need a step hold a reference on its vstep for their duration; open
 * files hold one until release (view.h, invariant 2).
 *
 * Kernel caching: nodes inside a finalized step never change, so their
 * entries and attributes are cached for CKPTFS_STEP_TIMEOUT, negative lookups
 * too (ino 0), directories with cache_readdir and files with keep_cache. Root
 * entries are cached for CKPTFS_ROOT_TIMEOUT and invalidated by the rescan
 * thread (ckptfs.c) when steps come and go.
 */
#include "ckptfs.h"
#include "passthrough.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#define XATTR_PREFIX "user.ckpt."
#define READDIR_MAX (64u << 10)

struct ofile {
	struct vstep *vs;
	struct vnode *node; /* valid while vs is held (view.h) */
};

static struct ckptfs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* A reference on the step of an inode inside a step, and its node. */
static int resolve(struct vstep **vs, struct vnode **node, struct ckptfs *fs, fuse_ino_t ino)
{
	uint64_t hi = (uint64_t)ino >> 32;
	if (hi == 0 || hi > UINT32_MAX || pend_is_ino(ino))
		return ENOENT;
	int rc = view_get(vs, fs->view, (uint32_t)(hi - 1));
	if (rc)
		return ckptfs_errno(rc, "step");
	if ((rc = view_node(node, *vs, (uint32_t)ino))) {
		view_put(fs->view, *vs);
		*vs = NULL;
		return rc == CKPT_ENOTFOUND ? ENOENT : ckptfs_errno(rc, "node");
	}
	return 0;
}

/*
 * A change refused outside pending steps: log why (the user reads it back
 * with `ckpt status MNT` or getfattr -n user.ckpt.errors MNT; docs/fs.md,
 * "Where errors go") and return err. ino is the directory changed in (or
 * the file changed), name the entry (NULL for the file itself). In a
 * finalized step neither the operation nor the name is logged: rm -rf of a
 * step would log each of its files and directories, where one line
 * (counted) says it all.
 */
static int refused_step(struct ckptfs *fs, const char *step, int err)
{
	ckptfs_log("step %s is finalized, read-only: delete it with `ckpt rm %s/%s`, or copy it "
		   "to change it: cp -r MNT/%s MNT/<new step>",
		   step, view_root_path(fs->view), step, step);
	return err;
}


static int refused(struct ckptfs *fs, fuse_ino_t ino, const char *op, const char *name, int err)
{
	struct vstep *vs = NULL;
	struct vnode *node;
	if (!name)
		name = "";
	if (fs->ro) {
		ckptfs_log("%s %s: mounted read-only (-o ro)", op, name);
	} else if (ino == VIEW_ROOT_INO) {
		ckptfs_log("%s %s: only steps can be made at the root: mkdir MNT/<step number>", op,
			   name);
	} else if (resolve(&vs, &node, fs, ino) == 0) {
		refused_step(fs, vs->name, err);
		view_put(fs->view, vs);
	}
	return err;
}

static void base_attr(struct stat *st, const struct ckptfs *fs, uint64_t ino, struct timespec t)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_atim = st->st_mtim = st->st_ctim = t;
	/*
	 * What buffered readers size their buffer by (Python's open(), stdio): a
	 * page, so peeking at a .npy header asks for 4 KiB and the kernel's first
	 * read-ahead window stays within one chunk; sequential readers get large
	 * requests from the read-ahead window anyway (docs/fs.md, "Reads").
	 */
	st->st_blksize = 4096;
}

static void root_attr(struct stat *st, struct ckptfs *fs)
{
	base_attr(st, fs, VIEW_ROOT_INO, view_root_mtime(fs->view));
	st->st_mode = S_IFDIR | (fs->ro ? 0555 : 0755);
	st->st_nlink = 2;
}

static int latest_attr(struct stat *st, struct ckptfs *fs)
{
	char target[VIEW_NAME_LEN];
	if (view_latest(target, fs->view))
		return ENOENT;
	base_attr(st, fs, VIEW_LATEST_INO, view_root_mtime(fs->view));
	st->st_mode = S_IFLNK | 0444;
	st->st_nlink = 1;
	st->st_size = (off_t)strlen(target);
	return 0;
}

static int node_attr(struct stat *st, struct ckptfs *fs, struct vstep *vs, struct vnode *n)
{
	base_attr(st, fs, view_ino(vs->slot, n->id), vs->time);
	/*
	 * 0755/0644 as squashfs and tar show ordinary files, not 0555/0444: a copy
	 * out of the mount (`cp -r`, `rsync -a`) is then writable and deletable by
	 * its owner. Changes here still fail, with EROFS and a reason in
	 * .ckptfs-errors (docs/fs.md, "Modes").
	 */
	if (vnode_is_dir(n)) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return 0;
	}
	uint64_t size;
	int rc = view_node_size(&size, vs, n);
	if (rc)
		return ckptfs_errno(rc, n->name);
	st->st_mode = S_IFREG | 0644;
	st->st_nlink = 1;
	st->st_size = (off_t)size;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	return 0;
}

static void step_entry(struct fuse_entry_param *e, const struct stat *st, double entry_timeout)
{
	memset(e, 0, sizeof(*e));
	e->ino = st->st_ino;
	e->attr = *st;
	e->attr_timeout = CKPTFS_STEP_TIMEOUT;
	e->entry_timeout = entry_timeout;
}

/* ---- lifecycle ---- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO; /* plus always: ls -l, find */
	conn->time_gran = 1;
	/*
	 * With POSIX ACLs on, the kernel caches each inode's (absent) ACL, so
	 * `ls -l` stops asking for system.posix_acl_access on every call; the
	 * kernel then checks permissions itself, which our modes allow.
	 */
	if (conn->capable & FUSE_CAP_POSIX_ACL)
		conn->want |= FUSE_CAP_POSIX_ACL;
	/*
	 * Requests may be 1 MiB (max_pages negotiated by libfuse; max_read stays
	 * unlimited). max_readahead could only lower the kernel's read-ahead: it
	 * is raised through the bdi instead (ckptfs.c, readahead_main).
	 */
	conn->max_background = 32; /* more read-ahead requests in flight */
	/* Writes (pending steps): 1 MiB requests, O_TRUNC in open, no kernel write cache. */
	conn->max_write = 1u << 20;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
}

/* ---- names and attributes ---- */

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct ckptfs *fs = fs_of(req);
	struct fuse_entry_param e;
	struct stat st;
	struct vstep *vs = NULL;
	struct vnode *d, *child;
	uint32_t slot;
	int err = 0, rc;

	if (parent == VIEW_ROOT_INO) {
		if (strcmp(name, CKPTFS_ERRFILE_NAME) == 0) {
			ckptfs_errfile_attr(&st, fs);
			step_entry(&e, &st, 0);
			e.attr_timeout = 0;
			goto done;
		}
		if (strcmp(name, "latest") == 0) {
			if ((err = latest_attr(&st, fs)))
				goto done;
			step_entry(&e, &st, CKPTFS_ROOT_TIMEOUT);
			e.attr_timeout = CKPTFS_ROOT_TIMEOUT;
			goto done;
		}
		if ((rc = view_find(&slot, fs->view, name))) {
			if (fs->pend) {
				pend_root_lookup(req, name);
				return;
			}
			err = ckptfs_errno(rc, name);
			goto done;
		}
		if ((rc = view_get(&vs, fs->view, slot))) {
			err = ckptfs_errno(rc, name);
			goto done;
		}
		if ((err = node_attr(&st, fs, vs, &vs->top)))
			goto done;
		step_entry(&e, &st, CKPTFS_ROOT_TIMEOUT);
		goto done;
	}
	if (pend_is_ino(parent)) {
		pend_lookup(req, parent, name);
		return;
	}
	if ((err = resolve(&vs, &d, fs, parent)))
		goto done;
	if (!vnode_is_dir(d)) {
		err = ENOTDIR;
		goto done;
	}
	if (d->item_err) {
		err = ckptfs_errno(d->item_err, d->name);
		goto done;
	}
	if ((rc = view_child(&child, vs, d, name)) == CKPT_ENOTFOUND) {
		memset(&e, 0, sizeof(e)); /* negative entry, cached like the step */
		e.entry_timeout = CKPTFS_STEP_TIMEOUT;
		goto done;
	} else if (rc) {
		err = ckptfs_errno(rc, d->name);
		goto done;
	}
	if ((err = node_attr(&st, fs, vs, child)))
		goto done;
	step_entry(&e, &st, CKPTFS_STEP_TIMEOUT);
done:
	view_put(fs->view, vs);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct ckptfs *fs = fs_of(req);
	if (pend_is_ino(ino) && fs->pend)
		pend_forget(fs->pend, ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct ckptfs *fs = fs_of(req);
	for (size_t i = 0; i < count; i++)
		if (pend_is_ino(forgets[i].ino) && fs->pend)
			pend_forget(fs->pend, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ckptfs *fs = fs_of(req);
	struct stat st;
	struct vstep *vs = NULL;
	struct vnode *node;
	double timeout = CKPTFS_STEP_TIMEOUT;
	int err = 0;

	if (pend_is_ino(ino)) {
		pend_getattr(req, ino, fi);
		return;
	}
	if (ino == VIEW_ROOT_INO) {
		root_attr(&st, fs);
		timeout = CKPTFS_ROOT_TIMEOUT;
	} else if (ino == VIEW_LATEST_INO) {
		err = latest_attr(&st, fs);
		timeout = CKPTFS_ROOT_TIMEOUT;
	} else if (ino == CKPTFS_ERRFILE_INO) {
		ckptfs_errfile_attr(&st, fs);
		timeout = 0;
	} else if (fi && fi->fh && ino >> 32) {
		/* An open file: its step may be gone from the root, the file is not. */
		const struct ofile *of = (const struct ofile *)(uintptr_t)fi->fh;
		err = node_attr(&st, fs, of->vs, of->node);
	} else if (!(err = resolve(&vs, &node, fs, ino))) {
		err = node_attr(&st, fs, vs, node);
	}
	view_put(fs->view, vs);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_attr(req, &st, timeout);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char target[VIEW_NAME_LEN];
	if (ino != VIEW_LATEST_INO)
		fuse_reply_err(req, EINVAL);
	else if (view_latest(target, fs_of(req)->view))
		fuse_reply_err(req, ENOENT);
	else
		fuse_reply_readlink(req, target);
}

/* Of ROOT's filesystem: what pending steps can still take (df, cp's space checks). */
static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv = {.f_bsize = 4096, .f_frsize = 4096, .f_namemax = 255};
	if (statvfs(view_root_path(fs_of(req)->view), &sv))
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &sv);
}

/* ---- directories ---- */

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ckptfs *fs = fs_of(req);
	struct vstep *vs = NULL;
	struct vnode *node;
	int err = 0, rc;

	if (pend_is_ino(ino)) {
		pend_opendir(req, ino, fi);
		return;
	}
	if (ino == VIEW_ROOT_INO)
		goto done;
	if (ino == VIEW_LATEST_INO) {
		err = ENOTDIR;
		goto done;
	}
	if ((err = resolve(&vs, &node, fs, ino)))
		goto done;
	if (!vnode_is_dir(node))
		err = ENOTDIR;
	else if ((rc = view_dir_list(vs, node)))
		err = ckptfs_errno(rc, node->name);
	fi->cache_readdir = 1; /* immutable: the kernel may keep the listing */
	fi->keep_cache = 1;
done:
	view_put(fs->view, vs);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_open(req, fi);
}

/* Add one entry; returns 0 when it did not fit. */
static size_t add_entry(fuse_req_t req, char *buf, size_t cap, size_t pos, const char *name,
			const struct fuse_entry_param *e, off_t next, int plus)
{
	size_t len = plus ? fuse_add_direntry_plus(req, buf + pos, cap - pos, name, e, next)
			  : fuse_add_direntry(req, buf + pos, cap - pos, name, &e->attr, next);
	return len > cap - pos ? 0 : len;
}

static int readdir_root(fuse_req_t req, char *buf, size_t cap, size_t *pos, off_t off, int plus)
{
	struct ckptfs *fs = fs_of(req);
	struct view_entry *ents = NULL, *pents = NULL;
	size_t n = 0, np = 0;
	char target[VIEW_NAME_LEN];
	int rc = view_list(&ents, &n, fs->view);
	if (rc == 0 && fs->pend && (rc = pend_list(&pents, &np, fs->pend)) == 0 && np) {
		struct view_entry *all = realloc(ents, (n + np) * sizeof(*all));
		if (!all) {
			rc = CKPT_ENOMEM;
		} else {
			memcpy(all + n, pents, np * sizeof(*all));
			ents = all;
			n += np;
		}
	}
	free(pents);
	if (rc) {
		free(ents);
		return ckptfs_errno(rc, "root");
	}
	int has_latest = view_latest(target, fs->view) == 0;
	/* offsets: 0 ".", 1 "..", 2 "latest", 3 + i step i (finalized, then pending) */
	for (off_t i = off; i < (off_t)n + 3; i++) {
		struct fuse_entry_param e;
		const char *name;
		memset(&e, 0, sizeof(e)); /* ino 0: plus gives no entry; lookups open steps */
		if (i < 2) {
			name = i == 0 ? "." : "..";
			root_attr(&e.attr, fs);
		} else if (i == 2) {
			if (!has_latest)
				continue;
			name = "latest";
			e.attr.st_ino = VIEW_LATEST_INO;
			e.attr.st_mode = S_IFLNK;
		} else {
			name = ents[i - 3].name;
			e.attr.st_ino = ents[i - 3].ino;
			e.attr.st_mode = S_IFDIR;
		}
		size_t len = add_entry(req, buf, cap, *pos, name, &e, i + 1, plus);
		if (!len)
			break;
		*pos += len;
	}
	free(ents);
	return 0;
}

static int readdir_step(fuse_req_t req, struct vstep *vs, struct vnode *d, char *buf, size_t cap,
			size_t *pos, off_t off, int plus)
{
	struct ckptfs *fs = fs_of(req);
	int rc = view_dir_list(vs, d);
	if (rc)
		return ckptfs_errno(rc, d->name);
	for (off_t i = off; i < (off_t)d->nkids + 2; i++) {
		struct fuse_entry_param e;
		const char *name;
		memset(&e, 0, sizeof(e));
		if (i < 2) {
			name = i == 0 ? "." : "..";
			e.attr.st_mode = S_IFDIR;
			e.attr.st_ino = i == 0	     ? view_ino(vs->slot, d->id)
					: d->id == 0 ? VIEW_ROOT_INO
						     : view_ino(vs->slot, d->parent);
		} else {
			struct vnode *c = &d->kids[i - 2];
			name = c->name;
			struct stat st;
			if (plus && node_attr(&st, fs, vs, c) == 0) {
				step_entry(&e, &st, CKPTFS_STEP_TIMEOUT);
			} else {
				e.attr.st_ino = view_ino(vs->slot, c->id);
				e.attr.st_mode = vnode_is_dir(c) ? S_IFDIR : S_IFREG;
			}
		}
		size_t len = add_entry(req, buf, cap, *pos, name, &e, i + 1, plus);
		if (!len)
			break;
		*pos += len;
	}
	return 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, int plus)
{
	struct ckptfs *fs = fs_of(req);
	struct vstep *vs = NULL;
	struct vnode *node;
	size_t pos = 0;
	int err = 0;
	char *buf;

	/* The kernel may offer up to 1 MiB; a short listing is fine (it asks again). */
	if (size > READDIR_MAX)
		size = READDIR_MAX;
	if (!(buf = malloc(size ? size : 1))) {
		err = ENOMEM;
		goto done;
	}
	if (pend_is_ino(ino)) {
		free(buf);
		pend_readdir(req, ino, size, off, fi, plus);
		return;
	}
	if (ino == VIEW_ROOT_INO) {
		err = readdir_root(req, buf, size, &pos, off, plus);
		goto done;
	}
	if ((err = resolve(&vs, &node, fs, ino)))
		goto done;
	if (!vnode_is_dir(node)) {
		err = ENOTDIR;
		goto done;
	}
	err = readdir_step(req, vs, node, buf, size, &pos, off, plus);
done:
	view_put(fs->view, vs);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 1);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (pend_is_ino(ino))
		pend_releasedir(req, ino, fi);
	else
		fuse_reply_err(req, 0);
}

/* ---- files ---- */

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ckptfs *fs = fs_of(req);
	struct vstep *vs = NULL;
	struct ofile *of = NULL;
	struct vnode *node;
	int err = 0, rc;

	if (pend_is_ino(ino)) {
		pend_open(req, ino, fi);
		return;
	}
	if (ino == CKPTFS_ERRFILE_INO) {
		ckptfs_errfile_open(req, fi);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		err = refused(fs, ino, "open for writing", NULL, EROFS);
		goto done;
	}
	if (ino == VIEW_ROOT_INO) {
		err = EISDIR;
		goto done;
	}
	if ((err = resolve(&vs, &node, fs, ino)))
		goto done;
	if (vnode_is_dir(node)) {
		err = EISDIR;
		goto done;
	}
	if ((rc = view_node_open(vs, node))) {
		err = ckptfs_errno(rc, node->name);
		goto done;
	}
	if (!(of = malloc(sizeof(*of)))) {
		err = ENOMEM;
		goto done;
	}
	of->vs = vs;
	of->node = node;
	vs = NULL; /* the open file holds the reference */
	fi->fh = (uint64_t)(uintptr_t)of;
	fi->keep_cache = 1; /* finalized steps never change */
	fi->noflush = 1;    /* read-only: a FLUSH per close would only cost a request */
done:
	view_put(fs->view, vs);
	if (err) {
		fuse_reply_err(req, err);
	} else if (fuse_reply_open(req, fi) != 0) {
		view_put(fs->view, of->vs); /* interrupted: no release will come */
		free(of);
	}
}

static const char *meta_json(struct vstep *vs, const struct vnode *n)
{
	const char *json = NULL;
	if (n->type == VN_STEPMETA)
		json = ckpt_step_metadata_json(vs->step);
	else if (ckpt_step_item_metadata_json(&json, vs->step,
					      ckpt_step_item_name(vs->step, n->item)))
		json = NULL;
	return json ? json : "";
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	if (pend_is_ino(ino)) {
		pend_read(req, ino, size, off, fi);
		return;
	}
	if (ino == CKPTFS_ERRFILE_INO) {
		ckptfs_errfile_read(req, size, off, fi);
		return;
	}
	const struct ofile *of = (const struct ofile *)(uintptr_t)fi->fh;
	const struct vnode *n = of->node;
	char *buf = NULL;
	size_t got = 0;
	int rc = 0;

	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (n->type == VN_STEPMETA || n->type == VN_ITEMMETA) {
		const char *json = meta_json(of->vs, n);
		size_t len = strlen(json);
		size_t start = (uint64_t)off < len ? (size_t)off : len;
		size_t count = len - start < size ? len - start : size;
		fuse_reply_buf(req, json + start, count);
		return;
	}
	if (!(buf = malloc(size ? size : 1))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (n->type == VN_LEAF)
		rc = ckpt_leaf_pread(&got, n->leaf, buf, size, (uint64_t)off);
	else if (n->type == VN_SAFETENSORS)
		rc = ckpt_safetensors_pread(&got, n->st, buf, size, (uint64_t)off);
	else
		rc = ckpt_value_pread(&got, n->value, buf, size, (uint64_t)off);
	if (rc)
		fuse_reply_err(req, ckptfs_errno(rc, n->name));
	else
		fuse_reply_buf(req, buf, got);
	free(buf);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (pend_is_ino(ino)) {
		pend_release(req, ino, fi);
		return;
	}
	if (ino == CKPTFS_ERRFILE_INO) {
		ckptfs_errfile_release(req, fi);
		return;
	}
	struct ofile *of = (struct ofile *)(uintptr_t)fi->fh;
	view_put(fs_of(req)->view, of->vs);
	free(of);
	fuse_reply_err(req, 0);
}

/* ---- extended attributes ---- */

/* Called per attribute; a non-zero return stops the enumeration. */
typedef pend_xattr_cb xattr_cb;

static int emit(xattr_cb cb, void *p, const char *name, const char *value)
{
	return cb(name, value, strlen(value), p);
}

static int step_xattrs(struct vstep *vs, xattr_cb cb, void *p)
{
	char buf[64];
	struct tm tm;
	int rc;
	/* the step number, also of a step named "ckpt_0000007" */
	snprintf(buf, sizeof(buf), "%" PRIu64, vs->number);
	if ((rc = emit(cb, p, XATTR_PREFIX "state", "finalized")) ||
	    (rc = emit(cb, p, XATTR_PREFIX "step", buf)))
		return rc;
	gmtime_r(&vs->time.tv_sec, &tm);
	size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, sizeof(buf) - n, ".%09ldZ", vs->time.tv_nsec);
	if ((rc = emit(cb, p, XATTR_PREFIX "commit_time", buf)))
		return rc;
	/* who wrote it: "ckpt" or "orbax" (a few stats; getxattr on a step is rare) */
	const char *fmt = ckpt_step_dir_format(ckpt_step_dir(vs->step));
	if (fmt && (rc = emit(cb, p, XATTR_PREFIX "format", fmt)))
		return rc;
	if (vs->custom_metadata)
		rc = emit(cb, p, XATTR_PREFIX "custom_metadata", vs->custom_metadata);
	return rc;
}

static const char *kind_name(ckpt_tree_kind k)
{
	switch (k) {
	case CKPT_TREE_ARRAY:
		return "array";
	case CKPT_TREE_INT:
		return "int";
	case CKPT_TREE_FLOAT:
		return "float";
	case CKPT_TREE_BOOL:
		return "bool";
	case CKPT_TREE_STRING:
		return "string";
	default:
		return "none";
	}
}

static int value_xattrs(const ckpt_value_info *vi, xattr_cb cb, void *p)
{
	char buf[32];
	int rc;
	snprintf(buf, sizeof(buf), "%" PRIu64, vi->size);
	if ((rc = emit(cb, p, XATTR_PREFIX "raw_size", buf)))
		return rc;
	snprintf(buf, sizeof(buf), "%" PRIu64, vi->stored_size);
	if ((rc = emit(cb, p, XATTR_PREFIX "stored_size", buf)))
		return rc;
	if ((rc = emit(cb, p, XATTR_PREFIX "codec",
		       vi->is_inline ? "inline" : vi->codec == CKPT_CODEC_ZSTD ? "zstd" : "raw")))
		return rc;
	snprintf(buf, sizeof(buf), "%08" PRIx32, vi->crc32c);
	return emit(cb, p, XATTR_PREFIX "crc32c", buf);
}

#define SHAPE_TEXT_MAX (CKPT_NPY_MAX_NDIM * 22 + 4)

/* "[2, 3]": the shape as numpy prints a tuple, in brackets. */
static void shape_text(char shape[SHAPE_TEXT_MAX], unsigned nd, const uint64_t *sh)
{
	size_t pos = 0;
	shape[pos++] = '[';
	for (unsigned i = 0; i < nd && i < CKPT_NPY_MAX_NDIM; i++)
		pos += (size_t)snprintf(shape + pos, SHAPE_TEXT_MAX - pos, "%s%" PRIu64,
					i ? ", " : "", sh[i]);
	snprintf(shape + pos, SHAPE_TEXT_MAX - pos, "]");
}

static int array_xattrs(ckpt_dtype dt, unsigned nd, const uint64_t *sh, xattr_cb cb, void *p)
{
	char shape[SHAPE_TEXT_MAX];
	int rc;
	shape_text(shape, nd, sh);
	if ((rc = emit(cb, p, XATTR_PREFIX "dtype", ckpt_dtype_name(dt))))
		return rc;
	return emit(cb, p, XATTR_PREFIX "shape", shape);
}

/* A JSON array of counts as shape text; 0 if it is not one. */
static int json_shape(char shape[SHAPE_TEXT_MAX], const cJSON *j)
{
	uint64_t sh[CKPT_NPY_MAX_NDIM];
	unsigned nd = 0;
	const cJSON *e;
	if (!cJSON_IsArray(j))
		return 0;
	cJSON_ArrayForEach(e, j)
	{
		if (nd >= CKPT_NPY_MAX_NDIM || !cJSON_IsNumber(e) || e->valuedouble < 0)
			return 0;
		sh[nd++] = (uint64_t)e->valuedouble;
	}
	shape_text(shape, nd, sh);
	return 1;
}

/*
 * Where a value's bytes come from (ckpt_value_describe; nothing for a native
 * step): "source" is the whole description, and for an Orbax leaf
 * "source_format" (zarr2/zarr3/msgpack), "zarr_codec", "chunk_shape" and
 * "inner_chunk_shape" its members. A failed description adds nothing.
 */
static int source_xattrs(int drc, char *json, xattr_cb cb, void *p)
{
	static const struct {
		const char *member, *xattr;
	} strs[] = {{"format", XATTR_PREFIX "source_format"}, {"codec", XATTR_PREFIX "zarr_codec"}},
	  shapes[] = {{"chunk_shape", XATTR_PREFIX "chunk_shape"},
		      {"inner_chunk_shape", XATTR_PREFIX "inner_chunk_shape"}};
	char shape[SHAPE_TEXT_MAX];
	cJSON *j = NULL;
	int rc = 0;

	if (drc || !json)
		goto done;
	if ((rc = emit(cb, p, XATTR_PREFIX "source", json)))
		goto done;
	j = cJSON_Parse(json);
	for (size_t i = 0; !rc && i < sizeof(strs) / sizeof(strs[0]); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, strs[i].member);
		if (cJSON_IsString(v))
			rc = emit(cb, p, strs[i].xattr, v->valuestring);
	}
	for (size_t i = 0; !rc && i < sizeof(shapes) / sizeof(shapes[0]); i++)
		if (json_shape(shape, cJSON_GetObjectItemCaseSensitive(j, shapes[i].member)))
			rc = emit(cb, p, shapes[i].xattr, shape);
done:
	if (drc)
		ckpt_error_clear();
	cJSON_Delete(j);
	free(json);
	return rc;
}

static int leaf_xattrs(const struct vnode *n, xattr_cb cb, void *p)
{
	const ckpt_tree *t = n->tree;
	ckpt_tree_kind k = ckpt_tree_get_kind(t);
	int rc;
	if ((rc = emit(cb, p, XATTR_PREFIX "kind", kind_name(k))))
		return rc;
	if (k == CKPT_TREE_ARRAY &&
	    (rc = array_xattrs(ckpt_tree_dtype(t), ckpt_tree_ndim(t), ckpt_tree_shape(t), cb, p)))
		return rc;
	if ((rc = value_xattrs(ckpt_leaf_value_info(n->leaf), cb, p)))
		return rc;
	char *src = NULL;
	int drc = ckpt_leaf_describe(&src, n->leaf);
	if ((rc = source_xattrs(drc, src, cb, p)))
		return rc;
	const char *cm = ckpt_tree_custom_metadata(t);
	return cm ? emit(cb, p, XATTR_PREFIX "custom_metadata", cm) : 0;
}

/*
 * A file of an item of another handler: its value's xattrs; a .npy file
 * (Array, JAX key items) also its dtype and shape from its header, and a
 * JAX key's .npy its PRNG implementation from "<key>_metadata" beside it.
 */
static int raw_xattrs(struct vstep *vs, const struct vnode *n, xattr_cb cb, void *p)
{
	size_t klen = strlen(n->key);
	ckpt_npy_header h;
	int rc = value_xattrs(ckpt_value_get_info(n->value), cb, p);
	char *src = NULL;

	if (!rc) {
		int drc = ckpt_value_describe(&src, n->value);
		rc = source_xattrs(drc, src, cb, p);
	}
	if (rc || klen < 4 || strcmp(n->key + klen - 4, ".npy") != 0)
		return rc;
	if (ckpt_array_value_header(&h, n->value, n->key) == 0 &&
	    (rc = array_xattrs(h.dtype, h.ndim, h.shape, cb, p)))
		return rc;
	ckpt_error_clear();
	const char *ts = ckpt_step_item_typestr(vs->step, n->item);
	if (!ts || strcmp(ts, CKPT_JAX_KEY_TYPESTR) != 0)
		return 0;
	char *mkey = NULL, *json = NULL;
	size_t jlen = 0;
	if (asprintf(&mkey, "%.*s_metadata", (int)(klen - 4), n->key) < 0)
		mkey = NULL;
	if (mkey && ckpt_store_get((void **)&json, &jlen, ckpt_step_store(vs->step), mkey,
				   strlen(mkey)) == 0) {
		cJSON *m = cJSON_ParseWithLength(json, jlen);
		const cJSON *impl = cJSON_GetObjectItemCaseSensitive(m, "impl");
		if (cJSON_IsString(impl))
			rc = emit(cb, p, XATTR_PREFIX "prng_impl", impl->valuestring);
		cJSON_Delete(m);
	}
	ckpt_error_clear();
	free(json);
	free(mkey);
	return rc;
}

/* <item>.safetensors: what it is, of which item, how many tensors and leaves left out. */
static int safetensors_xattrs(struct vstep *vs, const struct vnode *n, xattr_cb cb, void *p)
{
	char buf[32];
	int rc;
	if ((rc = emit(cb, p, XATTR_PREFIX "kind", "safetensors")) ||
	    (rc = emit(cb, p, XATTR_PREFIX "item", ckpt_step_item_name(vs->step, n->item))))
		return rc;
	snprintf(buf, sizeof(buf), "%zu", ckpt_safetensors_tensor_count(n->st));
	if ((rc = emit(cb, p, XATTR_PREFIX "tensors", buf)))
		return rc;
	snprintf(buf, sizeof(buf), "%zu", ckpt_safetensors_left_out_count(n->st));
	return emit(cb, p, XATTR_PREFIX "left_out", buf);
}

/*
 * The root: ROOT's path (so `ckpt` finds the checkpoint behind a path in the
 * mount), where the log goes and the daemon's last log lines (docs/fs.md,
 * "Where errors go").
 */
static int root_xattrs(struct ckptfs *fs, xattr_cb cb, void *p)
{
	char *errors = ckptfs_errors(NULL);
	int rc;
	if (!errors)
		return ENOMEM;
	if (!(rc = emit(cb, p, XATTR_PREFIX "root", view_root_path(fs->view))) &&
	    !(rc = emit(cb, p, XATTR_PREFIX "log", ckptfs_log_where())))
		rc = emit(cb, p, XATTR_PREFIX "errors", errors);
	if (!rc) {
		char n[24];
		snprintf(n, sizeof(n), "%" PRIu64, view_bytes_read(fs->view));
		rc = emit(cb, p, XATTR_PREFIX "bytes_read", n);
	}
	free(errors);
	return rc < 0 ? -rc : 0;
}

/* Enumerate the xattrs of ino; returns an errno. */
static int node_xattrs(struct ckptfs *fs, fuse_ino_t ino, xattr_cb cb, void *p)
{
	struct vstep *vs = NULL;
	struct vnode *node;
	int err, rc = 0;
	if (ino == VIEW_ROOT_INO)
		return root_xattrs(fs, cb, p);
	if (ino == VIEW_LATEST_INO || ino == CKPTFS_ERRFILE_INO)
		return 0;
	if (pend_is_ino(ino))
		return fs->pend ? pend_xattrs(fs->pend, ino, cb, p) : ENOENT;
	if ((err = resolve(&vs, &node, fs, ino)))
		return err;
	struct vnode *n = node;
	const ckpt_tree *t = NULL;
	switch (n->type) {
	case VN_STEP:
		rc = step_xattrs(vs, cb, p);
		break;
	case VN_ITEM: {
		const char *ts = ckpt_step_item_typestr(vs->step, n->item);
		const ckpt_tree *meta = NULL;
		rc = emit(cb, p, XATTR_PREFIX "handler", ts ? ts : "");
		/* a PyTree item's own custom metadata (_METADATA's top level) */
		if (rc == 0 &&
		    ckpt_step_item_tree(&meta, vs->step, ckpt_step_item_name(vs->step, n->item)) == 0 &&
		    ckpt_tree_custom_metadata(meta))
			rc = emit(cb, p, XATTR_PREFIX "custom_metadata", ckpt_tree_custom_metadata(meta));
		break;
	}
	case VN_DIR:
		if ((rc = view_node_tree(&t, vs, n))) {
			err = ckptfs_errno(rc, n->name);
			rc = 0;
		} else if (ckpt_tree_custom_metadata(t)) {
			rc = emit(cb, p, XATTR_PREFIX "custom_metadata",
				  ckpt_tree_custom_metadata(t));
		}
		break;
	case VN_SAFETENSORS:
	case VN_LEAF:
	case VN_RAW:
		if ((rc = view_node_open(vs, node))) {
			err = ckptfs_errno(rc, n->name);
			rc = 0;
			break;
		}
		if (n->type == VN_LEAF)
			rc = leaf_xattrs(n, cb, p);
		else if (n->type == VN_SAFETENSORS)
			rc = safetensors_xattrs(vs, n, cb, p);
		else
			rc = raw_xattrs(vs, n, cb, p);
		break;
	default:
		break;
	}
	view_put(fs->view, vs);
	if (rc < 0) /* a callback failure is an errno, negated */
		err = -rc;
	return err;
}

/* The one getxattr/listxattr reply: error, size probe (size 0), ERANGE or the bytes. */
static void reply_xattr(fuse_req_t req, int err, size_t size, const void *value, size_t len)
{
	if (err)
		fuse_reply_err(req, err);
	else if (size == 0)
		fuse_reply_xattr(req, len);
	else if (len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, value, len);
}

struct xget {
	const char *name;
	char *value;
	size_t len;
	int found;
};

static int get_cb(const char *name, const char *value, size_t len, void *p)
{
	struct xget *x = p;
	if (strcmp(name, x->name))
		return 0;
	if (!(x->value = malloc(len ? len : 1)))
		return -ENOMEM;
	memcpy(x->value, value, len);
	x->len = len;
	x->found = 1;
	return 1;
}

/*
 * The errno for a name we do not have, answered without any work: ENODATA in
 * the namespaces the mount implements (user.*; and the POSIX ACL names, which
 * the kernel asks for once per inode and caches: it takes EOPNOTSUPP there for
 * an error, not for "no ACL"), EOPNOTSUPP elsewhere (security.*, trusted.*,
 * other system.*). `ls -l` asks every file for security.selinux and remembers
 * only EOPNOTSUPP, per device: one request per mount instead of one per file.
 * Never ENOSYS, which would switch off every xattr of the mount.
 */
static int xattr_absent(const char *name)
{
	if (strncmp(name, "user.", 5) == 0 || strcmp(name, "system.posix_acl_access") == 0 ||
	    strcmp(name, "system.posix_acl_default") == 0)
		return ENODATA;
	return EOPNOTSUPP;
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct xget x = {.name = name};
	int err = 0;
	if (strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)))
		err = xattr_absent(name);
	else if (!(err = node_xattrs(fs_of(req), ino, get_cb, &x)) && !x.found)
		err = ENODATA;
	reply_xattr(req, err, size, x.value, x.len);
	free(x.value);
}

struct xlist {
	char *buf;
	size_t len, cap;
};

static int list_cb(const char *name, const char *value, size_t len, void *p)
{
	struct xlist *x = p;
	size_t n = strlen(name) + 1;
	if (x->len + n > x->cap) {
		size_t cap = (x->cap + n) * 2;
		char *b = realloc(x->buf, cap);
		if (!b)
			return -ENOMEM;
		x->buf = b;
		x->cap = cap;
	}
	memcpy(x->buf + x->len, name, n);
	x->len += n;
	return 0;
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct xlist x = {0};
	int err = node_xattrs(fs_of(req), ino, list_cb, &x);
	reply_xattr(req, err, size, x.buf, x.len);
	free(x.buf);
}

/* ---- writes: pending steps take them, everything else is read-only ---- */

/* The errno for a new entry at the root or in a finalized step: EINVAL at the root (rw). */
static int refuse(struct ckptfs *fs, fuse_ino_t parent, const char *op, const char *name)
{
	return refused(fs, parent, op, name,
		       parent == VIEW_ROOT_INO && !fs->ro ? EINVAL : EROFS);
}

/* Is ino a finalized step's own directory? */
static int is_step_dir(struct ckptfs *fs, fuse_ino_t ino)
{
	struct vstep *vs = NULL;
	struct vnode *node;
	if (resolve(&vs, &node, fs, ino))
		return 0;
	int is = node->type == VN_STEP;
	view_put(fs->view, vs);
	return is;
}

/*
 * user.ckpt.finalize=1 on a finalized step does nothing and succeeds, as
 * `ckpt finalize` of a finalized step does; other changes are EROFS.
 */
static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	struct ckptfs *fs = fs_of(req);
	if (pend_is_ino(ino))
		pend_setxattr(req, ino, name, value, size);
	else if (!strcmp(name, XATTR_PREFIX "finalize") && size == 1 && value[0] == '1' &&
		 is_step_dir(fs, ino))
		fuse_reply_err(req, 0);
	else
		fuse_reply_err(req, refused(fs, ino, "setfattr", name, EROFS));
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fuse_reply_err(req, pend_is_ino(ino) ? ENOTSUP
					     : refused(fs_of(req), ino, "setfattr -x", name, EROFS));
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	if (pend_is_ino(ino))
		pend_setattr(req, ino, attr, to_set, fi);
	else
		fuse_reply_err(req, refused(fs_of(req), ino, "setattr", NULL, EROFS));
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     dev_t rdev)
{
	/* Pending steps hold regular files and directories only. */
	fuse_reply_err(req, pend_is_ino(parent) ? EPERM : refuse(fs_of(req), parent, "mknod", name));
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct ckptfs *fs = fs_of(req);
	uint32_t slot;
	if (pend_is_ino(parent))
		pend_mkdir(req, parent, name);
	else if (parent == VIEW_ROOT_INO && fs->pend && strcmp(name, "latest") &&
		 view_find(&slot, fs->view, name))
		pend_root_mkdir(req, name);
	else if (parent == VIEW_ROOT_INO && !fs->ro)
		fuse_reply_err(req, EEXIST); /* a finalized step, or `latest` */
	else
		fuse_reply_err(req, refused(fs, parent, "mkdir", name, EROFS));
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (pend_is_ino(parent))
		pend_unlink(req, parent, name, 0);
	else
		fuse_reply_err(req, refused(fs_of(req), parent, "rm", name, EROFS));
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct ckptfs *fs = fs_of(req);
	uint32_t slot;
	if (pend_is_ino(parent))
		pend_unlink(req, parent, name, 1);
	else if (parent == VIEW_ROOT_INO && fs->pend && view_find(&slot, fs->view, name))
		pend_root_rmdir(req, name);
	else if (parent == VIEW_ROOT_INO && !fs->ro && strcmp(name, "latest"))
		fuse_reply_err(req, refused_step(fs, name, EROFS));
	else
		fuse_reply_err(req, refused(fs, parent, "rmdir", name, EROFS));
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, pend_is_ino(parent) ? EPERM : refuse(fs_of(req), parent, "ln -s", name));
}

/*
 * Within one pending step: passthrough. Out of a finalized step into a
 * pending one: EXDEV, so mv copies (and then fails to delete the source).
 * Steps themselves are not renamed, nor is anything moved to or from the
 * root (EPERM: mv says "Operation not permitted"; EINVAL made it say
 * "cannot move to a subdirectory of itself"); nothing goes into a finalized
 * step (EROFS).
 */
static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct ckptfs *fs = fs_of(req);
	if (pend_is_ino(parent) && pend_is_ino(newparent)) {
		pend_rename(req, parent, name, newparent, newname, flags);
	} else if (fs->ro || (newparent != VIEW_ROOT_INO && !pend_is_ino(newparent))) {
		fuse_reply_err(req, refused(fs, newparent, "mv to", newname, EROFS));
	} else if (parent == VIEW_ROOT_INO && newparent == VIEW_ROOT_INO) {
		ckptfs_log("mv %s %s: steps cannot be renamed; copy it (cp -r MNT/%s MNT/%s shares "
			   "the chunks, then finalize it) and `ckpt rm %s/%s`",
			   name, newname, name, newname, view_root_path(fs->view), name);
		fuse_reply_err(req, EPERM);
	} else if (parent == VIEW_ROOT_INO || newparent == VIEW_ROOT_INO) {
		ckptfs_log("mv %s -> %s: nothing moves to or from the root but whole steps, which "
			   "cannot be renamed",
			   name, newname);
		fuse_reply_err(req, EPERM);
	} else {
		fuse_reply_err(req, EXDEV);
	}
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	fuse_reply_err(req, pend_is_ino(newparent) ? EPERM
						   : refuse(fs_of(req), newparent, "ln", newname));
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	if (pend_is_ino(parent))
		pend_create(req, parent, name, fi);
	else
		fuse_reply_err(req, refuse(fs_of(req), parent, "create", name));
}

static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv, off_t off,
			 struct fuse_file_info *fi)
{
	if (pend_is_ino(ino))
		pend_write_buf(req, ino, bufv, off, fi);
	else
		fuse_reply_err(req, refused(fs_of(req), ino, "write", NULL, EROFS));
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (pend_is_ino(ino))
		pend_flush(req, ino, fi);
	else
		fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	if (pend_is_ino(ino))
		pend_fsync(req, ino, datasync, fi);
	else
		fuse_reply_err(req, 0);
}

/* Bytes of a file of a finalized step, for copy_file_range out of it. */
static int ofile_pread(void *ctx, void *buf, size_t len, uint64_t off, size_t *got)
{
	const struct ofile *of = ctx;
	const struct vnode *n = of->node;
	int rc;
	if (n->type == VN_STEPMETA || n->type == VN_ITEMMETA) {
		const char *json = meta_json(of->vs, n);
		size_t jlen = strlen(json);
		size_t start = off < jlen ? (size_t)off : jlen;
		*got = jlen - start < len ? jlen - start : len;
		memcpy(buf, json + start, *got);
		return 0;
	}
	if (n->type == VN_LEAF)
		rc = ckpt_leaf_pread(got, n->leaf, buf, len, off);
	else if (n->type == VN_SAFETENSORS)
		rc = ckpt_safetensors_pread(got, n->st, buf, len, off);
	else
		rc = ckpt_value_pread(got, n->value, buf, len, off);
	return rc ? ckptfs_errno(rc, n->name) : 0;
}

/*
 * Never ENOSYS or EOPNOTSUPP here: the kernel would stop sending
 * copy_file_range for the whole mount.
 */
static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len, int flags)
{
	struct ofile *of = (struct ofile *)(uintptr_t)fi_in->fh;
	uint64_t size = 0;
	int rc;
	if (!pend_is_ino(ino_out)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (pend_is_ino(ino_in)) {
		pend_copy_file_range(req, NULL, ino_in, off_in, fi_in, ino_out, off_out, fi_out, len);
		return;
	}
	if (!(ino_in >> 32) || !of) { /* the root or `latest` cannot be open files */
		fuse_reply_err(req, EBADF);
		return;
	}
	const struct vnode *n = of->node;
	if ((rc = view_node_size(&size, of->vs, of->node))) {
		fuse_reply_err(req, ckptfs_errno(rc, n->name));
		return;
	}
	struct pend_src src = {
		.step = of->vs->number,
		.item = ckpt_step_item_name(of->vs->step, n->item),
		.node = n->type == VN_LEAF ? n->tree : NULL,
		.safetensors = n->type == VN_SAFETENSORS && of->vs->st_sep == '.',
		.size = size,
		.pread = ofile_pread,
		.ctx = of,
	};
	pend_copy_file_range(req, &src, ino_in, off_in, fi_in, ino_out, off_out, fi_out, len);
}

const struct fuse_lowlevel_ops ckptfs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.readlink = op_readlink,
	.statfs = op_statfs,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.open = op_open,
	.read = op_read,
	.release = op_release,
	.flush = op_flush,
	.fsync = op_fsync,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
	.setattr = op_setattr,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.create = op_create,
	.write_buf = op_write_buf,
	.copy_file_range = op_copy_file_range,
};
