/*
 * random_key.c — JaxRandomKeyCheckpointHandler and
 * NumpyRandomKeyCheckpointHandler (ckpt/random_key.h) and their item formats.
 *
 * JAX: "<item>/<key>.npy" holds the key data (uint32, written and read by
 * handler_files.c) and "<item>/<key>_metadata" the JSON {"typed": true,
 * "impl": "<impl>"} or {"typed": false}. The implementation fixes the last
 * dimension of the data (threefry2x32: 2; rbg, unsafe_rbg: 4); an untyped
 * key has 2 or 4. metadata() gives a ckpt_jax_key whose data is
 * metadata-only (dtype and shape from the .npy header).
 *
 * NumPy: "<item>/<key>.json" holds the legacy RandomState state as the JSON
 * array ["MT19937", [624 keys], pos, has_gauss, cached_gaussian] (the text
 * Python's json.dumps gives for get_state() with the key array as a list),
 * or a bit_generator.state object stored as given: its 128-bit integers
 * (PCG64 "state", "inc") are never converted. metadata() gives NULL.
 *
 * Invariants:
 *   1. What save accepts, restore and the item formats accept, and the
 *      other way round: one parser per file (jax_meta_parse, jax_data_check,
 *      np_parse) serves all three.
 *   2. A saved JAX item has both files and they agree (impl <-> last
 *      dimension); a NumPy item has exactly one .json file.
 *   4. A restored key passes jax_data_check for the implementation it is
 *      given (restore args may wrap, check or reshape it; never cast it).
 *   3. Legacy key words are integers 0..2^32-1: checked on cJSON's double,
 *      which is exact below 2^53, so no value is rounded into range.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt/npy.h"
#include "ckpt/sys/handler.h"
#include "ckpt/random_key.h"
#include "error_private.h"
#include "handler_files.h"
#include "item_format.h"
#include "npy_private.h"
#include "fsutil.h"

#define JAX_META_SUFFIX "_metadata"
/* The key files are small; a bigger one is not a key file. */
#define KEY_JSON_MAX (1u << 20)
#define MT_WORDS     624

static const struct {
	const char *impl;
	uint64_t last_dim;
} impls[] = {{"threefry2x32", 2}, {"rbg", 4}, {"unsafe_rbg", 4}};

void ckpt_jax_key_free(ckpt_jax_key *k)
{
	if (!k)
		return;
	free(k->impl);
	ckpt_tree_free(k->data);
	free(k);
}

void ckpt_np_key_free(ckpt_np_key *k)
{
	if (!k)
		return;
	free(k->state_json);
	free(k);
}

/* ---- JAX keys ---- */

/* The static name of impl, or NULL if unknown; *last_dim its key data width. */
static const char *impl_find(const char *impl, uint64_t *last_dim)
{
	for (size_t i = 0; i < sizeof(impls) / sizeof(impls[0]); i++) {
		if (!strcmp(impls[i].impl, impl)) {
			*last_dim = impls[i].last_dim;
			return impls[i].impl;
		}
	}
	return NULL;
}

/* Key data of this dtype and shape fits impl (NULL: an untyped key)? */
static int jax_data_check(ckpt_dtype dt, unsigned ndim, const uint64_t *shape, const char *impl,
			  const char *what)
{
	uint64_t want = 0, last;

	if (dt != CKPT_DTYPE_UINT32)
		return ckpt_error_set(CKPT_EINVAL, "%s: JAX key data is uint32, not %s", what,
				      ckpt_dtype_name(dt));
	if (ndim == 0)
		return ckpt_error_set(CKPT_EINVAL,
				      "%s: JAX key data needs a last dimension (2 or 4); got a 0-d "
				      "array",
				      what);
	last = shape[ndim - 1];
	if (impl && !impl_find(impl, &want))
		return ckpt_error_set(CKPT_EINVAL,
				      "%s: unknown PRNG impl '%s' (threefry2x32, rbg, unsafe_rbg)",
				      what, impl);
	if (impl && last != want)
		return ckpt_error_set(CKPT_EINVAL,
				      "%s: %s key data needs last dimension %llu, not %llu", what,
				      impl, (unsigned long long)want, (unsigned long long)last);
	if (!impl && last != 2 && last != 4)
		return ckpt_error_set(
		    CKPT_EINVAL, "%s: untyped JAX key data has last dimension 2 or 4, not %llu",
		    what, (unsigned long long)last);
	return 0;
}

