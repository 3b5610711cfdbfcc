/*
 * orbax.c — the Orbax step backend (design in orbax.h, docs/format.md "Orbax checkpoints").
 *
 * At open, the keyspace of a native step is built as a sorted table of
 * entries; each entry says where its value comes from (bytes made at open,
 * a file of the step, a zarr array, a 0-d zarr array shown as scalar text).
 * open_value turns an entry into a value source: inline bytes, or a reader
 * whose pread decodes zarr chunks (zarr.h) found in the item's OCDBT db
 * (ocdbt.h) or in its per-leaf directories, or a byte range of a file (the
 * arrays of Orbax's legacy msgpack "checkpoint" file, msgpack.h).
 *
 * Invariants:
 *   1. ents[] is sorted by key (memcmp) without duplicates, and never changes
 *      after open: list and open_value read it without a lock.
 *   2. Every file opened is below the step directory (names come from
 *      readdir of the step, or from _METADATA as zarr keys under a db or a
 *      directory opened with O_NOFOLLOW; ocdbt.h invariant 1 for data files).
 *   3. A leaf's value is exactly zarr_nbytes of its array, equal to the
 *      nbytes of the tree metadata we synthesise (dtype and shape come from
 *      the same zarr metadata).
 */
#include <assert.h>
#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/sys/store_backend.h"
#include "ckpt/tree.h"
#include "error_private.h"
#include "msgpack.h"
#include "ocdbt.h"
#include "orbax.h"
#include "fsutil.h"
#include "root_private.h"
#include "step_private.h"
#include "zarr.h"

enum { E_BYTES, E_FILE, E_ARRAY, E_SCALAR };
/* Orbax's PyTree handler class (CKPT_PYTREE_TYPESTR of ckpt/pytree.h, a layer above). */
#define ORBAX_PYTREE_TYPESTR                                                                       \
	"orbax.checkpoint._src.handlers.pytree_checkpoint_handler.PyTreeCheckpointHandler"
#define NOT_SCALAR ((ckpt_tree_kind)0)

struct oitem {
	char *name;
	char *path; /* its directory: "<step dir>/<name>", or the step dir for a bare PyTree dir */
	int dirfd;  /* the item directory */
	ocdbt_db *db; /* NULL: one zarr directory per leaf (use_ocdbt=False) */
	int verified; /* atomic: ocdbt_verify ran and passed */
};

struct oarray {
	zarr_array *z;
	struct oitem *item;
	char *param; /* Orbax param name: key prefix in the db, or directory */
	int dirfd;   /* the leaf's directory without OCDBT, else -1 */
	uint64_t id; /* cache id */
	ckpt_tree_kind scalar_kind;
	uint64_t stored; /* atomic: bytes of its chunk values, UINT64_MAX until counted */
};

struct oentry {
	char *key;
	size_t keylen;
	int kind;
	unsigned char *bytes; /* E_BYTES */
	size_t len;
	char *path;	    /* E_FILE: relative to the step directory */
	uint64_t off, flen; /* E_FILE: the byte range shown (flen UINT64_MAX: all of it) */
	struct oarray *arr; /* E_ARRAY, E_SCALAR (owned by the backend's arrays) */
};

/*
 * Read-ahead for sequential readers of a leaf (restore, cat): while the
 * caller decodes one unit, a worker decodes the next into the cache, so a
 * single reader uses two cores. A bounded queue; requests that do not fit are
 * dropped (the reader decodes them itself).
 */
#define PREFETCH_QUEUE	 8
#define PREFETCH_THREADS 2 /* each has one read in flight: keeps the disk busy too */
#define PREFETCH_AHEAD	 2 /* units decoded ahead of a sequential reader */
struct prefetch {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread[PREFETCH_THREADS];
	int started, stop; /* started: threads running */
	struct {
		struct oarray *a;
		uint64_t id;
	} q[PREFETCH_QUEUE];
	size_t head, n;
};

/* Parsed zarr metadata by text: the leaves of a model share a few shapes, and
 * parsing the JSON was a third of opening a 10,000-leaf step. */
#define META_MEMO 256
struct meta_memo {
	char *text;
	size_t len;
	int v3;
	zarr_array *z;
};

typedef struct orbax_be {
	ckpt_store_backend be; /* first: the library hands us &be */
	char *dir;
	int dirfd;
	struct oentry *ents;
	size_t nents, capents;
	struct oitem **items;
	size_t nitems;
	struct oarray **arrays;
	size_t narrays, caparrays;
	ckpt_chunk_cache *cache;
	uint64_t bytes_read; /* atomic */
	uint64_t generation;
	struct prefetch pf;
	struct meta_memo memo[META_MEMO]; /* used at open only (one thread) */
	size_t nmemo;
} orbax_be;

/* ---- detection ---- */

static int is_file_at(int dirfd, const char *name)
{
	struct stat st;
	return fstatat(dirfd, name, &st, 0) == 0 && S_ISREG(st.st_mode);
}

static int has_marker(int fd)
{
	return is_file_at(fd, "_CHECKPOINT_METADATA") || is_file_at(fd, "commit_success.txt") ||
	       is_file_at(fd, "orbax.checkpoint");
}

static int is_pytree_dir(int dirfd)
{
	return is_file_at(dirfd, "_METADATA") || is_file_at(dirfd, "manifest.ocdbt");
}

static int skip_name(const char *n)
{
	return n[0] == '.' || n[0] == '_' || strstr(n, ".orbax-checkpoint-tmp") ||
	       ckpt_item_name_check(n) != 0;
}

/* A subdirectory not named like a step that holds a PyTree item. */
static int has_item_subdir(int fd)
{
	int dfd = dup(fd), yes = 0;
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *e;

	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return 0;
	}
	rewinddir(d);
	while (!yes && (e = readdir(d))) {
		if (skip_name(e->d_name) || strspn(e->d_name, "0123456789") == strlen(e->d_name))
			continue;
		int sub = openat(fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub >= 0) {
			yes = is_pytree_dir(sub) && !has_marker(sub);
			close(sub);
		}
	}
	closedir(d);
	return yes;
}

/*
 * A step: marker files, or items; a directory holding a PyTree item is a
 * step of its own (a bare PyTreeCheckpointer directory) unless its parent
 * has step markers (then it is an item of that step).
 */
int ckpt_orbax_is_step(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int yes = 0;

	if (fd < 0)
		return 0;
	if (is_file_at(fd, "ckpt.db")) {
		yes = 0;
	} else if (has_marker(fd)) {
		yes = 1;
	} else if (is_pytree_dir(fd)) {
		int up = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		yes = up < 0 || !has_marker(up);
		if (up >= 0)
			close(up);
	} else {
		yes = has_item_subdir(fd);
	}
	close(fd);
	return yes;
}

/* ---- the entry table ---- */

static int add_entry(orbax_be *o, char *key, int kind)
{
	if (!key)
		return ckpt_error_nomem();
	if (o->nents == o->capents) {
		size_t ncap = o->capents ? o->capents * 2 : 64;
		struct oentry *t = realloc(o->ents, ncap * sizeof(*t));
		if (!t) {
			free(key);
			return ckpt_error_nomem();
		}
		o->ents = t;
		o->capents = ncap;
	}
	o->ents[o->nents++] = (struct oentry){.key = key, .keylen = strlen(key), .kind = kind};
	return 0;
}

static struct oentry *last(orbax_be *o)
{
	return &o->ents[o->nents - 1];
}

static int cmp_ent(const void *a, const void *b)
{
	const struct oentry *x = a, *y = b;
	int c = memcmp(x->key, y->key, x->keylen < y->keylen ? x->keylen : y->keylen);
	return c ? c : (x->keylen > y->keylen) - (x->keylen < y->keylen);
}

