/*
 * fs/passthrough.c — the write side of the mount: pending steps as passthrough
 * directories onto ROOT/<step>.ckpt-tmp-<nonce>/files/ (ckpt/pending.h).
 * This file: the inode table and the passthrough operations; clone.c: clone
 * stubs and copy_file_range; pstep.c: the steps (root entries, adoption,
 * xattrs, finalize). Shared structures: passthrough_private.h.
 *
 * Design. The daemon adopts pending steps (a `pstep`: the directory, its
 * flock, an fd of files/) at mount, at root rescans and on `mkdir MNT/<n>`,
 * and holds their locks until it finalizes or removes them, or unmounts.
 * Inside a step it is a passthrough in the manner of libfuse's
 * passthrough_ll: each inode the kernel knows is a `pinode` holding an
 * O_PATH fd, keyed by the file's (st_dev, st_ino), counted by lookups and
 * freed on forget; file handles are real fds, reads and writes go straight
 * to them (fuse_reply_data / fuse_buf_copy, splice when the kernel can),
 * so nothing is buffered here. On top of the passthrough:
 *   - names are checked (ckpt_pending_check_path) before they are created,
 *     which needs each pinode's parent and name (kept, updated on rename);
 *   - a handle that wrote since its last check is checked when closed
 *     (flush: ckpt_pending_check_file); a file that fails, or whose write
 *     failed, is unlinked and the close fails, so nothing partial stays;
 *   - overwriting (O_TRUNC of a non-empty file) writes a *shadow*, an
 *     O_TMPFILE beside the file that replaces it only once it checks out,
 *     so a bad file loses nothing already saved;
 *   - clone stubs: copy_file_range of a whole leaf (or <item>.safetensors)
 *     of a finalized step writes a stub instead of the bytes; a stub reads
 *     as its source and turns into a real file before it is changed;
 *   - step xattrs: state, finalize, custom_metadata.
 * Entry and attribute timeouts: see pin_attr_timeout.
 *
 * Locks: pend.lock (table, hash, lookup counts, parents and names, the step
 * list, pstep.gone/writers/top) is taken briefly and never around I/O or
 * library calls, except the frees in forget. pinode.lock guards the stub
 * state. pstep.rw is held for reading by every request that changes files/,
 * for writing by finalize and remove. Order: pstep.rw, pinode.lock, pend.lock.
 *
 * Invariants:
 *  1. A pending inode number is PEND_INO_BIT | gen << 32 | idx; a table slot
 *     is reused only with gen + 1, so a number never names two pinodes.
 *  2. One pinode per underlying (st_dev, st_ino); its fd stays open for the
 *     pinode's life, so the number cannot be reused on disk meanwhile.
 *  3. A pinode lives while nlookup > 0 or nchild > 0 (it is the parent of a
 *     live pinode), so relpath() can always walk up to the step's files/.
 *  4. A pstep is freed only at unmount; once gone (finalized or removed),
 *     requests on its inodes get ENOENT, except on handles already open.
 *  5. writers counts the step's handles open for writing; finalize holds rw
 *     for writing and refuses while writers > 0; writers only grows under rw
 *     held for reading. Before taking rw, finalize and remove wait (bounded,
 *     without rw) for writers to reach 0: the kernel sends RELEASE after the
 *     writer's close() has returned, so a finalize right after `cp` exits can
 *     arrive before the release of cp's file.
 *  6. stub == 1 implies src_vs and the source are open (src_leaf, or
 *     src_st for a copy of an <item>.safetensors: ref.path ""); a
 *     write or truncate first materializes the file (stub = 0, S_ISVTX
 *     cleared), under pinode.lock.
 *  7. A shadow handle's fd is never pi's file: stub state and materializing
 *     concern pi's file and skip shadows; the shadow takes the name only
 *     after ckpt_pending_check_file accepted it. Dropping unlinks the name
 *     only if it is the handle's own file (pi's, or a shadow put in place).
 *  8. Nothing of a pinode is touched after the reply that may let the
 *     kernel forget it (open, create: a close and forget can follow at once).
 *  9. A pinode whose file is unlinked or replaced by a rename names no file
 *     (name NULL): its handles are not checked, dropped or put in place.
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

#define NPY_MAGIC "\x93NUMPY"

static unsigned hash_of(dev_t dev, ino_t ino)
{
	return (unsigned)((ino * 0x9E3779B97F4A7C15ull + dev) >> 40) % HASH_SIZE;
}

/* Open the file of pi with flags (through /proc/self/fd, as passthrough_ll). */
int pend_reopen(const struct pinode *pi, int flags)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", pi->fd);
	return open(path, flags | O_CLOEXEC);
}

/* ---- the inode table ---- */

/* Free pi and then its parents that are no longer needed. Under p->lock. */
static void maybe_free(struct pend *p, struct pinode *pi)
{
	while (pi && pi->nlookup == 0 && pi->nchild == 0) {
		struct pinode *parent = pi->parent, **pp = &p->hash[hash_of(pi->dev, pi->ino)];
		while (*pp != pi)
			pp = &(*pp)->hnext;
		*pp = pi->hnext;
		p->nodes[pi->idx] = NULL;
		p->freeslots[p->nfree++] = pi->idx;
		if (pi->ps->top == pi)
			pi->ps->top = NULL;
		close(pi->fd);
		pend_stub_clear(p, pi);
		pthread_mutex_destroy(&pi->lock);
		free(pi->name);
		free(pi);
		if (parent) {
			assert(parent->nchild > 0);
			parent->nchild--;
		}
		pi = parent;
	}
}

