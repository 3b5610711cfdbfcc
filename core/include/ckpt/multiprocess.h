/*
 * ckpt/multiprocess.h — several processes saving one step (Orbax's
 * MultiprocessingOptions; docs/api.md "Several processes", docs/format.md
 * "Several processes writing one step").
 *
 * Every process of a job calls the same save (checkpointer, async
 * checkpointer or manager) with the same step, the same options but its own
 * process_index, and its own data: PyTree leaves given as this process's
 * shards of global arrays (ckpt/tree.h). The processes share the root
 * through a shared filesystem; they meet at barriers made of files under the
 * root (no server, no lock across hosts, no clock compared across hosts).
 *
 * Roles, with a primary (primary_host >= 0):
 *   - the primary writes everything one process would write (the step
 *     metadata, every item's metadata, non-array leaves, items of other
 *     handlers, plain array leaves) plus its own replica-0 shards;
 *   - every other active process writes only its replica-0 shards (its
 *     other puts are accepted and skipped, so handlers need no change);
 *   - the primary merges the per-process indexes, checks that the shards of
 *     every global array tile it exactly once, seals and renames; all
 *     processes return the same result.
 * Without a primary (primary_host == -1) there is no shared step: every
 * process saves its own complete step alone (each on its own root, as
 * Orbax's local copies); its global arrays must be complete in its own
 * shards.
 *
 * A process not in active_processes takes no part: its save is CKPT_EINVAL
 * naming it (call save only on active processes). The manager of a
 * non-primary process never deletes steps, cleans up or collects garbage;
 * it sees the same steps as the primary.
 */
#ifndef CKPT_MULTIPROCESS_H
#define CKPT_MULTIPROCESS_H

#include <stddef.h>
#include <stdint.h>

#include "ckpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CKPT_MULTIPROCESS_OPTIONS_VERSION 1
/* Longest barrier_sync_key_prefix (it is part of directory names). */
#define CKPT_MULTIPROCESS_PREFIX_MAX 64

typedef struct ckpt_multiprocess_options {
	unsigned version;
	unsigned process_index; /* this process: 0 .. process_count-1 */
	unsigned process_count; /* 0 or 1: a single process (today's path) */
	int primary_host;	/* the primary's process index, or -1: no primary */
	/* The processes taking part (each once, ascending or not; must include
	 * the primary); NULL: all process_count processes. Borrowed. */
	const unsigned *active_processes;
	size_t nactive;
	/* Separates concurrent multi-process saves of one root: [A-Za-z0-9_-],
	 * at most CKPT_MULTIPROCESS_PREFIX_MAX bytes; NULL: "". Borrowed. */
	const char *barrier_sync_key_prefix;
	uint64_t barrier_timeout_ms; /* each barrier's wait; 0: 300,000 (300 s) */
} ckpt_multiprocess_options;
#define CKPT_MULTIPROCESS_OPTIONS_INIT {CKPT_MULTIPROCESS_OPTIONS_VERSION, 0, 1, 0, NULL, 0, NULL, 0}

/*
 * Check o (NULL is a single process): the version, process_index <
 * process_count, primary_host -1 or < process_count, active_processes
 * within range, without duplicates and holding the primary, the prefix's
 * characters and length, and that this process is active.
 * Returns 0, CKPT_EINVAL (the message names the field and the value).
 */
CKPT_API int ckpt_multiprocess_check(const ckpt_multiprocess_options *o);

/*
 * Returns 1 if o makes this process write a shared step as a non-primary
 * (it writes only its shards and never deletes, cleans up or collects
 * garbage), 0 otherwise (a single process, the primary, or no primary).
 */
CKPT_API int ckpt_multiprocess_is_secondary(const ckpt_multiprocess_options *o);

#ifdef __cplusplus
}
#endif
#endif