static int read_at(char **out, size_t *len, int dirfd, const char *name, size_t max, orbax_be *o)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	int rc;

	*out = NULL;
	if (fd < 0)
		return errno == ENOENT
			   ? CKPT_ENOTFOUND
			   : ckpt_error_errno(CKPT_EIO, errno, "%s: open %s", o->dir, name);
	rc = ckpt_read_fd(out, len, fd, max, name);
	close(fd);
	if (rc == 0)
		__atomic_fetch_add(&o->bytes_read, *len, __ATOMIC_RELAXED);
	else
		ckpt_error_wrap(rc, "%s", o->dir);
	return rc;
}

/* ---- zarr sources ---- */

/* The OCDBT value of the zarr key <param>/<key> of array a (clear *b after). */
static int db_get(const struct oarray *a, const char *key, ocdbt_blob *b)
{
	char *k = ckpt_asprintf("%s/%s", a->param, key);
	int rc;

	memset(b, 0, sizeof(*b)); /* as ocdbt_get leaves it: clearable on every path */
	b->fd = -1;
	if (!k)
		return CKPT_ENOMEM;
	rc = ocdbt_get(a->item->db, k, strlen(k), b);
	free(k);
	return rc;
}

static int db_size(void *ctx, const char *key, uint64_t *len)
{
	ocdbt_blob b;
	int rc = db_get(ctx, key, &b);

	if (rc == 0)
		*len = b.len;
	ocdbt_blob_clear(&b);
	return rc;
}

static int db_pread(void *ctx, const char *key, void *buf, size_t len, uint64_t off)
{
	const struct oarray *a = ctx;
	ocdbt_blob b;
	int rc = db_get(a, key, &b);

	if (rc == 0)
		rc = ocdbt_blob_pread(a->item->db, &b, buf, len, off);
	ocdbt_blob_clear(&b);
	return rc;
}

typedef struct asrc {
	zarr_source src;
	zarr_dir d;
} asrc;

static void array_source(asrc *s, struct oarray *a, orbax_be *o)
{
	if (a->item->db) {
		s->src = (zarr_source){db_size, db_pread, a};
	} else {
		s->d = (zarr_dir){a->dirfd, &o->bytes_read};
		s->src = zarr_dir_source(&s->d);
	}
}

/* ---- items of PyTree handlers ---- */

/* param name: the keys joined by '.' (Orbax's, FORMAT_NOTES §2). */
static char *param_name(const cJSON *km)
{
	size_t n = 1;
	const cJSON *k;
	char *s, *p;

	cJSON_ArrayForEach(k, km)
	{
		const cJSON *key = cJSON_GetObjectItemCaseSensitive(k, "key");
		if (!cJSON_IsString(key))
			return NULL;
		n += strlen(key->valuestring) + 1;
	}
	p = s = malloc(n);
	if (!s)
		return NULL;
	*s = '\0';
	cJSON_ArrayForEach(k, km)
	{
		const char *key = cJSON_GetObjectItemCaseSensitive(k, "key")->valuestring;
		if (p != s)
			*p++ = '.';
		strcpy(p, key);
		p += strlen(key);
	}
	return s;
}

static int parse_memo(zarr_array **out, orbax_be *o, const char *meta, size_t len, int v3,
		      const char *name)
{
	for (size_t i = 0; i < o->nmemo; i++) {
		struct meta_memo *m = &o->memo[i];
		if (m->len == len && m->v3 == v3 && memcmp(m->text, meta, len) == 0)
			return (*out = zarr_clone(m->z, name)) ? 0 : CKPT_ENOMEM;
	}
	int rc = zarr_parse(out, meta, len, v3, name);
	if (rc == 0 && o->nmemo < META_MEMO) {
		struct meta_memo *m = &o->memo[o->nmemo];
		m->text = malloc(len ? len : 1);
		m->z = m->text ? zarr_clone(*out, "") : NULL;
		if (m->z) {
			memcpy(m->text, meta, len);
			m->len = len;
			m->v3 = v3;
			o->nmemo++;
		} else {
			free(m->text); /* a memo is only an optimisation */
		}
	}
	return rc;
}

/* Open the zarr array of param in item it: its metadata from the db or the directory. */
static int open_array(struct oarray **out, orbax_be *o, struct oitem *it, const char *param,
		      int zarr3)
{
	struct oarray *a = calloc(1, sizeof(*a));
	char *meta = NULL, *name = NULL;
	size_t mlen = 0;
	int rc, v3 = zarr3;

	*out = NULL;
	if (!a)
		return ckpt_error_nomem();
	a->dirfd = -1;
	a->item = it;
	a->param = strdup(param);
	name = ckpt_asprintf("%s/%s", it->path, param);
	if (!a->param || !name) {
		rc = ckpt_error_nomem();
		goto fail;
	}
	if (strchr(param, '/') || !ckpt_relpath_ok(param, strlen(param))) {
		rc = ckpt_error_set(CKPT_EUNSUPPORTED,
				    "%s: a parameter name that is not a file name", name);
		goto fail;
	}
	for (int attempt = 0; attempt < 2; attempt++, v3 = !v3) {
		const char *mname = v3 ? "zarr.json" : ".zarray";
		if (it->db) {
			char *k = ckpt_asprintf("%s/%s", param, mname);
			ocdbt_blob b;
			if (!k) {
				rc = CKPT_ENOMEM;
				goto fail;
			}
			rc = ocdbt_get(it->db, k, strlen(k), &b);
			free(k);
			if (rc == 0 && b.len > ZARR_MAX_META_BYTES)
				rc = ckpt_error_set(CKPT_ECORRUPT, "%s: %s too large", name, mname);
			if (rc == 0 && !(meta = malloc(b.len + 1)))
				rc = ckpt_error_nomem();
			if (rc == 0)
				rc = ocdbt_blob_pread(it->db, &b, meta, b.len, 0);
			mlen = b.len;
			ocdbt_blob_clear(&b);
		} else {
			if (a->dirfd < 0)
				a->dirfd = openat(it->dirfd, param,
						  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (a->dirfd < 0)
				rc = ckpt_error_errno(errno == ENOENT ? CKPT_ENOTFOUND : CKPT_EIO,
						      errno, "%s", name);
			else
				rc = read_at(&meta, &mlen, a->dirfd, mname, ZARR_MAX_META_BYTES, o);
		}
		if (rc != CKPT_ENOTFOUND)
			break;
		free(meta);
		meta = NULL;
	}
	if (rc == CKPT_ENOTFOUND) {
		rc = ckpt_error_set(CKPT_ENOTFOUND, "%s: no zarr metadata (.zarray or zarr.json)%s",
				    name,
				    is_file_at(it->dirfd, "checkpoint")
					? ", and the msgpack 'checkpoint' file does not hold it"
					: "");
		goto fail;
	}
	if (rc)
		goto fail;
	rc = parse_memo(&a->z, o, meta, mlen, v3, name);
	if (rc)
		goto fail;
	free(meta);
	free(name);
	*out = a;
	return 0;
fail:
	free(meta);
	free(name);
	if (a->dirfd >= 0)
		close(a->dirfd);
	free(a->param);
	free(a);
	return rc;
}

static int keep_array(orbax_be *o, struct oarray *a)
{
	if (o->narrays == o->caparrays) {
		size_t ncap = o->caparrays ? o->caparrays * 2 : 64;
		struct oarray **t = realloc(o->arrays, ncap * sizeof(*t));
		if (!t)
			return ckpt_error_nomem();
		o->arrays = t;
		o->caparrays = ncap;
	}
	a->id = o->narrays;
	a->stored = UINT64_MAX;
	o->arrays[o->narrays++] = a;
	return 0;
}

static void array_free(struct oarray *a)
{
	if (!a)
		return;
	zarr_free(a->z);
	if (a->dirfd >= 0)
		close(a->dirfd);
	free(a->param);
	free(a);
}

/* The leaves of a synthesised tree: which node, which array or string. */
struct leafref {
	cJSON *km; /* key_metadata (borrowed from the document) */
	struct oarray *arr;
	char *str; /* strings (and scalars from the msgpack file): the value */
	size_t slen;
	int range; /* an array in the msgpack file: bytes [off, off+len) of it */
	uint64_t off, len;
};

/* ---- the legacy msgpack "checkpoint" file (msgpack.h) ---- */

struct aggleaf {
	char *path; /* keys joined by '\x1f' */
	msgpack_leaf l;
	char *s; /* MP_STR, MP_PLACEHOLDER: a copy */
};

struct aggtab {
	struct aggleaf *v;
	size_t n, cap;
};

static void aggtab_clear(struct aggtab *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i].path);
		free(t->v[i].s);
	}
	free(t->v);
	memset(t, 0, sizeof(*t));
}

