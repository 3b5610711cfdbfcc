/*
 * ckpt/root.h — a checkpoint root: the directory of a run's steps
 * (docs/format.md, "Step layout"; docs/manager.md).
 *
 * A root holds finalized steps (directories named by their step number),
 * temporary directories of saves in progress or abandoned
 * ("<step>.ckpt-tmp-<nonce>"), pending steps, and _ROOT_METADATA. These
 * functions work on plain step names; a CheckpointManager with a step prefix
 * or padding (ckpt/manager.h) lists and deletes its own names.
 */
#ifndef CKPT_ROOT_H
#define CKPT_ROOT_H

#include <stddef.h>
#include <stdint.h>

#include "ckpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A pending step's directory holds its interchange directory under this name (ckpt/pending.h). */
#define CKPT_PENDING_FILES "files"

/*
 * Finalized steps of root in ascending order: *out malloc'd (caller
 * free()s), *n their count. Temporary directories and other names are
 * skipped.
 * Returns 0, CKPT_ENOTFOUND (no root), CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_root_steps(uint64_t **out, size_t *n, const char *root);
/*
 * A step directory of a root, whatever its naming: plain ("7"), zero-padded
 * ("0000007", Orbax's step_format_fixed_length) or prefixed ("ckpt_7",
 * "run_0000012", Orbax's step_prefix and CheckpointManagerOptions' prefix).
 */
#define CKPT_STEP_NAME_MAX 256
typedef struct ckpt_root_step {
	uint64_t step;
	char name[CKPT_STEP_NAME_MAX]; /* the directory's name in the root */
} ckpt_root_step;

/*
 * Parse a step directory name in any naming: *out receives the step of
 * "7", "0000007", "ckpt_7" or "run_0000012" (the digits after the last '_').
 * A name holding ".orbax-checkpoint-tmp" or ".ckpt-tmp-" (a save in progress)
 * is never a step.
 * Returns 1 for a step name, 0 for any other name.
 */
CKPT_API int ckpt_step_dir_name_any(uint64_t *out, const char *name);

/*
 * The finalized step directories of root in every naming
 * (ckpt_step_dir_name_any) holding a native or an Orbax step, ascending by
 * step, then by name (two namings of one step are both listed): *out
 * malloc'd (caller free()s), *n their count. ckpt_root_steps lists plain
 * names only.
 * Returns 0, CKPT_ENOTFOUND (no root), CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_root_step_dirs(ckpt_root_step **out, size_t *n, const char *root);
/*
 * Remove temporary directories of abandoned saves (never pending steps);
 * *removed (may be NULL) receives their count. A missing root has none.
 * Returns 0, CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_root_cleanup(const char *root, size_t *removed);
/*
 * Delete a finalized step (rename to a temporary name, then remove).
 * Returns 0, CKPT_ENOTFOUND (no such step), CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_root_delete_step(const char *root, uint64_t step);
/*
 * Delete the finalized step directory `name` of root in any naming
 * (ckpt_step_dir_name_any: "7", "0000007", "ckpt_7"), as ckpt_root_delete_step.
 * Returns 0, CKPT_EINVAL (name is not a step directory name), CKPT_ENOTFOUND
 * (no such directory), CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_root_delete_step_dir(const char *root, const char *name);

/*
 * For evaluators: wait until root has a finalized step newer than `after`
 * (any step if after < 0) and set *out to the newest; inotify on root with a
 * polling fallback. timeout_ms < 0 waits forever. Steps in every naming
 * count (ckpt_root_step_dirs: "7", "0000007", "ckpt_7").
 * Returns 0, CKPT_EBUSY (timeout_ms passed without a newer step), CKPT_EIO,
 * CKPT_ENOMEM.
 */
CKPT_API int ckpt_root_wait_for_step(uint64_t *out, const char *root, int64_t after, int timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
