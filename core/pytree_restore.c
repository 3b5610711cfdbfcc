/*
 * pytree_restore.c — restoring a PyTree item (Orbax PyTreeCheckpointHandler
 * restore semantics).
 *
 * Design: the item's metadata tree (ckpt_step_item_tree) is rebuilt with
 * ckpt_tree_map; each selected leaf is read on its own. Selection: all
 * leaves, or those under args->paths, or (partial_restore) those present in
 * the target args->item. An array is read in runs of at most
 * restore_concurrent_bytes straight into the result (or through one bounce
 * buffer of that size when casting), so bytes in flight stay bounded. A
 * target shape that differs is CKPT_ESHAPE when strict; otherwise the
 * overlapping box is copied row by row and the rest stays zero.
 *
 * Transforms: every selected end node of the saved tree is given its target
 * path first (map_path; transforms_prepare works them all out and refuses
 * two on one path before anything is read); restore_leaf then builds each
 * node straight at that path in a tree of its own (c->moved), and the
 * mapped copy ckpt_tree_map makes is dropped. With a target, the result is
 * finally rearranged into the target's shape (conform): containers retyped
 * or rebuilt, children in the target's order, scalars of the target's kind;
 * nodes are moved, never copied.
 *
 * Value transforms (computed leaves): values_check makes sure every input
 * is a saved leaf before anything is read; after the restore, values_apply
 * reads each rule's inputs with read_node, calls its fn and inserts the
 * leaf at its `to` (insert_at), before the result is shaped by the target.
 *
 * Invariants:
 *   1. Only selected leaves are opened (partial restore reads nothing else;
 *      with transforms, nor leaves the rules leave out).
 *   2. Every array value's size equals the metadata's nbytes before any
 *      byte of it is used (CKPT_ECORRUPT otherwise).
 *   3. With transforms, at most one saved node lands on a target path
 *      (transforms_prepare), so insert_at never meets an occupied slot it
 *      was not told about.
 */
#include <assert.h>
#include <math.h>
#include <regex.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error_private.h"
#include "mem.h"
#include "pytree_private.h"
#include "tree_private.h"
#include "fsutil.h"

#define DEFAULT_RESTORE_BYTES (64ull << 20)

struct restore_ctx {
	ckpt_step *s;
	const char *item;
	const ckpt_pytree_restore_args *args; /* &eff, or NULL */
	ckpt_pytree_restore_args eff;	      /* the caller's, at the current version */
	char **sels; /* normalized selected paths (args->paths) */
	size_t nsels;
	uint64_t cap;
	/* transforms (args->ntransforms > 0) */
	regex_t *re;	  /* compiled rule i when transforms[i].regex */
	char **landed;	  /* sorted target paths saved leaves land on */
	size_t nlanded;
	ckpt_tree *moved; /* the result, built at the target paths */
};

/* ---- transforms ---- */

static int xform(const struct restore_ctx *c)
{
	return c->args && c->args->ntransforms > 0;
}

/* Expand rule r's `to` with the groups m of path (group k of the rule is m[k + 1]:
 * the pattern was compiled wrapped as ^(...)$). */
static char *expand(const char *to, const char *path, const regmatch_t *m)
{
	size_t cap = strlen(to) + 1, n = 0;
	char *out = malloc(cap);

	for (const char *p = to; out && *p; p++) {
		const char *add = p;
		size_t len = 1;
		if (p[0] == '\\' && p[1] >= '1' && p[1] <= '9') {
			const regmatch_t *g = &m[p[1] - '0' + 1];
			add = path + (g->rm_so >= 0 ? g->rm_so : 0);
			len = g->rm_so >= 0 ? (size_t)(g->rm_eo - g->rm_so) : 0;
			p++;
		} else if (p[0] == '\\' && p[1] == '\\') {
			p++;
		}
		if (n + len + 1 > cap) {
			char *o = realloc(out, cap = 2 * (n + len + 1));
			if (!o) {
				free(out);
				return NULL;
			}
			out = o;
		}
		memcpy(out + n, add, len);
		n += len;
	}
	if (out)
		out[n] = '\0';
	return out;
}

/*
 * The path saved leaf `path` comes back at: *out malloc'd, or NULL when it
 * is left out (a rule to "" or NULL; no rule and not default_to_original).
 */
