/*
 * fs/vnode.c — the nodes of an open step: numbered without being built,
 * built a directory at a time when first looked at. Design and invariants:
 * view.h ("Node ids").
 */
#include "view.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the id -> node map (nodes_lock held) ---- */

static uint32_t slot_of(uint32_t id, uint32_t cap)
{
	return (id * 2654435761u) & (cap - 1);
}

static struct vnode *map_find(const struct vstep *vs, uint32_t id)
{
	if (!vs->map_cap)
		return NULL;
	for (uint32_t i = slot_of(id, vs->map_cap);; i = (i + 1) & (vs->map_cap - 1)) {
		struct vnode *n = vs->map[i];
		if (!n || n->id == id)
			return n;
	}
}

static int map_grow(struct vstep *vs, uint32_t more)
{
	uint32_t cap = vs->map_cap ? vs->map_cap : 64;
	while ((uint64_t)(vs->map_n + more) * 2 > cap) {
		if (cap >= (1u << 31))
			return CKPT_ENOMEM;
		cap *= 2;
	}
	if (cap == vs->map_cap)
		return 0;
	struct vnode **m = calloc(cap, sizeof(*m));
	if (!m)
		return CKPT_ENOMEM;
	for (uint32_t i = 0; i < vs->map_cap; i++) {
		struct vnode *n = vs->map[i];
		if (!n)
			continue;
		uint32_t j = slot_of(n->id, cap);
		while (m[j])
			j = (j + 1) & (cap - 1);
		m[j] = n;
	}
	free(vs->map);
	vs->map = m;
	vs->map_cap = cap;
	return 0;
}

/* Add nodes [0, n) of kids to the map (room made by map_grow). */
static void map_add(struct vstep *vs, struct vnode *kids, uint32_t n)
{
	for (uint32_t k = 0; k < n; k++) {
		uint32_t j = slot_of(kids[k].id, vs->map_cap);
		while (vs->map[j]) {
			assert(vs->map[j]->id != kids[k].id);
			j = (j + 1) & (vs->map_cap - 1);
		}
		vs->map[j] = &kids[k];
		vs->map_n++;
	}
}

/* ---- a directory's name index ---- */

static uint32_t name_hash(const char *s)
{
	uint32_t h = 2166136261u;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

#define INDEX_MIN 8

/*
 * Give d its children kids[0, n) (contiguous) and, from INDEX_MIN children,
 * a name index. A tree directory's names are unique (the library refuses a
 * container with two equal keys; escaping is injective), and so are raw
 * keys (made unique as they are made); a step's entries could repeat a name
 * only through an odd item name (an item "_CHECKPOINT_METADATA"): as a
 * linear search would, the index then finds the first.
 * Does not publish them (view_dir_list does).
 */
static int set_kids(struct vnode *d, struct vnode *kids, uint32_t n)
{
	d->kids = kids;
	d->nkids = n;
	if (n < INDEX_MIN)
		return 0;
	uint32_t cap = 16;
	while (cap < 2 * n)
		cap *= 2;
	if (!(d->index = calloc(cap, sizeof(*d->index))))
		return CKPT_ENOMEM;
	d->index_mask = cap - 1;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t j = name_hash(kids[i].name) & d->index_mask;
		while (d->index[j] && strcmp(kids[d->index[j] - 1].name, kids[i].name) != 0)
			j = (j + 1) & d->index_mask;
		if (!d->index[j])
			d->index[j] = i + 1;
	}
	return 0;
}

/* ---- building: the step's own entries and the raw items, at open ---- */

struct builder {
	struct vnode *nodes;
	uint32_t n, cap;
	uint32_t *first; /* raw nodes: index of the first child in nodes */
	ckpt_step *step;
	uint32_t base; /* raw nodes: id of nodes[0] */
};

