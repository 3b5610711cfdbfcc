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

/* Shorthand for the common out-of-memory case. */
#define ckpt_error_nomem() ckpt_error_set(CKPT_ENOMEM, "out of memory")

#endif
