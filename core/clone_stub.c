/*
 * clone_stub.c — clone stubs (ckpt/clone.h): the small files that stand for
 * a leaf of a finalized step in a pending step or an interchange directory.
 *
 * Invariants:
 *   1. A stub is a regular file with S_ISVTX whose content starts with
 *      CKPT_CLONE_MAGIC; anything else is an ordinary file.
 *   2. A stub parses only if its step is decimal digits without a leading
 *      zero, its item passes ckpt_item_name_check and its path is empty
 *      (the item's .safetensors file) or '/'-separated non-empty components
 *      other than "." and "..", with no NUL or newline, and the stub is at
 *      most CLONE_MAX bytes.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/clone.h"
#include "error_private.h"
#include "fsutil.h"
#include "root_private.h"

#define CLONE_MAX (64u << 10) /* bytes of a clone stub */
#define MAGIC_LEN (sizeof(CKPT_CLONE_MAGIC) - 1)

/* A leaf path (ckpt_relpath_ok and no newline: a stub is lines), or "". */
static int path_ok(const char *p, size_t len)
{
	return len == 0 || (!memchr(p, '\n', len) && ckpt_relpath_ok(p, len));
}

int ckpt_clone_stub_format(char **out, size_t *len, const ckpt_clone_ref *ref)
{
	*out = NULL;
	*len = 0;
	if (!ref->item || !ref->path || strchr(ref->item, '\n') ||
	    ckpt_item_name_check(ref->item) != 0 || !path_ok(ref->path, strlen(ref->path)))
		return ckpt_error_set(CKPT_EINVAL, "clone stub: bad item '%s' or path '%s'",
				      ref->item ? ref->item : "(null)",
				      ref->path ? ref->path : "(null)");
	if (!(*out = ckpt_asprintf(CKPT_CLONE_MAGIC "%" PRIu64 "\n%s\n%s\n", ref->step, ref->item,
				    ref->path)))
		return CKPT_ENOMEM;
	*len = strlen(*out);
	if (*len > CLONE_MAX) {
		free(*out);
		*out = NULL;
		*len = 0;
		return ckpt_error_set(CKPT_EINVAL, "clone stub: path longer than %u bytes",
				      CLONE_MAX);
	}
	return 0;
}

/* The next line of [*p, end) without its '\n': start and length; 0 if there is no '\n'. */
static int next_line(const char **line, size_t *n, const char **p, const char *end)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));

	if (!nl)
		return 0;
	*line = *p;
	*n = (size_t)(nl - *p);
	*p = nl + 1;
	return 1;
}

int ckpt_clone_stub_parse(ckpt_clone_ref *out, const void *buf, size_t len)
{
	const char *p = buf, *end = p + len, *s, *item, *path;
	size_t sn, in, pn;
	char num[24];
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (len < MAGIC_LEN || len > CLONE_MAX || memcmp(p, CKPT_CLONE_MAGIC, MAGIC_LEN) != 0)
		return ckpt_error_set(CKPT_EINVAL, "not a clone stub (bad magic or size)");
	p += MAGIC_LEN;
	if (!next_line(&s, &sn, &p, end) || !next_line(&item, &in, &p, end) ||
	    !next_line(&path, &pn, &p, end) || p != end)
		return ckpt_error_set(CKPT_EINVAL,
				      "clone stub: expected three lines (step, item, path)");
	if (sn == 0 || sn >= sizeof(num) || memchr(s, '\0', sn))
		return ckpt_error_set(CKPT_EINVAL, "clone stub: bad step number");
	memcpy(num, s, sn);
	num[sn] = '\0';
	if (!ckpt_step_name_parse(&out->step, num))
		return ckpt_error_set(CKPT_EINVAL, "clone stub: bad step number '%s'", num);
	if (memchr(item, '\0', in) || !path_ok(path, pn))
		return ckpt_error_set(CKPT_EINVAL, "clone stub: bad item or leaf path");
	out->item = strndup(item, in);
	out->path = strndup(path, pn);
	if (!out->item || !out->path)
		rc = ckpt_error_nomem();
	else if ((rc = ckpt_item_name_check(out->item)) != 0)
		ckpt_error_wrap(rc, "clone stub");
	if (rc)
		ckpt_clone_ref_clear(out);
	return rc;
}

int ckpt_clone_stub_read(ckpt_clone_ref *out, int fd)
{
	char magic[MAGIC_LEN], *buf = NULL;
	struct stat st;
	size_t len = 0;
	ssize_t r;
	int rc;

	memset(out, 0, sizeof(*out));
	if (fstat(fd, &st) != 0)
		return ckpt_error_errno(CKPT_EIO, errno, "stat");
	if (!S_ISREG(st.st_mode) || !(st.st_mode & S_ISVTX) || st.st_size < (off_t)MAGIC_LEN)
		return 0;
	r = pread(fd, magic, MAGIC_LEN, 0);
	if (r < 0)
		return ckpt_error_errno(CKPT_EIO, errno, "read");
	if ((size_t)r != MAGIC_LEN || memcmp(magic, CKPT_CLONE_MAGIC, MAGIC_LEN) != 0)
		return 0;
	rc = ckpt_read_fd(&buf, &len, fd, CLONE_MAX, "clone stub");
	if (rc == 0)
		rc = ckpt_clone_stub_parse(out, buf, len);
	free(buf);
	return rc ? rc : 1;
}

void ckpt_clone_ref_clear(ckpt_clone_ref *ref)
{
	if (!ref)
		return;
	free(ref->item);
	free(ref->path);
	ref->item = ref->path = NULL;
}
