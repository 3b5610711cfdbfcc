/*
 * fs/clone.c — clone stubs in pending steps, and copy_file_range.
 *
 * A clone stub (ckpt/clone.h) stands for a whole leaf of a finalized step,
 * or for its whole <item>.safetensors. copy_file_range of such a file into
 * an empty file of a pending step writes a stub instead of the bytes
 * (docs/fs.md has the exact conditions); a stub reads as its source, opened
 * through the view and kept per pinode, and becomes a real file before it
 * changes (pend_materialize). Invariant 6 of passthrough.c: stub == 1 implies
 * src_vs is open, and src_leaf or (ref.path "") src_st.
 */
#include "passthrough_private.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COPY_BUF (1u << 20)
#define CFR_MAX	 (1u << 30) /* the largest copy_file_range reply (the kernel's is 32-bit) */

void pend_stub_clear(struct pend *p, struct pinode *pi)
{
	ckpt_leaf_free(pi->src_leaf);
	ckpt_safetensors_free(pi->src_st);
	view_put(p->fs->view, pi->src_vs);
	ckpt_clone_ref_clear(&pi->ref);
	pi->src_leaf = NULL;
	pi->src_st = NULL;
	pi->src_vs = NULL;
}

/* The bytes of a loaded stub's source (invariant 6). */
static uint64_t stub_src_size(const struct pinode *pi)
{
	return pi->src_st ? ckpt_safetensors_size(pi->src_st) : ckpt_leaf_file_size(pi->src_leaf);
}

/* Read a loaded stub's source; returns an errno. */
static int stub_src_pread(struct pinode *pi, void *buf, size_t len, uint64_t off, size_t *got)
{
	int rc = pi->src_st ? ckpt_safetensors_pread(got, pi->src_st, buf, len, off)
			    : ckpt_leaf_pread(got, pi->src_leaf, buf, len, off);
	return rc ? ckptfs_errno(rc, pi->ref.path[0] ? pi->ref.path : pi->ref.item) : 0;
}

/* Find out whether pi is a stub and open its source (invariant 6). Under pi->lock. */
int pend_stub_load(struct pend *p, struct pinode *pi)
{
	struct view *v = p->fs->view;
	const ckpt_tree *t = NULL;
	ckpt_tree *node = NULL;
	char name[24];
	uint32_t slot;
	int rc;

	if (pi->stub >= 0)
		return pi->stub;
	pend_stub_clear(p, pi);
	int fd = pend_reopen(pi, O_RDONLY);
	if (fd < 0)
		return -errno;
	rc = ckpt_clone_stub_read(&pi->ref, fd);
	close(fd);
	if (rc <= 0) {
		pi->stub = rc == 0 ? 0 : -1;
		return rc == 0 ? 0 : -ckptfs_errno(rc, "clone stub");
	}
	snprintf(name, sizeof(name), "%" PRIu64, pi->ref.step);
	if (!(rc = view_find(&slot, v, name)) && !(rc = view_get(&pi->src_vs, v, slot)) &&
	    !pi->ref.path[0])
		rc = ckpt_safetensors_open(&pi->src_st, pi->src_vs->step, pi->ref.item, NULL);
	else if (!rc && !(rc = ckpt_step_item_tree(&t, pi->src_vs->step, pi->ref.item)) &&
		 !(rc = ckpt_tree_lookup(&node, t, pi->ref.path)))
		rc = ckpt_leaf_open(&pi->src_leaf, pi->src_vs->step, pi->ref.item, node);
	if (rc) {
		char *rel = pend_relpath(p, pi, NULL);
		ckptfs_log("step %s: clone stub %s: source %s/%s%s%s: %s", pi->ps->name,
			   rel ? rel : "?", name, pi->ref.item,
			   pi->ref.path[0] ? "/" : ".safetensors", pi->ref.path, ckpt_error_last());
		free(rel);
		pend_stub_clear(p, pi);
		return -EIO;
	}
	pi->stub = 1;
	return 1;
}

/* The source size of a stub, or -1 if pi is not a stub (or its source is gone). */
int64_t pend_stub_size(struct pend *p, struct pinode *pi)
{
	int64_t size = -1;
	pthread_mutex_lock(&pi->lock);
	if (pi->stub == 0)
		pi->stub = -1; /* S_ISVTX is set (the caller saw it): look again */
	if (pend_stub_load(p, pi) == 1)
		size = (int64_t)stub_src_size(pi);
	pthread_mutex_unlock(&pi->lock);
	return size;
}