static int push(struct builder *b, const struct vnode *n)
{
	if (b->n == b->cap) {
		uint32_t cap = b->cap ? b->cap * 2 : 64;
		struct vnode *p = realloc(b->nodes, cap * sizeof(*p));
		uint32_t *f = realloc(b->first, cap * sizeof(*f));
		if (p)
			b->nodes = p;
		if (f)
			b->first = f;
		if (!p || !f)
			return CKPT_ENOMEM;
		b->cap = cap;
	}
	b->first[b->n] = 0;
	b->nodes[b->n++] = *n;
	return 0;
}

struct raw_list {
	struct builder *b;
	uint32_t parent, item;
	const char *prefix;
	size_t prefixlen;
	uint32_t first;
};

static int raw_cb(const void *name, size_t namelen, int is_prefix, void *payload)
{
	struct raw_list *l = payload;
	struct builder *b = l->b;
	if (namelen == 0 || memchr(name, 0, namelen))
		return 0;
	for (uint32_t i = l->first; i < b->n; i++) /* a name both key and prefix: once */
		if (strlen(b->nodes[i].name) == namelen && !memcmp(b->nodes[i].name, name, namelen))
			return 0;
	if (b->n >= UINT32_MAX / 2 - b->base) { /* ids stay below 2^31 (vnodes_build) */
		ckptfs_log("step %s: too many keys to number", ckpt_step_dir(b->step));
		return CKPT_EUNSUPPORTED;
	}
	struct vnode vn = {.id = b->base + b->n,
			   .parent = l->parent,
			   .item = l->item,
			   .type = is_prefix ? VN_RAWDIR : VN_RAW};
	vn.owned_name = strndup(name, namelen);
	vn.key = malloc(l->prefixlen + namelen + 1);
	if (!vn.owned_name || !vn.key)
		goto nomem;
	memcpy(vn.key, l->prefix, l->prefixlen);
	memcpy(vn.key + l->prefixlen, name, namelen);
	vn.key[l->prefixlen + namelen] = 0;
	vn.name = vn.owned_name;
	if (push(b, &vn))
		goto nomem;
	return 0;
nomem:
	free(vn.owned_name);
	free(vn.key);
	return CKPT_ENOMEM;
}

/* List the keys under prefix as children of parent (id) into b; *first, *count: where. */
static int push_raw(struct builder *b, uint32_t parent, uint32_t item, const char *prefix,
		    uint32_t *first, uint32_t *count)
{
	struct raw_list l = {b, parent, item, prefix, strlen(prefix), b->n};
	int rc = ckpt_step_list(b->step, prefix, l.prefixlen, '/', raw_cb, &l);
	*first = l.first;
	*count = b->n - l.first;
	return rc;
}

static void free_nodes(struct vnode *nodes, uint32_t n)
{
	for (uint32_t i = 0; nodes && i < n; i++) {
		ckpt_leaf_free(nodes[i].leaf);
		ckpt_value_free(nodes[i].value);
		ckpt_safetensors_free(nodes[i].st);
		free(nodes[i].owned_name);
		free(nodes[i].key);
		free(nodes[i].index);
		if (nodes[i].kids_owned) {
			free_nodes(nodes[i].kids, nodes[i].nkids);
			free(nodes[i].kids);
			free(nodes[i].names);
		}
	}
}

/*
 * The raw items' keys, breadth-first (ids from vs->raw0 in that order: the
 * same at every open): each item without a tree lists its keys as files.
 */
