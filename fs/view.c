/*
 * fs/view.c — steps of the root, opening them (nodes: vnode.c), the LRU of open steps.
 * Design and invariants: view.h.
 */
#include "view.h"

#include <assert.h>
#include <cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct slot {
	uint64_t number;
	char name[VIEW_NAME_LEN]; /* the directory's name: several may share a number */
	dev_t dev;
	ino_t ino;
	int alive;         /* listed in ROOT at the last scan */
	struct vstep *vs;  /* installed open step, or NULL (holds one ref) */
};

struct view {
	char *root;
	struct view_config cfg;
	pthread_mutex_t scan_lock; /* one view_rescan at a time (the poller, a finalize) */
	pthread_mutex_t lock; /* protects everything below */
	struct slot *slots;   /* grows; never shrinks (invariant 1) */
	uint32_t nslots, capslots;
	uint32_t *order; /* alive slots, ascending by (step number, name) */
	uint32_t norder;
	uint32_t nopen; /* installed vsteps */
	uint64_t tick;
	struct timespec root_mtime, root_ctime;
	int scanned;
};

static int view_check_locked(const struct view *v);

/* Bytes of data files read by steps already closed (view_bytes_read). */
static uint64_t gone_bytes_read;

static void vstep_free(struct vstep *vs)
{
	if (!vs)
		return;
	if (vs->step)
		__atomic_fetch_add(&gone_bytes_read, ckpt_step_bytes_read(vs->step),
				   __ATOMIC_RELAXED);
	vnodes_free(vs);
	cJSON_free(vs->custom_metadata);
	ckpt_step_free(vs->step);
	pthread_mutex_destroy(&vs->lock);
	pthread_mutex_destroy(&vs->nodes_lock);
	free(vs);
}

static int vstep_open(struct vstep **out, const struct view *v, uint32_t slot, uint64_t number,
		      const char *name)
{
	int rc = 0;
	char *dir = NULL;
	struct vstep *vs = calloc(1, sizeof(*vs));
	if (!vs)
		return CKPT_ENOMEM;
	pthread_mutex_init(&vs->lock, NULL);
	pthread_mutex_init(&vs->nodes_lock, NULL);
	vs->slot = slot;
	vs->st_sep = v->cfg.st_sep ? v->cfg.st_sep : '.';
	vs->number = number;
	snprintf(vs->name, sizeof(vs->name), "%s", name);
	if (asprintf(&dir, "%s/%s", v->root, vs->name) < 0) {
		dir = NULL;
		rc = CKPT_ENOMEM;
		goto done;
	}
	ckpt_store_options so = CKPT_STORE_OPTIONS_INIT;
	so.cache_size = v->cfg.cache_size / (v->cfg.max_open_steps ? v->cfg.max_open_steps : 1);
	/* Listed: the index is opened when a value is first read, not to list the step. */
	if ((rc = ckpt_step_open_listed(&vs->step, dir, &so)))
		goto done;
	int64_t ns = ckpt_step_commit_time_ns(vs->step);
	if (ns > 0) {
		vs->time.tv_sec = ns / 1000000000;
		vs->time.tv_nsec = ns % 1000000000;
	} else {
		struct stat st;
		if (stat(dir, &st) == 0)
			vs->time = st.st_mtim;
	}
	const char *json = ckpt_step_metadata_json(vs->step);
	cJSON *doc = json ? cJSON_Parse(json) : NULL;
	const cJSON *cm = cJSON_GetObjectItemCaseSensitive(doc, "custom_metadata");
	if (cm && !cJSON_IsNull(cm) && !(vs->custom_metadata = cJSON_PrintUnformatted(cm)))
		rc = CKPT_ENOMEM;
	cJSON_Delete(doc);
	if (rc)
		goto done;
	if ((rc = vnodes_build(vs)))
		goto done;
	*out = vs;
	vs = NULL;
done:
	vstep_free(vs);
	free(dir);
	return rc;
}

/* ---- the view ---- */

int view_new(struct view **out, const char *root, const struct view_config *cfg)
{
	struct view *v = calloc(1, sizeof(*v));
	if (!v || !(v->root = strdup(root))) {
		free(v);
		return CKPT_ENOMEM;
	}
	v->cfg = *cfg;
	if (v->cfg.max_open_steps == 0)
		v->cfg.max_open_steps = 1;
	pthread_mutex_init(&v->lock, NULL);
	pthread_mutex_init(&v->scan_lock, NULL);
	*out = v;
	return 0;
}

