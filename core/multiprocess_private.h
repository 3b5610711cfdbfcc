/*
 * multiprocess_private.h — the rendezvous and barriers of a multi-process
 * save (multiprocess.c), used by the step writer (step_writer.c).
 *
 * Ownership: a ckpt_mp copies everything it needs from the options and the
 * paths it is given; free it with ckpt_mp_free.
 */
#ifndef CKPT_MULTIPROCESS_PRIVATE_H
#define CKPT_MULTIPROCESS_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

#include "ckpt/multiprocess.h"

/* A rendezvous directory: ROOT/<step name>.ckpt-tmp-rdv-<prefix>. Root
 * cleanup leaves it alone (its owner is every process of the save). */
#define CKPT_MP_RDV_INFIX ".ckpt-tmp-rdv-"
/* An attempt directory: ROOT/<step name>.ckpt-tmp-mp-<prefix>-<nonce>. */
#define CKPT_MP_ATTEMPT_INFIX ".ckpt-tmp-mp-"

typedef struct ckpt_mp ckpt_mp;

/*
 * 1 if o asks for a shared step (process_count > 1 and a primary), else 0
 * (one process, or every process alone). o has been checked.
 */
int ckpt_mp_shared(const ckpt_multiprocess_options *o);

/*
 * This process's part of the save of step `step` whose final directory is
 * `final` (ROOT/<step name>). o is checked (ckpt_multiprocess_check) and
 * copied. Returns 0, CKPT_EINVAL, CKPT_ENOMEM.
 */
int ckpt_mp_new(ckpt_mp **out, const ckpt_multiprocess_options *o, const char *final,
		uint64_t step);
void ckpt_mp_free(ckpt_mp *mp);
int ckpt_mp_is_primary(const ckpt_mp *mp);
unsigned ckpt_mp_index(const ckpt_mp *mp);

/*
 * Primary, barrier 'start' (1/2): remove attempt directories of this step
 * and prefix left by dead attempts, claim the primary's index and wait until
 * every active process has announced itself. *attempt_dir receives the path
 * of the attempt directory to create (malloc'd).
 */
int ckpt_mp_primary_gather(ckpt_mp *mp, char **attempt_dir);
/*
 * Primary, barrier 'start' (2/2): the attempt directory exists and is
 * locked: publish it and wait until every active process acknowledged it.
 */
int ckpt_mp_primary_publish(ckpt_mp *mp);
/*
 * Primary, barrier 'saved': wait until every active process wrote its
 * index (done.<i>). A process that failed, vanished or was claimed twice
 * fails the save with a message naming it.
 */
int ckpt_mp_primary_wait_saved(ckpt_mp *mp);
/* Primary: the heartbeat the others' wait for 'result' follows (after each merge). */
void ckpt_mp_primary_beat(ckpt_mp *mp);
/* The active non-primary process indexes (borrowed) and their count. */
const unsigned *ckpt_mp_others(const ckpt_mp *mp, size_t *n);
/*
 * Primary: publish the save's result (rc 0: committed; else rc and the
 * current error message, which is kept), then (rc 0) wait, bounded by the
 * timeout, for the others to read it and remove the rendezvous directory.
 * Not published (the attempt failed before ckpt_mp_primary_publish): only
 * withdraw this process's announcement. Returns 0.
 */
int ckpt_mp_primary_result(ckpt_mp *mp, int rc, int published);

/*
 * Non-primary, barrier 'start': announce this process and wait for the
 * primary's attempt that lists it; *attempt_dir receives its path
 * (malloc'd). Claims the index: a second process with the same index is
 * CKPT_EEXISTS naming it.
 */
int ckpt_mp_join(ckpt_mp *mp, char **attempt_dir);
/*
 * Non-primary, barrier 'saved' and 'result': say that this process's index
 * is complete, wait for the primary's result and return it (0, or the
 * primary's error code with its message).
 */
int ckpt_mp_done(ckpt_mp *mp);
/* Non-primary: this process gives up (rc and the current message go to
 * the primary, which fails the save). */
void ckpt_mp_failed(ckpt_mp *mp, int rc);

/*
 * An owned copy of options (the async checkpointer and the manager keep
 * theirs beyond the caller's): in NULL gives *out NULL. Checks in first.
 * Returns 0, CKPT_EINVAL, CKPT_ENOMEM.
 */
typedef struct ckpt_mp_options_copy ckpt_mp_options_copy;
int ckpt_mp_options_dup(ckpt_mp_options_copy **out, const ckpt_multiprocess_options *in);
/* The copied options (borrowed from c; NULL for c NULL). */
const ckpt_multiprocess_options *ckpt_mp_options_of(const ckpt_mp_options_copy *c);
void ckpt_mp_options_free(ckpt_mp_options_copy *c);

/*
 * Parsers of the rendezvous files (outside bytes; tests/fuzz/mp_fuzzer.c).
 * ckpt_mp_parse_outcome: "<nonce> <code>\n<message>" (failed.<i>, result)
 * whose nonce is `nonce`: 1 with *code (0 or a CKPT_E* code) and *msg
 * (borrowed from text), else 0.
 * ckpt_mp_parse_attempt: the attempt file; 1 if it lists process `index`
 * with nonce `mine`, with the attempt's nonce in nonce_out and its
 * directory name in *dir (malloc'd, one name without '/', not starting with
 * '.'); 0 if not (or not an attempt file); CKPT_ENOMEM.
 */
int ckpt_mp_parse_outcome(int *code, const char **msg, const char *text, const char *nonce);
int ckpt_mp_parse_attempt(const char *text, unsigned index, const char *mine, char nonce_out[17],
			  char **dir);

#endif