/* The pinode of ino or NULL. Under p->lock. */
static struct pinode *pin_at(const struct pend *p, fuse_ino_t ino)
{
	uint32_t idx = (uint32_t)ino, gen = (uint32_t)(ino >> 32) & 0x7fffffffu;
	if (idx < p->nnodes && p->nodes[idx] && p->nodes[idx]->gen == gen)
		return p->nodes[idx];
	return NULL;
}

/* The pinode of ino or NULL; with !any, NULL (ENOENT) if its step is gone too. */
struct pinode *pend_pin(struct pend *p, fuse_ino_t ino, int any)
{
	pthread_mutex_lock(&p->lock);
	struct pinode *pi = pin_at(p, ino);
	if (pi && !any && pi->ps->gone)
		pi = NULL;
	pthread_mutex_unlock(&p->lock);
	return pi;
}

/* Set pi's place (parent, name). Under p->lock. */
static int place(struct pend *p, struct pinode *pi, struct pinode *parent, const char *name)
{
	if (pi->parent == parent && pi->name && name && strcmp(pi->name, name) == 0)
		return 0;
	char *copy = name ? strdup(name) : NULL;
	if (name && !copy)
		return ENOMEM;
	free(pi->name);
	pi->name = copy;
	if (pi->parent != parent) {
		struct pinode *old = pi->parent;
		if (parent)
			parent->nchild++;
		pi->parent = parent;
		if (old) {
			old->nchild--;
			maybe_free(p, old);
		}
	}
	return 0;
}

/*
 * The pinode of the file open as fd (O_PATH, taken over) found as `name` in
 * parent (NULL for a step's files/), with one more lookup counted.
 */
static int pin_get(struct pinode **out, struct pend *p, struct pstep *ps, struct pinode *parent,
		   const char *name, int fd, const struct stat *st)
{
	int err = 0;
	struct pinode *pi;
	pthread_mutex_lock(&p->lock);
	unsigned h = hash_of(st->st_dev, st->st_ino);
	for (pi = p->hash[h]; pi; pi = pi->hnext)
		if (pi->dev == st->st_dev && pi->ino == st->st_ino)
			break;
	if (pi) {
		close(fd);
		if (parent && (err = place(p, pi, parent, name)))
			goto done;
		pi->nlookup++;
		goto done;
	}
	if (!p->nfree && p->nnodes == p->cap) {
		uint32_t cap = p->cap ? p->cap * 2 : 256;
		struct pinode **nodes = realloc(p->nodes, cap * sizeof(*nodes));
		if (nodes)
			p->nodes = nodes;
		uint32_t *gens = realloc(p->gens, cap * sizeof(*gens));
		if (gens)
			p->gens = gens;
		uint32_t *fr = realloc(p->freeslots, cap * sizeof(*fr));
		if (fr)
			p->freeslots = fr;
		if (!nodes || !gens || !fr || cap >= 0x7fffffffu) {
			err = ENOMEM;
			goto fail;
		}
		p->cap = cap;
	}
	if (!(pi = calloc(1, sizeof(*pi)))) {
		err = ENOMEM;
		goto fail;
	}
	if (p->nfree) {
		pi->idx = p->freeslots[--p->nfree];
	} else {
		pi->idx = p->nnodes++;
		p->gens[pi->idx] = 0;
	}
	pi->gen = p->gens[pi->idx]++ & 0x7fffffffu;
	p->nodes[pi->idx] = pi;
	pi->fd = fd;
	pi->dev = st->st_dev;
	pi->ino = st->st_ino;
	pi->ps = ps;
	pi->is_top = parent == NULL;
	pi->nlookup = 1;
	pi->stub = S_ISREG(st->st_mode) && (st->st_mode & S_ISVTX) ? -1 : 0;
	pthread_mutex_init(&pi->lock, NULL);
	pi->hnext = p->hash[h];
	p->hash[h] = pi;
	if (parent && (err = place(p, pi, parent, name))) {
		pi->nlookup = 0;
		maybe_free(p, pi);
		goto done;
	}
	goto done;
fail:
	close(fd);
done:
	if (!err)
		*out = pi;
	pthread_mutex_unlock(&p->lock);
	return err;
}

void pend_forget(struct pend *p, fuse_ino_t ino, uint64_t nlookup)
{
	pthread_mutex_lock(&p->lock);
	struct pinode *pi = pin_at(p, ino);
	if (pi) {
		assert(pi->nlookup >= nlookup);
		pi->nlookup = pi->nlookup > nlookup ? pi->nlookup - nlookup : 0;
		maybe_free(p, pi);
	}
	pthread_mutex_unlock(&p->lock);
}

/*
 * The path of pi (with child appended if not NULL) relative to files/, for
 * ckpt_pending_check_*: malloc'd; NULL with errno ENOMEM if out of memory,
 * ENOENT if pi (or a parent) names no file any more.
 */
