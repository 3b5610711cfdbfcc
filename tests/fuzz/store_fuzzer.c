/*
 * store_fuzzer.c — fuzz target for the reader of a step's own files: ckpt.db
 * (the sqlite index: schema, meta, kv, chunks, files rows) and the data files
 * it points into.
 *
 * Input: a 4-byte little-endian length L, then L bytes of ckpt.db, then the
 * bytes given to every data file the index names (names that could leave d/
 * are skipped: the reader must refuse them itself). Unless the top bit of L
 * is set, the index checksum (the header's application id, docs/format.md
 * "Index checksum") is cleared: it would refuse almost every mutation before
 * sqlite reads a page, and a format 1.0 index has none, so the reader behind
 * it is what needs fuzzing (tests/unit/index_check_test.c covers the
 * checksum). Also runs the key check of `ckpt verify`. The target writes them
 * into a scratch step directory, opens it as a finalized step, and reads
 * everything: step metadata, every item's tree, every leaf file, every key's
 * value with checksums verified. Any outcome but a crash, a hang or a
 * sanitizer report is fine; errors must come with a message.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/ckpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_READ (1u << 20) /* bytes read per value: keeps one input fast */

static char dir[64], ddir[80], db[80];

static int write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int ok = fd >= 0 && write(fd, buf, len) == (ssize_t)len;

	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

/* Remove everything of the previous input. */
static void reset(void)
{
	DIR *d = opendir(ddir);
	struct dirent *e;

	unlink(db);
	while (d && (e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dirfd(d), e->d_name, 0);
	if (d)
		closedir(d);
	mkdir(ddir, 0755);
}

static void cleanup(void)
{
	reset();
	rmdir(ddir);
	rmdir(dir);
}

/* Give every data file the index names the same bytes. */
static void write_data_files(const uint8_t *bytes, size_t len)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;

	if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(h, "SELECT name FROM files LIMIT 16", -1, &st, NULL) != SQLITE_OK)
		goto done;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *n = (const char *)sqlite3_column_text(st, 0);
		char path[256];
		if (!n || !*n || strlen(n) > 100 || strchr(n, '/') || n[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", ddir, n);
		(void)write_file(path, bytes, len);
	}
done:
	sqlite3_finalize(st);
	sqlite3_close(h);
}

struct walk {
	ckpt_step *s;
	const char *item;
	unsigned char *buf;
};

static int read_leaf(ckpt_tree *node, const char *path, void *payload)
{
	struct walk *w = payload;
	ckpt_leaf *l = NULL;
	size_t n;

	(void)path;
	if (ckpt_tree_is_container(node) || ckpt_tree_get_kind(node) == CKPT_TREE_NONE)
		return 0;
	if (ckpt_leaf_open(&l, w->s, w->item, node) == 0) {
		uint64_t size = ckpt_leaf_file_size(l);
		(void)ckpt_leaf_pread(&n, l, w->buf, MAX_READ, 0);
		if (size > 1)
			(void)ckpt_leaf_pread(&n, l, w->buf, 1, size - 1);
	}
	ckpt_leaf_free(l);
	return 0;
}

static int read_key(const void *name, size_t namelen, int is_prefix, void *payload)
{
	struct walk *w = payload;
	ckpt_value *v = NULL;
	size_t n;

	(void)is_prefix;
	if (ckpt_value_open(&v, ckpt_step_store(w->s), name, namelen) == 0) {
		if (ckpt_value_get_info(v)->size <= MAX_READ)
			(void)ckpt_value_verify(v);
		uint64_t size = ckpt_value_get_info(v)->size;
		(void)ckpt_value_pread(&n, v, w->buf, MAX_READ, 0);
		if (size > 2) /* part of a chunk: by blocks where the chunk has them */
			(void)ckpt_value_pread(&n, v, w->buf, size / 2 < 9000 ? size / 2 : 9000,
					       size / 3);
	}
	ckpt_value_free(v);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct walk w = {0};
	uint32_t dblen;
	int keep_seal, rc;
	size_t nproblems;

	if (!dir[0]) {
		snprintf(dir, sizeof(dir), "/tmp/ckpt-store-fuzz-XXXXXX");
		if (!mkdtemp(dir))
			return 0;
		snprintf(ddir, sizeof(ddir), "%s/d", dir);
		snprintf(db, sizeof(db), "%s/ckpt.db", dir);
		atexit(cleanup);
	}
	if (size < 4)
		return 0;
	memcpy(&dblen, data, 4);
	keep_seal = (dblen & 0x80000000u) != 0;
	dblen &= 0x7fffffffu;
	if (dblen > size - 4)
		dblen = (uint32_t)(size - 4);
	reset();
	if (!keep_seal && dblen >= 72) {
		uint8_t *copy = malloc(dblen);
		if (!copy)
			return 0;
		memcpy(copy, data + 4, dblen);
		memset(copy + 68, 0, 4); /* the application id: no index checksum */
		rc = write_file(db, copy, dblen);
		free(copy);
	} else {
		rc = write_file(db, data + 4, dblen);
	}
	if (rc < 0)
		return 0;
	write_data_files(data + 4 + dblen, size - 4 - dblen);
	if ((w.buf = malloc(MAX_READ)) == NULL)
		return 0;
	if (ckpt_step_open(&w.s, dir, NULL) != 0) {
		if (!*ckpt_error_last())
			abort(); /* every failure says why */
		goto done;
	}
	(void)ckpt_step_metadata_json(w.s);
	for (size_t i = 0; i < ckpt_step_item_count(w.s); i++) {
		const ckpt_tree *t = NULL;
		w.item = ckpt_step_item_name(w.s, i);
		if (ckpt_step_item_tree(&t, w.s, w.item) == 0)
			(void)ckpt_tree_walk((ckpt_tree *)t, read_leaf, &w);
	}
	(void)ckpt_store_list(ckpt_step_store(w.s), "", 0, -1, read_key, &w);
	if (ckpt_step_check_keys(w.s, NULL, NULL, &nproblems) < 0 && !*ckpt_error_last())
		abort();
done:
	ckpt_step_free(w.s);
	free(w.buf);
	return 0;
}
