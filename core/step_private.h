/*
 * step_private.h — what the step writer (step_writer.c) and reader (step.c)
 * offer the layers above them (library only).
 */
#ifndef CKPT_STEP_PRIVATE_H
#define CKPT_STEP_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

#include "ckpt/step.h"

/* Key of the step metadata inside the store. */
#define CKPT_STEP_METADATA_KEY "_CHECKPOINT_METADATA"
/* Name of an item's tree metadata (key "<item>/_METADATA"). */
#define CKPT_ITEM_METADATA_NAME "_METADATA"

/* The store options the writer was opened with (borrowed). */
const ckpt_store_options *ckpt_step_writer_store_options(const ckpt_step_writer *w);

/*
 * Open a writer on the existing directory dir (ROOT/<step>.ckpt-tmp-<nonce>,
 * a pending step) whose flock the caller holds as lockfd (borrowed: the
 * caller closes it after the writer is gone). Everything in dir except the
 * entry `keep` is removed first (leftovers of an earlier attempt) and the
 * store is created in dir. Abort and failed finalizes remove what the writer
 * created and leave `keep` untouched; a successful finalize renames dir to
 * ROOT/<step> (never replacing a step: CKPT_EEXISTS) and then removes
 * ROOT/<step>/<keep>.
 */
int ckpt_step_writer_open_dir(ckpt_step_writer **out, const char *root, uint64_t step,
			      const char *dir, int lockfd, const char *keep,
			      const ckpt_step_writer_options *opts);
/* A non-negative integer member of the top-level object of the JSON text js,
 * exactly (cJSON's doubles round nanoseconds); 0 if absent or not one. */
int64_t ckpt_json_top_int(const char *js, const char *key);

/*
 * Compact JSON of obj (a cJSON *) whose numbers read back as the same
 * doubles (cJSON alone prints 2.3000000000000003 as 2.3). Returns malloc'd
 * text (free()) or NULL when out of memory.
 */
struct cJSON;
char *ckpt_json_print_exact(const struct cJSON *obj);

/*
 * Does the step's listing (ckpt.list) agree with its store: the stored
 * _CHECKPOINT_METADATA byte for byte, and each listed tree with its item's
 * _METADATA parsed (compared as their metadata JSON)? 0 also without a
 * listing; CKPT_ECORRUPT naming the first disagreement; or the error of
 * reading the store.
 */
int ckpt_step_check_listing(ckpt_step *s);

/* Set the init timestamp written at finalize (default: the time of open). */
void ckpt_step_writer_set_init_time(ckpt_step_writer *w, int64_t ns);

#endif