void view_free(struct view *v)
{
	if (!v)
		return;
	for (uint32_t i = 0; i < v->nslots; i++) {
		struct vstep *vs = v->slots[i].vs;
		if (vs && --vs->refs == 0)
			vstep_free(vs);
	}
	free(v->slots);
	free(v->order);
	pthread_mutex_destroy(&v->lock);
	pthread_mutex_destroy(&v->scan_lock);
	free(v->root);
	free(v);
}

const char *view_root_path(const struct view *v)
{
	return v->root;
}

struct timespec view_root_mtime(struct view *v)
{
	pthread_mutex_lock(&v->lock);
	struct timespec t = v->root_mtime;
	pthread_mutex_unlock(&v->lock);
	return t;
}

struct found {
	uint64_t number;
	dev_t dev;
	ino_t ino;
	const char *name; /* borrowed from the scan's list */
};

/* Order of slots and found steps: by number, then by name. */
static int name_cmp(uint64_t a, const char *an, uint64_t b, const char *bn)
{
	return a < b ? -1 : a > b ? 1 : strcmp(an, bn);
}

static int same_time(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static int rescan(struct view *v, int force, void (*changed)(const char *name, void *p), void *p);

/* Scans run one at a time: an older scan must not undo a newer one. */
int view_rescan(struct view *v, int force, void (*changed)(const char *name, void *p), void *p)
{
	pthread_mutex_lock(&v->scan_lock);
	int rc = rescan(v, force, changed, p);
	pthread_mutex_unlock(&v->scan_lock);
	return rc;
}

static int rescan(struct view *v, int force, void (*changed)(const char *name, void *p), void *p)
{
	int rc = 0;
	struct stat rst;
	ckpt_root_step *steps = NULL;
	size_t n = 0, nf = 0;
	struct found *f = NULL;
	uint32_t *order = NULL;
	struct vstep **drop = NULL;
	size_t ndrop = 0;
	char (*names)[VIEW_NAME_LEN] = NULL;
	size_t nnames = 0;

	int have_root = stat(v->root, &rst) == 0;
	pthread_mutex_lock(&v->lock);
	int same = v->scanned && have_root && same_time(rst.st_mtim, v->root_mtime) &&
		   same_time(rst.st_ctim, v->root_ctime);
	pthread_mutex_unlock(&v->lock);
	if (same && !force)
		return 0;

	if (have_root) {
		rc = ckpt_root_step_dirs(&steps, &n, v->root); /* every naming */
		if (rc == CKPT_ENOTFOUND) {
			rc = 0;
			n = 0;
		} else if (rc) {
			return rc;
		}
	}
	f = calloc(n + 1, sizeof(*f));
	if (!f) {
		rc = CKPT_ENOMEM;
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", v->root, steps[i].name);
		if (stat(path, &st) || !S_ISDIR(st.st_mode))
			continue; /* deleted meanwhile */
		f[nf++] = (struct found){steps[i].step, st.st_dev, st.st_ino, steps[i].name};
	}

	pthread_mutex_lock(&v->lock);
	order = calloc(nf + 1, sizeof(*order));
	drop = calloc(v->norder + 1, sizeof(*drop));
	names = calloc(v->norder + nf + 2, sizeof(*names));
	if (!order || !drop || !names || v->nslots + nf >= UINT32_MAX - 1) {
		pthread_mutex_unlock(&v->lock);
		rc = CKPT_ENOMEM;
		goto done;
	}
	if (v->nslots + nf > v->capslots) {
		uint32_t cap = v->capslots ? v->capslots : 64;
		while (cap < v->nslots + nf)
			cap *= 2;
		struct slot *s = realloc(v->slots, cap * sizeof(*s));
		if (!s) {
			pthread_mutex_unlock(&v->lock);
			rc = CKPT_ENOMEM;
			goto done;
		}
		v->slots = s;
		v->capslots = cap;
	}
	char old_latest[VIEW_NAME_LEN] = "", new_latest[VIEW_NAME_LEN] = "";
	if (v->norder)
		snprintf(old_latest, sizeof(old_latest), "%s", v->slots[v->order[v->norder - 1]].name);
	/* Merge the old alive slots with the found steps (both ascending). */
	size_t a = 0, k = 0, norder = 0;
	while (a < v->norder || k < nf) {
		struct slot *s = a < v->norder ? &v->slots[v->order[a]] : NULL;
		const struct found *fk = k < nf ? &f[k] : NULL;
		int c = s && fk ? name_cmp(s->number, s->name, fk->number, fk->name) : 0;
		if (s && fk && c == 0 && s->dev == fk->dev && s->ino == fk->ino) {
			order[norder++] = v->order[a];
			a++, k++;
		} else if (s && (!fk || c <= 0)) {
			s->alive = 0; /* gone (or replaced: the new one gets a new slot) */
			if (s->vs) {
				drop[ndrop++] = s->vs;
				s->vs = NULL;
				v->nopen--;
			}
			snprintf(names[nnames++], VIEW_NAME_LEN, "%s", s->name);
			a++;
		} else {
			uint32_t id = v->nslots++;
			v->slots[id] = (struct slot){fk->number, "", fk->dev, fk->ino, 1, NULL};
			snprintf(v->slots[id].name, VIEW_NAME_LEN, "%s", fk->name);
			order[norder++] = id;
			snprintf(names[nnames++], VIEW_NAME_LEN, "%s", fk->name);
			k++;
		}
	}
	free(v->order);
	v->order = order;
	v->norder = (uint32_t)norder;
	order = NULL;
	if (v->norder)
		snprintf(new_latest, sizeof(new_latest), "%s", v->slots[v->order[v->norder - 1]].name);
	if (strcmp(old_latest, new_latest))
		snprintf(names[nnames++], VIEW_NAME_LEN, "latest");
	for (size_t i = 0; i < ndrop; i++)
		if (--drop[i]->refs)
			drop[i] = NULL; /* still used (open files): freed by the last view_put */
	if (have_root) {
		v->root_mtime = rst.st_mtim;
		v->root_ctime = rst.st_ctim;
	}
	v->scanned = 1;
	assert(view_check_locked(v));
	pthread_mutex_unlock(&v->lock);

	for (size_t i = 0; i < ndrop; i++)
		vstep_free(drop[i]);
	if (changed)
		for (size_t i = 0; i < nnames; i++)
			changed(names[i], p);
done:
	free(steps);
	free(f);
	free(order);
	free(drop);
	free(names);
	return rc;
}

int view_latest(char *buf, struct view *v)
{
	int rc = CKPT_ENOTFOUND;
	pthread_mutex_lock(&v->lock);
	if (v->norder) {
		snprintf(buf, VIEW_NAME_LEN, "%s", v->slots[v->order[v->norder - 1]].name);
		rc = 0;
	}
	pthread_mutex_unlock(&v->lock);
	return rc;
}

int view_list(struct view_entry **out, size_t *n, struct view *v)
{
	pthread_mutex_lock(&v->lock);
	struct view_entry *e = calloc(v->norder + 1, sizeof(*e));
	if (!e) {
		pthread_mutex_unlock(&v->lock);
		return CKPT_ENOMEM;
	}
	for (uint32_t i = 0; i < v->norder; i++) {
		snprintf(e[i].name, sizeof(e[i].name), "%s", v->slots[v->order[i]].name);
		e[i].ino = view_ino(v->order[i], 0);
	}
	*n = v->norder;
	pthread_mutex_unlock(&v->lock);
	*out = e;
	return 0;
}

int view_find(uint32_t *slot, struct view *v, const char *name)
{
	uint64_t number;
	if (!ckpt_step_dir_name_any(&number, name))
		return CKPT_ENOTFOUND;
	int rc = CKPT_ENOTFOUND;
	pthread_mutex_lock(&v->lock);
	uint32_t lo = 0, hi = v->norder; /* binary search of the ascending order */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct slot *m = &v->slots[v->order[mid]];
		int c = name_cmp(m->number, m->name, number, name);
		if (c == 0) {
			*slot = v->order[mid];
			rc = 0;
			break;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	pthread_mutex_unlock(&v->lock);
	return rc;
}

/* Close least recently used steps beyond the bound; returns them for freeing. */
static size_t evict(struct view *v, struct vstep **victims, size_t cap)
{
	size_t n = 0;
	while (v->nopen > v->cfg.max_open_steps && n < cap) {
		struct slot *best = NULL;
		for (uint32_t i = 0; i < v->nslots; i++) {
			struct slot *s = &v->slots[i];
			if (s->vs && s->vs->refs == 1 && (!best || s->vs->last_use < best->vs->last_use))
				best = s;
		}
		if (!best)
			break; /* all in use: the bound is soft for open files */
		victims[n++] = best->vs;
		best->vs->refs = 0;
		best->vs = NULL;
		v->nopen--;
	}
	return n;
}

int view_get(struct vstep **out, struct view *v, uint32_t slot)
{
	pthread_mutex_lock(&v->lock);
	if (slot >= v->nslots || !v->slots[slot].alive) {
		pthread_mutex_unlock(&v->lock);
		return CKPT_ENOTFOUND;
	}
	struct vstep *vs = v->slots[slot].vs;
	if (vs) {
		vs->refs++;
		vs->last_use = ++v->tick;
		pthread_mutex_unlock(&v->lock);
		*out = vs;
		return 0;
	}
	uint64_t number = v->slots[slot].number;
	char name[VIEW_NAME_LEN];
	memcpy(name, v->slots[slot].name, sizeof(name)); /* a slot's name never changes */
	pthread_mutex_unlock(&v->lock);

	struct vstep *fresh = NULL;
	int rc = vstep_open(&fresh, v, slot, number, name);
	if (rc)
		return rc;

	struct vstep *victims[4];
	size_t nvictims = 0;
	pthread_mutex_lock(&v->lock);
	struct slot *s = &v->slots[slot];
	if (!s->alive) {
		rc = CKPT_ENOTFOUND;
	} else if (s->vs) { /* another thread opened it meanwhile */
		vs = s->vs;
		vs->refs++;
	} else {
		vs = fresh;
		fresh = NULL;
		vs->refs = 2; /* the slot's and the caller's */
		s->vs = vs;
		v->nopen++;
		nvictims = evict(v, victims, 4);
	}
	if (vs)
		vs->last_use = ++v->tick;
	pthread_mutex_unlock(&v->lock);
	vstep_free(fresh);
	for (size_t i = 0; i < nvictims; i++)
		vstep_free(victims[i]);
	if (rc)
		return rc;
	*out = vs;
	return 0;
}

void view_put(struct view *v, struct vstep *vs)
{
	if (!vs)
		return;
	pthread_mutex_lock(&v->lock);
	assert(vs->refs > 0);
	unsigned left = --vs->refs;
	pthread_mutex_unlock(&v->lock);
	if (left == 0)
		vstep_free(vs);
}

uint64_t view_bytes_read(struct view *v)
{
	uint64_t n = 0;

	pthread_mutex_lock(&v->lock);
	for (uint32_t i = 0; i < v->nslots; i++)
		if (v->slots[i].vs && v->slots[i].vs->step)
			n += ckpt_step_bytes_read(v->slots[i].vs->step);
	pthread_mutex_unlock(&v->lock);
	return n + __atomic_load_n(&gone_bytes_read, __ATOMIC_RELAXED);
}

/* ---- the invariants, checked in one call (as SQLite's assert_pager_state) ---- */

/* The slots and their order (invariants 1-3); v->lock held. */
static int view_check_locked(const struct view *v)
{
	uint32_t open = 0;

	for (uint32_t i = 0; i < v->nslots; i++) {
		const struct slot *s = &v->slots[i];
		if (!s->vs)
			continue;
		open++;
		assert(s->vs->slot == i && s->vs->number == s->number);
		assert(s->vs->refs >= 1); /* the slot's own reference (invariant 2) */
	}
	assert(open == v->nopen);
	for (uint32_t k = 0; k < v->norder; k++) {
		assert(v->order[k] < v->nslots && v->slots[v->order[k]].alive);
		assert(k == 0 || name_cmp(v->slots[v->order[k - 1]].number, v->slots[v->order[k - 1]].name,
					  v->slots[v->order[k]].number, v->slots[v->order[k]].name) < 0);
	}
	return 1;
}
