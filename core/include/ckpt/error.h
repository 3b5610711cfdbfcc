/*
 * ckpt/error.h — error codes and the thread-local error message.
 *
 * Every libckpt function that can fail returns an int: 0 on success or one of
 * the negative CKPT_E* codes below. The function that understood the failure
 * sets a message (naming the file, key or leaf involved) that the caller reads
 * with ckpt_error_last() on the same thread, until the next failing call.
 */
#ifndef CKPT_ERROR_H
#define CKPT_ERROR_H

#include "ckpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
	CKPT_OK = 0,
	CKPT_ERROR = -1,        /* unclassified failure */
	CKPT_ENOMEM = -2,       /* out of memory */
	CKPT_EIO = -3,          /* an operating-system I/O call failed */
	CKPT_ENOTFOUND = -4,    /* no such key, step, item or leaf */
	CKPT_EEXISTS = -5,      /* already exists (a step, a key in a batch) */
	CKPT_EINVAL = -6,       /* malformed input: bad .npy, JSON, arguments */
	CKPT_ECORRUPT = -7,     /* checksum mismatch or damaged store file */
	CKPT_EVERSION = -8,     /* format version newer than this reader */
	CKPT_EUNSUPPORTED = -9, /* valid but unsupported (dtype, feature) */
	CKPT_ESHAPE = -10,      /* shape mismatch against a restore target */
	CKPT_EBUSY = -11,       /* resource in use (a step being saved) */
	CKPT_EREADONLY = -12,   /* write to a finalized step or read-only store */
	CKPT_ETIMEDOUT = -13,   /* a save took longer than its timeout */
};

/*
 * The message of the last failure on this thread. Never NULL ("" when none).
 * The pointer is valid until the next libckpt call on this thread.
 */
CKPT_API const char *ckpt_error_last(void);

/* A short constant name for a code ("CKPT_ECORRUPT"); "CKPT_E?" if unknown. */
CKPT_API const char *ckpt_error_name(int code);

/* Forget the last message of this thread. */
CKPT_API void ckpt_error_clear(void);

#ifdef __cplusplus
}
#endif
#endif