static char *join_keys(const char *const *keys, const size_t *lens, unsigned n)
{
	size_t total = 1;
	for (unsigned i = 0; i < n; i++)
		total += lens[i] + 1;
	char *s = malloc(total), *p = s;
	for (unsigned i = 0; s && i < n; i++) {
		if (i)
			*p++ = '\x1f';
		memcpy(p, keys[i], lens[i]);
		p += lens[i];
	}
	if (s)
		*p = '\0';
	return s;
}

static int agg_cb(const char *const *keys, const size_t *lens, unsigned depth,
		  const msgpack_leaf *l, void *payload)
{
	struct aggtab *t = payload;
	if (t->n == t->cap) {
		size_t ncap = t->cap ? 2 * t->cap : 16;
		struct aggleaf *v = realloc(t->v, ncap * sizeof(*v));
		if (!v)
			return ckpt_error_nomem();
		t->v = v;
		t->cap = ncap;
	}
	struct aggleaf *a = &t->v[t->n];
	memset(a, 0, sizeof(*a));
	a->l = *l;
	a->path = join_keys(keys, lens, depth);
	if (l->s && !(a->s = strndup(l->s, l->slen))) {
		free(a->path);
		return ckpt_error_nomem();
	}
	if (!a->path)
		return ckpt_error_nomem();
	a->l.s = NULL;
	t->n++;
	return 0;
}

/* Read the leaves of <item>/checkpoint (mapped, never read whole: bins are skipped). */
static int agg_load(struct aggtab *t, struct oitem *it, orbax_be *o)
{
	int fd = openat(it->dirfd, "checkpoint", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	char *what = NULL;
	void *map = MAP_FAILED;
	int rc;

	if (fd < 0)
		return ckpt_error_errno(CKPT_EIO, errno, "%s/checkpoint", it->path);
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s/checkpoint: not a non-empty regular file",
				    it->path);
		goto done;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	what = ckpt_asprintf("%s/checkpoint", it->path);
	if (map == MAP_FAILED || !what) {
		rc = what ? ckpt_error_errno(CKPT_EIO, errno, "mmap %s", what) : CKPT_ENOMEM;
		goto done;
	}
	rc = msgpack_leaves(map, (size_t)st.st_size, what, agg_cb, t);
	__atomic_fetch_add(&o->bytes_read, (uint64_t)st.st_size, __ATOMIC_RELAXED); /* at most */
done:
	if (map != MAP_FAILED)
		munmap(map, (size_t)st.st_size);
	free(what);
	close(fd);
	return rc;
}

static const struct aggleaf *agg_find(const struct aggtab *t, const cJSON *km)
{
	const cJSON *k;
	const char *keys[MSGPACK_MAX_DEPTH];
	size_t lens[MSGPACK_MAX_DEPTH];
	unsigned n = 0;

	cJSON_ArrayForEach(k, km)
	{
		const cJSON *key = cJSON_GetObjectItemCaseSensitive(k, "key");
		if (n == MSGPACK_MAX_DEPTH || !cJSON_IsString(key))
			return NULL;
		keys[n] = key->valuestring;
		lens[n++] = strlen(key->valuestring);
	}
	char *path = join_keys(keys, lens, n);
	const struct aggleaf *found = NULL;
	for (size_t i = 0; path && i < t->n && !found; i++)
		if (strcmp(t->v[i].path, path) == 0)
			found = &t->v[i];
	free(path);
	return found;
}

static int set_str(cJSON *obj, const char *name, const char *v)
{
	cJSON_DeleteItemFromObjectCaseSensitive(obj, name);
	return cJSON_AddStringToObject(obj, name, v) ? 0 : ckpt_error_nomem();
}

/* A leaf kept in the msgpack file: its value_metadata and where its value is. */
static int agg_leaf(struct leafref *r, cJSON *vm, const struct aggleaf *a)
{
	const msgpack_leaf *l = &a->l;
	ckpt_tree *t = NULL;
	char buf[64];
	int rc = 0;

	switch (l->kind) {
	case MP_ARRAY: {
		cJSON *shape = cJSON_CreateArray();
		for (unsigned d = 0; shape && d < l->ndim; d++)
			cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)l->shape[d]));
		cJSON_DeleteItemFromObjectCaseSensitive(vm, "shape");
		if (!shape || !cJSON_AddItemToObject(vm, "shape", shape))
			return ckpt_error_nomem();
		r->range = 1;
		r->off = l->data_off;
		r->len = l->data_len;
		if ((rc = set_str(vm, "dtype", ckpt_dtype_name(l->dtype))))
			return rc;
		return set_str(vm, "value_type", "np.ndarray");
	}
	case MP_INT: rc = ckpt_tree_new_int(&t, l->i); break;
	case MP_BOOL: rc = ckpt_tree_new_bool(&t, (int)l->i); break;
	case MP_FLOAT: rc = ckpt_tree_new_float(&t, l->f); break;
	case MP_STR:
		if (!(r->str = strdup(a->s)))
			return ckpt_error_nomem();
		r->slen = strlen(a->s);
		return set_str(vm, "value_type", "string");
	default: return set_str(vm, "value_type", "None");
	}
	int n = rc ? rc : ckpt_scalar_format(buf, sizeof(buf), t);
	ckpt_tree_free(t);
	if (n < 0)
		return n;
	if (!(r->str = strndup(buf, (size_t)n)))
		return ckpt_error_nomem();
	r->slen = (size_t)n;
	if ((rc = set_str(vm, "value_type", "scalar")))
		return rc;
	return set_str(vm, "scalar_type",
		       l->kind == MP_INT    ? "int"
		       : l->kind == MP_BOOL ? "bool"
					    : "float");
}

/* Walk key_metadata from the root of t. */
static ckpt_tree *find_node(const ckpt_tree *t, const cJSON *km)
{
	const cJSON *k;
	ckpt_tree *n = (ckpt_tree *)t;

	cJSON_ArrayForEach(k, km)
	{
		const cJSON *key = cJSON_GetObjectItemCaseSensitive(k, "key");
		if (!n || !cJSON_IsString(key))
			return NULL;
		n = ckpt_tree_find(n, key->valuestring);
	}
	return n;
}

static ckpt_tree_kind scalar_kind(ckpt_dtype dt)
{
	switch (dt) {
	case CKPT_DTYPE_BOOL: return CKPT_TREE_BOOL;
	case CKPT_DTYPE_FLOAT16:
	case CKPT_DTYPE_FLOAT32:
	case CKPT_DTYPE_FLOAT64:
	case CKPT_DTYPE_BFLOAT16:
	case CKPT_DTYPE_FLOAT8_E4M3FN:
	case CKPT_DTYPE_FLOAT8_E5M2: return CKPT_TREE_FLOAT;
	case CKPT_DTYPE_COMPLEX64:
	case CKPT_DTYPE_COMPLEX128: return NOT_SCALAR;
	default: return CKPT_TREE_INT;
	}
}