char *pend_relpath(struct pend *p, const struct pinode *pi, const char *child)
{
	size_t len = child ? strlen(child) + 1 : 0, depth = 0;
	char *out = NULL;
	pthread_mutex_lock(&p->lock);
	for (const struct pinode *q = pi; q->parent; q = q->parent) {
		errno = ENOENT;
		if (!q->name || ++depth > 4096)
			goto done;
		len += strlen(q->name) + 1;
	}
	len = len ? len - 1 : 0; /* n names, n - 1 slashes */
	if (!(out = malloc(len + 1)))
		goto done;
	size_t pos = len;
	out[pos] = 0;
	if (child) {
		pos -= strlen(child);
		memcpy(out + pos, child, strlen(child));
		if (pos)
			out[--pos] = '/';
	}
	for (const struct pinode *q = pi; q->parent; q = q->parent) {
		size_t n = strlen(q->name);
		pos -= n;
		memcpy(out + pos, q->name, n);
		if (pos)
			out[--pos] = '/';
	}
	assert(pos == 0);
done:
	pthread_mutex_unlock(&p->lock);
	return out;
}

/* ---- attributes and entries ---- */

static int pin_attr(struct stat *st, struct pend *p, struct pinode *pi)
{
	if (fstatat(pi->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW))
		return errno;
	st->st_ino = pin_ino(pi);
	st->st_blksize = 1 << 20; /* cp and friends then write 1 MiB requests (max_write) */
	if (S_ISREG(st->st_mode) && (st->st_mode & S_ISVTX)) {
		int64_t size = pend_stub_size(p, pi);
		if (size >= 0) {
			st->st_size = (off_t)size;
			st->st_blocks = (blkcnt_t)((size + 511) / 512);
		}
		st->st_mode &= ~(mode_t)S_ISVTX;
	}
	return 0;
}

/*
 * How long the kernel may cache pi's attributes (st: pi's) and its entry
 * (ckptfs.h). A step's own directory keeps its entry at 0: every path walk
 * looks it up again and so sees a finalize or removal (another inode, or
 * none); its attributes may be cached, as they describe an inode number that
 * is never reused.
 */
static double pin_attr_timeout(const struct stat *st)
{
	return S_ISDIR(st->st_mode) ? CKPTFS_PENDING_DIR_TIMEOUT : 0;
}

static double pin_entry_timeout(const struct pinode *pi, const struct stat *st)
{
	return pi->is_top ? 0 : pin_attr_timeout(st);
}

/*
 * The entry of the file open as fd (an O_PATH descriptor, taken over), named
 * name in dir (NULL, NULL for a step's files/): fills e, counting one lookup;
 * *out receives the pinode.
 */
static int entry_of_fd(struct pinode **out, struct pend *p, struct pstep *ps, struct pinode *dir,
		       const char *name, int fd, struct fuse_entry_param *e)
{
	struct pinode *pi;
	struct stat st;
	int err;

	if (fd < 0)
		return errno;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)) {
		err = errno;
		close(fd);
		return err;
	}
	if ((err = pin_get(&pi, p, ps, dir, name, fd, &st)))
		return err;
	memset(e, 0, sizeof(*e));
	if ((err = pin_attr(&e->attr, p, pi))) {
		pend_forget(p, pin_ino(pi), 1);
		return err;
	}
	e->ino = pin_ino(pi);
	e->attr_timeout = pin_attr_timeout(&e->attr);
	e->entry_timeout = pin_entry_timeout(pi, &e->attr);
	*out = pi;
	return 0;
}

/* Look name up in dir: fills e, counting one lookup. */
static int do_lookup(struct pend *p, struct pinode *dir, const char *name,
		     struct fuse_entry_param *e)
{
	struct pinode *pi;

	return entry_of_fd(&pi, p, dir->ps, dir, name,
			   openat(dir->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC), e);
}

/* The entry of a step's files/ (counting one lookup). */
int pend_top_lookup(struct pend *p, struct pstep *ps, struct fuse_entry_param *e)
{
	struct pinode *pi;
	int err = entry_of_fd(&pi, p, ps, NULL, NULL,
			      openat(ps->files_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC), e);

	if (err == 0) {
		pthread_mutex_lock(&p->lock);
		ps->top = pi;
		pthread_mutex_unlock(&p->lock);
	}
	return err;
}

void pend_reply_entry(fuse_req_t req, int err, const struct fuse_entry_param *e)
{
	if (err)
		fuse_reply_err(req, err);
	else if (fuse_reply_entry(req, e))
		pend_forget(pend_of(req), e->ino, 1);
}

/*
 * Hold pi's step for a change (rw for reading); ENOENT if it is gone.
 * Release with pstep_end.
 */
int pend_step_begin(struct pend *p, struct pstep *ps)
{
	pthread_rwlock_rdlock(&ps->rw);
	pthread_mutex_lock(&p->lock);
	int gone = ps->gone;
	pthread_mutex_unlock(&p->lock);
	if (gone)
		pthread_rwlock_unlock(&ps->rw);
	return gone ? ENOENT : 0;
}

void pend_step_end(struct pstep *ps)
{
	pthread_rwlock_unlock(&ps->rw);
}

/* Log the library's refusal of rel in step, without repeating rel if it names it. */
static void log_refusal(const char *step, const char *rel, const char *suffix)
{
	const char *m = ckpt_error_last();
	size_t n = strlen(rel);
	if (strncmp(m, rel, n) == 0 && m[n] == ':')
		ckptfs_log("step %s: %s%s", step, m, suffix);
	else
		ckptfs_log("step %s: %s: %s%s", step, rel, m, suffix);
}

/* Check a name about to be created (relpath of child in dir); EINVAL if refused. */
static int check_new(struct pend *p, struct pinode *dir, const char *child, int is_dir)
{
	char *rel = pend_relpath(p, dir, child);
	if (!rel)
		return errno == ENOENT ? ENOENT : ENOMEM;
	int rc = ckpt_pending_check_path(rel, is_dir);
	if (rc)
		log_refusal(dir->ps->name, rel, "");
	free(rel);
	return ckptfs_errno_check(rc);
}