static int build_raw(struct vstep *vs, struct vnode *items)
{
	struct builder b = {.step = vs->step, .base = vs->raw0};
	uint32_t *ifirst = calloc(vs->nitems ? vs->nitems : 1, 2 * sizeof(*ifirst));
	char *prefix = NULL;
	int rc = ifirst ? 0 : CKPT_ENOMEM;

	for (uint32_t k = 0; k < vs->nitems && !rc; k++) {
		if (!vs->items[k].raw)
			continue;
		if (asprintf(&prefix, "%s/", items[k].name) < 0) {
			prefix = NULL;
			rc = CKPT_ENOMEM;
			break;
		}
		rc = push_raw(&b, items[k].id, k, prefix, &ifirst[2 * k], &ifirst[2 * k + 1]);
		free(prefix);
		prefix = NULL;
	}
	for (uint32_t i = 0; i < b.n && !rc; i++) {
		if (b.nodes[i].type != VN_RAWDIR)
			continue;
		if (asprintf(&prefix, "%s/", b.nodes[i].key) < 0) {
			prefix = NULL;
			rc = CKPT_ENOMEM;
			break;
		}
		uint32_t first, n;
		rc = push_raw(&b, vs->raw0 + i, b.nodes[i].item, prefix, &first, &n);
		free(prefix);
		prefix = NULL;
		b.first[i] = first;
		b.nodes[i].nkids = n;
	}
	if (rc == 0 && (rc = map_grow(vs, b.n)) == 0) {
		/* the table no longer moves: children become pointers */
		for (uint32_t i = 0; i < b.n; i++)
			if (b.nodes[i].type == VN_RAWDIR)
				rc = rc ? rc
					: set_kids(&b.nodes[i], b.nodes + b.first[i],
						   b.nodes[i].nkids);
		for (uint32_t k = 0; k < vs->nitems; k++)
			if (vs->items[k].raw)
				rc = rc ? rc
					: set_kids(&items[k], b.nodes + ifirst[2 * k],
						   ifirst[2 * k + 1]);
	}
	if (rc == 0) {
		map_add(vs, b.nodes, b.n);
		for (uint32_t i = 0; i < b.n; i++)
			if (b.nodes[i].type == VN_RAWDIR)
				b.nodes[i].listed = 1;
		for (uint32_t k = 0; k < vs->nitems; k++)
			if (vs->items[k].raw)
				items[k].listed = 1;
		vs->raw = b.nodes;
		vs->nraw = b.n;
		b.nodes = NULL;
	}
	free_nodes(b.nodes, b.n);
	free(b.nodes);
	free(b.first);
	free(ifirst);
	return rc;
}

/*
 * Beside a PyTree item, its safetensors file "<item>.safetensors" (unless an
 * item has that name).
 */
static int push_safetensors(struct builder *b, const struct vnode *items, uint32_t nitems,
			    uint32_t k)
{
	struct vnode vn = {.id = VIEW_ID_ST(k), .parent = 0, .item = k, .type = VN_SAFETENSORS};
	if (asprintf(&vn.owned_name, "%s.safetensors", items[k].name) < 0)
		return CKPT_ENOMEM;
	for (uint32_t j = 0; j < nitems; j++)
		if (!strcmp(items[j].name, vn.owned_name)) {
			free(vn.owned_name);
			return 0;
		}
	vn.name = vn.owned_name;
	int rc = push(b, &vn);
	if (rc)
		free(vn.owned_name);
	return rc;
}

