/*
 * item_format_fuzzer.c — fuzz target for the files of the items of the Json,
 * Array, Proto, JaxRandomKey and NumpyRandomKey handlers as `ckpt save`,
 * finalize and the mount check them (core/item_format.h).
 *
 * Input: one byte choosing the handler, then up to three files, each a name
 * line ('\n'-terminated) and a content whose end is the 4-byte separator
 * "\n--\n" (or the input's end). The files are written into a fresh
 * directory, checked one by one and then as an item. A refusal must come with
 * a message; nothing may crash, hang or leak.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt/ckpt.h"
#include "item_format.h"
#include "fsutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const types[] = {CKPT_JSON_TYPESTR, CKPT_ARRAY_TYPESTR, CKPT_PROTO_TYPESTR,
				    CKPT_JAX_KEY_TYPESTR, CKPT_NP_KEY_TYPESTR};

static void says_why(int rc)
{
	if (rc < 0 && !*ckpt_error_last())
		abort();
}

/* Write the file (name, content) into dirfd; 0 if it could not be (bad name). */
static int put(int dirfd, const uint8_t *name, size_t nlen, const uint8_t *body, size_t blen)
{
	char fname[64];
	int fd;

	if (nlen == 0 || nlen >= sizeof(fname) || memchr(name, '/', nlen) ||
	    memchr(name, 0, nlen) || (nlen <= 2 && name[0] == '.'))
		return 0;
	memcpy(fname, name, nlen);
	fname[nlen] = 0;
	fd = openat(dirfd, fname, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return 0;
	if (write(fd, body, blen) != (ssize_t)blen) {
		close(fd);
		return 0;
	}
	close(fd);
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char dir[] = "/tmp/item-fuzz-XXXXXX";
	const item_format *f;
	const uint8_t *p, *end = data + size;
	int dirfd;

	ckpt_error_clear();
	if (size < 1 || !mkdtemp(dir))
		return 0;
	f = item_format_find(types[data[0] % 5]);
	if (!f)
		abort();
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	p = data + 1;
	for (int i = 0; dirfd >= 0 && i < 3 && p < end; i++) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break;
		const uint8_t *body = nl + 1, *sep = NULL;
		for (const uint8_t *q = body; q + 4 <= end && !sep; q++)
			if (!memcmp(q, "\n--\n", 4))
				sep = q;
		const uint8_t *bend = sep ? sep : end;
		put(dirfd, p, (size_t)(nl - p), body, (size_t)(bend - body));
		p = sep ? sep + 4 : end;
	}
	if (dirfd >= 0) {
		says_why(item_format_check_dir(f->typestr, dirfd, "item"));
		close(dirfd);
	}
	ckpt_rmtree(dir);
	return 0;
}