/*
 * pi's name now names another file, or none: whatever comes to bear it is
 * not pi's to let go (let_go).
 */
static void lose_name(struct pend *p, struct pinode *pi)
{
	pthread_mutex_lock(&p->lock);
	pi->name_lost = 1;
	pthread_mutex_unlock(&p->lock);
}

/*
 * Unlink pi's name if it is still the file open as fd (nothing partial
 * stays): pi's own file, or a shadow put in place (a shadow not put in place
 * is no file of any name).
 */
static void drop_file(struct pend *p, struct pinode *pi, int fd)
{
	struct stat st, fst;
	struct pinode *parent;
	char *name = NULL;
	if (fstat(fd, &fst))
		return;
	pthread_mutex_lock(&p->lock);
	parent = pi->parent;
	if (parent && pi->name && (name = strdup(pi->name)))
		parent->nlookup++; /* keep it while we use its fd */
	pthread_mutex_unlock(&p->lock);
	if (!name)
		return;
	if (fstatat(parent->fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == fst.st_dev &&
	    st.st_ino == fst.st_ino && unlinkat(parent->fd, name, 0) == 0) {
		lose_name(p, pi);
		ckptfs_inval_later(p->fs, pin_ino(parent), name, 0);
	}
	pend_forget(p, pin_ino(parent), 1);
	free(name);
}

/* Check the content of fd, written as pi; on refusal log and return EINVAL. */
static int check_written(struct pend *p, struct pinode *pi, int fd)
{
	char *rel = pend_relpath(p, pi, NULL);
	if (!rel) /* removed meanwhile: nothing to check, the content goes with it */
		return errno == ENOENT ? 0 : ENOMEM;
	int rc = ckpt_pending_check_file(pi->ps->files_fd, fd, rel), err = 0;
	if (rc) {
		log_refusal(pi->ps->name, rel, " (not saved)");
		err = ckptfs_errno_check(rc);
	}
	free(rel);
	return err;
}

/*
 * Put the shadow file of pf in place of pi's file: link it under a
 * temporary name, rename that over the name. pi keeps the name, so that
 * later writes through pf are checked as that file (and the file dropped if
 * they break it); its kernel entry is invalidated, the next lookup finds
 * the new file.
 */
static int commit_shadow(struct pend *p, struct pinode *pi, struct pfile *pf)
{
	static unsigned counter;
	char src[64], tmp[64], *name = NULL;
	struct pinode *parent;
	int err = 0, named;
	pthread_mutex_lock(&p->lock);
	parent = pi->parent;
	named = parent && pi->name;
	if (named && (name = strdup(pi->name)))
		parent->nlookup++; /* keep it while we use its fd */
	unsigned k = ++counter;
	pthread_mutex_unlock(&p->lock);
	if (!name) /* removed or replaced meanwhile: the new content goes with it */
		return named ? ENOMEM : 0;
	snprintf(src, sizeof(src), "/proc/self/fd/%d", pf->fd);
	snprintf(tmp, sizeof(tmp), ".ckptfs-%d-%u", (int)getpid(), k);
	if (linkat(AT_FDCWD, src, parent->fd, tmp, AT_SYMLINK_FOLLOW)) {
		err = errno;
	} else if (renameat(parent->fd, tmp, parent->fd, name)) {
		err = errno;
		unlinkat(parent->fd, tmp, 0);
	} else {
		lose_name(p, pi);
		ckptfs_inval_later(p->fs, pin_ino(parent), name, 0);
		pf->committed = 1;
	}
	pend_forget(p, pin_ino(parent), 1);
	free(name);
	return err;
}

/*
 * Settle what pf changed: check it, put a shadow in place; on failure drop
 * the file (a shadow: just not put in place). Returns the errno for close().
 * An empty file that was created or truncated but not written waits for a
 * later close (`dd` closes a dup of its fd before it writes), or release.
 */
static int settle(struct pend *p, struct pinode *pi, struct pfile *pf, int last)
{
	struct stat st;
	int err = pf->err;
	if (!err && !pf->dirty)
		return 0;
	if (!err && !last && !pf->wrote && fstat(pf->fd, &st) == 0 && st.st_size == 0)
		return 0;
	if (!err && !(err = check_written(p, pi, pf->fd)) && pf->shadow && !pf->committed)
		err = commit_shadow(p, pi, pf);
	if (err) {
		drop_file(p, pi, pf->fd);
		pf->err = err;
	}
	pf->dirty = pf->wrote = 0;
	return err;
}

/* ---- names ---- */

void pend_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct pend *p = pend_of(req);
	struct fuse_entry_param e;
	struct pinode *dir = pend_pin(p, parent, 0);
	int err = dir ? do_lookup(p, dir, name, &e) : ENOENT;
	pend_reply_entry(req, err, &e);
}

void pend_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pend *p = pend_of(req);
	struct pinode *pi = pend_pin(p, ino, fi != NULL);
	struct pfile *pf = fi && fi->fh ? pf_of(fi) : NULL;
	struct stat st;
	int err = pi ? pin_attr(&st, p, pi) : ENOENT;
	if (!err && pf && pf->shadow) { /* the file being written, not the one it replaces */
		if (fstat(pf->fd, &st))
			err = errno;
		st.st_ino = pin_ino(pi);
	}
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_attr(req, &st, pin_attr_timeout(&st));
}