/* Parse a _metadata text: *impl is the static impl name, or NULL when untyped. */
static int jax_meta_parse(const char **impl, const char *text, size_t len, const char *what)
{
	cJSON *j = NULL, *typed, *im;
	uint64_t last;
	int rc;

	*impl = NULL;
	if ((rc = handler_json_parse(&j, text, len, what)) < 0)
		return rc;
	typed = cJSON_GetObjectItemCaseSensitive(j, "typed");
	im = cJSON_GetObjectItemCaseSensitive(j, "impl");
	if (!cJSON_IsObject(j) || !cJSON_IsBool(typed))
		rc = ckpt_error_set(CKPT_EINVAL,
				    "%s: JAX key metadata is {\"typed\": true, \"impl\": ...} or "
				    "{\"typed\": false}",
				    what);
	else if (cJSON_IsTrue(typed) && !cJSON_IsString(im))
		rc = ckpt_error_set(CKPT_EINVAL, "%s: a typed JAX key needs a string \"impl\"",
				    what);
	else if (cJSON_IsFalse(typed) && im && !cJSON_IsNull(im))
		rc = ckpt_error_set(CKPT_EINVAL, "%s: an untyped JAX key has no \"impl\"", what);
	else if (cJSON_IsTrue(typed) && !(*impl = impl_find(im->valuestring, &last)))
		rc = ckpt_error_set(CKPT_EINVAL,
				    "%s: unknown PRNG impl '%s' (threefry2x32, rbg, unsafe_rbg)",
				    what, im->valuestring);
	cJSON_Delete(j);
	return rc;
}

static const char *jax_typestr(const ckpt_handler *h)
{
	return CKPT_JAX_KEY_TYPESTR;
}

static int jax_save(ckpt_handler *h, ckpt_step_writer *w, const char *item, const void *args)
{
	const char *name = named_handler_name(h);
	const ckpt_jax_key *k = args;
	char *npy = NULL, *meta = NULL, *text = NULL, *what = NULL;
	int rc;

	if (!k || !k->data || ckpt_tree_get_kind(k->data) != CKPT_TREE_ARRAY ||
	    !ckpt_tree_data(k->data))
		return ckpt_error_set(CKPT_EINVAL, "item %s: a JAX key needs array data", item);
	if (!(what = ckpt_asprintf("item %s: key '%s'", item, name)) ||
	    !(npy = handler_key(item, name, ".npy")) ||
	    !(meta = handler_key(item, name, JAX_META_SUFFIX)) ||
	    !(text = k->impl ? ckpt_asprintf("{\"typed\": true, \"impl\": \"%s\"}", k->impl)
			     : strdup("{\"typed\": false}"))) {
		rc = ckpt_error_nomem();
		goto done;
	}
	rc = jax_data_check(ckpt_tree_dtype(k->data), ckpt_tree_ndim(k->data),
			    ckpt_tree_shape(k->data), k->impl, what);
	if (rc == 0)
		rc = npy_value_put(ckpt_step_writer_batch(w), npy, k->data);
	if (rc == 0)
		rc = ckpt_batch_put(ckpt_step_writer_batch(w), meta, strlen(meta), text,
				    strlen(text), NULL);
done:
	free(what);
	free(npy);
	free(meta);
	free(text);
	return rc;
}