/* Orbax wrote no _METADATA: one dict leaf per array found (param names split at '.'). */
static int tree_from_params(cJSON **out, struct oitem *it, orbax_be *o);

/* Add dtype/shape (arrays), scalar_type (scalars) to each member; collect leaves. */
static int augment(orbax_be *o, struct oitem *it, cJSON *doc, struct leafref **refs, size_t *nrefs)
{
	cJSON *tm = cJSON_GetObjectItemCaseSensitive(doc, "tree_metadata"), *m;
	const cJSON *z3 = cJSON_GetObjectItemCaseSensitive(doc, "use_zarr3");
	cJSON *strings = NULL;
	int zarr3 = cJSON_IsTrue(z3), rc = 0;
	size_t n = 0;
	struct aggtab agg = {0};

	if (!cJSON_IsObject(tm))
		return ckpt_error_set(CKPT_ECORRUPT, "%s/_METADATA: no tree_metadata object",
				      it->path);
	*refs = calloc((size_t)cJSON_GetArraySize(tm) + 1, sizeof(**refs));
	if (!*refs)
		return ckpt_error_nomem();
	if (is_file_at(it->dirfd, "checkpoint") && (rc = agg_load(&agg, it, o)))
		goto done;
	cJSON_ArrayForEach(m, tm)
	{
		cJSON *km = cJSON_GetObjectItemCaseSensitive(m, "key_metadata");
		cJSON *vm = cJSON_GetObjectItemCaseSensitive(m, "value_metadata");
		cJSON *vt = cJSON_GetObjectItemCaseSensitive(vm, "value_type");
		const cJSON *skip = cJSON_GetObjectItemCaseSensitive(vm, "skip_deserialize");
		char *param;
		if (!cJSON_IsArray(km) || !cJSON_IsString(vt))
			continue; /* the tree parser names the problem */
		const char *t = vt->valuestring;
		int is_array = !strcmp(t, "jax.Array") || !strcmp(t, "np.ndarray");
		int is_scalar = !strcmp(t, "scalar"), is_string = !strcmp(t, "string");
		if (!is_array && !is_scalar && !is_string)
			continue;
		const struct aggleaf *al = agg.n ? agg_find(&agg, km) : NULL;
		if (al && al->l.kind != MP_PLACEHOLDER) {
			(*refs)[n].km = km;
			if ((rc = agg_leaf(&(*refs)[n], vm, al)))
				break;
			cJSON_DeleteItemFromObjectCaseSensitive(vm, "skip_deserialize");
			cJSON_AddBoolToObject(vm, "skip_deserialize", al->l.kind == MP_NIL);
			if (al->l.kind != MP_NIL)
				n++;
			continue;
		}
		if (cJSON_IsTrue(skip)) {
			rc = ckpt_error_set(
			    CKPT_ECORRUPT,
			    "%s: leaf %s is not saved (skip_deserialize) and no 'checkpoint' "
			    "file holds it",
			    it->path, m->string);
			break;
		}
		param = al ? strdup(al->s) : param_name(km); /* PLACEHOLDER://<param> */
		if (!param) {
			rc = ckpt_error_set(CKPT_ECORRUPT, "%s/_METADATA: %s: bad key_metadata",
					    it->path, m->string);
			break;
		}
		struct leafref *r = &(*refs)[n];
		r->km = km;
		if (is_string) {
			if (!strings) {
				char *js = NULL;
				size_t jl = 0;
				rc = read_at(&js, &jl, it->dirfd, "_strings.json", ORBAX_MAX_JSON,
					     o);
				if (rc == 0 && !(strings = cJSON_ParseWithLength(js, jl)))
					rc = ckpt_error_set(CKPT_ECORRUPT,
							    "%s/_strings.json is not JSON",
							    it->path);
				free(js);
			}
			const cJSON *sv =
			    rc ? NULL : cJSON_GetObjectItemCaseSensitive(strings, param);
			if (rc == 0 && !cJSON_IsString(sv))
				rc = ckpt_error_set(CKPT_ECORRUPT,
						    "%s/_strings.json has no string %s", it->path,
						    param);
			if (rc == 0 && !(r->str = strdup(sv->valuestring)))
				rc = ckpt_error_nomem();
			r->slen = rc ? 0 : strlen(r->str);
			free(param);
			if (rc)
				break;
			n++;
			continue;
		}
		rc = open_array(&r->arr, o, it, param, zarr3);
		free(param);
		if (rc == 0 && (rc = keep_array(o, r->arr))) {
			array_free(r->arr);
			r->arr = NULL;
		}
		if (rc)
			break;
		zarr_array *z = r->arr->z;
		n++;
		if (is_scalar) {
			r->arr->scalar_kind = scalar_kind(zarr_dtype(z));
			if (zarr_ndim(z) != 0 || r->arr->scalar_kind == NOT_SCALAR) {
				rc = ckpt_error_set(
				    CKPT_EUNSUPPORTED, "%s: scalar %s is a %u-d %s array", it->path,
				    m->string, zarr_ndim(z), ckpt_dtype_name(zarr_dtype(z)));
				break;
			}
			const char *st = r->arr->scalar_kind == CKPT_TREE_INT	  ? "int"
					 : r->arr->scalar_kind == CKPT_TREE_FLOAT ? "float"
										  : "bool";
			cJSON_DeleteItemFromObjectCaseSensitive(vm, "scalar_type");
			if (!cJSON_AddStringToObject(vm, "scalar_type", st))
				rc = ckpt_error_nomem();
			continue;
		}
		cJSON *shape = cJSON_CreateArray();
		for (unsigned d = 0; shape && d < zarr_ndim(z); d++)
			cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)zarr_shape(z)[d]));
		cJSON_DeleteItemFromObjectCaseSensitive(vm, "dtype");
		cJSON_DeleteItemFromObjectCaseSensitive(vm, "shape");
		if (!shape || !cJSON_AddItemToObject(vm, "shape", shape) ||
		    !cJSON_AddStringToObject(vm, "dtype", ckpt_dtype_name(zarr_dtype(z)))) {
			rc = ckpt_error_nomem();
			break;
		}
		cJSON_SetValuestring(vt, "np.ndarray");
	}
done:
	cJSON_Delete(strings);
	aggtab_clear(&agg);
	*nrefs = n;
	return rc;
}

static char *item_key(const char *item, const char *path)
{
	return path[0] ? ckpt_asprintf("%s/%s", item, path) : strdup(item);
}

