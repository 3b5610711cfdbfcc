/*
 * npy_private.h — checking a .npy file on disk (npy.c; library only).
 */
#ifndef CKPT_NPY_PRIVATE_H
#define CKPT_NPY_PRIVATE_H

#include "ckpt/npy.h"

/*
 * Check the .npy file open as fd (named name in messages): a valid header
 * and exactly the length it announces ("x.npy: header says float32 (3, 4) =
 * 48 data bytes but the file has 40"). Reads with pread (the offset stays).
 */
int ckpt_npy_check_fd(ckpt_npy_header *h, int fd, const char *name);

#endif