static int map_path(char **out, const struct restore_ctx *c, const char *path)
{
	const ckpt_pytree_restore_args *a = c->args;

	*out = NULL;
	if (!xform(c) || !path[0])
		return (*out = strdup(path)) ? 0 : ckpt_error_nomem();
	for (size_t i = 0; i < a->ntransforms; i++) {
		const ckpt_restore_transform *t = &a->transforms[i];
		regmatch_t m[11];
		if (t->regex ? regexec(&c->re[i], path, 11, m, 0) != 0 : strcmp(t->from, path) != 0)
			continue;
		if (!t->to || !t->to[0])
			return 0;
		*out = t->regex ? expand(t->to, path, m) : strdup(t->to);
		return *out ? 0 : ckpt_error_nomem();
	}
	if (a->transforms_default_to_original && !(*out = strdup(path)))
		return ckpt_error_nomem();
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int selected(const struct restore_ctx *c, const char *path);

/* ckpt_tree_walk callback on the saved tree: where each selected end node lands. */
static int land(ckpt_tree *node, const char *path, void *payload)
{
	struct restore_ctx *c = payload;
	char *to = NULL;
	int rc;

	if ((ckpt_tree_is_container(node) && ckpt_tree_count(node) > 0) || !path[0] ||
	    !selected(c, path))
		return 0;
	if ((rc = map_path(&to, c, path)) != 0 || !to)
		return rc;
	char **l = realloc(c->landed, (c->nlanded + 1) * sizeof(*l));
	if (!l) {
		free(to);
		return ckpt_error_nomem();
	}
	c->landed = l;
	c->landed[c->nlanded++] = to;
	return 0;
}

/* Compile the rules and work out where every saved leaf lands (two on one path:
 * CKPT_EEXISTS), before anything is read. */
static int transforms_prepare(struct restore_ctx *c, const ckpt_tree *meta)
{
	const ckpt_pytree_restore_args *a = c->args;
	int rc = 0;

	if (!(c->re = calloc(a->ntransforms, sizeof(*c->re))))
		return ckpt_error_nomem();
	for (size_t i = 0; i < a->ntransforms; i++) {
		const ckpt_restore_transform *t = &a->transforms[i];
		if (!t->from)
			return ckpt_error_set(CKPT_EINVAL, "transforms[%zu]: no from", i);
		if (!t->regex)
			continue;
		char *pat = ckpt_asprintf("^(%s)$", t->from);
		if (!pat)
			return ckpt_error_nomem();
		int e = regcomp(&c->re[i], pat, REG_EXTENDED);
		free(pat);
		if (e) {
			char msg[128];
			regerror(e, NULL, msg, sizeof(msg));
			memset(&c->re[i], 0, sizeof(c->re[i]));
			return ckpt_error_set(CKPT_EINVAL, "transforms[%zu]: regex '%s': %s", i,
					      t->from, msg);
		}
		if (c->re[i].re_nsub > 10)
			return ckpt_error_set(CKPT_EINVAL, "transforms[%zu]: more than 9 groups", i);
	}
	rc = ckpt_tree_walk((ckpt_tree *)meta, land, c); /* land only reads */
	if (rc == 0 && c->nlanded > 1)
		qsort(c->landed, c->nlanded, sizeof(*c->landed), cmp_str);
	for (size_t i = 1; rc == 0 && i < c->nlanded; i++)
		if (!strcmp(c->landed[i - 1], c->landed[i]))
			rc = ckpt_error_set(CKPT_EEXISTS,
					    "item %s: two saved leaves are renamed to '%s'", c->item,
					    c->landed[i]);
	if (rc == 0)
		rc = ckpt_tree_new(&c->moved, CKPT_TREE_DICT);
	return rc;
}

static void transforms_free(struct restore_ctx *c)
{
	for (size_t i = 0; c->re && i < c->args->ntransforms; i++)
		if (c->args->transforms[i].regex)
			regfree(&c->re[i]);
	free(c->re);
	for (size_t i = 0; i < c->nlanded; i++)
		free(c->landed[i]);
	free(c->landed);
	ckpt_tree_free(c->moved);
}

static int landed(const struct restore_ctx *c, const char *path)
{
	return c->nlanded &&
	       bsearch(&path, c->landed, c->nlanded, sizeof(*c->landed), cmp_str) != NULL;
}

/* Put node (taken, also on failure) at path below root, making dicts on the way. */
static int insert_at(ckpt_tree *root, const char *path, ckpt_tree *node)
{
	char *copy = strdup(path), *save = NULL, *key = NULL;
	ckpt_tree *at = root;
	int rc = copy ? 0 : ckpt_error_nomem();

	for (char *comp = copy ? strtok_r(copy, "/", &save) : NULL; rc == 0 && comp;) {
		char *next = strtok_r(NULL, "/", &save);
		int last = next == NULL;
		if ((rc = ckpt_key_unescape(&key, comp, last &&
				ckpt_tree_get_kind(node) == CKPT_TREE_ARRAY)) != 0)
			break;
		ckpt_tree *child = ckpt_tree_is_container(at) ? ckpt_tree_find(at, key) : NULL;
		if (last) {
			if (child) {
				rc = ckpt_error_set(CKPT_EEXISTS,
						    "'%s' would be both a leaf and a container", path);
			} else {
				rc = ckpt_tree_add(at, key, node); /* takes node, also on failure */
				node = NULL;
			}
		} else if (!child) {
			if ((rc = ckpt_tree_new(&child, CKPT_TREE_DICT)) == 0 &&
			    (rc = ckpt_tree_add(at, key, child)) == 0)
				at = child;
		} else if (!ckpt_tree_is_container(child) || ckpt_tree_count(child) == 0 ||
			   ckpt_tree_get_kind(child) != CKPT_TREE_DICT) {
			rc = ckpt_error_set(CKPT_EEXISTS, "'%s' is restored below the leaf '%s'",
					    path, comp);
		} else {
			at = child;
		}
		free(key);
		key = NULL;
		comp = next;
	}
	if (rc == 0 && node) /* no component: "" or only '/' */
		rc = ckpt_error_set(CKPT_EINVAL, "transforms: empty target path '%s'", path);
	ckpt_tree_free(node);
	free(copy);
	return rc;
}

/* ---- computed leaves (value_transforms) ---- */

/* path is the `to` of a value transform? */
static int value_target(const struct restore_ctx *c, const char *path)
{
	for (size_t i = 0; c->args && i < c->args->nvalue_transforms; i++)
		if (!strcmp(c->args->value_transforms[i].to, path))
			return 1;
	return 0;
}

/* Every rule complete and every input a saved leaf (all missing ones named),
 * before anything is read. */
static int values_check(const struct restore_ctx *c, const ckpt_tree *meta)
{
	const ckpt_pytree_restore_args *a = c->args;
	char *missing = NULL;
	int rc = 0;

	if (!a->value_transforms)
		return ckpt_error_set(CKPT_EINVAL, "nvalue_transforms is %zu but value_transforms "
						   "is NULL",
				      a->nvalue_transforms);
	for (size_t i = 0; rc == 0 && i < a->nvalue_transforms; i++) {
		const ckpt_restore_value_transform *v = &a->value_transforms[i];
		if (!v->to || !v->to[0] || !v->fn || (v->ninputs && !v->inputs))
			rc = ckpt_error_set(CKPT_EINVAL,
					    "value_transforms[%zu]: needs a `to`, a fn and its "
					    "inputs",
					    i);
		for (size_t j = 0; rc == 0 && j < v->ninputs; j++) {
			ckpt_tree *n = NULL;
			const char *in = v->inputs[j] ? v->inputs[j] : "(NULL)";
			if (v->inputs[j] && ckpt_tree_lookup(&n, meta, in) == 0 &&
			    !(ckpt_tree_is_container(n) && ckpt_tree_count(n) > 0))
				continue;
			char *m = missing ? ckpt_asprintf("%s, '%s'", missing, in)
					  : ckpt_asprintf("'%s'", in);
			free(missing);
			if (!(missing = m))
				rc = ckpt_error_nomem();
		}
	}
	if (rc == 0 && missing)
		rc = ckpt_error_set(CKPT_ENOTFOUND,
				    "item %s: value transforms need saved leaves the checkpoint "
				    "does not have: %s",
				    c->item, missing);
	free(missing);
	return rc;
}

static int read_node(ckpt_tree **out, struct restore_ctx *c, const ckpt_tree *meta,
		     const char *path, const ckpt_tree *target);

/* Rule v's inputs read, its fn called, the leaf put at v->to in res. */
static int value_apply(struct restore_ctx *c, const ckpt_tree *meta, ckpt_tree *res,
		       const ckpt_restore_value_transform *v)
{
	ckpt_tree **in = calloc(v->ninputs ? v->ninputs : 1, sizeof(*in)), *out = NULL, *n = NULL;
	size_t j = 0;
	int rc = in ? 0 : ckpt_error_nomem();

	if (rc == 0 && ckpt_tree_lookup(&n, res, v->to) == 0)
		rc = ckpt_error_set(CKPT_EEXISTS,
				    "'%s' is also restored from the checkpoint (leave that out "
				    "with a rename rule to \"\")",
				    v->to);
	for (; rc == 0 && j < v->ninputs; j++) {
		char *path = NULL;
		if ((rc = ckpt_tree_lookup(&n, meta, v->inputs[j])) == 0 &&
		    (rc = ckpt_tree_path(&path, n)) == 0)
			rc = read_node(&in[j], c, n, path, NULL);
		free(path);
	}
	if (rc == 0) {
		ckpt_error_clear();
		rc = v->fn(&out, (const ckpt_tree *const *)in, v->ninputs, v->payload);
		if (rc > 0)
			rc = ckpt_error_set(CKPT_ERROR, "fn returned %d", rc);
		else if (rc == 0 && !out)
			rc = ckpt_error_set(CKPT_EINVAL, "fn gave no leaf");
	}
	if (rc == 0) {
		rc = insert_at(res, v->to, out); /* takes out */
		out = NULL;
	}
	ckpt_tree_free(out);
	for (size_t i = 0; in && i < v->ninputs; i++)
		ckpt_tree_free(in[i]);
	free(in);
	return rc ? ckpt_error_wrap(rc, "item %s: value transform to '%s'", c->item, v->to) : 0;
}

static void shape_str(char *buf, size_t cap, unsigned nd, const uint64_t *shape)
{
	ckpt_tree_shape_str(buf, cap, nd, shape);
}

/* Copy n elements starting at element `from` of v into dst (cast st -> dt). */
static int copy_run(ckpt_value *v, ckpt_dtype st, ckpt_dtype dt, uint64_t from, uint64_t n,
		    unsigned char *dst, unsigned char *bounce, uint64_t per)
{
	size_t ssz = ckpt_dtype_size(st), dsz = ckpt_dtype_size(dt);

	for (uint64_t i = 0; i < n; i += per) {
		uint64_t k = n - i < per ? n - i : per;
		void *buf = st == dt ? dst + i * dsz : bounce;
		size_t got = 0;
		int rc = ckpt_value_pread(&got, v, buf, (size_t)(k * ssz), (from + i) * ssz);

		if (rc)
			return rc;
		if (got != k * ssz)
			return ckpt_error_set(CKPT_ECORRUPT, "short read");
		if (st != dt && (rc = ckpt_dtype_cast(dst + i * dsz, dt, bounce, st, (size_t)k)))
			return rc;
	}
	return 0;
}

/* Copy the box common to shapes ss (saved) and ts (target), both of nd dims. */
static int copy_box(ckpt_value *v, ckpt_dtype st, ckpt_dtype dt, unsigned nd, const uint64_t *ss,
		    const uint64_t *ts, unsigned char *dst, unsigned char *bounce, uint64_t per)
{
	uint64_t idx[CKPT_TREE_MAX_NDIM] = {0};
	uint64_t inner = ss[nd - 1] < ts[nd - 1] ? ss[nd - 1] : ts[nd - 1];
	size_t dsz = ckpt_dtype_size(dt);

	assert(nd >= 1 && nd <= CKPT_TREE_MAX_NDIM);
	for (unsigned d = 0; d < nd; d++)
		if (ss[d] == 0 || ts[d] == 0)
			return 0;
	for (;;) {
		uint64_t so = 0, to = 0;
		for (unsigned d = 0; d + 1 < nd; d++) {
			so = so * ss[d] + idx[d];
			to = to * ts[d] + idx[d];
		}
		so *= ss[nd - 1];
		to *= ts[nd - 1];
		int rc = copy_run(v, st, dt, so, inner, dst + to * dsz, bounce, per);
		if (rc)
			return rc;
		int d = (int)nd - 2;
		for (; d >= 0; d--) {
			uint64_t lim = ss[d] < ts[d] ? ss[d] : ts[d];
			if (++idx[d] < lim)
				break;
			idx[d] = 0;
		}
		if (d < 0)
			return 0;
	}
}

/* A slice of the saved array (la->has_box): read the box alone, then cast it. */
static int read_box(ckpt_tree **out, struct restore_ctx *c, const ckpt_tree *meta,
		    const char *path, const char *key, const ckpt_leaf_restore_args *la)
{
	ckpt_dtype st = ckpt_tree_dtype(meta);
	ckpt_dtype dt = la->dtype != CKPT_DTYPE_INVALID ? la->dtype : st;
	unsigned nd = ckpt_tree_ndim(meta);
	const uint64_t *ss = ckpt_tree_shape(meta);
	size_t ssz = ckpt_dtype_size(st), dsz = ckpt_dtype_size(dt);
	unsigned char *box = NULL, *dst = NULL;
	ckpt_value *v = NULL;
	uint64_t n = 1;
	int rc;

	if (dsz == 0 || ssz == 0)
		return ckpt_error_set(CKPT_EINVAL, "leaf '%s': invalid dtype", path);
	for (unsigned d = 0; d < nd; d++) {
		if (la->box_start[d] > ss[d] || la->box_shape[d] > ss[d] - la->box_start[d])
			return ckpt_error_set(CKPT_EINVAL,
					      "leaf '%s': box dimension %u: %llu:%llu is outside "
					      "0:%llu",
					      path, d, (unsigned long long)la->box_start[d],
					      (unsigned long long)(la->box_start[d] + la->box_shape[d]),
					      (unsigned long long)ss[d]);
		n *= la->box_shape[d];
	}
	if (la->has_shape && (la->ndim != nd || memcmp(la->shape, la->box_shape,
						       nd * sizeof(uint64_t)) != 0)) {
		char a[256], b[256];
		shape_str(a, sizeof(a), nd, la->box_shape);
		shape_str(b, sizeof(b), la->ndim, la->shape);
		return ckpt_error_set(CKPT_ESHAPE, "leaf '%s': box shape %s differs from target %s",
				      path, a, b);
	}
	if ((rc = ckpt_value_open(&v, ckpt_step_store(c->s), key, strlen(key))) != 0)
		return ckpt_error_wrap(rc, "%s", key);
	if (!(box = ckpt_mem_malloc_large((size_t)(n * ssz) + 1)) ||
	    (st != dt && !(dst = ckpt_mem_malloc_large((size_t)(n * dsz) + 1)))) {
		rc = ckpt_error_nomem();
		goto done;
	}
	if ((rc = ckpt_value_pread_box(v, ssz, nd, ss, la->box_start, la->box_shape, box)) != 0 ||
	    (dst && (rc = ckpt_dtype_cast(dst, dt, box, st, (size_t)n)) != 0)) {
		ckpt_error_wrap(rc, "%s", key);
		goto done;
	}
	if (dst) {
		free(box);
		box = dst;
		dst = NULL;
	}
	rc = ckpt_tree_new_array(out, dt, nd, la->box_shape, box, CKPT_TREE_OWN);
	box = NULL;
done:
	free(box);
	free(dst);
	ckpt_value_free(v);
	return rc;
}

static int read_array(ckpt_tree **out, struct restore_ctx *c, const ckpt_tree *meta,
		      const char *path, const char *key, const ckpt_leaf_restore_args *la)
{
	ckpt_dtype st = ckpt_tree_dtype(meta);
	ckpt_dtype dt = la->dtype != CKPT_DTYPE_INVALID ? la->dtype : st;
	unsigned snd = ckpt_tree_ndim(meta), tnd = la->has_shape ? la->ndim : snd;
	const uint64_t *ss = ckpt_tree_shape(meta);
	const uint64_t *ts = la->has_shape ? la->shape : ss;
	size_t ssz = ckpt_dtype_size(st), dsz = ckpt_dtype_size(dt);
	unsigned char *dst = NULL, *bounce = NULL;
	ckpt_value *v = NULL;
	uint64_t tn = 1, per;
	int same = tnd == snd, rc;

	if (dsz == 0 || ssz == 0)
		return ckpt_error_set(CKPT_EINVAL, "leaf '%s': invalid dtype", path);
	if (tnd > CKPT_TREE_MAX_NDIM)
		return ckpt_error_set(CKPT_EINVAL, "leaf '%s': target has too many dimensions",
				      path);
	for (unsigned d = 0; same && d < snd; d++)
		same = ss[d] == ts[d];
	if (!same && (c->args == NULL || c->args->strict || tnd != snd)) {
		char a[256], b[256];
		shape_str(a, sizeof(a), snd, ss);
		shape_str(b, sizeof(b), tnd, ts);
		return ckpt_error_set(
		    CKPT_ESHAPE, "leaf '%s': saved shape %s differs from target %s%s", path, a, b,
		    tnd != snd && c->args && !c->args->strict
			? " (non-strict restore needs the same number of "
			  "dimensions)"
			: "");
	}
	for (unsigned d = 0; d < tnd; d++) {
		if (ts[d] && tn > UINT64_MAX / ts[d] / dsz)
			return ckpt_error_set(CKPT_EINVAL, "leaf '%s': target shape too large",
					      path);
		tn *= ts[d];
	}
	rc = ckpt_value_open(&v, ckpt_step_store(c->s), key, strlen(key));
	if (rc)
		return ckpt_error_wrap(rc, "%s", key);
	if (ckpt_value_get_info(v)->size != ckpt_tree_nbytes(meta)) {
		rc = ckpt_error_set(CKPT_ECORRUPT,
				    "%s: stored value has %llu bytes, metadata says %llu", key,
				    (unsigned long long)ckpt_value_get_info(v)->size,
				    (unsigned long long)ckpt_tree_nbytes(meta));
		goto done;
	}
	per = c->cap / (ssz > dsz ? ssz : dsz);
	if (per == 0)
		per = 1;
	dst = ckpt_mem_malloc_large((size_t)(tn * dsz));
	if (!dst || (st != dt && !(bounce = malloc((size_t)(per < tn ? per : tn) * ssz + 1)))) {
		rc = ckpt_error_nomem();
		goto done;
	}
	if (!same) /* copy_box leaves the padding of a larger target untouched */
		memset(dst, 0, (size_t)(tn * dsz));
	rc = same ? copy_run(v, st, dt, 0, tn, dst, bounce, per)
		  : copy_box(v, st, dt, snd, ss, ts, dst, bounce, per);
	if (rc) {
		ckpt_error_wrap(rc, "%s", key);
		goto done;
	}
	rc = ckpt_tree_new_array(out, dt, tnd, ts, dst, CKPT_TREE_OWN);
	dst = NULL;
done:
	free(dst);
	free(bounce);
	ckpt_value_free(v);
	return rc;
}

static int selected(const struct restore_ctx *c, const char *path)
{
	if (!c->sels)
		return 1;
	for (size_t i = 0; i < c->nsels; i++) {
		size_t n = strlen(c->sels[i]);
		if (n == 0 || (strncmp(path, c->sels[i], n) == 0 && (!path[n] || path[n] == '/')))
			return 1;
	}
	return 0;
}

/* The end node (leaf, None, empty container) meta restored as *out. */
static int read_node(ckpt_tree **out, struct restore_ctx *c, const ckpt_tree *meta,
		     const char *path, const ckpt_tree *target)
{
	const ckpt_pytree_restore_args *a = c->args;
	ckpt_leaf_restore_args la = {CKPT_DTYPE_INVALID, 0, {0}, 0, 0, {0}, {0}};
	ckpt_tree_kind k = ckpt_tree_get_kind(meta);
	void *val = NULL;
	size_t len = 0;
	char *key = NULL;
	int rc = 0;

	*out = NULL;
	if (target && ckpt_tree_get_kind(target) == CKPT_TREE_ARRAY && k == CKPT_TREE_ARRAY) {
		la.dtype = ckpt_tree_dtype(target);
		la.ndim = ckpt_tree_ndim(target);
		memcpy(la.shape, ckpt_tree_shape(target), la.ndim * sizeof(uint64_t));
		la.has_shape = 1;
	}
	if (ckpt_tree_is_container(meta) || k == CKPT_TREE_NONE)
		return ckpt_tree_clone(out, meta); /* empty: structure only */
	if (a && a->leaf_args && (rc = a->leaf_args(&la, path, meta, a->payload)))
		return rc < 0 ? rc
			      : ckpt_error_set(CKPT_ERROR, "leaf_args stopped the restore at '%s'",
					       path);
	key = ckpt_asprintf("%s/%s", c->item, path);
	if (!key)
		return CKPT_ENOMEM;
	if (k == CKPT_TREE_ARRAY) {
		rc = la.has_box ? read_box(out, c, meta, path, key, &la)
				: read_array(out, c, meta, path, key, &la);
		goto done;
	}
	rc = ckpt_store_get(&val, &len, ckpt_step_store(c->s), key, strlen(key));
	if (rc) {
		ckpt_error_wrap(rc, "%s", key);
		goto done;
	}
	if (k == CKPT_TREE_STRING)
		rc = ckpt_tree_new_string(out, val, len);
	else if ((rc = ckpt_scalar_parse(out, val, len, k)) != 0)
		rc = ckpt_error_wrap(CKPT_ECORRUPT, "%s", key);
done:
	if (rc == 0 && ckpt_tree_custom_metadata(meta) && !ckpt_tree_custom_metadata(*out))
		rc = ckpt_tree_set_custom_metadata(*out, ckpt_tree_custom_metadata(meta));
	if (rc) {
		ckpt_tree_free(*out);
		*out = NULL;
	}
	free(val);
	free(key);
	return rc;
}

static int restore_leaf(ckpt_tree **out, const ckpt_tree *meta, const char *path, void *payload)
{
	struct restore_ctx *c = payload;
	const ckpt_pytree_restore_args *a = c->args;
	ckpt_tree *t = NULL, *node = NULL;
	char *to = NULL;
	int rc;

	if (!selected(c, path))
		return CKPT_MAP_SKIP;
	if ((rc = map_path(&to, c, path)) != 0)
		return rc;
	if (!to)
		return CKPT_MAP_SKIP; /* left out by the transforms */
	if (a && a->item && ckpt_tree_lookup(&t, a->item, to) != 0) {
		t = NULL;
		if (a->partial_restore || (xform(c) && !a->transforms_default_to_original)) {
			free(to);
			return CKPT_MAP_SKIP;
		}
		rc = ckpt_error_set(CKPT_EINVAL,
				    "item %s: the target has no '%s', which the checkpoint "
				    "has%s (use partial_restore to restore a subset)",
				    c->item, to, xform(c) ? " after the transforms" : "");
		free(to);
		return rc;
	}
	rc = read_node(&node, c, meta, path, t);
	if (rc == 0 && xform(c)) { /* built at its new path; the mapped copy gets nothing */
		rc = insert_at(c->moved, to, node);
		node = NULL;
		if (rc == 0)
			rc = CKPT_MAP_SKIP;
	}
	free(to);
	*out = node;
	return rc;
}

/* Every leaf of the target must come from the checkpoint (or, with transforms
 * and not default_to_original, hold its own value). */
static int check_target_leaf(ckpt_tree *node, const char *path, void *payload)
{
	const struct restore_ctx *c = payload;
	const ckpt_tree *meta = NULL;
	ckpt_tree *m = NULL;
	ckpt_tree_kind k = ckpt_tree_get_kind(node);

	if (ckpt_tree_is_container(node) || k == CKPT_TREE_NONE || value_target(c, path))
		return 0;
	if (xform(c)) {
		if (landed(c, path))
			return 0;
		if (c->args->transforms_default_to_original)
			return ckpt_error_set(CKPT_ENOTFOUND,
					      "item %s: no saved leaf is restored as the target's "
					      "'%s' (no rule gives it, and the checkpoint has no "
					      "such leaf)",
					      c->item, path);
		if (k == CKPT_TREE_ARRAY && !ckpt_tree_data(node))
			return ckpt_error_set(CKPT_EINVAL,
					      "item %s: the target's '%s' is not in the checkpoint "
					      "and has no data of its own to use",
					      c->item, path);
		return 0;
	}
	if (ckpt_step_item_tree(&meta, c->s, c->item) != 0)
		return CKPT_ERROR;
	if (ckpt_tree_lookup(&m, meta, path) != 0)
		return ckpt_error_set(CKPT_ENOTFOUND,
				      "item %s: the target's leaf '%s' is not in the "
				      "checkpoint",
				      c->item, path);
	return 0;
}

/* ---- the result shaped by the target (Orbax restores into the caller's item) ---- */

/* A scalar or one-element array r as a scalar of kind k (Orbax: the target's type). */
static int to_scalar(ckpt_tree **out, const ckpt_tree *r, ckpt_tree_kind k, const char *path)
{
	ckpt_tree_kind rk = ckpt_tree_get_kind(r);
	double d = 0;
	int64_t i = 0;
	int is_int = 0;

	*out = NULL;
	if (rk == CKPT_TREE_INT || rk == CKPT_TREE_BOOL) {
		i = rk == CKPT_TREE_INT ? ckpt_tree_int(r) : ckpt_tree_bool(r);
		is_int = 1;
	} else if (rk == CKPT_TREE_FLOAT) {
		d = ckpt_tree_float(r);
	} else if (rk == CKPT_TREE_ARRAY && ckpt_tree_nelems(r) == 1 && ckpt_tree_data(r) &&
		   ckpt_tree_dtype(r) < CKPT_DTYPE_COMPLEX64) {
		ckpt_dtype dt = ckpt_tree_dtype(r);
		is_int = dt >= CKPT_DTYPE_BOOL && dt <= CKPT_DTYPE_UINT64;
		int rc = is_int ? ckpt_dtype_cast(&i, CKPT_DTYPE_INT64, ckpt_tree_data(r), dt, 1)
				: ckpt_dtype_cast(&d, CKPT_DTYPE_FLOAT64, ckpt_tree_data(r), dt, 1);
		if (rc)
			return rc;
	} else {
		return 1; /* not a number: left as restored */
	}
	if (k == CKPT_TREE_FLOAT)
		return ckpt_tree_new_float(out, is_int ? (double)i : d);
	if (!is_int) {
		if (!(d == floor(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0))
			return ckpt_error_set(CKPT_EINVAL,
					      "leaf '%s': saved %g is not an integer, as the "
					      "target's is",
					      path, d);
		i = (int64_t)d;
	}
	if (k == CKPT_TREE_INT)
		return ckpt_tree_new_int(out, i);
	if (i != 0 && i != 1)
		return ckpt_error_set(CKPT_EINVAL, "leaf '%s': saved %lld is not a bool, as the "
						   "target's is",
				      path, (long long)i);
	return ckpt_tree_new_bool(out, (int)i);
}

static int conform(ckpt_tree **node, const ckpt_tree *t, const char *path, struct restore_ctx *c);

static int cmp_ptr(const void *a, const void *b)
{
	const void *x = *(void *const *)a, *y = *(void *const *)b;

	return x < y ? -1 : x > y;
}

/* The children of container *node arranged as t's, and *node of t's kind. */
static int conform_container(ckpt_tree **node, const ckpt_tree *t, const char *path,
			     struct restore_ctx *c)
{
	ckpt_tree *r = *node, *nn = NULL, **kids = NULL;
	ckpt_tree_kind tk = ckpt_tree_get_kind(t), rk = ckpt_tree_get_kind(r);
	int keyed = tk == CKPT_TREE_DICT || tk == CKPT_TREE_NAMEDTUPLE;
	int rkeyed = rk == CKPT_TREE_DICT || rk == CKPT_TREE_NAMEDTUPLE;
	size_t n = 0;
	int rc;

	ckpt_tree **got = NULL, **used = NULL;
	size_t nt = ckpt_tree_count(t);

	if (!ckpt_tree_is_container(r))
		return ckpt_error_set(CKPT_EINVAL,
				      "item %s: the target has a container at '%s', the "
				      "checkpoint a leaf",
				      c->item, path);
	/* r's child for each of t's, found by key while r still has its index (O(1)) */
	if (!(got = calloc(nt ? nt : 1, sizeof(*got))) ||
	    !(used = calloc(nt ? nt : 1, sizeof(*used)))) {
		free(got);
		return ckpt_error_nomem();
	}
	for (size_t i = 0; i < nt; i++)
		used[i] = got[i] = ckpt_tree_find(r, ckpt_tree_key(ckpt_tree_child(t, i)));
	if (nt > 1)
		qsort(used, nt, sizeof(*used), cmp_ptr);
	if ((rc = ckpt_tree_detach_all(&kids, &n, r)) != 0) {
		free(got);
		free(used);
		return rc;
	}
	if (keyed == rkeyed) {
		rc = ckpt_tree_retype(r, tk, ckpt_tree_namedtuple_type(t));
		nn = r;
	} else {
		rc = tk == CKPT_TREE_NAMEDTUPLE
			 ? ckpt_tree_new_namedtuple(&nn, ckpt_tree_namedtuple_type(t))
			 : ckpt_tree_new(&nn, tk);
		if (rc == 0 && ckpt_tree_custom_metadata(r))
			rc = ckpt_tree_set_custom_metadata(nn, ckpt_tree_custom_metadata(r));
	}
	/* children the target does not have (skipped by partial restore) go */
	for (size_t j = 0; j < n; j++)
		if (!nt || !bsearch(&kids[j], used, nt, sizeof(*used), cmp_ptr))
			ckpt_tree_free(kids[j]);
	free(kids);
	free(used);
	for (size_t i = 0; i < nt; i++) {
		const ckpt_tree *tc = ckpt_tree_child(t, i);
		char *cp = NULL;
		if (rc == 0 && !(cp = path[0] ? ckpt_asprintf("%s/%s", path, ckpt_tree_name(tc))
					      : strdup(ckpt_tree_name(tc))))
			rc = ckpt_error_nomem();
		if (rc == 0)
			rc = conform(&got[i], tc, cp, c);
		free(cp);
		if (rc == 0)
			rc = ckpt_tree_add(nn, keyed ? ckpt_tree_key(tc) : NULL, got[i]);
		else
			ckpt_tree_free(got[i]); /* after a failure, the rest are freed */
	}
	free(got);
	if (nn != r) {
		ckpt_tree_free(r);
		*node = nn;
	}
	return rc;
}

/*
 * *node (owned; NULL when nothing was restored there) shaped by target node
 * t at path: containers as t's, scalars of t's kind; a node missing is
 * t's structure (None, empty container) or, with transforms and not
 * default_to_original, t's own value (check_target_leaf allowed it).
 */
static int conform(ckpt_tree **node, const ckpt_tree *t, const char *path, struct restore_ctx *c)
{
	ckpt_tree_kind tk = ckpt_tree_get_kind(t);
	ckpt_tree *s = NULL;
	int rc;

	if (!*node) {
		if (ckpt_tree_is_container(t) || tk == CKPT_TREE_NONE ||
		    (xform(c) && !c->args->transforms_default_to_original))
			return ckpt_tree_clone(node, t);
		return ckpt_error_set(CKPT_ENOTFOUND, "item %s: nothing restored for the "
						      "target's '%s'",
				      c->item, path);
	}
	if (ckpt_tree_is_container(t))
		return conform_container(node, t, path, c);
	if ((tk != CKPT_TREE_INT && tk != CKPT_TREE_FLOAT && tk != CKPT_TREE_BOOL) ||
	    ckpt_tree_get_kind(*node) == tk)
		return 0;
	rc = to_scalar(&s, *node, tk, path);
	if (rc == 1)
		return 0;
	if (rc == 0 && ckpt_tree_custom_metadata(*node))
		rc = ckpt_tree_set_custom_metadata(s, ckpt_tree_custom_metadata(*node));
	if (rc) {
		ckpt_tree_free(s);
		return rc;
	}
	ckpt_tree_free(*node);
	*node = s;
	return 0;
}

int ckpt_pytree_restore_item(void **out, ckpt_step *s, const char *item,
			     const ckpt_pytree_restore_args *args)
{
	struct restore_ctx c = {s, item, NULL, CKPT_PYTREE_RESTORE_ARGS_INIT, NULL, 0,
				DEFAULT_RESTORE_BYTES, NULL, NULL, 0, NULL};
	const ckpt_tree *meta = NULL;
	ckpt_tree *res = NULL;
	int rc;

	*out = NULL;
	CKPT_CHECK_VERSION(args, CKPT_PYTREE_RESTORE_ARGS_VERSION, "ckpt_pytree_restore_args");
	if (args) { /* a version 1 struct ends before transforms: the defaults stay */
		memcpy(&c.eff, args,
		       args->version >= 3   ? sizeof(*args)
		       : args->version == 2 ? offsetof(ckpt_pytree_restore_args, value_transforms)
					    : offsetof(ckpt_pytree_restore_args, transforms));
		c.args = &c.eff;
	}
	args = c.args;
	rc = ckpt_step_item_tree(&meta, s, item);
	if (rc)
		return rc;
	if (args && args->restore_concurrent_bytes)
		c.cap = args->restore_concurrent_bytes;
	if (args && args->ntransforms && !args->transforms)
		return ckpt_error_set(CKPT_EINVAL, "ntransforms is %zu but transforms is NULL",
				      args->ntransforms);
	if (args && args->paths) {
		c.sels = calloc(args->npaths ? args->npaths : 1, sizeof(char *));
		if (!c.sels)
			return ckpt_error_nomem();
		for (; rc == 0 && c.nsels < args->npaths; c.nsels++) {
			ckpt_tree *n = NULL;
			rc = ckpt_tree_lookup(&n, meta, args->paths[c.nsels]);
			if (rc == 0)
				rc = ckpt_tree_path(&c.sels[c.nsels], n);
			else
				ckpt_error_wrap(rc, "item %s", item);
		}
	}
	if (rc == 0 && args && args->nvalue_transforms)
		rc = values_check(&c, meta);
	if (rc == 0 && xform(&c))
		rc = transforms_prepare(&c, meta);
	if (rc == 0 && args && args->item)
		rc = ckpt_tree_walk((ckpt_tree *)args->item, check_target_leaf, &c);
	if (rc == 0)
		rc = ckpt_tree_map(&res, meta, restore_leaf, &c);
	if (rc == 0 && xform(&c)) {
		ckpt_tree_free(res);
		res = c.moved;
		c.moved = NULL;
		if (ckpt_tree_custom_metadata(meta))
			rc = ckpt_tree_set_custom_metadata(res, ckpt_tree_custom_metadata(meta));
	}
	for (size_t i = 0; rc == 0 && args && i < args->nvalue_transforms; i++)
		rc = value_apply(&c, meta, res, &args->value_transforms[i]);
	/* the result takes the target's shape; with paths it holds only those */
	if (rc == 0 && args && args->item && !args->paths)
		rc = conform(&res, args->item, "", &c);
	if (xform(&c))
		transforms_free(&c);
	for (size_t i = 0; c.sels && i < c.nsels; i++)
		free(c.sels[i]);
	free(c.sels);
	if (rc == 0)
		*out = res;
	else
		ckpt_tree_free(res);
	return rc;
}

/* ---- transforms of a metadata tree (ckpt_interchange_restore_mapped) ---- */

struct place_ctx {
	struct restore_ctx c;
	ckpt_pytree_placed_fn placed;
	void *payload;
};

/* ckpt_tree_walk callback: an end node of the saved tree, copied to its new path. */
static int place(ckpt_tree *node, const char *path, void *payload)
{
	struct place_ctx *p = payload;
	ckpt_tree *copy = NULL;
	char *to = NULL;
	int rc;

	if ((ckpt_tree_is_container(node) && ckpt_tree_count(node) > 0) || !path[0])
		return 0;
	if ((rc = map_path(&to, &p->c, path)) != 0 || !to)
		return rc;
	rc = ckpt_tree_clone(&copy, node);
	if (rc == 0 && (rc = p->placed(node, copy, p->payload)) != 0)
		ckpt_tree_free(copy);
	else if (rc == 0)
		rc = insert_at(p->c.moved, to, copy);
	free(to);
	return rc;
}

int ckpt_pytree_transform_meta(ckpt_tree **out, const ckpt_tree *meta,
			       const ckpt_restore_transform *t, size_t n, int default_to_original,
			       ckpt_pytree_placed_fn placed, void *payload)
{
	struct place_ctx p = {{NULL, "(transforms)", NULL, CKPT_PYTREE_RESTORE_ARGS_INIT, NULL, 0,
			       0, NULL, NULL, 0, NULL},
			      placed, payload};
	int rc;

	*out = NULL;
	if (!n || !t)
		return ckpt_error_set(CKPT_EINVAL, "no transforms");
	p.c.eff.transforms = t;
	p.c.eff.ntransforms = n;
	p.c.eff.transforms_default_to_original = default_to_original;
	p.c.args = &p.c.eff;
	rc = transforms_prepare(&p.c, meta);
	if (rc == 0)
		rc = ckpt_tree_walk((ckpt_tree *)meta, place, &p); /* place only reads meta */
	if (rc == 0 && ckpt_tree_custom_metadata(meta))
		rc = ckpt_tree_set_custom_metadata(p.c.moved, ckpt_tree_custom_metadata(meta));
	if (rc == 0) {
		*out = p.c.moved;
		p.c.moved = NULL;
	}
	transforms_free(&p.c);
	return rc;
}

int ckpt_pytree_metadata_item(void **out, ckpt_handler *h, ckpt_step *s, const char *item)
{
	const ckpt_tree *meta = NULL;
	ckpt_tree *copy = NULL;
	int rc;

	(void)h;
	*out = NULL;
	rc = ckpt_step_item_tree(&meta, s, item);
	if (rc == 0)
		rc = ckpt_tree_clone(&copy, meta);
	if (rc == 0)
		*out = copy;
	return rc;
}