static int add_pytree_item(orbax_be *o, struct oitem *it)
{
	char *js = NULL, *out_js = NULL;
	size_t jl = 0, nrefs = 0;
	cJSON *doc = NULL;
	struct leafref *refs = NULL;
	ckpt_tree *tree = NULL;
	int rc;

	if (is_file_at(it->dirfd, "manifest.ocdbt")) {
		rc = ocdbt_open(&it->db, it->path, &o->bytes_read);
		if (rc)
			return rc;
		uint64_t g = ocdbt_generation(it->db);
		if (g > o->generation)
			o->generation = g;
	}
	rc = read_at(&js, &jl, it->dirfd, "_METADATA", ORBAX_MAX_JSON, o);
	if (rc == CKPT_ENOTFOUND) {
		rc = tree_from_params(&doc, it, o);
	} else if (rc == 0) {
		doc = cJSON_ParseWithLength(js, jl);
		if (!cJSON_IsObject(doc))
			rc = ckpt_error_set(CKPT_ECORRUPT, "%s/_METADATA is not a JSON object",
					    it->path);
		else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "use_ocdbt")) &&
			 !it->db)
			rc = ckpt_error_set(
			    CKPT_ECORRUPT,
			    "%s: _METADATA says use_ocdbt but there is no manifest.ocdbt",
			    it->path);
	}
	if (rc == 0)
		rc = augment(o, it, doc, &refs, &nrefs);
	if (rc)
		goto done;
	/* our tree parser writes use_zarr3 false; the leaves are plain bytes now */
	cJSON_DeleteItemFromObjectCaseSensitive(doc, "use_zarr3");
	cJSON_AddFalseToObject(doc, "use_zarr3");
	out_js = cJSON_PrintUnformatted(doc);
	if (!out_js) {
		rc = ckpt_error_nomem();
		goto done;
	}
	rc = ckpt_tree_metadata_from_json(&tree, out_js, strlen(out_js));
	if (rc) {
		ckpt_error_wrap(rc, "%s/_METADATA", it->path);
		goto done;
	}
	if ((rc = add_entry(o, ckpt_asprintf("%s/_METADATA", it->name), E_BYTES)))
		goto done;
	last(o)->bytes = (unsigned char *)out_js;
	last(o)->len = strlen(out_js);
	out_js = NULL;
	for (size_t i = 0; i < nrefs && rc == 0; i++) {
		ckpt_tree *node = find_node(tree, refs[i].km);
		char *path = NULL;
		if (!node) {
			rc = ckpt_error_set(CKPT_ECORRUPT, "%s/_METADATA: a leaf is missing",
					    it->path);
			break;
		}
		if ((rc = ckpt_tree_path(&path, node)))
			break;
		int kind = refs[i].range	      ? E_FILE
			   : refs[i].str	      ? E_BYTES
			   : refs[i].arr->scalar_kind ? E_SCALAR
						      : E_ARRAY;
		rc = add_entry(o, item_key(it->name, path), kind);
		free(path);
		if (rc)
			break;
		if (refs[i].range) { /* an array in the msgpack file */
			const char *rel = it->path + strlen(o->dir);
			last(o)->path = ckpt_asprintf("%s%scheckpoint", rel[0] ? rel + 1 : "",
						      rel[0] ? "/" : "");
			last(o)->off = refs[i].off;
			last(o)->flen = refs[i].len;
			if (!last(o)->path)
				rc = CKPT_ENOMEM;
		} else if (refs[i].str) {
			last(o)->bytes = (unsigned char *)refs[i].str;
			last(o)->len = refs[i].slen;
			refs[i].str = NULL;
		} else {
			last(o)->arr = refs[i].arr;
			/* invariant 3 */
			assert(kind == E_SCALAR ||
			       ckpt_tree_nbytes(node) == zarr_nbytes(refs[i].arr->z));
		}
	}
done:
	for (size_t i = 0; refs && i < nrefs; i++)
		free(refs[i].str);
	free(refs);
	ckpt_tree_free(tree);
	cJSON_Delete(doc);
	free(out_js);
	free(js);
	return rc;
}

/* Collect param names from the db keys ("<param>/.zarray", "<param>/zarr.json"). */
struct pcollect {
	cJSON *tm;
	int zarr3;
	int rc;
};

static int add_param(struct pcollect *pc, const char *param, size_t plen)
{
	cJSON *m = cJSON_CreateObject(), *km = cJSON_CreateArray(), *vm = cJSON_CreateObject();
	char *p = strndup(param, plen), *save = NULL, *tok;
	int ok = m && km && vm && p;

	for (tok = ok ? strtok_r(p, ".", &save) : NULL; tok; tok = strtok_r(NULL, ".", &save)) {
		cJSON *k = cJSON_CreateObject();
		ok = ok && k && cJSON_AddStringToObject(k, "key", tok) &&
		     cJSON_AddNumberToObject(k, "key_type", 2);
		if (k)
			cJSON_AddItemToArray(km, k);
	}
	ok = ok && cJSON_AddStringToObject(vm, "value_type", "np.ndarray") &&
	     cJSON_AddFalseToObject(vm, "skip_deserialize");
	if (ok) {
		cJSON_AddItemToObject(m, "key_metadata", km);
		cJSON_AddItemToObject(m, "value_metadata", vm);
		char *name = strndup(param, plen);
		ok = name && (cJSON_AddItemToObject(pc->tm, name, m), 1);
		free(name);
		km = vm = m = NULL;
	}
	cJSON_Delete(m);
	cJSON_Delete(km);
	cJSON_Delete(vm);
	free(p);
	return ok ? 0 : ckpt_error_nomem();
}

static int param_cb(const unsigned char *key, size_t keylen, uint64_t vlen, void *payload)
{
	struct pcollect *pc = payload;
	static const char *suffix[] = {"/.zarray", "/zarr.json"};

	for (int i = 0; i < 2; i++) {
		size_t sl = strlen(suffix[i]);
		if (keylen > sl && memcmp(key + keylen - sl, suffix[i], sl) == 0 &&
		    !memchr(key, '/', keylen - sl)) {
			pc->zarr3 |= i;
			return add_param(pc, (const char *)key, keylen - sl);
		}
	}
	return 0;
}

static int tree_from_params(cJSON **out, struct oitem *it, orbax_be *o)
{
	struct pcollect pc = {cJSON_CreateObject(), 0, 0};
	cJSON *doc = cJSON_CreateObject();
	int rc = 0;

	*out = NULL;
	if (!pc.tm || !doc) {
		rc = ckpt_error_nomem();
		goto done;
	}
	if (it->db) {
		rc = ocdbt_list(it->db, "", 0, param_cb, &pc);
	} else {
		int fd = dup(it->dirfd);
		DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
		struct dirent *e;
		if (!d) {
			if (fd >= 0)
				close(fd);
			rc = ckpt_error_errno(CKPT_EIO, errno, "%s", it->path);
			goto done;
		}
		rewinddir(d);
		while (rc == 0 && (e = readdir(d))) {
			char *k;
			if (e->d_name[0] == '.')
				continue;
			for (int i = 0; i < 2 && rc == 0; i++) {
				k = ckpt_asprintf("%s/%s", e->d_name, i ? "zarr.json" : ".zarray");
				if (k && is_file_at(it->dirfd, k))
					rc = param_cb((unsigned char *)k, strlen(k), 0, &pc);
				free(k);
			}
		}
		closedir(d);
	}
	if (rc)
		goto done;
	if (cJSON_GetArraySize(pc.tm) == 0) {
		rc =
		    ckpt_error_set(CKPT_ENOTFOUND, "%s: no _METADATA and no zarr arrays", it->path);
		goto done;
	}
	cJSON_AddItemToObject(doc, "tree_metadata", pc.tm);
	pc.tm = NULL;
	cJSON_AddBoolToObject(doc, "use_zarr3", pc.zarr3);
	*out = doc;
	doc = NULL;
done:
	cJSON_Delete(pc.tm);
	cJSON_Delete(doc);
	return rc;
}

/* ---- items of other handlers: their files ---- */

static int add_files(orbax_be *o, int dirfd, const char *rel, unsigned depth)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	int rc = 0;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return ckpt_error_errno(CKPT_EIO, errno, "%s/%s", o->dir, rel);
	}
	if (depth > 32) {
		closedir(d);
		return ckpt_error_set(CKPT_EUNSUPPORTED, "%s/%s: directories nested too deep",
				      o->dir, rel);
	}
	while (rc == 0 && (e = readdir(d))) {
		struct stat st;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		char *path = ckpt_asprintf("%s/%s", rel, e->d_name);
		if (!path) {
			rc = CKPT_ENOMEM;
			break;
		}
		if (S_ISREG(st.st_mode)) {
			char *key = strdup(path);
			rc = add_entry(o, key, E_FILE);
			if (rc == 0) {
				last(o)->path = path;
				last(o)->flen = UINT64_MAX;
			} else
				free(path);
		} else if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, e->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			rc = sub < 0 ? ckpt_error_errno(CKPT_EIO, errno, "%s/%s", o->dir, path)
				     : add_files(o, sub, path, depth + 1);
			if (sub >= 0)
				close(sub);
			free(path);
		} else {
			free(path);
		}
	}
	closedir(d);
	return rc;
}

