/*
 * pending_fuzzer.c — fuzz target for what the write side of the mount reads
 * from users: clone stubs, paths of files/ and the files closed into a
 * pending step (core/pending.c).
 *
 * Input: a path (up to the first '\n'), then the file's content. The target
 * checks the path as a file and as a directory, checks the content as that
 * file (in a memfd, as the daemon does at close, with and without the stub
 * mode bit) and parses the content as a clone stub. When a stub parses, it
 * must format back to the same bytes. Errors must come with a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/ckpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void says_why(int rc)
{
	if (rc < 0 && !*ckpt_error_last())
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size < 4096 ? size : 4096);
	size_t plen = nl ? (size_t)(nl - data) : 0;
	const uint8_t *body = nl ? nl + 1 : data;
	size_t blen = size - (size_t)(body - data);
	ckpt_clone_ref ref = {0};
	char *path = NULL, *stub = NULL;
	size_t stublen;
	int fd, rc;

	if ((path = malloc(plen + 1)) == NULL)
		return 0;
	memcpy(path, data, plen);
	path[plen] = 0;
	if (strlen(path) == plen) { /* no NUL inside */
		says_why(ckpt_pending_check_path(path, 0));
		says_why(ckpt_pending_check_path(path, 1));
		if (plen > 0 && (fd = memfd_create("pending-fuzz", MFD_CLOEXEC)) >= 0) {
			if (write(fd, body, blen) == (ssize_t)blen) {
				says_why(ckpt_pending_check_file(-1, fd, path));
				if (fchmod(fd, 0644 | S_ISVTX) == 0)
					says_why(ckpt_pending_check_file(-1, fd, path));
			}
			close(fd);
		}
	}
	rc = ckpt_clone_stub_parse(&ref, body, blen);
	says_why(rc);
	if (rc == 0) {
		if (ckpt_clone_stub_format(&stub, &stublen, &ref) == 0 &&
		    (stublen != blen || memcmp(stub, body, blen)))
			abort(); /* a stub that parses formats back to itself */
		free(stub);
	}
	ckpt_clone_ref_clear(&ref);
	free(path);
	return 0;
}
