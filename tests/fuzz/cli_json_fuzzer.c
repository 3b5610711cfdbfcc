/*
 * cli_json_fuzzer.c — fuzz target for the JSON text helpers of `ckpt`
 * (tools/cli_json.c): cli_json_member_text, which `ckpt ls` and `ckpt save`
 * use to take metrics out of _CHECKPOINT_METADATA as written, and
 * cli_json_pretty, which `ckpt meta` prints metadata with.
 *
 * Input: any bytes, taken as text up to the first NUL. Nothing may crash,
 * hang or leak on any input. On a valid JSON object, properties hold: the
 * re-indented text parses to a document equal to the input's, and (for a
 * text without escapes: keys are matched as written) the text member_text
 * returns for each top-level key parses to a value equal to that member's.
 */
#include <assert.h>
#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/cli_json.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Equal documents: the same compact text (cJSON_Compare fails on repeated keys). */
static int same(const cJSON *a, const cJSON *b)
{
	char *x = cJSON_PrintUnformatted(a), *y = cJSON_PrintUnformatted(b);
	int eq = x && y && strcmp(x, y) == 0;
	cJSON_free(x);
	cJSON_free(y);
	return eq;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *pretty = NULL;
	size_t plen = 0;
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	cJSON *doc = cJSON_ParseWithOpts(text, NULL, 1);
	FILE *f = open_memstream(&pretty, &plen);
	if (f) {
		cli_json_pretty(f, text); /* any text: must stop at its end */
		fclose(f);
	}
	free(cli_json_member_text(text, "metrics"));
	if (cJSON_IsObject(doc)) {
		cJSON *again = pretty ? cJSON_Parse(pretty) : NULL;
		assert(again && same(doc, again));
		cJSON_Delete(again);
		/* keys are matched as written: with escapes in the text, a key's text differs */
		for (const cJSON *c = strchr(text, '\\') ? NULL : doc->child; c; c = c->next) {
			if (cJSON_GetObjectItemCaseSensitive(doc, c->string) != c)
				continue; /* a repeated key: member_text finds the first */
			char *m = cli_json_member_text(text, c->string);
			cJSON *v = m ? cJSON_Parse(m) : NULL;
			assert(v && same(c, v));
			cJSON_Delete(v);
			free(m);
		}
	}
	cJSON_Delete(doc);
	free(pretty);
	free(text);
	return 0;
}