/* ---- items and step metadata ---- */

static int new_item(orbax_be *o, const char *name, const char *relpath)
{
	struct oitem *it = calloc(1, sizeof(*it));
	struct oitem **t = realloc(o->items, (o->nitems + 1) * sizeof(*t));

	if (t)
		o->items = t;
	if (!it || !t || !(it->name = strdup(name)) ||
	    !(it->path = strcmp(relpath, ".") ? ckpt_asprintf("%s/%s", o->dir, relpath)
					      : strdup(o->dir))) {
		if (it)
			free(it->name);
		free(it);
		return ckpt_error_nomem();
	}
	it->dirfd = openat(o->dirfd, relpath, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	o->items[o->nitems++] = it;
	if (it->dirfd < 0)
		return ckpt_error_errno(CKPT_EIO, errno, "%s/%s", o->dir, relpath);
	return 0;
}

static int build(orbax_be *o)
{
	char *js = NULL, *meta_out = NULL;
	size_t jl = 0;
	cJSON *meta = NULL, *handlers = NULL;
	int rc = read_at(&js, &jl, o->dirfd, "_CHECKPOINT_METADATA", ORBAX_MAX_JSON, o);

	if (rc && rc != CKPT_ENOTFOUND)
		goto done;
	meta = rc == 0 ? cJSON_ParseWithLength(js, jl) : cJSON_CreateObject();
	rc = 0;
	if (!cJSON_IsObject(meta)) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s/_CHECKPOINT_METADATA is not a JSON object",
				    o->dir);
		goto done;
	}
	const cJSON *ih = cJSON_GetObjectItemCaseSensitive(meta, "item_handlers");
	handlers = cJSON_CreateObject();
	if (!handlers) {
		rc = ckpt_error_nomem();
		goto done;
	}
	if (is_pytree_dir(o->dirfd)) {
		/* a bare PyTreeCheckpointer directory: one item, "default" */
		rc = new_item(o, "default", ".");
		if (rc == 0)
			rc = add_pytree_item(o, o->items[0]);
		if (rc == 0 && !cJSON_AddStringToObject(handlers, "default", ORBAX_PYTREE_TYPESTR))
			rc = ckpt_error_nomem();
	} else {
		int fd = dup(o->dirfd);
		DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
		struct dirent *e;
		if (!d) {
			if (fd >= 0)
				close(fd);
			rc = ckpt_error_errno(CKPT_EIO, errno, "%s", o->dir);
			goto done;
		}
		while (rc == 0 && (e = readdir(d))) {
			struct stat st;
			if (skip_name(e->d_name) ||
			    fstatat(o->dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) ||
			    !S_ISDIR(st.st_mode))
				continue;
			rc = new_item(o, e->d_name, e->d_name);
			struct oitem *it = rc ? NULL : o->items[o->nitems - 1];
			const cJSON *h = cJSON_GetObjectItemCaseSensitive(ih, e->d_name);
			const char *type = cJSON_IsString(h) ? h->valuestring : "unknown";
			if (rc == 0 && is_pytree_dir(it->dirfd)) {
				rc = add_pytree_item(o, it);
				type = ORBAX_PYTREE_TYPESTR;
			} else if (rc == 0) {
				rc = add_files(o, it->dirfd, it->name, 0);
			}
			if (rc == 0 && !cJSON_AddStringToObject(handlers, e->d_name, type))
				rc = ckpt_error_nomem();
		}
		closedir(d);
	}
	if (rc)
		goto done;
	cJSON_DeleteItemFromObjectCaseSensitive(meta, "item_handlers");
	cJSON_AddItemToObject(meta, "item_handlers", handlers);
	handlers = NULL;
	/* keep the exact nanosecond timestamps (cJSON doubles round them): re-add as raw */
	static const char *ts[] = {"init_timestamp_nsecs", "commit_timestamp_nsecs"};
	for (int i = 0; js && i < 2; i++) {
		int64_t v = ckpt_json_top_int(js, ts[i]);
		char num[32];
		if (!v)
			continue;
		snprintf(num, sizeof(num), "%lld", (long long)v);
		cJSON_DeleteItemFromObjectCaseSensitive(meta, ts[i]);
		cJSON_AddRawToObject(meta, ts[i], num);
	}
	meta_out = cJSON_PrintUnformatted(meta);
	if (!meta_out || (rc = add_entry(o, strdup("_CHECKPOINT_METADATA"), E_BYTES))) {
		rc = rc ? rc : ckpt_error_nomem();
		goto done;
	}
	last(o)->bytes = (unsigned char *)meta_out;
	last(o)->len = strlen(meta_out);
	meta_out = NULL;
	qsort(o->ents, o->nents, sizeof(*o->ents), cmp_ent);
	for (size_t i = 1; i < o->nents; i++)
		if (cmp_ent(&o->ents[i - 1], &o->ents[i]) == 0) {
			rc = ckpt_error_set(CKPT_EUNSUPPORTED,
					    "%s: two values would have the key %s", o->dir,
					    o->ents[i].key);
			goto done;
		}
done:
	free(meta_out);
	cJSON_Delete(handlers);
	cJSON_Delete(meta);
	free(js);
	return rc;
}

/* ---- the backend slots ---- */

static const struct oentry *find(const orbax_be *o, const void *key, size_t keylen)
{
	struct oentry k = {.key = (char *)key, .keylen = keylen};
	return bsearch(&k, o->ents, o->nents, sizeof(k), cmp_ent);
}

static int ob_list(ckpt_store_backend *be, const void *prefix, size_t plen, int delimiter,
		   ckpt_store_list_cb cb, void *payload)
{
	const orbax_be *o = (const orbax_be *)be;
	size_t lo = 0, hi = o->nents;
	const char *lastp = NULL;
	size_t lastlen = 0;

	while (lo < hi) { /* first key >= prefix */
		size_t mid = (lo + hi) / 2;
		const struct oentry *e = &o->ents[mid];
		int c = memcmp(e->key, prefix, e->keylen < plen ? e->keylen : plen);
		if (c < 0 || (c == 0 && e->keylen < plen))
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < o->nents; i++) {
		const struct oentry *e = &o->ents[i];
		if (e->keylen < plen || memcmp(e->key, prefix, plen) != 0)
			break;
		const char *name = e->key + plen;
		size_t nlen = e->keylen - plen;
		const char *d = delimiter >= 0 ? memchr(name, delimiter, nlen) : NULL;
		int rc;
		if (d) {
			nlen = (size_t)(d - name);
			if (lastp && lastlen == nlen && memcmp(lastp, name, nlen) == 0)
				continue; /* same common prefix: keys below it are contiguous */
			lastp = name;
			lastlen = nlen;
			rc = cb(name, nlen, 1, payload);
		} else {
			rc = cb(name, nlen, 0, payload);
		}
		if (rc)
			return rc;
	}
	return 0;
}

struct areader {
	orbax_be *o;
	struct oarray *a;
	uint64_t next; /* atomic: where the last read ended */
};

static void *prefetch_main(void *p)
{
	orbax_be *o = p;
	struct prefetch *pf = &o->pf;

	pthread_mutex_lock(&pf->mu);
	for (;;) {
		while (!pf->stop && pf->n == 0)
			pthread_cond_wait(&pf->cv, &pf->mu);
		if (pf->stop)
			break;
		struct oarray *a = pf->q[pf->head].a;
		uint64_t id = pf->q[pf->head].id;
		pf->head = (pf->head + 1) % PREFETCH_QUEUE;
		pf->n--;
		pthread_mutex_unlock(&pf->mu);
		asrc s;
		array_source(&s, a, o);
		(void)zarr_prefetch(a->z, &s.src, o->cache, a->id,
				    id); /* errors: the reader sees them */
		pthread_mutex_lock(&pf->mu);
	}
	pthread_mutex_unlock(&pf->mu);
	return NULL;
}

