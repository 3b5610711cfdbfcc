/*
 * fs/errmap.c — library errors become errno here and nowhere else.
 *
 *   CKPT_ENOTFOUND  -> ENOENT   (not logged: lookups miss all the time)
 *   CKPT_ENOMEM     -> ENOMEM
 *   CKPT_EREADONLY  -> EROFS
 *   CKPT_ECORRUPT   -> EIO, logged naming the leaf (a checksum failed)
 *   anything else   -> EIO, logged
 *
 * Changes to pending steps (ckptfs_errno_write) also keep the library's
 * refusals, logged with its message so the user learns why:
 *   CKPT_EINVAL -> EINVAL, CKPT_EEXISTS -> EEXIST, CKPT_EBUSY -> EBUSY,
 *   CKPT_EUNSUPPORTED -> ENOTSUP
 *
 * Checks of a name or a file a user wrote into a pending step
 * (ckptfs_errno_check; the caller logs the reason naming the file):
 *   CKPT_ENOMEM -> ENOMEM, CKPT_EIO -> EIO, any other refusal -> EINVAL
 */
#include "ckptfs.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

int ckptfs_foreground = 1;

void ckptfs_log(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (ckptfs_foreground) {
		fputs("ckptfs: ", stderr);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	} else {
		vsyslog(LOG_ERR, fmt, ap);
	}
	va_end(ap);
}

int ckptfs_errno(int code, const char *what)
{
	switch (code) {
	case 0:
		return 0;
	case CKPT_ENOTFOUND:
		return ENOENT;
	case CKPT_ENOMEM:
		ckptfs_log("%s: out of memory", what);
		return ENOMEM;
	case CKPT_EREADONLY:
		return EROFS;
	case CKPT_ECORRUPT:
		ckptfs_log("%s: corrupt data (%s): %s", what, ckpt_error_name(code), ckpt_error_last());
		return EIO;
	default:
		ckptfs_log("%s: %s: %s", what, ckpt_error_name(code), ckpt_error_last());
		return EIO;
	}
}

int ckptfs_errno_check(int code)
{
	return code == 0 ? 0 : code == CKPT_ENOMEM ? ENOMEM : code == CKPT_EIO ? EIO : EINVAL;
}

int ckptfs_errno_write(int code, const char *what)
{
	int err;
	switch (code) {
	case CKPT_EINVAL:
		err = EINVAL;
		break;
	case CKPT_EEXISTS:
		err = EEXIST;
		break;
	case CKPT_EBUSY:
		err = EBUSY;
		break;
	case CKPT_EUNSUPPORTED:
		err = ENOTSUP;
		break;
	default:
		return ckptfs_errno(code, what);
	}
	ckptfs_log("%s: %s", what, ckpt_error_last());
	return err;
}