static int jax_copy(ckpt_jax_key **out, const char *impl, ckpt_tree *data)
{
	ckpt_jax_key *k = calloc(1, sizeof(*k));

	*out = NULL;
	if (!k || (impl && !(k->impl = strdup(impl)))) {
		free(k);
		ckpt_tree_free(data);
		return ckpt_error_nomem();
	}
	k->data = data;
	*out = k;
	return 0;
}

static int jax_snapshot(void **out, ckpt_handler *h, const void *args)
{
	const ckpt_jax_key *k = args;
	ckpt_tree *data = NULL;
	int rc;

	*out = NULL;
	if (!k || !k->data)
		return ckpt_error_set(CKPT_EINVAL, "JAX key snapshot: no key data");
	if ((rc = ckpt_tree_clone(&data, k->data)) < 0)
		return rc;
	return jax_copy((ckpt_jax_key **)out, k->impl, data);
}

static void jax_key_free(ckpt_handler *h, void *k)
{
	ckpt_jax_key_free(k);
}

static int jax_load(void **out, ckpt_handler *h, ckpt_step *s, const char *item, int meta_only)
{
	const char *name = named_handler_name(h), *impl = NULL;
	char *npy = handler_key(item, name, ".npy"),
	     *meta = handler_key(item, name, JAX_META_SUFFIX);
	char *text = NULL;
	ckpt_tree *data = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	if (!npy || !meta) {
		rc = CKPT_ENOMEM;
		goto done;
	}
	rc = store_get_text(&text, &len, ckpt_step_store(s), meta);
	if (rc == CKPT_ENOTFOUND)
		rc = ckpt_error_set(CKPT_ENOTFOUND, "item %s: no JAX key metadata '%s%s'", item,
				    name, JAX_META_SUFFIX);
	if (rc == 0 && (rc = jax_meta_parse(&impl, text, len, meta)) < 0)
		rc = CKPT_ECORRUPT;
	if (rc == 0)
		rc = npy_value_get(&data, ckpt_step_store(s), npy, meta_only);
	if (rc == CKPT_ENOTFOUND)
		rc =
		    ckpt_error_set(CKPT_ENOTFOUND, "item %s: no JAX key data '%s.npy'", item, name);
	if (rc == 0 && (rc = jax_data_check(ckpt_tree_dtype(data), ckpt_tree_ndim(data),
					    ckpt_tree_shape(data), impl, npy)) < 0)
		rc = CKPT_ECORRUPT;
	if (rc == 0)
		rc = jax_copy((ckpt_jax_key **)out, impl, data);
	else
		ckpt_tree_free(data);
done:
	free(npy);
	free(meta);
	free(text);
	return rc;
}

/* Restore args: the implementation to give or check, the data's shape. */
static int jax_restore(void **out, ckpt_handler *h, ckpt_step *s, const char *item,
		       const void *args)
{
	const ckpt_jax_key_restore_args *a = args;
	const char *want = NULL;
	ckpt_jax_key *k = NULL;
	ckpt_tree *c = NULL;
	uint64_t last;
	char *what = NULL;
	int rc;

	*out = NULL;
	CKPT_CHECK_VERSION(a, CKPT_JAX_KEY_RESTORE_ARGS_VERSION, "ckpt_jax_key_restore_args");
	if (a && a->impl && !(want = impl_find(a->impl, &last)))
		return ckpt_error_set(CKPT_EINVAL,
				      "item %s: restore impl '%s' is not a PRNG implementation "
				      "(threefry2x32, rbg, unsafe_rbg)",
				      item, a->impl);
	if ((rc = jax_load((void **)&k, h, s, item, 0)) != 0 || !a)
		goto done;
	if (!(what = ckpt_asprintf("item %s: key '%s'", item, named_handler_name(h)))) {
		rc = ckpt_error_nomem();
		goto done;
	}
	if (want && k->impl && strcmp(k->impl, want) != 0) {
		rc = ckpt_error_set(CKPT_EINVAL, "%s: saved as a %s key, restore asks for %s",
				    what, k->impl, want);
		goto done;
	}
	if (a->has_shape) {
		rc = handler_array_to_target(&c, k->data, CKPT_DTYPE_INVALID, a->ndim, a->shape,
					     a->strict, what);
		if (rc == 0 && c) {
			ckpt_tree_free(k->data);
			k->data = c;
		}
	}
	if (rc == 0 && (want || a->has_shape))
		rc = jax_data_check(ckpt_tree_dtype(k->data), ckpt_tree_ndim(k->data),
				    ckpt_tree_shape(k->data), want ? want : k->impl, what);
	if (rc == 0 && want && !k->impl && !(k->impl = strdup(want)))
		rc = ckpt_error_nomem();
	if (rc == 0 && a->untyped) {
		free(k->impl);
		k->impl = NULL;
	}
done:
	free(what);
	if (rc == 0)
		*out = k;
	else
		ckpt_jax_key_free(k);
	return rc;
}