void pend_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		  struct fuse_file_info *fi)
{
	struct pend *p = pend_of(req);
	struct pinode *pi = pend_pin(p, ino, 0);
	struct pfile *pf = fi ? pf_of(fi) : NULL;
	struct stat st;
	int err, fd = -1;
	char path[64];

	if (!pi || (err = pend_step_begin(p, pi->ps))) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if ((!pf || !pf->shadow) && (err = pend_materialize(p, pi, attr->st_size == 0)))
			goto done;
		fd = pf ? pf->fd : pend_reopen(pi, O_RDWR);
		if (fd < 0 || ftruncate(fd, attr->st_size)) {
			err = errno;
			goto done;
		}
		if (pf) {
			pf->dirty = 1;
		} else if ((err = check_written(p, pi, fd))) {
			drop_file(p, pi, fd);
			goto done;
		}
	}
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
		      FUSE_SET_ATTR_MTIME_NOW)) {
		struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_OMIT}};
		if (to_set & FUSE_SET_ATTR_ATIME_NOW)
			ts[0].tv_nsec = UTIME_NOW;
		else if (to_set & FUSE_SET_ATTR_ATIME)
			ts[0] = attr->st_atim;
		if (to_set & FUSE_SET_ATTR_MTIME_NOW)
			ts[1].tv_nsec = UTIME_NOW;
		else if (to_set & FUSE_SET_ATTR_MTIME)
			ts[1] = attr->st_mtim;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", pi->fd);
		if (utimensat(AT_FDCWD, path, ts, 0)) {
			err = errno;
			goto done;
		}
	}
	/* chmod and chown are accepted and ignored: modes are ours (docs/fs.md). */
	err = pin_attr(&st, p, pi);
done:
	if (fd >= 0 && !pf)
		close(fd);
	pend_step_end(pi->ps);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_attr(req, &st, 0);
}

void pend_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct pend *p = pend_of(req);
	struct fuse_entry_param e;
	struct pinode *dir = pend_pin(p, parent, 0);
	int err;
	if (!dir || (err = pend_step_begin(p, dir->ps))) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (!(err = check_new(p, dir, name, 1))) {
		if (mkdirat(dir->fd, name, 0755))
			err = errno;
		else
			err = do_lookup(p, dir, name, &e);
	}
	pend_step_end(dir->ps);
	pend_reply_entry(req, err, &e);
}

/*
 * Move the pinode of (dev, ino), if any, to (parent, name); with name NULL
 * it names no file any more (removed or replaced: a shadow still being
 * written must not put it back at close).
 */
static void moved(struct pend *p, const struct stat *st, struct pinode *parent, const char *name)
{
	pthread_mutex_lock(&p->lock);
	for (struct pinode *pi = p->hash[hash_of(st->st_dev, st->st_ino)]; pi; pi = pi->hnext)
		if (pi->dev == st->st_dev && pi->ino == st->st_ino) {
			struct pinode *to = parent ? parent : pi->parent;
			if (place(p, pi, to, name))
				place(p, pi, to, NULL); /* out of memory: forget the name */
			break;
		}
	pthread_mutex_unlock(&p->lock);
}

void pend_unlink(fuse_req_t req, fuse_ino_t parent, const char *name, int dir_flag)
{
	struct pend *p = pend_of(req);
	struct pinode *dir = pend_pin(p, parent, 0);
	struct stat st;
	int err;
	if (!dir || (err = pend_step_begin(p, dir->ps))) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (fstatat(dir->fd, name, &st, AT_SYMLINK_NOFOLLOW) ||
	    unlinkat(dir->fd, name, dir_flag ? AT_REMOVEDIR : 0))
		err = errno;
	else
		moved(p, &st, NULL, NULL);
	pend_step_end(dir->ps);
	fuse_reply_err(req, err);
}

/*
 * A file renamed must still check out under its new name (a text file
 * renamed to *.npy or _METADATA, a stub of an array renamed without .npy,
 * a clone stub moved to the top of the step or a copy of a step's
 * <item>.safetensors moved away from it):
 * else EINVAL, and finalize cannot fail on it later.
 */
