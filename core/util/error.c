/*
 * error.c — thread-local error messages (see ckpt/error.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ckpt/sys/error.h"
#include "error_private.h"

#define MSG_MAX 1024

static _Thread_local char last_msg[MSG_MAX];

const char *ckpt_error_last(void)
{
	return last_msg;
}

void ckpt_error_clear(void)
{
	last_msg[0] = '\0';
}

const char *ckpt_error_name(int code)
{
	switch (code) {
	case CKPT_OK: return "CKPT_OK";
	case CKPT_ERROR: return "CKPT_ERROR";
	case CKPT_ENOMEM: return "CKPT_ENOMEM";
	case CKPT_EIO: return "CKPT_EIO";
	case CKPT_ENOTFOUND: return "CKPT_ENOTFOUND";
	case CKPT_EEXISTS: return "CKPT_EEXISTS";
	case CKPT_EINVAL: return "CKPT_EINVAL";
	case CKPT_ECORRUPT: return "CKPT_ECORRUPT";
	case CKPT_EVERSION: return "CKPT_EVERSION";
	case CKPT_EUNSUPPORTED: return "CKPT_EUNSUPPORTED";
	case CKPT_ESHAPE: return "CKPT_ESHAPE";
	case CKPT_EBUSY: return "CKPT_EBUSY";
	case CKPT_EREADONLY: return "CKPT_EREADONLY";
	case CKPT_ETIMEDOUT: return "CKPT_ETIMEDOUT";
	}
	return "CKPT_E?";
}

int ckpt_error_set(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_msg, sizeof(last_msg), fmt, ap);
	va_end(ap);
	return code;
}

int ckpt_error_errno(int code, int errnum, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(last_msg, sizeof(last_msg), fmt, ap);
	va_end(ap);
	n = strlen(last_msg);
	snprintf(last_msg + n, sizeof(last_msg) - n, ": %s", strerror(errnum));
	return code;
}

int ckpt_error_wrap(int code, const char *fmt, ...)
{
	char old[MSG_MAX];
	size_t n;
	va_list ap;

	memcpy(old, last_msg, sizeof(old));
	va_start(ap, fmt);
	vsnprintf(last_msg, sizeof(last_msg), fmt, ap);
	va_end(ap);
	n = strlen(last_msg);
	if (n + 2 < sizeof(last_msg)) {
		size_t room = sizeof(last_msg) - n - 3, len = strlen(old);

		memcpy(last_msg + n, ": ", 2);
		n += 2;
		if (len > room)
			len = room;
		memcpy(last_msg + n, old, len);
		last_msg[n + len] = '\0';
	}
	return code;
}

int ckpt_error_set_str(int code, const char *msg)
{
	return ckpt_error_set(code, "%s", msg);
}

int ckpt_check_version(unsigned version, unsigned known, const char *name)
{
	if (version == 0)
		return ckpt_error_set(CKPT_EINVAL, "%s: version 0: initialise it with its _INIT macro",
				      name);
	if (version > known)
		return ckpt_error_set(CKPT_EINVAL,
				      "%s: version %u is newer than this library's (%u)", name,
				      version, known);
	return 0;
}
