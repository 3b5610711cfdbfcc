/*
 * fs/passthrough_private.h — what the parts of the write side share: passthrough.c
 * (the inode table and the passthrough), clone.c (clone stubs and
 * copy_file_range), pstep.c (the steps: root entries, adoption, xattrs,
 * finalize). Design, locks and invariants: passthrough.c.
 */
#ifndef CKPTFS_PENDING_PRIVATE_H
#define CKPTFS_PENDING_PRIVATE_H

#include "passthrough.h"

#include <dirent.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>

#define HASH_SIZE    4096u
#define XATTR_PREFIX "user.ckpt."

struct pstep {
	struct pstep *next;
	uint64_t number;
	char name[24];
	char *dir;	     /* ROOT/<n>.ckpt-tmp-<nonce> */
	int lock_fd;	     /* -1 once released */
	int files_fd;	     /* O_PATH of dir/files (open until unmount) */
	pthread_rwlock_t rw; /* invariant 5 */
	int gone;	     /* under pend.lock (invariant 4) */
	unsigned writers;    /* under pend.lock (invariant 5) */
	struct pinode *top;  /* under pend.lock: the pinode of files/, if any */
};

struct pinode {
	int fd; /* O_PATH (invariant 2) */
	dev_t dev;
	ino_t ino;
	uint32_t idx, gen;
	struct pstep *ps;
	struct pinode *hnext;  /* under pend.lock */
	uint64_t nlookup;      /* under pend.lock */
	uint32_t nchild;       /* under pend.lock (invariant 3) */
	struct pinode *parent; /* under pend.lock; NULL for files/ itself */
	int is_top;	       /* files/ itself (immutable) */
	char *name;	       /* under pend.lock */
	uint32_t nopen;	       /* under pend.lock: handles open on it */
	int name_lost;	       /* under pend.lock: its name went to a shadow, or was dropped */
	pthread_mutex_t lock;  /* the stub state below (invariant 6) */
	int stub;	       /* 1 stub, 0 not, -1 not known yet */
	ckpt_clone_ref ref;
	struct vstep *src_vs;
	ckpt_leaf *src_leaf;	  /* a stub of a leaf, or */
	ckpt_safetensors *src_st; /* of an <item>.safetensors (ref.path "") */
};

struct pend {
	struct ckptfs *fs;
	pthread_mutex_t lock;	    /* see above */
	pthread_cond_t released;    /* with lock: a step's last writer handle was released */
	pthread_mutex_t steps_lock; /* serializes step creation and adoption */
	struct pstep *steps;
	struct pinode **nodes; /* slot -> pinode or NULL */
	uint32_t *gens;	       /* slot -> generation of its next pinode */
	uint32_t nnodes, cap;
	uint32_t *freeslots;
	uint32_t nfree;
	struct pinode *hash[HASH_SIZE];
	int write_dio; /* write-only handles are direct_io (pend_new: kernel >= 6.6) */
};

struct pfile {
	struct pstep *ps;
	fuse_ino_t ino; /* its pinode's number (the pinode may be gone at handle_free) */
	int fd;
	int writable;
	int shadow;    /* fd is not pi's file: an O_TMPFILE that replaces it when good */
	int committed; /* the shadow was put in place (later changes stay where they are) */
	int dirty;     /* created, truncated or written since the last check */
	int wrote;     /* written since the last check */
	int err;       /* a write failed with this errno: the file is dropped at flush */
};

struct pdir {
	DIR *dp;
	off_t off;
	struct dirent *ent;
};

static inline struct pend *pend_of(fuse_req_t req)
{
	return ((struct ckptfs *)fuse_req_userdata(req))->pend;
}

static inline fuse_ino_t pin_ino(const struct pinode *pi)
{
	return PEND_INO_BIT | (uint64_t)pi->gen << 32 | pi->idx;
}

static inline struct pfile *pf_of(const struct fuse_file_info *fi)
{
	return (struct pfile *)(uintptr_t)fi->fh;
}

/* Does the name s end with suffix? */
static inline int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* passthrough.c */
struct pinode *pend_pin(struct pend *p, fuse_ino_t ino, int any);
char *pend_relpath(struct pend *p, const struct pinode *pi, const char *child);
int pend_reopen(const struct pinode *pi, int flags);
int pend_is_npy(struct pend *p, const struct pinode *pi);
int pend_top_lookup(struct pend *p, struct pstep *ps, struct fuse_entry_param *e);
void pend_reply_entry(fuse_req_t req, int err, const struct fuse_entry_param *e);
int pend_step_begin(struct pend *p, struct pstep *ps);
void pend_step_end(struct pstep *ps);

/* clone.c */
void pend_stub_clear(struct pend *p, struct pinode *pi);
int pend_stub_load(struct pend *p, struct pinode *pi);
int64_t pend_stub_size(struct pend *p, struct pinode *pi);
int pend_materialize(struct pend *p, struct pinode *pi, int trunc);
int pend_pread(struct pend *p, struct pinode *pi, int fd, void *buf, size_t len, uint64_t off,
	       size_t *got);

#endif