static int check_moved(struct pend *p, struct pinode *from, const char *name, struct pinode *to,
		       const char *newname)
{
	ckpt_clone_ref ref = {0};
	int err = 0, rc, fd = openat(from->fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	char *rel = NULL;
	if (fd < 0)
		return errno;
	if (!(rel = pend_relpath(p, to, newname))) {
		err = errno == ENOENT ? ENOENT : ENOMEM;
		goto done;
	}
	rc = ckpt_clone_stub_read(&ref, fd);
	if (rc == 1 && ref.path[0] && ends_with(name, ".npy") != ends_with(newname, ".npy")) {
		ckptfs_log("step %s: rename to %s: a copy of %s/%s keeps its .npy suffix",
			   to->ps->name, rel, ref.item, ref.path);
		err = EINVAL;
	} else if (rc < 0 || (rc = ckpt_pending_check_file(to->ps->files_fd, fd, rel)) < 0) {
		ckptfs_log("step %s: rename to %s: %s", to->ps->name, rel, ckpt_error_last());
		err = ckptfs_errno_check(rc);
	}
done:
	ckpt_clone_ref_clear(&ref);
	if (fd >= 0)
		close(fd);
	free(rel);
	return err;
}

void pend_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		 const char *newname, unsigned int flags)
{
	struct pend *p = pend_of(req);
	struct pinode *a = pend_pin(p, parent, 0), *b = pend_pin(p, newparent, 0);
	struct stat sa, sb;
	int err;
	if (!a || !b) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (a->ps != b->ps) {
		fuse_reply_err(req, EXDEV);
		return;
	}
	if ((err = pend_step_begin(p, a->ps))) {
		fuse_reply_err(req, err);
		return;
	}
	if (fstatat(a->fd, name, &sa, AT_SYMLINK_NOFOLLOW)) {
		err = errno;
		goto done;
	}
	int have_b = fstatat(b->fd, newname, &sb, AT_SYMLINK_NOFOLLOW) == 0;
	if ((flags & RENAME_EXCHANGE) && !have_b) {
		err = ENOENT;
		goto done;
	}
	if ((err = check_new(p, b, newname, S_ISDIR(sa.st_mode))) ||
	    ((flags & RENAME_EXCHANGE) && (err = check_new(p, a, name, S_ISDIR(sb.st_mode)))) ||
	    (S_ISREG(sa.st_mode) && (err = check_moved(p, a, name, b, newname))) ||
	    ((flags & RENAME_EXCHANGE) && S_ISREG(sb.st_mode) &&
	     (err = check_moved(p, b, newname, a, name))))
		goto done;
	if (renameat2(a->fd, name, b->fd, newname, flags)) {
		err = errno;
		goto done;
	}
	if (have_b && !(flags & RENAME_EXCHANGE))
		moved(p, &sb, NULL, NULL); /* replaced (first: sa may be sb) */
	moved(p, &sa, b, newname);
	if (flags & RENAME_EXCHANGE)
		moved(p, &sb, a, name);
done:
	pend_step_end(a->ps);
	fuse_reply_err(req, err);
}

/* ---- files ---- */

/* A handle of pi for fd; counts a writer. Returns an errno. */
static int handle_new(struct pend *p, struct pinode *pi, int fd, int writable, int dirty,
		      struct fuse_file_info *fi)
{
	struct pfile *pf = calloc(1, sizeof(*pf));
	if (!pf)
		return ENOMEM;
	pf->ps = pi->ps;
	pf->ino = pin_ino(pi);
	pf->fd = fd;
	pf->writable = writable;
	pf->dirty = dirty;
	pthread_mutex_lock(&p->lock);
	pi->nopen++;
	if (writable)
		pi->ps->writers++;
	pthread_mutex_unlock(&p->lock);
	fi->fh = (uint64_t)(uintptr_t)pf;
	fi->keep_cache = 0;
	/*
	 * A write-only handle (cp's and np.save's destination) bypasses the
	 * kernel's page cache of our inode: its writes reach us straight from
	 * the writer's pages, one copy less and no second cached copy of what
	 * our file in files/ caches anyway (a 1 GiB cp: 0.42 s instead of
	 * 0.72 s here). Such a handle cannot be mmapped, so nothing is lost;
	 * readers of the same file stay coherent on kernels that invalidate
	 * their cached pages over direct writes (pend_new).
	 */
	fi->direct_io = p->write_dio && (fi->flags & O_ACCMODE) == O_WRONLY;
	return 0;
}

static void handle_free(struct pend *p, struct pfile *pf)
{
	pthread_mutex_lock(&p->lock);
	struct pinode *pi = pin_at(p, pf->ino);
	if (pi) {
		assert(pi->nopen > 0);
		pi->nopen--;
	}
	if (pf->writable) {
		assert(pf->ps->writers > 0);
		if (--pf->ps->writers == 0)
			pthread_cond_broadcast(&p->released); /* a finalize may be waiting */
	}
	pthread_mutex_unlock(&p->lock);
	close(pf->fd);
	free(pf);
}

/* Flags of our own fd for a handle opened with flags: always readable (for checks). */
static int own_flags(int flags, int writable)
{
	flags &= ~(O_ACCMODE | O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW | O_DIRECT);
	return flags | (writable ? O_RDWR : O_RDONLY);
}

void pend_create(fuse_req_t req, fuse_ino_t parent, const char *name, struct fuse_file_info *fi)
{
	struct pend *p = pend_of(req);
	struct fuse_entry_param e;
	struct pinode *dir = pend_pin(p, parent, 0), *pi;
	int err, fd = -1, counted = 0;
	if (!dir || (err = pend_step_begin(p, dir->ps))) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if ((err = check_new(p, dir, name, 0)))
		goto done;
	fd = openat(dir->fd, name,
		    own_flags(fi->flags, 1) | O_CREAT | O_CLOEXEC | (fi->flags & O_EXCL), 0644);
	if (fd < 0) {
		err = errno;
		goto done;
	}
	if ((err = do_lookup(p, dir, name, &e)))
		goto done;
	counted = 1;
	pi = pend_pin(p, e.ino, 1);
	assert(pi);
	if ((err = handle_new(p, pi, fd, 1, 1, fi)))
		goto done;
	fd = -1;
	e.attr_timeout = e.entry_timeout = 0;
	pend_step_end(dir->ps);		      /* before the reply, after which pi and dir may go */
	if (fuse_reply_create(req, &e, fi)) { /* interrupted: no release will come */
		handle_free(p, pf_of(fi));
		pend_forget(p, e.ino, 1);
	}
	return;
done:
	if (fd >= 0)
		close(fd);
	if (counted)
		pend_forget(p, e.ino, 1);
	pend_step_end(dir->ps);
	fuse_reply_err(req, err);
}

