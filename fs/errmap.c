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
 *
 * It also keeps the log (ckptfs_log), so every refusal logged here can be
 * read back through the mount (ckptfs_errors).
 */
#include "ckptfs.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

int ckptfs_foreground = 1;

/*
 * Where the user finds a refusal (docs/fs.md, "Where errors go"): each
 * log line goes to stderr (foreground), the -o log file, or syslog, and
 * is also kept in memory, the last ERRLOG_KEPT of them, for the
 * user.ckpt.errors xattrs and `ckpt status MNT`. A line repeating the one
 * before it only counts (rm -rf of a finalized step refuses every file).
 */
#define ERRLOG_KEPT 32
#define ERRLOG_LINE 480

struct errline {
	time_t t;
	char step[24]; /* the step the line names ("step N"), "" if none */
	unsigned repeat;
	char msg[ERRLOG_LINE];
};

static struct {
	pthread_mutex_t lock; /* protects the fields below */
	struct errline ring[ERRLOG_KEPT];
	size_t next, n;
	FILE *file; /* -o log=FILE (or the default without syslog); NULL: syslog */
} errlog = {.lock = PTHREAD_MUTEX_INITIALIZER};

static char log_path[4096]; /* the -o log file's absolute path, "" if none */

int ckptfs_log_open(const char *path)
{
	FILE *f = fopen(path, "ae");
	if (!f)
		return errno;
	setvbuf(f, NULL, _IOLBF, 0);
	errlog.file = f;
	if (!realpath(path, log_path))
		snprintf(log_path, sizeof(log_path), "%s", path);
	return 0;
}

const char *ckptfs_log_where(void)
{
	return log_path[0] ? log_path : ckptfs_foreground ? "stderr" : "syslog";
}

void ckptfs_log_close(void)
{
	if (errlog.file)
		fclose(errlog.file);
	errlog.file = NULL;
}

/* The step a message names: the digits after its first "step ". */
static void step_of(char out[24], const char *msg)
{
	const char *s = strstr(msg, "step ");
	size_t n = 0;
	if (s)
		for (s += 5; n < 23 && s[n] >= '0' && s[n] <= '9'; n++)
			out[n] = s[n];
	out[n] = '\0';
}

static void stamp(char out[24], time_t t)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 24, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Write one line where log lines go. Under errlog.lock. */
static void emit_line(const char *msg)
{
	char ts[24];
	if (errlog.file) {
		stamp(ts, time(NULL));
		fprintf(errlog.file, "%s ckptfs[%d]: %s\n", ts, (int)getpid(), msg);
	} else if (ckptfs_foreground) {
		fprintf(stderr, "ckptfs: %s\n", msg);
	} else {
		syslog(LOG_ERR, "%s", msg);
	}
}

void ckptfs_log(const char *fmt, ...)
{
	char msg[ERRLOG_LINE], rep[64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	pthread_mutex_lock(&errlog.lock);
	struct errline *last = errlog.n ? &errlog.ring[(errlog.next + ERRLOG_KEPT - 1) % ERRLOG_KEPT]
					: NULL;
	if (last && strcmp(last->msg, msg) == 0) {
		last->repeat++;
		last->t = time(NULL);
		pthread_mutex_unlock(&errlog.lock);
		return;
	}
	if (last && last->repeat > 1) {
		snprintf(rep, sizeof(rep), "(the line before repeated %u times)", last->repeat);
		emit_line(rep);
	}
	struct errline *e = &errlog.ring[errlog.next];
	errlog.next = (errlog.next + 1) % ERRLOG_KEPT;
	errlog.n += errlog.n < ERRLOG_KEPT;
	e->t = time(NULL);
	e->repeat = 1;
	memcpy(e->msg, msg, sizeof(msg));
	step_of(e->step, msg);
	emit_line(msg);
	pthread_mutex_unlock(&errlog.lock);
}

char *ckptfs_errors(const char *step)
{
	char *buf = NULL, ts[24];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	pthread_mutex_lock(&errlog.lock);
	for (size_t k = 0; k < errlog.n; k++) {
		const struct errline *e =
		    &errlog.ring[(errlog.next + ERRLOG_KEPT - errlog.n + k) % ERRLOG_KEPT];
		if (step && strcmp(step, e->step) != 0)
			continue;
		stamp(ts, e->t);
		fprintf(f, "%s %s", ts, e->msg);
		if (e->repeat > 1)
			fprintf(f, " (%u times)", e->repeat);
		fputc('\n', f);
	}
	pthread_mutex_unlock(&errlog.lock);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
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
