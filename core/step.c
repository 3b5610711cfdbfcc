/*
 * step.c — reading a finalized step: its _CHECKPOINT_METADATA, items and
 * their tree metadata.
 *
 * Design: the store is opened IMMUTABLE|READONLY. _CHECKPOINT_METADATA is
 * read and validated at open; item trees are parsed from <item>/_METADATA on
 * first use and cached until ckpt_step_free, so callers (the FUSE daemon)
 * may hold borrowed pointers to them.
 *
 * Invariants:
 *   1. items[] is sorted by name and holds exactly the keys of item_handlers.
 *   2. items[i].tree, once set, never changes until ckpt_step_free; it is
 *      set under mu, so concurrent first uses parse at most once each.
 *   3. commit_ns is read from the JSON text of the top-level member (cJSON
 *      numbers are doubles and would round nanoseconds), never from a
 *      same-named key nested in another value.
 */
#include <assert.h>
#include <cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error_private.h"
#include "orbax.h"
#include "step_private.h"
#include "fsutil.h"

struct step_item {
	char *name;
	char *typestr;
	char *md_json;	 /* <item>/_METADATA, NULL until loaded (guarded by mu) */
	ckpt_tree *tree; /* parsed md_json (guarded by mu) */
};

struct ckpt_step {
	char *dir;
	ckpt_store *store;
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
	s->commit_ns = ckpt_json_top_int(s->meta_json, "commit_timestamp_nsecs"); /* invariant 3 */
done:
	cJSON_Delete(root);
	return rc;
}

int ckpt_step_open(ckpt_step **out, const char *dir, const ckpt_store_options *opts)
{
	ckpt_step *s = calloc(1, sizeof(*s));
	size_t len = 0;
	int rc;

	*out = NULL;
	if (!s)
		return ckpt_error_nomem();
	pthread_mutex_init(&s->mu, NULL);
	s->dir = strdup(dir);
	if (!s->dir) {
		rc = ckpt_error_nomem();
		goto fail;
	}
	/* A step Orbax wrote is read through its own backend (orbax.h). */
	if (ckpt_orbax_is_step(dir))
		rc = ckpt_orbax_store_open(&s->store, dir, opts);
	else
		rc = ckpt_store_open(&s->store, dir, CKPT_STORE_IMMUTABLE | CKPT_STORE_READONLY,
				     opts);
	if (rc)
		goto fail;
	rc = ckpt_store_get((void **)&s->meta_json, &len, s->store, CKPT_STEP_METADATA_KEY,
			    strlen(CKPT_STEP_METADATA_KEY));
	if (rc) {
		ckpt_error_wrap(rc, "step %s: %s", dir, CKPT_STEP_METADATA_KEY);
		goto fail;
	}
	/* Make it a C string: the stored value has no NUL. */
	char *js = realloc(s->meta_json, len + 1);
	if (!js) {
		rc = ckpt_error_nomem();
		goto fail;
	}
	js[len] = '\0';
	s->meta_json = js;
	if (strlen(js) != len) {
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: %s contains a NUL byte", dir,
				    CKPT_STEP_METADATA_KEY);
		goto fail;
	}
	rc = parse_metadata(s);
	if (rc)
		goto fail;
	*out = s;
	return 0;
fail:
	ckpt_step_free(s);
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
	}
	free(s->items);
	ckpt_store_free(s->store);
	free(s->meta_json);
	free(s->dir);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

ckpt_store *ckpt_step_store(ckpt_step *s)
{
	return s->store;
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

/* Load <item>/_METADATA once; called with s->mu held. */
static int load_item(struct step_item **out, ckpt_step *s, const char *item)
{
	struct step_item *it;
	char *key = NULL, *js = NULL;
	size_t idx, len = 0;
	int rc = ckpt_step_item_find(&idx, s, item);

	if (rc)
		return rc;
	it = &s->items[idx];
	*out = it;
	if (it->tree)
		return 0;
	key = ckpt_asprintf("%s/%s", item, CKPT_ITEM_METADATA_NAME);
	if (!key)
		return CKPT_ENOMEM;
	rc = ckpt_store_get((void **)&js, &len, s->store, key, strlen(key));
	if (rc) {
		ckpt_error_wrap(rc, "step %s: %s", s->dir, key);
		goto done;
	}
	rc = ckpt_tree_metadata_from_json(&it->tree, js, len);
	if (rc) {
		ckpt_error_wrap(CKPT_ECORRUPT, "step %s: %s", s->dir, key);
		rc = CKPT_ECORRUPT;
		goto done;
	}
	char *z = realloc(js, len + 1);
	if (!z) {
		ckpt_tree_free(it->tree);
		it->tree = NULL;
		rc = ckpt_error_nomem();
		goto done;
	}
	z[len] = '\0';
	it->md_json = z;
	js = NULL;
done:
	free(js);
	free(key);
	return rc;
}

/* The loaded item, parsed on first use; items never change once loaded. */
static int item_get(struct step_item **out, ckpt_step *s, const char *item)
{
	int rc;

	*out = NULL;
	pthread_mutex_lock(&s->mu);
	rc = load_item(out, s, item);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int ckpt_step_item_tree(const ckpt_tree **out, ckpt_step *s, const char *item)
{
	struct step_item *it;
	int rc = item_get(&it, s, item);

	*out = rc == 0 ? it->tree : NULL;
	return rc;
}

int ckpt_step_item_metadata_json(const char **out, ckpt_step *s, const char *item)
{
	struct step_item *it;
	int rc = item_get(&it, s, item);

	*out = rc == 0 ? it->md_json : NULL;
	return rc;
}