/*
 * Overwriting a non-empty file (O_TRUNC) writes an unnamed file beside it
 * that replaces it only when it checks out at close (commit_shadow), so a
 * bad file loses nothing already saved. Returns the fd, or -1 to write in
 * place (an empty file, or no O_TMPFILE here).
 */
static int shadow_open(struct pend *p, struct pinode *pi)
{
	struct stat st;
	if (fstatat(pi->fd, "", &st, AT_EMPTY_PATH) || !S_ISREG(st.st_mode) ||
	    (st.st_size == 0 && !(st.st_mode & S_ISVTX)))
		return -1;
	pthread_mutex_lock(&p->lock);
	struct pinode *parent = pi->parent; /* alive while pi is (invariant 3) */
	pthread_mutex_unlock(&p->lock);
	return parent ? openat(parent->fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0644) : -1;
}

void pend_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pend *p = pend_of(req);
	struct pinode *pi = pend_pin(p, ino, 0);
	int writable = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC);
	int err = 0, fd = -1, begun = 0, shadow = 0;
	if (!pi) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (writable) {
		if ((err = pend_step_begin(p, pi->ps)))
			goto done;
		begun = 1;
	}
	if (writable && (fi->flags & O_TRUNC) && (fd = shadow_open(p, pi)) >= 0) {
		shadow = 1;
	} else if (writable && (err = pend_materialize(p, pi, (fi->flags & O_TRUNC) != 0))) {
		goto done;
	} else if ((fd = pend_reopen(pi, own_flags(fi->flags, writable))) < 0) {
		err = errno;
		goto done;
	}
	if ((err = handle_new(p, pi, fd, writable, (fi->flags & O_TRUNC) != 0, fi)))
		goto done;
	fd = -1;
	pf_of(fi)->shadow = shadow;
done:
	/* Nothing of pi after the reply: a close and forget may free it at once. */
	if (fd >= 0)
		close(fd);
	if (begun)
		pend_step_end(pi->ps);
	if (err)
		fuse_reply_err(req, err);
	else if (fuse_reply_open(req, fi))
		handle_free(p, pf_of(fi)); /* interrupted: no release will come */
}

void pend_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct pend *p = pend_of(req);
	struct pinode *pi = pend_pin(p, ino, 1);
	struct pfile *pf = pf_of(fi);
	int r = 0;
	if (pi && !pf->shadow) {
		pthread_mutex_lock(&pi->lock);
		r = pend_stub_load(p, pi);
		pthread_mutex_unlock(&pi->lock);
	}
	if (r < 0) {
		fuse_reply_err(req, -r);
	} else if (r == 1) {
		size_t got = 0;
		char *buf = malloc(size ? size : 1);
		int err = buf ? pend_pread(p, pi, pf->fd, buf, size, (uint64_t)off, &got) : ENOMEM;
		if (err)
			fuse_reply_err(req, err);
		else
			fuse_reply_buf(req, buf, got);
		free(buf);
	} else {
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
		bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		bv.buf[0].fd = pf->fd;
		bv.buf[0].pos = off;
		fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
	}
}

/* Is the file pi named *.npy? */
int pend_is_npy(struct pend *p, const struct pinode *pi)
{
	pthread_mutex_lock(&p->lock);
	int r = pi->name && ends_with(pi->name, ".npy");
	pthread_mutex_unlock(&p->lock);
	return r;
}

void pend_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
		    struct fuse_file_info *fi)
{
	struct pend *p = pend_of(req);
	struct pinode *pi = pend_pin(p, ino, 1);
	struct pfile *pf = pf_of(fi);
	size_t size = fuse_buf_size(in);
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(size), mem = FUSE_BUFVEC_INIT(size);
	char *buf = NULL;
	ssize_t n;
	int err = pf->err;

	if (!pi)
		err = ENOENT;
	if (err || (!pf->shadow && (err = pend_materialize(p, pi, 0))))
		goto done;
	if (off == 0 && size && pend_is_npy(p, pi)) {
		/* The early check: a .npy starts with the magic. */
		if (!(buf = malloc(size))) {
			err = ENOMEM;
			goto done;
		}
		mem.buf[0].mem = buf;
		if ((n = fuse_buf_copy(&mem, in, 0)) < 0) {
			err = (int)-n;
			goto done;
		}
		size_t k = (size_t)n < sizeof(NPY_MAGIC) - 1 ? (size_t)n : sizeof(NPY_MAGIC) - 1;
		if (memcmp(buf, NPY_MAGIC, k)) {
			char *rel = pend_relpath(p, pi, NULL);
			ckptfs_log("step %s: %s: not a .npy file (no \\x93NUMPY magic)",
				   pi->ps->name, rel ? rel : "?");
			free(rel);
			err = EINVAL;
			goto done;
		}
		mem.buf[0].size = (size_t)n;
		in = &mem;
	}
	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = pf->fd;
	out.buf[0].pos = off;
	n = fuse_buf_copy(&out, in, 0);
	if (n < 0)
		err = (int)-n;
	else
		pf->dirty = pf->wrote = 1;
done:
	free(buf);
	if (err && err != ENOENT)
		pf->err = err; /* the file is dropped at flush */
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_write(req, (size_t)n);
}

void pend_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pend *p = pend_of(req);
	struct pinode *pi = pend_pin(p, ino, 0);
	struct pfile *pf = pf_of(fi);
	int err = 0;
	if (pi && pf->writable) /* else gone: finalized or removed meanwhile */
		err = settle(p, pi, pf, 0);
	fuse_reply_err(req, err);
}

