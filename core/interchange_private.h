/*
 * interchange_private.h — the directory-to-step conversion in its lenient
 * mode, for finalizing pending steps (interchange.c; library only).
 *
 * A pending step (ckpt/pending.h) is an interchange directory written file by
 * file (dir/files/). Finalizing it (pending.c) is exactly `ckpt save` of that
 * directory, read leniently (clone stubs, adopted .npy files): so pending.c
 * owns the step's lifecycle (lock, checks, rename) and hands the conversion
 * to interchange.c, which owns reading directories into steps.
 */
#ifndef CKPT_INTERCHANGE_PRIVATE_H
#define CKPT_INTERCHANGE_PRIVATE_H

#include <stdint.h>

#include "ckpt/step.h"

/*
 * Read dir/files/ leniently, write the store inside dir with a writer of
 * ckpt_step_writer_open_dir (lockfd held by the caller) and finalize it.
 */
int ckpt_interchange_save_pending(const char *root, uint64_t step, const char *dir, int lockfd,
				  const ckpt_step_writer_options *opts);

#endif