int vnodes_build(struct vstep *vs)
{
	ckpt_step *step = vs->step;
	size_t nitems = ckpt_step_item_count(step);
	struct builder b = {.step = step};
	int rc = 0;

	if (nitems > (UINT32_MAX / 2 - 2) / 3 - 1) {
		ckptfs_log("step %s: too many items to number (%zu)", vs->name, nitems);
		return CKPT_EUNSUPPORTED;
	}
	vs->nitems = (uint32_t)nitems;
	vs->tree0 = VIEW_ID_ITEM(vs->nitems);
	if (!(vs->items = calloc(nitems ? nitems : 1, sizeof(*vs->items))))
		return CKPT_ENOMEM;
	/* the id ranges: the items' trees one after the other, then the raw keys */
	uint64_t next = vs->tree0;
	for (uint32_t k = 0; k < vs->nitems; k++) {
		uint64_t limit = 0;
		int trc = ckpt_step_item_id_limit(&limit, step, k);
		vs->items[k].base = (uint32_t)next;
		if (trc == 0) {
			vs->items[k].limit = (uint32_t)limit;
			next += limit;
		} else if (trc == CKPT_ENOTFOUND) {
			vs->items[k].raw = 1;
		} else if (trc == CKPT_ECORRUPT || trc == CKPT_EVERSION) {
			/* The step stays browsable; this item answers with the error. Only
			 * for errors every open meets: the ids after it depend on it. */
			ckptfs_log("step %s: item %s: %s", ckpt_step_dir(step),
				   ckpt_step_item_name(step, k), ckpt_error_last());
			vs->items[k].err = trc;
		} else {
			return trc; /* out of memory, I/O: the next open tries again */
		}
		if (next > UINT32_MAX / 2) {
			ckptfs_log("step %s: trees too large to number (%llu bytes)", vs->name,
				   (unsigned long long)next);
			return CKPT_EUNSUPPORTED;
		}
	}
	vs->raw0 = (uint32_t)next;

	/* the step directory's entries, in this order: ids 1, 2 + 3k, 4 + 3k */
	struct vnode meta = {
	    .id = VIEW_ID_STEPMETA, .name = "_CHECKPOINT_METADATA", .type = VN_STEPMETA};
	if ((rc = push(&b, &meta)))
		goto fail;
	for (uint32_t k = 0; k < vs->nitems && !rc; k++) {
		struct vnode it = {.id = VIEW_ID_ITEM(k),
				   .name = ckpt_step_item_name(step, k),
				   .item = k,
				   .type = VN_ITEM,
				   .item_err = vs->items[k].err};
		rc = push(&b, &it);
	}
	for (uint32_t k = 0; k < vs->nitems && !rc; k++)
		if (!vs->items[k].raw && !vs->items[k].err)
			rc = push_safetensors(&b, b.nodes + 1, vs->nitems, k);
	if (rc || (rc = map_grow(vs, b.n + 1)))
		goto fail;
	vs->top.name = vs->name;
	vs->top.type = VN_STEP;
	vs->top.listed = 1;
	if ((rc = set_kids(&vs->top, b.nodes, b.n))) {
		vs->top.kids = NULL;
		vs->top.nkids = 0;
		goto fail;
	}
	vs->top.kids_owned = 1; /* freed with the step from here on */
	map_add(vs, &vs->top, 1);
	map_add(vs, b.nodes, b.n);
	b.nodes = NULL;
	free(b.first);
	rc = build_raw(vs, vs->top.kids + 1);
	assert(rc || vnodes_check(vs));
	return rc;
fail:
	free_nodes(b.nodes, b.n);
	free(b.nodes);
	free(b.first);
	return rc;
}

void vnodes_free(struct vstep *vs)
{
	free_nodes(&vs->top, 1);
	free_nodes(vs->raw, vs->nraw);
	free(vs->raw);
	free(vs->map);
	free(vs->items);
}

/* ---- tree directories, listed on first need ---- */

struct tree_list {
	struct vstep *vs;
	const struct vnode *dir;
	uint32_t base; /* the item's view_item.base: a tree node's id is base + its tree id */
	struct vnode *kids;
	uint32_t n, cap;
	char *names;
	size_t nlen, ncap;
};

/* Append vn, named name, to the listing. */
static int add_kid(struct tree_list *l, const char *name, struct vnode vn)
{
	size_t len = strlen(name) + 1;
	if (l->n == l->cap) {
		uint32_t cap = l->cap ? l->cap * 2 : 16;
		struct vnode *p = realloc(l->kids, cap * sizeof(*p));
		if (!p)
			return CKPT_ENOMEM;
		l->kids = p;
		l->cap = cap;
	}
	if (l->nlen + len > l->ncap) {
		size_t cap = l->ncap ? l->ncap * 2 : 1024;
		while (cap < l->nlen + len)
			cap *= 2;
		char *p = realloc(l->names, cap);
		if (!p)
			return CKPT_ENOMEM;
		l->names = p;
		l->ncap = cap;
	}
	memcpy(l->names + l->nlen, name, len);
	vn.name = (const char *)(uintptr_t)l->nlen; /* a pointer once names stop moving */
	l->kids[l->n++] = vn;
	l->nlen += len;
	return 0;
}