static void prefetch(orbax_be *o, struct oarray *a, uint64_t id)
{
	struct prefetch *pf = &o->pf;

	pthread_mutex_lock(&pf->mu);
	while (pf->started >= 0 && pf->started < PREFETCH_THREADS && !pf->stop)
		if (pthread_create(&pf->thread[pf->started], NULL, prefetch_main, o) == 0)
			pf->started++;
		else if (pf->started == 0)
			pf->started = -1; /* no worker: readers decode everything themselves */
		else
			break;
	if (pf->started > 0 && pf->n < PREFETCH_QUEUE) {
		size_t t = (pf->head + pf->n++) % PREFETCH_QUEUE;
		pf->q[t].a = a;
		pf->q[t].id = id;
		pthread_cond_signal(&pf->cv);
	}
	pthread_mutex_unlock(&pf->mu);
}

static int arr_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct areader *r = ctx;
	uint64_t nb = zarr_nbytes(r->a->z), end = off + len;
	asrc s;
	int rc;

	array_source(&s, r->a, r->o);
	rc = zarr_read(r->a->z, &s.src, r->o->cache, r->a->id, buf, len, off, NULL);
	/* a sequential reader: decode the unit after this range meanwhile */
	uint64_t prev = __atomic_exchange_n(&r->next, end, __ATOMIC_RELAXED);
	if (rc == 0 && prev == off && off > 0 && len && end < nb &&
	    zarr_unit_at(r->a->z, end) != zarr_unit_at(r->a->z, end - 1)) {
		uint64_t u = zarr_unit_at(r->a->z, end);
		for (unsigned k = 0; k < PREFETCH_AHEAD && u + k < zarr_unit_count(r->a->z); k++)
			prefetch(r->o, r->a, u + k);
	}
	return rc;
}

static int arr_verify(void *ctx)
{
	struct areader *r = ctx;
	struct oitem *it = r->a->item;
	asrc s;
	int rc = 0;

	if (it->db && !__atomic_load_n(&it->verified, __ATOMIC_ACQUIRE)) {
		rc = ocdbt_verify(it->db, NULL);
		if (rc)
			return rc;
		__atomic_store_n(&it->verified, 1, __ATOMIC_RELEASE);
	}
	array_source(&s, r->a, r->o);
	return zarr_verify(r->a->z, &s.src);
}

static const ckpt_value_reader arr_reader = {arr_pread, arr_verify, free};

static int is_meta_name(const char *name, size_t len)
{
	static const char *const m[] = {".zarray", ".zattrs", "zarr.json", ".zgroup"};
	for (size_t i = 0; i < sizeof(m) / sizeof(*m); i++) {
		size_t n = strlen(m[i]);
		if (len >= n && memcmp(name + len - n, m[i], n) == 0 &&
		    (len == n || name[len - n - 1] == '/'))
			return 1;
	}
	return 0;
}

static int sum_cb(const unsigned char *key, size_t keylen, uint64_t vlen, void *payload)
{
	if (!is_meta_name((const char *)key, keylen))
		*(uint64_t *)payload += vlen;
	return 0;
}

/* Bytes of the chunk files below dirfd (depth-limited: one level per dimension). */
static uint64_t dir_bytes(int dirfd, unsigned depth)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	uint64_t n = 0;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while ((e = readdir(d))) {
		struct stat st;
		if (e->d_name[0] == '.' || is_meta_name(e->d_name, strlen(e->d_name)) ||
		    fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW))
			continue;
		if (S_ISREG(st.st_mode)) {
			n += (uint64_t)st.st_size;
		} else if (S_ISDIR(st.st_mode) && depth < ZARR_MAX_NDIM + 1) {
			int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0) {
				n += dir_bytes(sub, depth + 1);
				close(sub);
			}
		}
	}
	closedir(d);
	return n;
}

/* What a leaf's chunks take on disk (shown as its stored size): the lengths of its
 * chunk values, from the B+tree leaf nodes or the chunk files; never their bytes. */
static uint64_t stored_bytes(orbax_be *o, struct oarray *a)
{
	uint64_t n = __atomic_load_n(&a->stored, __ATOMIC_RELAXED);

	if (n != UINT64_MAX)
		return n;
	n = 0;
	if (a->item->db) {
		char *prefix = ckpt_asprintf("%s/", a->param);
		if (!prefix || ocdbt_list(a->item->db, prefix, strlen(prefix), sum_cb, &n) != 0)
			n = zarr_nbytes(a->z); /* unknown: say the raw size, as before */
		free(prefix);
	} else {
		n = dir_bytes(a->dirfd, 0);
	}
	__atomic_store_n(&a->stored, n, __ATOMIC_RELAXED);
	return n;
}

struct freader {
	int fd;
	uint64_t base; /* of the value in the file */
	orbax_be *o;
	char *path;
};