static int jax_metadata(void **out, ckpt_handler *h, ckpt_step *s, const char *item)
{
	return jax_load(out, h, s, item, 1);
}

static const ckpt_handler_vtable jax_vt = {
    .version = CKPT_HANDLER_VTABLE_VERSION,
    .typestr = jax_typestr,
    .save = jax_save,
    .snapshot = jax_snapshot,
    .snapshot_free = jax_key_free,
    .restore = jax_restore,
    .metadata = jax_metadata,
    .restored_free = jax_key_free,
    .metadata_free = jax_key_free,
    .finalize = NULL,
    .close = named_handler_close,
};

int ckpt_jax_key_handler_new(ckpt_handler **out, const char *key_name)
{
	return named_handler_new(out, key_name, CKPT_JAX_KEY_DEFAULT_NAME, &jax_vt,
				 "JAX key handler key_name");
}

/* ---- NumPy keys ---- */

/* n is an integer number in [0, max] (exact: max < 2^53). */
static int json_uint(const cJSON *n, double max)
{
	return cJSON_IsNumber(n) && n->valuedouble >= 0 && n->valuedouble <= max &&
	       n->valuedouble == (double)(uint64_t)n->valuedouble;
}

static int legacy_parse(ckpt_np_legacy_state *mt, const cJSON *j, const char *what)
{
	const cJSON *name = cJSON_GetArrayItem(j, 0), *keys = cJSON_GetArrayItem(j, 1);
	const cJSON *pos = cJSON_GetArrayItem(j, 2), *hg = cJSON_GetArrayItem(j, 3);
	const cJSON *cg = cJSON_GetArrayItem(j, 4), *e;
	int n = cJSON_GetArraySize(j), i = 0;

	if (n != 5)
		return ckpt_error_set(CKPT_EINVAL,
				      "%s: a legacy state is [\"MT19937\", [624 keys], pos, "
				      "has_gauss, cached_gaussian]; found %d elements",
				      what, n);
	if (!cJSON_IsString(name) || strcmp(name->valuestring, "MT19937"))
		return ckpt_error_set(CKPT_EINVAL, "%s: a legacy state starts with \"MT19937\"",
				      what);
	if (!cJSON_IsArray(keys) || (n = cJSON_GetArraySize(keys)) != MT_WORDS)
		return ckpt_error_set(CKPT_EINVAL, "%s: a legacy state has %d keys; found %d", what,
				      MT_WORDS, cJSON_IsArray(keys) ? n : 0);
	cJSON_ArrayForEach(e, keys)
	{
		if (!json_uint(e, 4294967295.0))
			return ckpt_error_set(CKPT_EINVAL,
					      "%s: key %d is not an integer in 0..2^32-1", what, i);
		mt->key[i++] = (uint32_t)e->valuedouble;
	}
	if (!json_uint(pos, MT_WORDS))
		return ckpt_error_set(CKPT_EINVAL, "%s: pos is not an integer in 0..%d", what,
				      MT_WORDS);
	if (!json_uint(hg, 1) && !cJSON_IsBool(hg))
		return ckpt_error_set(CKPT_EINVAL, "%s: has_gauss is not 0 or 1", what);
	if (!cJSON_IsNumber(cg))
		return ckpt_error_set(CKPT_EINVAL, "%s: cached_gaussian is not a number", what);
	mt->pos = (int)pos->valuedouble;
	mt->has_gauss = cJSON_IsBool(hg) ? cJSON_IsTrue(hg) : (int)hg->valuedouble;
	mt->cached_gaussian = cg->valuedouble;
	return 0;
}

