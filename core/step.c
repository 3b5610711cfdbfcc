/*
 * step.c — reading a finalized step: its _CHECKPOINT_METADATA, items and
 * their tree metadata.
 *
 * Design: the store is opened IMMUTABLE|READONLY. _CHECKPOINT_METADATA is
 * read and validated at open; item trees are read on first use and cached
 * until ckpt_step_free, so callers (the FUSE daemon) may hold borrowed
 * pointers to them. A step with a listing (ckpt.list, step_list.h) takes its
 * metadata and trees from it (compact trees, no JSON); without one, from the
 * store (<item>/_METADATA parsed). ckpt_step_open_listed defers opening the
 * store (and its whole-file index check) until something needs it.
 *
 * Invariants:
 *   1. items[] is sorted by name and holds exactly the keys of item_handlers;
 *      with a listing, items[i].li is the listing's entry of the same name.
 *   2. items[i].tree, .md_json and .bin, once set, never change until
 *      ckpt_step_free; they are set under mu, so concurrent first uses read
 *      at most once each.
 *   3. commit_ns is read from the JSON text of the top-level member (cJSON
 *      numbers are doubles and would round nanoseconds), never from a
 *      same-named key nested in another value.
 *   4. store is NULL only for a listed step whose index is not loaded yet
 *      (index_rc == 0) or failed to load (index_rc < 0, message in index_err);
 *      once loaded, its header's index checksum equals the listing's.
 */
#include <assert.h>
#include <cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error_private.h"
#include "fsutil.h"
#include "orbax.h"
#include "step_list.h"
#include "step_private.h"
#include "store_private.h"
#include "tree_private.h"

struct step_item {
	char *name;
	char *typestr;
	char *md_json;	 /* <item>/_METADATA, NULL until loaded (guarded by mu) */
	size_t md_len;	 /* its length (it may hold a NUL: the parser says so) */
	ckpt_tree *tree; /* its tree, from md_json or li (guarded by mu) */
	unsigned char *bin; /* without a listing: tree encoded compact, once (guarded by mu) */
	size_t bin_len;
	const struct step_list_item *li; /* the listing's entry, or NULL (invariant 1) */
};

struct ckpt_step {
	char *dir;
	ckpt_store *store; /* invariant 4 */
	ckpt_store_options opts;
	int orbax;	       /* written by Orbax: its own backend (orbax.h), no listing */
	int index_rc;	       /* a failed deferred open (invariant 4) */
	char *index_err;       /* its message */
	struct step_list list; /* empty without a listing */
	char *meta_json;
	int64_t commit_ns;
	size_t nitems;
	struct step_item *items;
	pthread_mutex_t mu;
};

static int cmp_item(const void *a, const void *b)
{
	return strcmp(((const struct step_item *)a)->name, ((const struct step_item *)b)->name);
}

/*
 * The text of the value of the first top-level member `key` of the JSON object
 * js (already validated by cJSON), or NULL. Strings (with their escapes) and
 * nested objects/arrays are skipped whole, so nested keys never match.
 */
static const char *top_member(const char *js, const char *key)
{
	size_t klen = strlen(key);
	int depth = 0, want_key = 0;

	for (const char *p = js; *p; p++) {
		if (*p == '{' || *p == '[') {
			depth++;
			want_key = *p == '{' && depth == 1;
		} else if (*p == '}' || *p == ']') {
			depth--;
		} else if (*p == ',') {
			want_key = depth == 1;
		} else if (*p == '"') {
			const char *q = p + 1;
			while (*q && *q != '"')
				q += q[0] == '\\' && q[1] ? 2 : 1;
			if (!*q)
				return NULL;
			if (want_key && (size_t)(q - p - 1) == klen && memcmp(p + 1, key, klen) == 0) {
				q += strspn(q + 1, " \t\r\n") + 1;
				return *q == ':' ? q + 1 + strspn(q + 1, " \t\r\n") : NULL;
			}
			want_key = 0;
			p = q;
		}
	}
	return NULL;
}