static int tree_cb(const ckpt_tree_entry *e, void *payload)
{
	struct tree_list *l = payload;
	if (e->kind == CKPT_TREE_NONE)
		return 0; /* None has no file; _METADATA records it */
	/* the library's ids are offsets in the tree's bytes, numbered below 2^31 (vnodes_build) */
	assert(e->id > 0 && e->id < l->vs->items[l->dir->item].limit && e->pos < e->id);
	int dir = e->kind == CKPT_TREE_DICT || e->kind == CKPT_TREE_LIST ||
		  e->kind == CKPT_TREE_TUPLE || e->kind == CKPT_TREE_NAMEDTUPLE;
	return add_kid(l, e->name,
		       (struct vnode){.id = l->base + (uint32_t)e->id,
				      .parent = l->dir->id,
				      .item = l->dir->item,
				      .pos = (uint32_t)e->pos,
				      .type = dir ? VN_DIR : VN_LEAF});
}

static void tree_list_free(struct tree_list *l)
{
	free(l->kids);
	free(l->names);
}

/* Read tree directory d's children (VN_ITEM of a tree item, VN_DIR) into l; no lock. */
static int scan_tree_dir(struct tree_list *l, struct vstep *vs, const struct vnode *d)
{
	int rc = 0;

	if (d->type == VN_ITEM && /* first its _METADATA */
	    (rc = add_kid(l, "_METADATA",
			  (struct vnode){.id = VIEW_ID_META(d->item),
					 .parent = d->id,
					 .item = d->item,
					 .type = VN_ITEMMETA})))
		return rc;
	/* its id in the item's tree: 0 for the item's root (view.h "Node ids") */
	uint64_t tid = d->type == VN_ITEM ? 0 : d->id - l->base;
	rc = ckpt_step_item_children(vs->step, d->item, tid, tree_cb, l);
	if (rc == CKPT_EINVAL && d->type == VN_ITEM) { /* a tree that is one leaf: no files */
		ckpt_error_clear();
		rc = 0;
	}
	for (uint32_t i = 0; rc == 0 && i < l->n; i++)
		l->kids[i].name = l->names + (uintptr_t)l->kids[i].name;
	return rc;
}

/* Give d the children in l (nodes_lock held): l's arrays are d's from then. */
static int install(struct vstep *vs, struct vnode *d, struct tree_list *l)
{
	int rc;

	if ((rc = map_grow(vs, l->n)) || (rc = set_kids(d, l->kids, l->n))) {
		d->kids = NULL;
		d->nkids = 0;
		return rc;
	}
	map_add(vs, l->kids, l->n);
	d->names = l->names;
	d->kids_owned = 1;
	l->kids = NULL;
	l->names = NULL;
	return 0;
}

int view_dir_list(struct vstep *vs, struct vnode *d)
{
	if (__atomic_load_n(&d->listed, __ATOMIC_ACQUIRE))
		return 0;
	if (d->item_err)
		return d->item_err;
	assert(d->type == VN_ITEM || d->type == VN_DIR);
	/* Scanned without the lock (a big directory takes milliseconds); the first
	 * of two threads to get here installs its list, the other drops its own. */
	struct tree_list l = {.vs = vs, .dir = d, .base = vs->items[d->item].base};
	int rc = scan_tree_dir(&l, vs, d);
	if (rc == 0) {
		pthread_mutex_lock(&vs->nodes_lock);
		if (!d->listed && (rc = install(vs, d, &l)) == 0)
			__atomic_store_n(&d->listed, 1, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&vs->nodes_lock);
	}
	tree_list_free(&l);
	return rc;
}