/* Parse a NumPy key file; out NULL: only check. object_only: refuse a legacy array. */
static int np_parse(ckpt_np_key **out, const char *text, size_t len, const char *what,
		    int object_only)
{
	ckpt_np_key *k = calloc(1, sizeof(*k));
	cJSON *j = NULL;
	int rc;

	if (out)
		*out = NULL;
	if (!k)
		return ckpt_error_nomem();
	if ((rc = handler_json_parse(&j, text, len, what)) < 0)
		goto done;
	if (cJSON_IsArray(j) && !object_only) {
		k->legacy = 1;
		rc = legacy_parse(&k->mt, j, what);
	} else if (!cJSON_IsObject(j)) {
		rc = ckpt_error_set(CKPT_EINVAL,
				    object_only
					? "%s: state_json is a JSON object (a legacy state "
					  "goes in mt)"
					: "%s: a NumPy key state is a JSON array (legacy MT19937) "
					  "or object (bit_generator state)",
				    what);
	} else if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "bit_generator")) ||
		   !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "state"))) {
		rc =
		    ckpt_error_set(CKPT_EINVAL,
				   "%s: a bit_generator state needs a string \"bit_generator\" and "
				   "an object \"state\"",
				   what);
	} else if (out && !(k->state_json = strndup(text, len))) {
		rc = ckpt_error_nomem();
	}
done:
	cJSON_Delete(j);
	if (rc == 0 && out) {
		*out = k;
		k = NULL;
	}
	ckpt_np_key_free(k);
	return rc;
}

/* The legacy state as the JSON text json.dumps writes (cached_gaussian as repr()). */
static int legacy_json(char **out, const ckpt_np_legacy_state *mt, const char *what)
{
	size_t cap = 64 + MT_WORDS * 12, n;
	ckpt_tree *g = NULL;
	char num[64], *buf;
	int rc;

	*out = NULL;
	if (mt->pos < 0 || mt->pos > MT_WORDS || (mt->has_gauss != 0 && mt->has_gauss != 1) ||
	    !isfinite(mt->cached_gaussian))
		return ckpt_error_set(CKPT_EINVAL,
				      "%s: legacy state needs pos in 0..%d, has_gauss 0 or 1 and a "
				      "finite cached_gaussian (got %d, %d, %g)",
				      what, MT_WORDS, mt->pos, mt->has_gauss, mt->cached_gaussian);
	if ((rc = ckpt_tree_new_float(&g, mt->cached_gaussian)) < 0)
		return rc;
	rc = ckpt_scalar_format(num, sizeof(num), g);
	ckpt_tree_free(g);
	if (rc < 0)
		return rc;
	if (!(buf = malloc(cap)))
		return ckpt_error_nomem();
	n = (size_t)snprintf(buf, cap, "[\"MT19937\", [");
	for (int i = 0; i < MT_WORDS; i++)
		n += (size_t)snprintf(buf + n, cap - n, "%s%u", i ? ", " : "", mt->key[i]);
	n += (size_t)snprintf(buf + n, cap - n, "], %d, %d, %s]", mt->pos, mt->has_gauss, num);
	if (n >= cap) { /* cannot happen: 624 * 12 covers ", 4294967295" */
		free(buf);
		return ckpt_error_set(CKPT_ERROR, "%s: legacy state text too long", what);
	}
	*out = buf;
	return 0;
}

