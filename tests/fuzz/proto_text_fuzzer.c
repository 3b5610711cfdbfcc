/*
 * proto_text_fuzzer.c — fuzz target for the proto item's description reader
 * (proto_desc.c) and text format parser and renderer (proto_text.c).
 *
 * Input: description JSON, a NUL byte, then text format (no NUL: all of it
 * is the description, the text is empty). When the text parses, its wire
 * bytes must render, the rendering must parse, and rendering that again
 * must give the same text (render . parse is idempotent). The text's bytes
 * are also rendered as if they were wire bytes, which must fail cleanly or
 * give a text that parses. Every refusal must come with a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/error.h"
#include "ckpt/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int says_why(int rc)
{
	if (rc < 0 && !*ckpt_error_last())
		abort();
	ckpt_error_clear();
	return rc;
}

/* Render wire, parse the text back, render again: both texts must agree. */
static void check_roundtrip(const char *desc, size_t dlen, const void *wire, size_t len,
			    int must_render)
{
	char *t1 = NULL, *t2 = NULL;
	void *w2 = NULL;
	size_t l2 = 0;

	if (says_why(ckpt_proto_to_text(&t1, desc, dlen, wire, len)) != 0) {
		if (must_render)
			abort();
		return;
	}
	if (ckpt_proto_from_text(&w2, &l2, desc, dlen, t1, strlen(t1), "fuzz") != 0)
		abort();
	if (ckpt_proto_to_text(&t2, desc, dlen, w2, l2) != 0 || strcmp(t1, t2) != 0)
		abort();
	free(t1);
	free(t2);
	free(w2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	const char *desc = (const char *)data, *text = nul ? (const char *)nul + 1 : "";
	size_t dlen = nul ? (size_t)(nul - data) : size, tlen = nul ? size - dlen - 1 : 0;
	void *wire = NULL;
	size_t len = 0;

	ckpt_error_clear();
	if (says_why(ckpt_proto_from_text(&wire, &len, desc, dlen, text, tlen, "fuzz")) == 0) {
		check_roundtrip(desc, dlen, wire, len, 1);
		free(wire);
	}
	check_roundtrip(desc, dlen, text, tlen, 0);
	return 0;
}