/*
 * Turn a stub into a real file before it changes: the source's bytes, or
 * nothing when it is to be truncated to 0 anyway. Returns an errno.
 */
int pend_materialize(struct pend *p, struct pinode *pi, int trunc)
{
	int err = 0, fd = -1;
	char *buf = NULL;
	pthread_mutex_lock(&pi->lock);
	int r = pend_stub_load(p, pi);
	if (r <= 0) {
		err = -r;
		goto done;
	}
	if ((fd = pend_reopen(pi, O_WRONLY)) < 0 || ftruncate(fd, 0)) {
		err = errno;
		goto done;
	}
	uint64_t size = trunc ? 0 : stub_src_size(pi), off = 0;
	if (size && !(buf = malloc(COPY_BUF))) {
		err = ENOMEM;
		goto done;
	}
	while (off < size) {
		size_t got = 0, n = size - off < COPY_BUF ? (size_t)(size - off) : COPY_BUF;
		if ((err = stub_src_pread(pi, buf, n, off, &got)) || (got == 0 && (err = EIO)))
			goto done;
		for (size_t w = 0; w < got;) {
			ssize_t k = pwrite(fd, buf + w, got - w, (off_t)(off + w));
			if (k < 0) {
				err = errno;
				goto done;
			}
			w += (size_t)k;
		}
		off += got;
	}
	if (fchmod(fd, 0644))
		err = errno;
	else
		pi->stub = 0;
done:
	if (err && fd >= 0) { /* no half copy: the stub again (the leaf is not lost), else empty */
		char *stub = NULL;
		size_t len = 0;
		if ((ftruncate(fd, 0) || ckpt_clone_stub_format(&stub, &len, &pi->ref) ||
		     pwrite(fd, stub, len, 0) != (ssize_t)len || fchmod(fd, 0644 | S_ISVTX)) &&
		    ftruncate(fd, 0) == 0)
			(void)fchmod(fd, 0644);
		free(stub);
		pi->stub = -1;
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	pthread_mutex_unlock(&pi->lock);
	return err;
}

/* Read from pi (its fd or, for a stub, its source; pi NULL: fd, a shadow). Returns an errno. */
int pend_pread(struct pend *p, struct pinode *pi, int fd, void *buf, size_t len, uint64_t off,
	       size_t *got)
{
	int err = 0, r = 0;
	if (pi) {
		pthread_mutex_lock(&pi->lock);
		r = pend_stub_load(p, pi);
		if (r == 1)
			err = stub_src_pread(pi, buf, len, off, got);
		pthread_mutex_unlock(&pi->lock);
	}
	if (r == 1 || r < 0)
		return r < 0 ? -r : err;
	ssize_t n = pread(fd, buf, len, (off_t)off);
	if (n < 0)
		return errno;
	*got = (size_t)n;
	return 0;
}

/* ---- copy_file_range and clone stubs ---- */

struct pend_in {
	struct pend *p;
	struct pinode *pi;
	int fd;
};

static int pending_pread(void *ctx, void *buf, size_t len, uint64_t off, size_t *got)
{
	struct pend_in *in = ctx;
	return pend_pread(in->p, in->pi, in->fd, buf, len, off, got);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/*
 * Make the file of pf a clone stub of src if the copy allows it (see
 * docs/fs.md): returns the count to reply, or -1 to copy the bytes instead.
 */
static int64_t try_clone(struct pend *p, const struct pend_src *src, struct pinode *pi,
			 struct pfile *pf, uint64_t off, size_t len)
{
	int64_t n = -1;
	char *path = NULL, *stub = NULL, *rel = NULL;
	size_t stublen;
	struct stat st;
	pthread_mutex_lock(&pi->lock);
	int r = pend_stub_load(p, pi);
	if (src->node ? ckpt_tree_path(&path, src->node) != 0 : !(path = strdup("")))
		goto done;
	if (r == 1) { /* a continued copy (the kernel's replies are 32-bit) */
		if (pi->ref.step == src->step && strcmp(pi->ref.item, src->item) == 0 &&
		    strcmp(pi->ref.path, path) == 0 && off <= src->size)
			n = (int64_t)min_u64(min_u64(src->size - off, len), CFR_MAX);
		goto done;
	}
	pthread_mutex_lock(&p->lock);
	int meta = !pi->name || pi->name[0] == '_'; /* _METADATA, _CHECKPOINT_METADATA: bytes */
	pthread_mutex_unlock(&p->lock);
	if (r != 0 || meta || off != 0 || len < src->size || fstat(pf->fd, &st) ||
	    st.st_size != 0 || !(rel = pend_relpath(p, pi, NULL)))
		goto done;
	if (src->node) {
		/* Items of other handlers hold their files' bytes (ckpt_pending_item_is_pytree). */
		int is_array = ckpt_tree_get_kind(src->node) == CKPT_TREE_ARRAY;
		if (pend_is_npy(p, pi) != is_array ||
		    !ckpt_pending_item_is_pytree(pi->ps->files_fd, rel))
			goto done;
	} else if (strchr(rel, '/') || !ends_with(rel, ".safetensors") ||
		   !strcmp(rel, ".safetensors")) {
		goto done; /* a copy of <item>.safetensors is a stub only as such a file on top */
	}
	ckpt_clone_ref ref = {.step = src->step, .item = (char *)src->item, .path = path};
	if (ckpt_clone_stub_format(&stub, &stublen, &ref))
		goto done; /* (logged by nobody: the bytes are copied instead) */
	if (pwrite(pf->fd, stub, stublen, 0) != (ssize_t)stublen ||
	    fchmod(pf->fd, 0644 | S_ISVTX)) {
		if (ftruncate(pf->fd, 0) == 0)
			(void)fchmod(pf->fd, 0644);
		goto done;
	}
	pi->stub = -1;
	if (pend_stub_load(p, pi) == 1) {
		n = (int64_t)min_u64(src->size, CFR_MAX);
	} else if (ftruncate(pf->fd, 0) == 0 && fchmod(pf->fd, 0644) == 0) {
		pi->stub = 0;
	}
done:
	pthread_mutex_unlock(&pi->lock);
	free(path);
	free(stub);
	free(rel);
	return n;
}

void pend_copy_file_range(fuse_req_t req, const struct pend_src *src, fuse_ino_t ino_in,
			  off_t off_in, struct fuse_file_info *fi_in, fuse_ino_t ino_out,
			  off_t off_out, struct fuse_file_info *fi_out, size_t len)
{
	struct pend *p = pend_of(req);
	struct pinode *pi = pend_pin(p, ino_out, 0);
	struct pfile *pf = pf_of(fi_out);
	struct pend_src own = {0};
	struct pend_in in = {p, NULL, -1};
	uint64_t done = 0;
	char *buf = NULL;
	int err = 0;

	if (!pi || !pf->writable) {
		fuse_reply_err(req, pi ? EBADF : ENOENT);
		return;
	}
	if (pf->err) {
		fuse_reply_err(req, pf->err);
		return;
	}
	if (!src) {
		if (!(in.pi = pend_pin(p, ino_in, 1))) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		if (pf_of(fi_in)->shadow) /* the handle's new bytes, not the file it replaces */
			in.pi = NULL;
		in.fd = pf_of(fi_in)->fd;
		own.pread = pending_pread;
		own.ctx = &in;
		src = &own;
	}
	if ((src->node || src->safetensors) && off_in == off_out && !pf->shadow) {
		int64_t n = try_clone(p, src, pi, pf, (uint64_t)off_in, len);
		if (n >= 0) {
			pf->dirty = pf->wrote = 1;
			fuse_reply_write(req, (size_t)n);
			return;
		}
	}
	if (!pf->shadow && (err = pend_materialize(p, pi, 0)))
		goto done;
	len = (size_t)min_u64(len, CFR_MAX);
	if (!(buf = malloc(COPY_BUF))) {
		err = ENOMEM;
		goto done;
	}
	while (done < len) {
		size_t got = 0, n = (size_t)min_u64(len - done, COPY_BUF);
		if ((err = src->pread(src->ctx, buf, n, (uint64_t)off_in + done, &got)) || !got)
			break;
		for (size_t w = 0; w < got;) {
			ssize_t k = pwrite(pf->fd, buf + w, got - w, (off_t)(off_out + done + w));
			if (k < 0) {
				err = errno;
				goto done;
			}
			w += (size_t)k;
		}
		done += got;
	}
done:
	free(buf);
	if (done)
		pf->dirty = pf->wrote = 1;
	if (err && !done) {
		if (err != ENOENT)
			pf->err = err;
		fuse_reply_err(req, err == ENOSYS || err == EOPNOTSUPP ? EIO : err);
	} else {
		fuse_reply_write(req, (size_t)done);
	}
}