static const char *np_typestr(const ckpt_handler *h)
{
	return CKPT_NP_KEY_TYPESTR;
}

static int np_save(ckpt_handler *h, ckpt_step_writer *w, const char *item, const void *args)
{
	const char *name = named_handler_name(h);
	const ckpt_np_key *k = args;
	char *key = NULL, *what = NULL, *text = NULL;
	int rc;

	if (!k || (!k->legacy && !k->state_json))
		return ckpt_error_set(CKPT_EINVAL, "item %s: no NumPy key state", item);
	if (!(what = ckpt_asprintf("item %s: %s.json", item, name)) ||
	    !(key = handler_key(item, name, ".json"))) {
		rc = ckpt_error_nomem();
		goto done;
	}
	if (k->legacy)
		rc = legacy_json(&text, &k->mt, what);
	else if (!(text = strdup(k->state_json)))
		rc = ckpt_error_nomem();
	else
		rc = 0;
	if (rc == 0)
		rc = np_parse(NULL, text, strlen(text), what, !k->legacy);
	if (rc == 0)
		rc = ckpt_batch_put(ckpt_step_writer_batch(w), key, strlen(key), text, strlen(text),
				    NULL);
done:
	free(what);
	free(key);
	free(text);
	return rc;
}

static int np_snapshot(void **out, ckpt_handler *h, const void *args)
{
	const ckpt_np_key *k = args;
	ckpt_np_key *c;

	*out = NULL;
	if (!k)
		return ckpt_error_set(CKPT_EINVAL, "NumPy key snapshot: no state");
	if (!(c = malloc(sizeof(*c))))
		return ckpt_error_nomem();
	*c = *k;
	if (k->state_json && !(c->state_json = strdup(k->state_json))) {
		free(c);
		return ckpt_error_nomem();
	}
	*out = c;
	return 0;
}

static void np_key_free(ckpt_handler *h, void *k)
{
	ckpt_np_key_free(k);
}

static int np_restore(void **out, ckpt_handler *h, ckpt_step *s, const char *item, const void *args)
{
	const char *name = named_handler_name(h);
	char *key = handler_key(item, name, ".json"), *text = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	if (!key)
		return CKPT_ENOMEM;
	rc = store_get_text(&text, &len, ckpt_step_store(s), key);
	if (rc == CKPT_ENOTFOUND)
		rc = ckpt_error_set(CKPT_ENOTFOUND, "item %s: no NumPy key file '%s.json'", item,
				    name);
	if (rc == 0 && (rc = np_parse((ckpt_np_key **)out, text, len, key, 0)) < 0)
		rc = CKPT_ECORRUPT;
	free(key);
	free(text);
	return rc;
}

static const ckpt_handler_vtable np_vt = {
    .version = CKPT_HANDLER_VTABLE_VERSION,
    .typestr = np_typestr,
    .save = np_save,
    .snapshot = np_snapshot,
    .snapshot_free = np_key_free,
    .restore = np_restore,
    .metadata = named_handler_no_metadata,
    .restored_free = np_key_free,
    .metadata_free = np_key_free,
    .finalize = NULL,
    .close = named_handler_close,
};

int ckpt_np_key_handler_new(ckpt_handler **out, const char *key_name)
{
	return named_handler_new(out, key_name, CKPT_NP_KEY_DEFAULT_NAME, &np_vt,
				 "NumPy key handler key_name");
}

/* ---- the item formats ---- */

static int jax_check_file(int item_dirfd, const char *name, int fd, const char *what)
{
	ckpt_npy_header h;
	const char *impl;
	char *text = NULL;
	size_t len = 0;
	int rc = item_flat_check(name, what);

	if (rc == 0 && handler_has_suffix(name, ".npy")) {
		if ((rc = ckpt_npy_check_fd(&h, fd, what)) == 0)
			rc = jax_data_check(h.dtype, h.ndim, h.shape, NULL, what);
		return rc;
	}
	if (rc == 0 && !handler_has_suffix(name, JAX_META_SUFFIX))
		return ckpt_error_set(
		    CKPT_EINVAL, "%s: not a JAX key file (<key>.npy or <key>" JAX_META_SUFFIX ")",
		    what);
	if (rc == 0)
		rc = ckpt_read_fd(&text, &len, fd, KEY_JSON_MAX, what);
	if (rc == 0)
		rc = jax_meta_parse(&impl, text, len, what);
	free(text);
	return rc;
}

