/*
 * ckpt/random_key.h — JaxRandomKeyCheckpointHandler and
 * NumpyRandomKeyCheckpointHandler.
 *
 * JAX keys. Files of the item (<key> is key_name, default "jax_random_key"):
 *   <item>/<key>.npy         the key data: uint32, last dimension 2
 *                            (threefry2x32) or 4 (rbg, unsafe_rbg)
 *   <item>/<key>_metadata    JSON {"typed": true, "impl": "threefry2x32"}
 *                            or {"typed": false}
 * In the mount the .npy also carries the xattr user.ckpt.prng_impl.
 *   save args:   const ckpt_jax_key *   (borrowed)
 *   restore args: ckpt_jax_key_restore_args * or NULL (as saved)
 *   restore out: ckpt_jax_key *         (ckpt_jax_key_free), typed or untyped as saved
 *
 * NumPy keys. Files of the item (<key> is key_name, default "np_random_key"):
 *   <item>/<key>.json        the legacy state tuple as a JSON array
 *                            ["MT19937", [624 uint32], pos, has_gauss, cached_gaussian]
 *                            or the bit_generator.state dict as a JSON object
 *                            ({"bit_generator": "PCG64", "state": {...}, ...}),
 *                            stored as given: 128-bit integers keep every digit
 *   save args:   const ckpt_np_key *    (borrowed)
 *   restore out: ckpt_np_key *          (ckpt_np_key_free)
 *
 * A key file of the wrong dtype or shape, a state that is not one of the two
 * forms, is CKPT_EINVAL at save, at `ckpt save`/finalize and at close in the mount.
 */
#ifndef CKPT_RANDOM_KEY_H
#define CKPT_RANDOM_KEY_H

#include "ckpt/common.h"

#include <stdint.h>

#include "ckpt/handler.h"
#include "ckpt/tree.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CKPT_JAX_KEY_TYPESTR \
	"orbax.checkpoint._src.handlers.random_key_checkpoint_handler.JaxRandomKeyCheckpointHandler"
#define CKPT_NP_KEY_TYPESTR \
	"orbax.checkpoint._src.handlers.random_key_checkpoint_handler.NumpyRandomKeyCheckpointHandler"
#define CKPT_JAX_KEY_DEFAULT_NAME "jax_random_key"
#define CKPT_NP_KEY_DEFAULT_NAME "np_random_key"

/* A JAX PRNG key: typed (impl names the implementation) or untyped (impl NULL). */
typedef struct ckpt_jax_key {
	char *impl;       /* "threefry2x32", "rbg", "unsafe_rbg"; NULL: an untyped key */
	ckpt_tree *data;  /* uint32 array, last dimension 2 or 4 (matching impl) */
} ckpt_jax_key;

/*
 * Orbax's JaxRandomKeyRestoreArgs(restore_args=ArrayRestoreArgs(...)) and
 * the implementation jax.random.wrap_key_data is given. The key data stays
 * uint32 (a cast could only break it: no dtype member).
 */
#define CKPT_JAX_KEY_RESTORE_ARGS_VERSION 1
typedef struct ckpt_jax_key_restore_args {
	unsigned version;
	/*
	 * NULL: typed or untyped as saved. An implementation name
	 * ("threefry2x32", "rbg", "unsafe_rbg"): the key comes back typed with
	 * it; an untyped saved key is wrapped (its last dimension must fit),
	 * a typed key of another implementation is CKPT_EINVAL naming both.
	 */
	const char *impl;
	int untyped; /* 1: the raw key data, impl NULL (jax.random.key_data) */
	/* with has_shape: the target shape of the key data (a batch of keys),
	 * last dimension included; as ckpt_array_restore_args (strict default 1;
	 * 0 pads with zero keys or truncates). */
	unsigned ndim;
	uint64_t shape[CKPT_TREE_MAX_NDIM];
	int has_shape;
	int strict;
} ckpt_jax_key_restore_args;
#define CKPT_JAX_KEY_RESTORE_ARGS_INIT {CKPT_JAX_KEY_RESTORE_ARGS_VERSION, NULL, 0, 0, {0}, 0, 1}

/* Frees impl, data and k. Accepts NULL. */
CKPT_API void ckpt_jax_key_free(ckpt_jax_key *k);

/* NumPy's legacy RandomState.get_state() tuple. */
typedef struct ckpt_np_legacy_state {
	uint32_t key[624];
	int pos;             /* 0..624 */
	int has_gauss;       /* 0 or 1 */
	double cached_gaussian;
} ckpt_np_legacy_state;

typedef struct ckpt_np_key {
	int legacy;                 /* 1: mt holds the state; 0: state_json does */
	ckpt_np_legacy_state mt;
	char *state_json;           /* bit_generator.state as a JSON object (NUL-terminated) */
} ckpt_np_key;

/* Frees state_json and k. Accepts NULL. */
CKPT_API void ckpt_np_key_free(ckpt_np_key *k);

/*
 * key_name NULL: the default. Free with ckpt_handler_free().
 * Returns 0, CKPT_EINVAL (key_name is not a plain file name), CKPT_ENOMEM.
 */
CKPT_API int ckpt_jax_key_handler_new(ckpt_handler **out, const char *key_name);
CKPT_API int ckpt_np_key_handler_new(ckpt_handler **out, const char *key_name);

#ifdef __cplusplus
}
#endif
#endif