/* A positive integer member of the top-level object, exactly; 0 if absent or not one. */
int64_t ckpt_json_top_int(const char *js, const char *key)
{
	const char *v = top_member(js, key);
	char *end;
	long long n;

	if (!v || *v < '0' || *v > '9')
		return 0;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno || (*end && !strchr(" \t\r\n,}", *end)))
		return 0; /* out of range, or a fraction/exponent: not an integer */
	return (int64_t)n;
}

static int parse_metadata(ckpt_step *s)
{
	cJSON *root = cJSON_Parse(s->meta_json);
	const cJSON *h, *e;
	size_t i = 0;
	int rc = 0;

	if (!cJSON_IsObject(root)) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: %s is not a JSON object", s->dir,
				    CKPT_STEP_METADATA_KEY);
		goto done;
	}
	h = cJSON_GetObjectItemCaseSensitive(root, "item_handlers");
	if (h && !cJSON_IsObject(h)) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: %s: item_handlers is not an object", s->dir,
				    CKPT_STEP_METADATA_KEY);
		goto done;
	}
	s->nitems = (size_t)cJSON_GetArraySize(h);
	s->items = calloc(s->nitems ? s->nitems : 1, sizeof(*s->items));
	if (!s->items) {
		rc = ckpt_error_nomem();
		goto done;
	}
	cJSON_ArrayForEach(e, h)
	{
		if (!cJSON_IsString(e) || !e->string) {
			rc = ckpt_error_set(CKPT_ECORRUPT,
					    "%s: %s: item_handlers['%s'] is not a string", s->dir,
					    CKPT_STEP_METADATA_KEY, e->string ? e->string : "");
			goto done;
		}
		s->items[i].name = strdup(e->string);
		s->items[i].typestr = strdup(e->valuestring);
		if (!s->items[i].name || !s->items[i++].typestr) {
			rc = ckpt_error_nomem();
			goto done;
		}
	}
	assert(i == s->nitems);
	qsort(s->items, s->nitems, sizeof(*s->items), cmp_item);
	for (i = 1; i < s->nitems; i++) /* cJSON keeps a repeated key: one name, one item */
		if (strcmp(s->items[i - 1].name, s->items[i].name) == 0) {
			rc = ckpt_error_set(CKPT_ECORRUPT,
					    "%s: %s: item_handlers names item '%s' twice", s->dir,
					    CKPT_STEP_METADATA_KEY, s->items[i].name);
			goto done;
		}
	s->commit_ns = ckpt_json_top_int(s->meta_json, "commit_timestamp_nsecs"); /* invariant 3 */
done:
	cJSON_Delete(root);
	return rc;
}

/* Open the store of s (mu held, or s not shared yet); invariant 4. */
static int load_index(ckpt_step *s)
{
	uint32_t crc;
	int rc;

	if (s->store)
		return 0;
	if (s->index_rc)
		return ckpt_error_set(s->index_rc, "%s", s->index_err ? s->index_err : "");
	if (s->orbax)
		rc = ckpt_orbax_store_open(&s->store, s->dir, &s->opts);
	else
		rc = ckpt_store_open(&s->store, s->dir, CKPT_STORE_IMMUTABLE | CKPT_STORE_READONLY,
				     &s->opts);
	/* The checksum the store checked at open (0: unsealed, never a listing's). */
	if (rc == 0 && s->list.buf && (crc = ckpt_store_index_crc(s->store)) != s->list.index_crc)
		rc = ckpt_error_set(CKPT_ECORRUPT,
				    "%s/%s does not describe %s/ckpt.db (its index checksum is "
				    "0x%08x, the listing's 0x%08x); removing %s makes the step "
				    "readable from its index alone",
				    s->dir, STEP_LIST_NAME, s->dir, crc, s->list.index_crc,
				    STEP_LIST_NAME);
	if (rc) {
		ckpt_store_free(s->store);
		s->store = NULL;
		s->index_rc = rc;
		s->index_err = strdup(ckpt_error_last());
	}
	return rc;
}