/*
 * Once the last handle of pi's file is closed, ask the kernel to drop its
 * entry: it then forgets the inode, and the pinode goes with its fd.
 * Otherwise every file opened stays known (the kernel keeps entries until
 * memory runs short) and holds an fd: `cp -r` of a big checkpoint into a
 * step ended in EMFILE. Not while another handle is open: the kernel would
 * show that one's file as deleted.
 */
/* Whether pi may be let go now. Under p->lock. */
static int letting_go_ok(const struct pinode *pi)
{
	return !pi->nopen && !pi->name_lost && pi->parent && pi->name;
}

static void let_go(struct pend *p, struct pinode *pi)
{
	char *name = NULL;
	fuse_ino_t parent = 0;
	pthread_mutex_lock(&p->lock);
	if (letting_go_ok(pi) && (name = strdup(pi->name)))
		parent = pin_ino(pi->parent);
	pthread_mutex_unlock(&p->lock);
	if (name)
		ckptfs_let_go_later(p->fs, parent, name, pin_ino(pi));
	free(name);
}

int pend_may_let_go(struct pend *p, fuse_ino_t child, fuse_ino_t parent, const char *name)
{
	if (!p)
		return 0;
	pthread_mutex_lock(&p->lock);
	const struct pinode *pi = pin_at(p, child);
	int may = pi && letting_go_ok(pi) && pin_ino(pi->parent) == parent &&
		  strcmp(pi->name, name) == 0;
	pthread_mutex_unlock(&p->lock);
	return may;
}

void pend_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pend *p = pend_of(req);
	struct pinode *pi = pend_pin(p, ino, 0);
	struct pfile *pf = pf_of(fi);
	if (pi && pf->writable && pf->dirty && !pf->err)
		settle(p, pi, pf, 1); /* (logged; nobody to tell) */
	handle_free(p, pf);
	if (pi) /* it lives until the reply: the kernel holds it */
		let_go(p, pi);
	fuse_reply_err(req, 0);
}

void pend_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	int fd = pf_of(fi)->fd;
	fuse_reply_err(req, (datasync ? fdatasync(fd) : fsync(fd)) ? errno : 0);
}

/* ---- directories ---- */

void pend_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pend *p = pend_of(req);
	struct pinode *pi = pend_pin(p, ino, 0);
	struct pdir *d = NULL;
	int err = 0, fd = -1;
	if (!pi) {
		err = ENOENT;
		goto done;
	}
	if (!(d = calloc(1, sizeof(*d)))) {
		err = ENOMEM;
		goto done;
	}
	if ((fd = openat(pi->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    !(d->dp = fdopendir(fd))) {
		err = errno;
		goto done;
	}
	fd = -1;
	fi->fh = (uint64_t)(uintptr_t)d;
	if (fuse_reply_open(req, fi) == 0)
		return;
	err = -1; /* interrupted: nothing to reply */
done:
	if (fd >= 0)
		close(fd);
	if (d && d->dp)
		closedir(d->dp);
	free(d);
	if (err > 0)
		fuse_reply_err(req, err);
}

/* The d_ino of a directory entry: our number if the kernel knows it, else a stand-in. */
static uint64_t dirent_ino(struct pend *p, dev_t dev, ino_t ino)
{
	uint64_t r = PEND_INO_BIT | 1ull << 62 | (ino & ((1ull << 62) - 1));
	pthread_mutex_lock(&p->lock);
	for (struct pinode *pi = p->hash[hash_of(dev, ino)]; pi; pi = pi->hnext)
		if (pi->dev == dev && pi->ino == ino) {
			r = pin_ino(pi);
			break;
		}
	pthread_mutex_unlock(&p->lock);
	return r;
}

void pend_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi,
		  int plus)
{
	struct pend *p = pend_of(req);
	struct pdir *d = (struct pdir *)(uintptr_t)fi->fh;
	struct pinode *pi = pend_pin(p, ino, 0);
	size_t pos = 0;
	int err = 0;
	char *buf = NULL;

	if (size > (64u << 10))
		size = 64u << 10;
	if (!pi) {
		err = ENOENT;
		goto done;
	}
	if (!(buf = malloc(size ? size : 1))) {
		err = ENOMEM;
		goto done;
	}
	if (off != d->off) {
		seekdir(d->dp, off);
		d->ent = NULL;
		d->off = off;
	}
	for (;;) {
		if (!d->ent) {
			errno = 0;
			if (!(d->ent = readdir(d->dp))) {
				err = errno;
				break;
			}
		}
		struct fuse_entry_param e;
		memset(&e, 0, sizeof(e)); /* ino 0: plus gives no entry, the kernel looks up */
		e.attr.st_ino = dirent_ino(p, pi->dev, d->ent->d_ino);
		e.attr.st_mode = (mode_t)d->ent->d_type << 12;
		off_t next = d->ent->d_off;
		size_t len = plus ? fuse_add_direntry_plus(req, buf + pos, size - pos,
							   d->ent->d_name, &e, next)
				  : fuse_add_direntry(req, buf + pos, size - pos, d->ent->d_name,
						      &e.attr, next);
		if (len > size - pos)
			break;
		pos += len;
		d->ent = NULL;
		d->off = next;
	}
	if (err && pos)
		err = 0; /* what was read is returned; the error comes again */
done:
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, pos);
	free(buf);
}

void pend_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pdir *d = (struct pdir *)(uintptr_t)fi->fh;
	closedir(d->dp);
	free(d);
	fuse_reply_err(req, 0);
}