/* The id of node id's parent, from the id alone: CKPT_ENOTFOUND if no node has it. */
static int parent_of(uint32_t *parent, struct vstep *vs, uint32_t id)
{
	if (id >= VIEW_ID_ITEM(0) && id < vs->tree0 && (id - VIEW_ID_ITEM(0)) % 3 == 1) {
		*parent = id - 1; /* an item's _METADATA */
		return 0;
	}
	if (id < vs->tree0 || id >= vs->raw0)
		return CKPT_ENOTFOUND; /* made at open: in the map if anywhere */
	for (uint32_t k = 0; k < vs->nitems; k++) {
		const struct view_item *it = &vs->items[k];
		if (it->raw || it->err || id < it->base || id - it->base >= it->limit)
			continue;
		uint64_t p = 0;
		int rc = ckpt_step_item_parent(&p, vs->step, k, id - it->base);
		if (rc == 0)
			*parent = p ? it->base + (uint32_t)p : VIEW_ID_ITEM(k);
		return rc;
	}
	return CKPT_ENOTFOUND;
}

int view_node(struct vnode **out, struct vstep *vs, uint32_t id)
{
	pthread_mutex_lock(&vs->nodes_lock);
	struct vnode *n = map_find(vs, id);
	pthread_mutex_unlock(&vs->nodes_lock);
	if (n) {
		*out = n;
		return 0;
	}
	/* Not made yet in this open (the LRU closed the step): its parent lists it. */
	uint32_t pid;
	struct vnode *p;
	int rc = parent_of(&pid, vs, id);
	if (rc == 0 && (rc = view_node(&p, vs, pid)) == 0 && (rc = view_dir_list(vs, p)) == 0) {
		pthread_mutex_lock(&vs->nodes_lock);
		n = map_find(vs, id);
		pthread_mutex_unlock(&vs->nodes_lock);
		rc = n ? 0 : CKPT_ENOTFOUND;
	}
	*out = n;
	return rc;
}

int view_child(struct vnode **out, struct vstep *vs, struct vnode *d, const char *name)
{
	int rc = view_dir_list(vs, d);
	*out = NULL;
	if (rc)
		return rc;
	if (d->index) {
		for (uint32_t j = name_hash(name) & d->index_mask; d->index[j];
		     j = (j + 1) & d->index_mask)
			if (!strcmp(d->kids[d->index[j] - 1].name, name)) {
				*out = &d->kids[d->index[j] - 1];
				return 0;
			}
		return CKPT_ENOTFOUND;
	}
	for (uint32_t i = 0; i < d->nkids; i++)
		if (!strcmp(d->kids[i].name, name)) {
			*out = &d->kids[i];
			return 0;
		}
	return CKPT_ENOTFOUND;
}

/* ---- what a node is: its tree node, its handles ---- */

/* The tree node of n (VN_ITEM: the item's tree), built on first need; vs->lock held. */
static int node_tree(const ckpt_tree **out, struct vstep *vs, struct vnode *n)
{
	const ckpt_tree *pt = NULL;
	struct vnode *p = NULL;
	int rc;

	if (n->tree) {
		*out = n->tree;
		return 0;
	}
	if (n->type == VN_ITEM) {
		rc = ckpt_step_item_tree(&pt, vs->step, n->name);
		if (rc == 0)
			n->tree = pt;
		*out = pt;
		return rc;
	}
	assert(n->type == VN_DIR || n->type == VN_LEAF);
	if ((rc = view_node(&p, vs, n->parent)) || (rc = node_tree(&pt, vs, p)))
		return rc;
	/* the listed bytes are the built tree's, so the node is where the listing has it */
	const ckpt_tree *c = ckpt_tree_child(pt, n->pos);
	if (!c || strcmp(ckpt_tree_name(c), n->name) != 0) {
		ckptfs_log("step %s: item %s: %s is not where its listing has it", vs->name,
			   ckpt_step_item_name(vs->step, n->item), n->name);
		ckpt_error_clear();
		return CKPT_ECORRUPT;
	}
	n->tree = c;
	*out = c;
	return 0;
}

int view_node_tree(const ckpt_tree **out, struct vstep *vs, struct vnode *n)
{
	pthread_mutex_lock(&vs->lock);
	int rc = node_tree(out, vs, n);
	pthread_mutex_unlock(&vs->lock);
	return rc;
}