/* The listing's entries onto items[] (invariant 1). */
static int attach_listing(ckpt_step *s)
{
	if (s->list.nitems != s->nitems)
		return ckpt_error_set(CKPT_ECORRUPT,
				      "%s/%s lists %zu items, its _CHECKPOINT_METADATA %zu", s->dir,
				      STEP_LIST_NAME, s->list.nitems, s->nitems);
	for (size_t i = 0; i < s->nitems; i++) { /* both sorted by name */
		const struct step_list_item *li = &s->list.items[i];
		if (strlen(s->items[i].name) != li->name_len ||
		    memcmp(s->items[i].name, li->name, li->name_len) != 0)
			return ckpt_error_set(CKPT_ECORRUPT,
					      "%s/%s lists item '%.*s' where its "
					      "_CHECKPOINT_METADATA has '%s'",
					      s->dir, STEP_LIST_NAME, (int)li->name_len, li->name,
					      s->items[i].name);
		s->items[i].li = li;
	}
	return 0;
}

static int step_open(ckpt_step **out, const char *dir, const ckpt_store_options *opts, int lazy)
{
	ckpt_step *s = calloc(1, sizeof(*s));
	ckpt_store_options dflt = CKPT_STORE_OPTIONS_INIT;
	size_t len = 0;
	int rc;

	*out = NULL;
	if (!s)
		return ckpt_error_nomem();
	pthread_mutex_init(&s->mu, NULL);
	s->opts = opts ? *opts : dflt;
	s->dir = strdup(dir);
	if (!s->dir) {
		rc = ckpt_error_nomem();
		goto fail;
	}
	s->orbax = ckpt_orbax_is_step(dir);
	rc = s->orbax ? CKPT_ENOTFOUND : step_list_read(&s->list, dir);
	if (rc == CKPT_ENOTFOUND || rc == CKPT_EVERSION) { /* derived data: read the index */
		ckpt_error_clear();
		lazy = 0;
	} else if (rc) {
		ckpt_error_wrap(rc, "step %s (removing %s makes it readable from its index alone)",
				dir, STEP_LIST_NAME);
		goto fail;
	}
	if (!lazy && (rc = load_index(s)))
		goto fail;
	if (s->list.buf) {
		s->meta_json = malloc(s->list.meta_len + 1);
		if (!s->meta_json) {
			rc = ckpt_error_nomem();
			goto fail;
		}
		memcpy(s->meta_json, s->list.meta, s->list.meta_len);
		len = s->list.meta_len;
	} else if ((rc = ckpt_store_get((void **)&s->meta_json, &len, s->store,
					CKPT_STEP_METADATA_KEY, strlen(CKPT_STEP_METADATA_KEY)))) {
		ckpt_error_wrap(rc, "step %s: %s", dir, CKPT_STEP_METADATA_KEY);
		goto fail;
	} else {
		/* Make it a C string: the stored value has no NUL. */
		char *js = realloc(s->meta_json, len + 1);
		if (!js) {
			rc = ckpt_error_nomem();
			goto fail;
		}
		s->meta_json = js;
	}
	s->meta_json[len] = '\0';
	if (strlen(s->meta_json) != len) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: %s contains a NUL byte", dir,
				    CKPT_STEP_METADATA_KEY);
		goto fail;
	}
	rc = parse_metadata(s);
	if (rc == 0 && s->list.buf)
		rc = attach_listing(s);
	if (rc)
		goto fail;
	*out = s;
	return 0;
fail:
	ckpt_step_free(s);
	return rc;
}

int ckpt_step_open(ckpt_step **out, const char *dir, const ckpt_store_options *opts)
{
	return step_open(out, dir, opts, 0);
}

int ckpt_step_open_listed(ckpt_step **out, const char *dir, const ckpt_store_options *opts)
{
	return step_open(out, dir, opts, 1);
}

