/*
 * step_private.h — helpers shared by the step writer, the step reader, the
 * root functions and the interchange module (library only).
 */
#ifndef CKPT_STEP_PRIVATE_H
#define CKPT_STEP_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

#include "ckpt/step.h"

/* Key of the step metadata inside the store. */
#define CKPT_STEP_METADATA_KEY "_CHECKPOINT_METADATA"
/* Name of an item's tree metadata (key "<item>/_METADATA"). */
#define CKPT_ITEM_METADATA_NAME "_METADATA"

/* Remove path and everything below it (no error if it, or any part, does not exist). */
int ckpt_fs_rmtree(const char *path);
/*
 * Open directory path and flock(LOCK_EX) it (LOCK_NB if nonblock): the lock of
 * a temporary step directory (root.c invariant 2). *fd receives the descriptor;
 * closing it releases the lock. CKPT_ENOTFOUND if path does not exist (also
 * when it vanished while waiting), CKPT_EBUSY if nonblock and the lock is held,
 * or if path names another inode once locked.
 */
int ckpt_fs_lock_dir(int *fd, const char *path, int nonblock);
/* fsync a directory. */
int ckpt_fs_fsync_dir(const char *path);
/* mkdir -p. */
int ckpt_fs_mkdir_p(const char *path);
/* malloc'd printf; NULL when out of memory (message set). */
char *ckpt_fs_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Read a whole file (at most max bytes) into a malloc'd NUL-terminated buffer. */
int ckpt_fs_read_file(char **out, size_t *out_len, const char *path, size_t max);
/* Write a whole file (create or truncate). */
int ckpt_fs_write_file(const char *path, const void *data, size_t len);

/*
 * Parse a step directory name: decimal digits, no leading zero unless the
 * name is "0", fits in uint64. Returns 1 if it is a step name, else 0.
 */
int ckpt_step_name_parse(uint64_t *out, const char *name);

/* 16 hex digits of randomness for temporary names; buf holds 17 bytes. */
void ckpt_fs_nonce(char buf[17]);

/* Item names are directory names: non-empty, no '/', not starting with '_' or '.'. */
int ckpt_item_name_check(const char *item);

/* The store options the writer was opened with (borrowed). */
const ckpt_store_options *ckpt_step_writer_store_options(const ckpt_step_writer *w);

#endif
