/*
 * mp_fuzzer.c — fuzz target for the parsers of a multi-process save's
 * rendezvous files (multiprocess.c): the primary's attempt file and the
 * outcome files (failed.<i>, result), which other processes write.
 *
 * Input: any bytes, as text up to the first NUL. Nothing may crash, hang or
 * leak. Properties: an accepted attempt names one directory entry of the
 * root (no '/', not starting with '.') and a 16-hex-digit nonce; an accepted
 * outcome has a code in [-1000, 0] and a message inside the text.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "multiprocess_private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), nonce[17], *dir = NULL;
	const char *msg;
	int code;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	for (unsigned idx = 0; idx < 3; idx++) {
		/* the nonce a process looks for: the second line's, if it has one */
		const char *nl = strchr(text, '\n');
		const char *mine = nl && strlen(nl) > 18 ? strchr(nl, ' ') : NULL;
		char want[17] = "0123456789abcdef";
		if (mine && strlen(mine + 1) >= 16)
			memcpy(want, mine + 1, 16);
		if (ckpt_mp_parse_attempt(text, idx, want, nonce, &dir) == 1) {
			assert(strlen(nonce) == 16 && strspn(nonce, "0123456789abcdef") == 16);
			assert(dir && dir[0] && dir[0] != '.' && !strchr(dir, '/'));
			free(dir);
			dir = NULL;
		}
	}
	if (size >= 16) {
		char n[17];
		memcpy(n, text, 16);
		n[16] = '\0';
		if (ckpt_mp_parse_outcome(&code, &msg, text, n)) {
			assert(code <= 0 && code >= -1000);
			assert(msg >= text && msg <= text + strlen(text));
		}
	}
	free(text);
	return 0;
}