int ckpt_step_load_index(ckpt_step *s)
{
	pthread_mutex_lock(&s->mu);
	int rc = load_index(s);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

const char *ckpt_step_dir_format(const char *dir)
{
	char *db = ckpt_asprintf("%s/ckpt.db", dir);
	struct stat st;
	int native = db && stat(db, &st) == 0 && S_ISREG(st.st_mode);

	free(db);
	return native ? "ckpt" : ckpt_orbax_is_step(dir) ? "orbax" : NULL;
}

void ckpt_step_free(ckpt_step *s)
{
	if (!s)
		return;
	for (size_t i = 0; s->items && i < s->nitems; i++) {
		free(s->items[i].name);
		free(s->items[i].typestr);
		free(s->items[i].md_json);
		ckpt_tree_free(s->items[i].tree);
		free(s->items[i].bin);
	}
	free(s->items);
	ckpt_store_free(s->store);
	step_list_clear(&s->list);
	free(s->index_err);
	free(s->meta_json);
	free(s->dir);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

ckpt_store *ckpt_step_store(ckpt_step *s)
{
	return ckpt_step_load_index(s) == 0 ? s->store : NULL;
}

int ckpt_step_list(ckpt_step *s, const void *prefix, size_t prefixlen, int delimiter,
		   ckpt_store_list_cb cb, void *payload)
{
	const char *slash = memchr(prefix, '/', prefixlen);
	int rc;

	for (size_t i = 0; slash && s->list.buf && i < s->nitems; i++) {
		const struct step_list_item *li = s->items[i].li;
		size_t n = (size_t)(slash - (const char *)prefix);
		if (li->name_len == n && memcmp(li->name, prefix, n) == 0 && !li->has_metadata)
			return step_list_keys(li, slash + 1, prefixlen - n - 1, delimiter, cb,
					      payload);
	}
	if ((rc = ckpt_step_load_index(s)))
		return rc;
	return ckpt_store_list(s->store, prefix, prefixlen, delimiter, cb, payload);
}

uint64_t ckpt_step_bytes_read(ckpt_step *s)
{
	pthread_mutex_lock(&s->mu);
	uint64_t n = s->store ? ckpt_store_bytes_read(s->store) : 0;
	pthread_mutex_unlock(&s->mu);
	return n;
}

const char *ckpt_step_dir(const ckpt_step *s)
{
	return s->dir;
}

const char *ckpt_step_metadata_json(const ckpt_step *s)
{
	return s->meta_json;
}

int64_t ckpt_step_commit_time_ns(const ckpt_step *s)
{
	return s->commit_ns;
}

size_t ckpt_step_item_count(const ckpt_step *s)
{
	return s->nitems;
}

const char *ckpt_step_item_name(const ckpt_step *s, size_t i)
{
	return i < s->nitems ? s->items[i].name : NULL;
}

const char *ckpt_step_item_typestr(const ckpt_step *s, size_t i)
{
	return i < s->nitems ? s->items[i].typestr : NULL;
}

int ckpt_step_item_find(size_t *out, const ckpt_step *s, const char *name)
{
	struct step_item key = {.name = (char *)name};
	const struct step_item *it = bsearch(&key, s->items, s->nitems, sizeof(key), cmp_item);

	if (!it)
		return ckpt_error_set(CKPT_ENOTFOUND, "step %s has no item '%s'", s->dir, name);
	*out = (size_t)(it - s->items);
	return 0;
}

/* Read <item>/_METADATA into it->md_json once (mu held). */
static int load_json(struct step_item *it, ckpt_step *s, const char *key)
{
	char *js = NULL;
	size_t len = 0;
	int rc;

	if (it->md_json)
		return 0;
	if ((rc = load_index(s)))
		return rc;
	if ((rc = ckpt_store_get((void **)&js, &len, s->store, key, strlen(key))))
		return ckpt_error_wrap(rc, "step %s: %s", s->dir, key);
	if (it->li && len != it->li->metadata_len) {
		free(js);
		return ckpt_error_set(
		    CKPT_ECORRUPT, "step %s: %s has %zu bytes, its listing (%s) says %llu", s->dir,
		    key, len, STEP_LIST_NAME, (unsigned long long)it->li->metadata_len);
	}
	char *z = realloc(js, len + 1);
	if (!z) {
		free(js);
		return ckpt_error_nomem();
	}
	z[len] = '\0';
	it->md_json = z;
	it->md_len = len;
	return 0;
}

/* Item `item` with its tree (and its _METADATA text if want_json) loaded; mu held. */
static int load_item(struct step_item **out, ckpt_step *s, const char *item, int want_json)
{
	struct step_item *it;
	char *key = NULL;
	size_t idx;
	int rc = ckpt_step_item_find(&idx, s, item);

	if (rc)
		return rc;
	it = &s->items[idx];
	*out = it;
	if (it->tree && (!want_json || it->md_json))
		return 0;
	key = ckpt_asprintf("%s/%s", item, CKPT_ITEM_METADATA_NAME);
	if (!key)
		return ckpt_error_nomem();
	if (it->li && !it->li->has_metadata) {
		rc = ckpt_error_set(CKPT_ENOTFOUND, "step %s: %s: no such key (%s)", s->dir, key,
				    STEP_LIST_NAME);
	} else if (it->li) {
		if (!it->tree && (rc = ckpt_tree_decode(&it->tree, it->li->tree, it->li->tree_len)))
			ckpt_error_wrap(rc, "step %s: the tree of item %s in %s", s->dir, item,
					STEP_LIST_NAME);
		if (rc == 0 && want_json)
			rc = load_json(it, s, key);
	} else if ((rc = load_json(it, s, key)) == 0 &&
		   ckpt_tree_metadata_from_json(&it->tree, it->md_json, it->md_len)) {
		ckpt_error_wrap(CKPT_ECORRUPT, "step %s: %s", s->dir, key);
		free(it->md_json);
		it->md_json = NULL;
		rc = CKPT_ECORRUPT;
	}
	free(key);
	return rc;
}

/* The loaded item, read on first use; items never change once loaded. */
static int item_get(struct step_item **out, ckpt_step *s, const char *item, int want_json)
{
	int rc;

	*out = NULL;
	pthread_mutex_lock(&s->mu);
	rc = load_item(out, s, item, want_json);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int ckpt_step_item_tree(const ckpt_tree **out, ckpt_step *s, const char *item)
{
	struct step_item *it;
	int rc = item_get(&it, s, item, 0);

	*out = rc == 0 ? it->tree : NULL;
	return rc;
}

int ckpt_step_item_metadata_json(const char **out, ckpt_step *s, const char *item)
{
	struct step_item *it;
	int rc = item_get(&it, s, item, 1);

	*out = rc == 0 ? it->md_json : NULL;
	return rc;
}

int ckpt_step_item_metadata_size(uint64_t *out, ckpt_step *s, const char *item)
{
	struct step_item *it;
	size_t i;
	int rc = ckpt_step_item_find(&i, s, item);

	*out = 0;
	if (rc)
		return rc;
	it = &s->items[i];
	if (it->li && it->li->has_metadata) { /* listed: neither the text nor the tree */
		*out = it->li->metadata_len;
		return 0;
	}
	if ((rc = item_get(&it, s, item, 0)) == 0) /* without a listing, that read the text */
		*out = it->md_len;
	return rc;
}

/* ---- an item's tree listed without building it ---- */

/*
 * Item i's tree in compact form: the listing's bytes, else its tree encoded
 * once (the same bytes: the encoding is canonical, and the listing is the
 * encoding of the same tree). Borrowed until ckpt_step_free.
 */
static int item_bin(const unsigned char **p, size_t *len, ckpt_step *s, size_t i)
{
	struct step_item *it, *got;
	int rc = 0;

	*p = NULL;
	*len = 0;
	if (i >= s->nitems)
		return ckpt_error_set(CKPT_EINVAL, "step %s: no item %zu", s->dir, i);
	it = &s->items[i];
	if (it->li && it->li->has_metadata) {
		*p = it->li->tree;
		*len = it->li->tree_len;
		return 0;
	}
	pthread_mutex_lock(&s->mu);
	/* a tree the compact form cannot hold is one the reader should have refused */
	if (!it->bin && (rc = load_item(&got, s, it->name, 0)) == 0 &&
	    (rc = ckpt_tree_encode(&it->bin, &it->bin_len, it->tree)) < 0)
		rc = ckpt_error_wrap(rc == CKPT_EINVAL ? CKPT_ECORRUPT : rc, "step %s: item %s",
				     s->dir, it->name);
	*p = it->bin;
	*len = it->bin_len;
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int ckpt_step_item_id_limit(uint64_t *out, ckpt_step *s, size_t item)
{
	const unsigned char *p;
	size_t len;
	int rc = item_bin(&p, &len, s, item);

	*out = len;
	return rc;
}

struct key_ref {
	const char *p;
	size_t len;
};

struct children {
	ckpt_tree_entry_cb cb;
	void *payload;
	char buf[256];
	struct key_ref *keys; /* the dict keys seen: checked unique at the end */
	size_t nkeys, capkeys;
};

static int cmp_key(const void *a, const void *b)
{
	const struct key_ref *x = a, *y = b;
	int c = memcmp(x->p, y->p, x->len < y->len ? x->len : y->len);
	return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* One child as ckpt_tree_entry: its name escaped as ckpt_tree_name has it. */
static int child_cb(const struct tree_bin_child *c, void *payload)
{
	struct children *ch = payload;
	int is_array = c->kind == CKPT_TREE_ARRAY;
	char pos[24];
	const char *key = c->key;
	size_t klen = c->keylen, n;
	char *name = ch->buf;
	int rc;

	if (!key) {
		klen = (size_t)snprintf(pos, sizeof(pos), "%zu", c->pos);
		key = pos;
	} else {
		if (ch->nkeys == ch->capkeys) {
			size_t cap = ch->capkeys ? 2 * ch->capkeys : 64;
			struct key_ref *k = realloc(ch->keys, cap * sizeof(*k));
			if (!k)
				return ckpt_error_nomem();
			ch->keys = k;
			ch->capkeys = cap;
		}
		ch->keys[ch->nkeys++] = (struct key_ref){c->key, c->keylen};
	}
	n = ckpt_key_escape_into(NULL, key, klen, is_array);
	if (n + 5 > sizeof(ch->buf) && !(name = malloc(n + 5)))
		return ckpt_error_nomem();
	ckpt_key_escape_into(name, key, klen, is_array);
	memcpy(name + n, is_array ? ".npy" : "", is_array ? 5 : 1);
	ckpt_tree_entry e = {.id = c->at, .pos = c->pos, .kind = c->kind, .name = name};
	rc = ch->cb(&e, ch->payload);
	if (name != ch->buf)
		free(name);
	return rc;
}

int ckpt_step_item_children(ckpt_step *s, size_t item, uint64_t id, ckpt_tree_entry_cb cb,
			    void *payload)
{
	const unsigned char *p;
	size_t len;
	struct children ch = {.cb = cb, .payload = payload};
	int rc = item_bin(&p, &len, s, item);

	if (rc < 0)
		return rc;
	rc = ckpt_tree_bin_children(p, len, id ? (size_t)id : 1, child_cb, &ch);
	/* the decoder's duplicate check, for this container: a listing names files */
	if (rc == 0 && ch.nkeys > 1) {
		qsort(ch.keys, ch.nkeys, sizeof(*ch.keys), cmp_key);
		for (size_t i = 1; i < ch.nkeys && rc == 0; i++)
			if (cmp_key(&ch.keys[i - 1], &ch.keys[i]) == 0)
				rc = ckpt_error_set(
				    CKPT_ECORRUPT, "duplicate key '%.*s' in node %llu",
				    (int)ch.keys[i].len, ch.keys[i].p, (unsigned long long)id);
	}
	if (rc < 0)
		ckpt_error_wrap(rc, "step %s: the tree of item %s", s->dir, s->items[item].name);
	free(ch.keys);
	return rc;
}

int ckpt_step_item_parent(uint64_t *parent, ckpt_step *s, size_t item, uint64_t id)
{
	const unsigned char *p;
	size_t len, at = 0;
	int rc = item_bin(&p, &len, s, item);

	*parent = 0;
	if (rc < 0)
		return rc;
	if (id < 2 || id >= len)
		return ckpt_error_set(CKPT_ENOTFOUND,
				      "step %s: item %s: no node %llu below the root", s->dir,
				      s->items[item].name, (unsigned long long)id);
	if ((rc = ckpt_tree_bin_parent(&at, p, len, (size_t)id)) < 0)
		ckpt_error_wrap(rc, "step %s: the tree of item %s", s->dir, s->items[item].name);
	*parent = at == 1 ? 0 : at;
	return rc;
}

/* ---- checking the listing against the store (ckpt verify) ---- */

/* The JSON of a metadata tree, for comparing two trees. */
static char *tree_text(const ckpt_tree *t)
{
	char *js = NULL;
	return ckpt_tree_metadata_to_json(&js, t) == 0 ? js : NULL;
}

int ckpt_step_check_listing(ckpt_step *s)
{
	void *meta = NULL;
	size_t len = 0;
	int rc;

	if (!s->list.buf)
		return 0;
	if ((rc = ckpt_step_load_index(s)))
		return rc;
	for (size_t i = 0; rc == 0 && i < s->nitems; i++) {
		struct step_item *it;
		const char *name = s->items[i].name;
		ckpt_tree *parsed = NULL;
		char *a = NULL, *b = NULL;

		if ((rc = item_get(&it, s, name, 1)) == CKPT_ENOTFOUND) {
			ckpt_value_info vi;
			char *key = ckpt_asprintf("%s/%s", name, CKPT_ITEM_METADATA_NAME);
			rc = !key ? ckpt_error_nomem()
			     : ckpt_store_stat(&vi, s->store, key, strlen(key)) == 0
				 ? ckpt_error_set(CKPT_ECORRUPT,
						  "%s/%s lists item %s without the "
						  "%s its store has",
						  s->dir, STEP_LIST_NAME, name, key)
				 : 0;
			free(key);
			if (rc == 0)
				ckpt_error_clear();
			continue;
		}
		if (rc)
			break;
		if (ckpt_tree_metadata_from_json(&parsed, it->md_json, it->md_len) != 0)
			rc = ckpt_error_wrap(CKPT_ECORRUPT, "step %s: %s/%s", s->dir, name,
					     CKPT_ITEM_METADATA_NAME);
		else if (!(a = tree_text(parsed)) || !(b = tree_text(it->tree)))
			rc = ckpt_error_nomem();
		else if (strcmp(a, b) != 0)
			rc = ckpt_error_set(CKPT_ECORRUPT,
					    "%s/%s: the tree of item %s differs from its %s",
					    s->dir, STEP_LIST_NAME, name, CKPT_ITEM_METADATA_NAME);
		ckpt_tree_free(parsed);
		free(a);
		free(b);
	}
	if (rc == 0 &&
	    (rc = ckpt_store_get(&meta, &len, s->store, CKPT_STEP_METADATA_KEY,
				 strlen(CKPT_STEP_METADATA_KEY))) == 0 &&
	    (len != s->list.meta_len || memcmp(meta, s->list.meta, len) != 0))
		rc = ckpt_error_set(CKPT_ECORRUPT,
				    "%s/%s: its _CHECKPOINT_METADATA differs from "
				    "the stored one",
				    s->dir, STEP_LIST_NAME);
	free(meta);
	return rc;
}