static int jax_check_dir(int item_dirfd, const char *what)
{
	char *names[3] = {NULL, NULL, NULL}, *meta = NULL, *mwhat = NULL, *text = NULL;
	const char *npy, *impl = NULL;
	ckpt_npy_header h;
	size_t n = 0, len = 0;
	int rc = item_dir_list(names, 3, &n, item_dirfd, what), fd;

	if (rc)
		return rc;
	npy = n == 2 ? (handler_has_suffix(names[0], ".npy") ? names[0] : names[1]) : NULL;
	if (npy && handler_has_suffix(npy, ".npy") &&
	    !(meta = ckpt_asprintf("%.*s" JAX_META_SUFFIX, (int)(strlen(npy) - 4), npy))) {
		rc = CKPT_ENOMEM;
		goto done;
	}
	if (!meta || (strcmp(meta, names[0]) && strcmp(meta, names[1]))) {
		rc = ckpt_error_set(CKPT_EINVAL,
				    "%s: a JAX key item holds <key>.npy and <key>" JAX_META_SUFFIX
				    "; found %zu file(s)%s%s%s%s%s",
				    what, n, n ? ": " : "", n ? names[0] : "", n > 1 ? ", " : "",
				    n > 1 ? names[1] : "", n > 2 ? ", ..." : "");
		goto done;
	}
	if (!(mwhat = ckpt_asprintf("%s/%s", what, meta))) {
		rc = CKPT_ENOMEM;
		goto done;
	}
	rc = item_read_at(&text, &len, item_dirfd, meta, KEY_JSON_MAX, mwhat);
	if (rc == 0)
		rc = jax_meta_parse(&impl, text, len, mwhat);
	free(mwhat);
	mwhat = NULL;
	if (rc || !(mwhat = ckpt_asprintf("%s/%s", what, npy))) {
		rc = rc ? rc : CKPT_ENOMEM;
		goto done;
	}
	if ((fd = openat(item_dirfd, npy, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)) < 0) {
		rc = ckpt_error_errno(CKPT_EIO, errno, "open %s", mwhat);
		goto done;
	}
	rc = ckpt_npy_check_fd(&h, fd, mwhat);
	close(fd);
	if (rc == 0)
		rc = jax_data_check(h.dtype, h.ndim, h.shape, impl, mwhat);
done:
	free(mwhat);
	free(meta);
	free(text);
	handler_names_free(names, n < 3 ? n : 3);
	return rc;
}

static int np_check_file(int item_dirfd, const char *name, int fd, const char *what)
{
	char *text = NULL;
	size_t len = 0;
	int rc = item_flat_check(name, what);

	if (rc == 0 && !handler_has_suffix(name, ".json"))
		return ckpt_error_set(CKPT_EINVAL, "%s: not a NumPy key file (<key>.json)", what);
	if (rc == 0)
		rc = ckpt_read_fd(&text, &len, fd, KEY_JSON_MAX, what);
	if (rc == 0)
		rc = np_parse(NULL, text, len, what, 0);
	free(text);
	return rc;
}

static int np_check_dir(int item_dirfd, const char *what)
{
	return item_dir_one_file(item_dirfd, what, "a NumPy key item (<key>.json)");
}

const item_format ckpt_jax_key_format = {CKPT_JAX_KEY_TYPESTR, jax_check_file, jax_check_dir};
const item_format ckpt_np_key_format = {CKPT_NP_KEY_TYPESTR, np_check_file, np_check_dir};