int view_node_open(struct vstep *vs, struct vnode *n)
{
	int rc = 0;
	const ckpt_tree *t;
	pthread_mutex_lock(&vs->lock);
	if (n->type == VN_LEAF && !n->leaf) {
		const char *item = ckpt_step_item_name(vs->step, n->item);
		if ((rc = node_tree(&t, vs, n)) == 0)
			rc = ckpt_leaf_open(&n->leaf, vs->step, item, t);
	} else if (n->type == VN_RAW && !n->value) {
		if ((rc = ckpt_step_load_index(vs->step)) == 0)
			rc = ckpt_value_open(&n->value, ckpt_step_store(vs->step), n->key,
					     strlen(n->key));
	} else if (n->type == VN_ITEMMETA) { /* read now: a read cannot fail any more */
		const char *json = NULL;
		rc = ckpt_step_item_metadata_json(&json, vs->step,
						  ckpt_step_item_name(vs->step, n->item));
	} else if (n->type == VN_SAFETENSORS && !n->st) {
		ckpt_safetensors_options o = CKPT_SAFETENSORS_OPTIONS_INIT;
		o.sep = vs->st_sep;
		rc = ckpt_safetensors_open(&n->st, vs->step, ckpt_step_item_name(vs->step, n->item),
					   &o);
	}
	pthread_mutex_unlock(&vs->lock);
	return rc;
}

int view_node_size(uint64_t *out, struct vstep *vs, struct vnode *n)
{
	const char *json = NULL;
	int rc = 0;
	switch (n->type) {
	case VN_STEPMETA:
		json = ckpt_step_metadata_json(vs->step);
		*out = json ? strlen(json) : 0;
		return 0;
	case VN_ITEMMETA: /* from the listing: the index is not needed to list */
		return ckpt_step_item_metadata_size(out, vs->step,
						    ckpt_step_item_name(vs->step, n->item));
	case VN_LEAF: {
		/* An array's size is in the tree: `ls -l` of a directory of arrays builds
		 * the tree, but does not load the step's index (its first read does). */
		const ckpt_tree *t = NULL;
		if ((rc = view_node_tree(&t, vs, n)))
			return rc;
		if ((rc = ckpt_leaf_size_from_tree(out, t)) != CKPT_ENOTFOUND)
			return rc; /* the same as the opened leaf's (ckpt_leaf_open checks) */
		if ((rc = view_node_open(vs, n)))
			return rc;
		*out = ckpt_leaf_file_size(n->leaf);
		return 0;
	}
	case VN_RAW:
		if ((rc = view_node_open(vs, n)))
			return rc;
		*out = ckpt_value_get_info(n->value)->size;
		return 0;
	case VN_SAFETENSORS:
		if ((rc = view_node_open(vs, n)))
			return rc;
		*out = ckpt_safetensors_size(n->st);
		return 0;
	default: *out = 0; return 0;
	}
}

/* ---- the invariants (view.h), checked in one call ---- */

static void check_dir(const struct vstep *vs, const struct vnode *d)
{
	assert(vnode_is_dir(d) || d->nkids == 0);
	for (uint32_t i = 0; i < d->nkids; i++) {
		const struct vnode *c = &d->kids[i];
		assert(c->parent == d->id && map_find(vs, c->id) == c);
		assert(c->owned_name == NULL || c->name == c->owned_name);
		if (c->listed)
			check_dir(vs, c);
	}
}

int vnodes_check(const struct vstep *vs)
{
	assert(vs->top.id == 0 && vs->top.type == VN_STEP && vs->top.listed);
	assert(vs->tree0 == VIEW_ID_ITEM(vs->nitems) && vs->raw0 >= vs->tree0);
	for (uint32_t k = 0; k < vs->nitems; k++) {
		const struct view_item *it = &vs->items[k];
		assert(!it->raw || (!it->err && !it->limit));
		assert(k + 1 == vs->nitems || it->base + it->limit == vs->items[k + 1].base);
	}
	assert(map_find(vs, 0) == &vs->top);
	check_dir(vs, &vs->top);
	return 1;
}
