/*
 * error_private.h — setting the thread-local error message (library only).
 *
 * Set the message once, where the failure is understood, and return the code:
 *
 *	if (fd < 0)
 *		return ckpt_error_errno(CKPT_EIO, errno, "open %s", path);
 *
 * Callers that add context (which leaf, which step) use ckpt_error_wrap(),
 * which prefixes the current message and returns the same code.
 */
#ifndef CKPT_ERROR_PRIVATE_H
#define CKPT_ERROR_PRIVATE_H

#include "ckpt/error.h"

/* Set the message; returns code. */
int ckpt_error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Set the message followed by ": strerror(errnum)"; returns code. */
int ckpt_error_errno(int code, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix the current message with "<context>: "; returns code unchanged. */
int ckpt_error_wrap(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * The one rule for the version field that starts every options and args
 * struct (docs/api.md, "Options"): NULL means defaults; version 0 is a struct
 * nobody initialised (use its _INIT macro); a version above `known` comes from
 * a newer header. Both are CKPT_EINVAL naming the struct. Returns 0 or the code.
 */
int ckpt_check_version(unsigned version, unsigned known, const char *name);

/* `return` the error of ckpt_check_version from the calling function, if any;
 * use it first thing, before anything needs freeing (as libgit2's GIT_ERROR_CHECK_VERSION). */
#define CKPT_CHECK_VERSION(ptr, known, name)                                               \
	do {                                                                               \
		int ckpt_v_rc_ = (ptr) ? ckpt_check_version((ptr)->version, (known), (name)) : 0; \
		if (ckpt_v_rc_ < 0)                                                        \
			return ckpt_v_rc_;                                                  \
	} while (0)

/* Shorthand for the common out-of-memory case. */
#define ckpt_error_nomem() ckpt_error_set(CKPT_ENOMEM, "out of memory")

#endif
