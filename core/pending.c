/*
 * pending.c — pending steps (ckpt/pending.h). Skeleton: filled in by its owner.
 */
#include "ckpt/pending.h"
#include "error_private.h"

int ckpt_pending_list(ckpt_pending_info **out, size_t *n, const char *root)
{
	(void)root;
	*out = NULL;
	*n = 0;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "pending steps: not built yet");
}

void ckpt_pending_list_free(ckpt_pending_info *list, size_t n)
{
	(void)list;
	(void)n;
}

int ckpt_pending_create(char **dir_out, int *lock_fd, const char *root, uint64_t step)
{
	(void)dir_out, (void)lock_fd, (void)root, (void)step;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "pending steps: not built yet");
}

int ckpt_pending_check_path(const char *relpath, int is_dir)
{
	(void)relpath, (void)is_dir;
	return 0;
}

int ckpt_pending_check_file(int fd, const char *relpath)
{
	(void)fd, (void)relpath;
	return 0;
}

int ckpt_clone_stub_format(char **out, size_t *len, const ckpt_clone_ref *ref)
{
	(void)out, (void)len, (void)ref;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "clone stubs: not built yet");
}

int ckpt_clone_stub_parse(ckpt_clone_ref *out, const void *buf, size_t len)
{
	(void)out, (void)buf, (void)len;
	return ckpt_error_set(CKPT_EINVAL, "clone stubs: not built yet");
}

int ckpt_clone_stub_read(ckpt_clone_ref *out, int fd)
{
	(void)out, (void)fd;
	return 0;
}

void ckpt_clone_ref_clear(ckpt_clone_ref *ref)
{
	(void)ref;
}

int ckpt_pending_finalize(const char *dir, int lock_fd, const ckpt_step_writer_options *opts)
{
	(void)dir, (void)lock_fd, (void)opts;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "pending steps: not built yet");
}

int ckpt_pending_remove(const char *dir, int lock_fd)
{
	(void)dir, (void)lock_fd;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "pending steps: not built yet");
}

int ckpt_pending_lock(int *lock_fd, const char *dir)
{
	(void)dir;
	*lock_fd = -1;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "pending steps: not built yet");
}