static int file_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct freader *r = ctx;
	size_t done = 0;

	while (done < len) {
		ssize_t n =
		    pread(r->fd, (char *)buf + done, len - done, (off_t)(r->base + off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0
				   ? ckpt_error_errno(CKPT_EIO, errno, "%s/%s", r->o->dir, r->path)
				   : ckpt_error_set(CKPT_ECORRUPT, "%s/%s shrank", r->o->dir,
						    r->path);
		done += (size_t)n;
	}
	__atomic_fetch_add(&r->o->bytes_read, len, __ATOMIC_RELAXED);
	return 0;
}

static void file_free(void *ctx)
{
	struct freader *r = ctx;
	close(r->fd);
	free(r->path);
	free(r);
}

static const ckpt_value_reader file_reader = {file_pread, NULL, file_free};

static int scalar_text(unsigned char **out, size_t *len, orbax_be *o, struct oarray *a)
{
	unsigned char raw[16];
	double dv = 0;
	int64_t iv = 0;
	ckpt_tree *leaf = NULL;
	char buf[64];
	asrc s;
	int rc;

	array_source(&s, a, o);
	rc = zarr_read(a->z, &s.src, NULL, 0, raw, ckpt_dtype_size(zarr_dtype(a->z)), 0, NULL);
	if (rc)
		return rc;
	if (a->scalar_kind == CKPT_TREE_FLOAT) {
		rc = ckpt_dtype_cast(&dv, CKPT_DTYPE_FLOAT64, raw, zarr_dtype(a->z), 1);
		rc = rc ? rc : ckpt_tree_new_float(&leaf, dv);
	} else if (a->scalar_kind == CKPT_TREE_BOOL) {
		rc = ckpt_tree_new_bool(&leaf, raw[0] != 0);
	} else {
		rc = ckpt_dtype_cast(&iv, CKPT_DTYPE_INT64, raw, zarr_dtype(a->z), 1);
		rc = rc ? rc : ckpt_tree_new_int(&leaf, iv);
	}
	int n = rc ? rc : ckpt_scalar_format(buf, sizeof(buf), leaf);
	ckpt_tree_free(leaf);
	if (n < 0)
		return n;
	*out = malloc((size_t)n + 1);
	if (!*out)
		return ckpt_error_nomem();
	memcpy(*out, buf, (size_t)n);
	*len = (size_t)n;
	return 0;
}

static int ob_open_value(ckpt_value_source *out, ckpt_store_backend *be, const void *key,
			 size_t keylen)
{
	orbax_be *o = (orbax_be *)be;
	const struct oentry *e = find(o, key, keylen);
	int rc = 0;

	if (!e)
		return ckpt_error_set(CKPT_ENOTFOUND, "%s: no key %.*s", o->dir, (int)keylen,
				      (const char *)key);
	out->info.generation = o->generation;
	switch (e->kind) {
	case E_BYTES: {
		void *d = malloc(e->len ? e->len : 1);
		if (!d)
			return ckpt_error_nomem();
		memcpy(d, e->bytes, e->len);
		out->inline_data = d;
		out->info.size = out->info.stored_size = e->len;
		out->info.is_inline = 1;
		return 0;
	}
	case E_SCALAR: {
		unsigned char *d = NULL;
		size_t n = 0;
		rc = scalar_text(&d, &n, o, e->arr);
		if (rc)
			return ckpt_error_wrap(rc, "%s", e->key);
		out->inline_data = d;
		out->info.size = out->info.stored_size = n;
		out->info.is_inline = 1;
		return 0;
	}
	case E_ARRAY: {
		struct areader *r = malloc(sizeof(*r));
		if (!r)
			return ckpt_error_nomem();
		*r = (struct areader){o, e->arr, UINT64_MAX};
		out->info.size = zarr_nbytes(e->arr->z);
		out->info.stored_size = stored_bytes(o, e->arr);
		out->info.codec = strstr(zarr_codec_name(e->arr->z), "zstd") ? CKPT_CODEC_ZSTD
									  : CKPT_CODEC_RAW;
		out->reader = &arr_reader;
		out->reader_ctx = r;
		return 0;
	}
	default: {
		struct freader *r = calloc(1, sizeof(*r));
		struct stat st;
		if (!r || !(r->path = strdup(e->path))) {
			free(r);
			return ckpt_error_nomem();
		}
		r->o = o;
		r->fd = openat(o->dirfd, e->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (r->fd < 0 || fstat(r->fd, &st) != 0) {
			rc = ckpt_error_errno(CKPT_EIO, errno, "%s/%s", o->dir, e->path);
			if (r->fd >= 0)
				close(r->fd);
			free(r->path);
			free(r);
			return rc;
		}
		uint64_t size = (uint64_t)st.st_size;
		if (e->flen != UINT64_MAX) { /* a range of the file (msgpack arrays) */
			if (e->off > size || e->flen > size - e->off) {
				close(r->fd);
				free(r->path);
				free(r);
				return ckpt_error_set(CKPT_ECORRUPT,
						      "%s/%s: shorter than when opened", o->dir,
						      e->path);
			}
			r->base = e->off;
			size = e->flen;
		}
		out->info.size = out->info.stored_size = size;
		out->reader = &file_reader;
		out->reader_ctx = r;
		return 0;
	}
	}
}

/* Where a value's bytes come from (ckpt_value_describe): zarr metadata for arrays and
 * scalars, the file (and msgpack range) for files; nothing for computed metadata. */
static int ob_describe(char **out, ckpt_store_backend *be, const void *key, size_t keylen)
{
	orbax_be *o = (orbax_be *)be;
	const struct oentry *e = find(o, key, keylen);
	cJSON *j = NULL;
	int rc = 0;

	*out = NULL;
	if (!e)
		return ckpt_error_set(CKPT_ENOTFOUND, "%s: no key %.*s", o->dir, (int)keylen,
				      (const char *)key);
	if (e->kind == E_BYTES)
		return 0;
	if (!(j = cJSON_CreateObject())) {
		rc = ckpt_error_nomem();
		goto done;
	}
	if (e->kind == E_ARRAY || e->kind == E_SCALAR) {
		if ((rc = zarr_describe(j, e->arr->z)))
			goto done;
		if (!cJSON_AddStringToObject(j, "kvstore", e->arr->item->db ? "ocdbt" : "file")) {
			rc = ckpt_error_nomem();
			goto done;
		}
	} else if (!cJSON_AddStringToObject(j, "file", e->path) ||
		   (e->flen != UINT64_MAX &&
		    (!cJSON_AddStringToObject(j, "format", "msgpack") ||
		     !cJSON_AddNumberToObject(j, "offset", (double)e->off)))) {
		rc = ckpt_error_nomem();
		goto done;
	}
	if (!(*out = cJSON_PrintUnformatted(j)))
		rc = ckpt_error_nomem();
done:
	cJSON_Delete(j);
	return rc;
}

static uint64_t ob_generation(const ckpt_store_backend *be)
{
	return ((const orbax_be *)be)->generation;
}

static uint64_t ob_bytes_read(const ckpt_store_backend *be)
{
	return __atomic_load_n(&((const orbax_be *)be)->bytes_read, __ATOMIC_RELAXED);
}

static void ob_free(ckpt_store_backend *be)
{
	orbax_be *o = (orbax_be *)be;

	if (!o)
		return;
	pthread_mutex_lock(&o->pf.mu);
	o->pf.stop = 1;
	pthread_cond_signal(&o->pf.cv);
	pthread_mutex_unlock(&o->pf.mu);
	for (int i = 0; i < o->pf.started; i++)
		pthread_join(o->pf.thread[i], NULL);
	pthread_mutex_destroy(&o->pf.mu);
	pthread_cond_destroy(&o->pf.cv);
	for (size_t i = 0; i < o->nents; i++) {
		free(o->ents[i].key);
		free(o->ents[i].bytes);
		free(o->ents[i].path);
	}
	free(o->ents);
	for (size_t i = 0; i < o->narrays; i++)
		array_free(o->arrays[i]);
	free(o->arrays);
	for (size_t i = 0; i < o->nmemo; i++) {
		free(o->memo[i].text);
		zarr_free(o->memo[i].z);
	}
	for (size_t i = 0; i < o->nitems; i++) {
		ocdbt_free(o->items[i]->db);
		if (o->items[i]->dirfd >= 0)
			close(o->items[i]->dirfd);
		free(o->items[i]->name);
		free(o->items[i]->path);
		free(o->items[i]);
	}
	free(o->items);
	ckpt_chunk_cache_free(o->cache);
	if (o->dirfd >= 0)
		close(o->dirfd);
	free(o->dir);
	free(o);
}

int ckpt_orbax_store_open(ckpt_store **out, const char *dir, const ckpt_store_options *opts)
{
	orbax_be *o = calloc(1, sizeof(*o));
	int rc;

	*out = NULL;
	if (!o)
		return ckpt_error_nomem();
	o->dirfd = -1;
	pthread_mutex_init(&o->pf.mu, NULL);
	pthread_cond_init(&o->pf.cv, NULL);
	rc = ckpt_store_backend_init(&o->be, CKPT_STORE_BACKEND_VERSION);
	if (rc) {
		pthread_mutex_destroy(&o->pf.mu);
		pthread_cond_destroy(&o->pf.cv);
		free(o);
		return rc;
	}
	o->be.open_value = ob_open_value;
	o->be.list = ob_list;
	o->be.generation = ob_generation;
	o->be.bytes_read = ob_bytes_read;
	o->be.free = ob_free;
	o->be.describe = ob_describe;
	o->dir = strdup(dir);
	if (!o->dir) {
		rc = ckpt_error_nomem();
		goto fail;
	}
	o->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (o->dirfd < 0) {
		rc = ckpt_error_errno(errno == ENOENT ? CKPT_ENOTFOUND : CKPT_EIO, errno, "open %s",
				      dir);
		goto fail;
	}
	uint64_t cap = opts && opts->cache_size ? opts->cache_size : ORBAX_DEFAULT_CACHE;
	if ((rc = ckpt_chunk_cache_new(&o->cache, cap)))
		goto fail;
	if ((rc = build(o)))
		goto fail;
	if (o->generation == 0)
		o->generation = 1;
	/* the library's own cache would cache nothing (our values are computed) */
	ckpt_store_options so = CKPT_STORE_OPTIONS_INIT;
	if (opts)
		so = *opts;
	so.cache_size = 0;
	return ckpt_store_open_backend(out, &o->be, dir, &so);
fail:
	ob_free(&o->be);
	return rc;
}
