/*
 * ckpt/sys/error.h — setting the error message from code outside libckpt
 * (a store backend, a custom handler), as libgit2's sys/errors.h does.
 */
#ifndef CKPT_SYS_ERROR_H
#define CKPT_SYS_ERROR_H

#include "ckpt/common.h"
#include "ckpt/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Set this thread's message (copied) to msg, for ckpt_error_last(), and
 * return code: `return ckpt_error_set_str(CKPT_ECORRUPT, "node 3: bad CRC");`.
 */
CKPT_API int ckpt_error_set_str(int code, const char *msg);

#ifdef __cplusplus
}
#endif
#endif
