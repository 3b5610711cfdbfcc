/*
 * step_list.h — the step listing, ckpt.list (format 1.3, docs/format.md
 * "Step listing"): what listing a step needs, without its index (library only).
 *
 * Design. Finalize writes, beside the sealed ckpt.db, a small file holding
 * _CHECKPOINT_METADATA and, per item, the length of its _METADATA and its
 * tree in compact form (tree_bin.c), under one CRC-32C and bound to the index
 * by the index checksum ckpt.db's header records. A reader lists a step from
 * it alone: no index check of a ckpt.db that small values can make tens of
 * megabytes, no JSON parse of a _METADATA that 50,000 leaves make 14 MB.
 * The listing is derived data: a step without one is read as before, and
 * removing a damaged one loses nothing.
 *
 * Ownership: a parsed listing owns the file's bytes; its items point into them.
 */
#ifndef CKPT_STEP_LIST_H
#define CKPT_STEP_LIST_H

#include <stddef.h>
#include <stdint.h>

#include "ckpt/store.h"

#define STEP_LIST_NAME	  "ckpt.list"
#define STEP_LIST_MAGIC	  "CKPTLIST"
#define STEP_LIST_VERSION 1u
#define STEP_LIST_HDR	  32u

/* An item as the listing has it; pointers into step_list.buf. */
struct step_list_item {
	const char *name; /* not NUL-terminated: name_len bytes */
	size_t name_len;
	int has_metadata;	   /* the item has a <item>/_METADATA (a tree) */
	uint64_t metadata_len;	   /* its length in bytes (0 without one) */
	const unsigned char *tree; /* its tree, compact (tree_bin.c); tree_len bytes */
	size_t tree_len;
	/* Without _METADATA: its nkeys keys after "<item>/", sorted, each a u32
	 * length then the bytes, keys_len bytes in all. */
	const unsigned char *keys;
	size_t nkeys, keys_len;
};

struct step_list {
	unsigned char *buf; /* the file's bytes (owned) */
	uint32_t index_crc; /* the index checksum of the ckpt.db it describes */
	const char *meta;   /* _CHECKPOINT_METADATA as stored (not NUL-terminated) */
	size_t meta_len;
	size_t nitems;
	struct step_list_item *items; /* owned array */
};

/*
 * Parse the len bytes at buf (taken: freed by step_list_clear, also on
 * failure) into *l. what names the file in messages. Returns 0,
 * CKPT_ECORRUPT (anything malformed: the message says what), CKPT_EVERSION
 * (a later listing version, which readers ignore), CKPT_ENOMEM.
 */
int step_list_parse(struct step_list *l, unsigned char *buf, size_t len, const char *what);

/* Read and parse dir/ckpt.list. CKPT_ENOTFOUND when there is none; else as step_list_parse,
 * CKPT_EIO. */
int step_list_read(struct step_list *l, const char *dir);

/*
 * Write dir/ckpt.list (fsync'd) for the sealed step in dir. A step whose
 * items' trees do not all read (a _METADATA that does not parse) gets no
 * listing: returns 0 without writing. Returns 0, CKPT_EIO, CKPT_ENOMEM, or
 * the error of reading the step.
 */
int step_list_write(const char *dir);

/*
 * ckpt_store_list (ckpt/store.h) of the keys of item `it` (one without
 * _METADATA) under prefix rel (relative to "<item>/"), from the listing.
 */
int step_list_keys(const struct step_list_item *it, const char *rel, size_t rellen, int delimiter,
		   ckpt_store_list_cb cb, void *payload);

void step_list_clear(struct step_list *l);

#endif
