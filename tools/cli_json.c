/*
 * cli_json.c — JSON text as `ckpt` writes and reads it: strings escaped
 * (file names that are not UTF-8 included), a member of a document taken as
 * written (cJSON would re-print numbers: 2.3000000000000003 as 2.3), and a
 * document re-indented token by token. The last two read metadata other
 * software may have written: they stop at the text's end whatever it holds
 * (tests/fuzz/cli_json_fuzzer.c).
 */
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"

/* Whitespace as cJSON (which parses what these read) skips it: every control byte. */
static int is_ws(char c)
{
	return c != '\0' && (unsigned char)c <= ' ';
}

/* Bytes in the valid UTF-8 sequence at p (1-4), or 0 if p does not start one. */
static size_t utf8_len(const unsigned char *p)
{
	size_t n = p[0] < 0x80			  ? 1
		   : p[0] >= 0xc2 && p[0] <= 0xdf ? 2
		   : (p[0] >> 4) == 0xe		  ? 3
		   : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
						  : 0;
	uint32_t cp = n == 2 ? p[0] & 0x1fu : n == 3 ? p[0] & 0x0fu : p[0] & 0x07u;

	for (size_t k = 1; k < n; k++) {
		if ((p[k] & 0xc0) != 0x80) /* also stops at the NUL */
			return 0;
		cp = cp << 6 | (p[k] & 0x3fu);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/* A JSON string; bytes that are not UTF-8 (file names can hold any) become
 * \udcXX, as Python's os.fsdecode maps them. */
void cli_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		size_t n = utf8_len(p);
		if (n == 0) {
			fprintf(f, "\\udc%02x", *p);
			continue;
		}
		if (n > 1) {
			fwrite(p, 1, n, f);
			p += n - 1;
			continue;
		}
		switch (*p) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		default:
			if (*p < 0x20)
				fprintf(f, "\\u%04x", *p);
			else
				fputc(*p, f);
		}
	}
	fputc('"', f);
}

char *cli_json_member_text(const char *js, const char *key)
{
	size_t klen = strlen(key);
	int depth = 0;
	for (const char *p = js; *p; p++) {
		if (*p == '"') {
			const char *start = p + 1;
			for (p++; *p && *p != '"'; p++)
				if (*p == '\\' && p[1])
					p++;
			if (!*p)
				return NULL;
			const char *q = p + 1;
			while (is_ws(*q))
				q++;
			if (depth != 1 || *q != ':' || (size_t)(p - start) != klen ||
			    strncmp(start, key, klen) != 0)
				continue;
			for (q++; is_ws(*q); q++)
				;
			const char *v = q;
			int d = 0, in_str = 0;
			for (; *q; q++) {
				if (in_str) {
					if (*q == '\\' && q[1])
						q++;
					else if (*q == '"')
						in_str = 0;
				} else if (*q == '"') {
					in_str = 1;
				} else if (*q == '{' || *q == '[') {
					d++;
				} else if (*q == '}' || *q == ']' || *q == ',') {
					if (d == 0)
						break; /* the end of a scalar */
					if (*q != ',' && --d == 0) {
						q++;
						break;
					}
				}
			}
			while (q > v && is_ws(q[-1]))
				q--;
			return strndup(v, (size_t)(q - v));
		} else if (*p == '{' || *p == '[') {
			depth++;
		} else if (*p == '}' || *p == ']') {
			depth--;
		}
	}
	return NULL;
}

void cli_json_pretty(FILE *f, const char *js)
{
	int depth = 0, in_str = 0;
	for (const char *p = js; *p; p++) {
		char c = *p;
		if (in_str) {
			fputc(c, f);
			if (c == '\\' && p[1])
				fputc(*++p, f);
			else if (c == '"')
				in_str = 0;
			continue;
		}
		if (is_ws(c))
			continue;
		if (c == '"') {
			in_str = 1;
			fputc(c, f);
		} else if (c == '{' || c == '[') {
			const char *q = p + 1;
			while (is_ws(*q))
				q++;
			if (*q == (c == '{' ? '}' : ']')) { /* empty: {} or [] */
				fprintf(f, "%c%c", c, *q);
				p = q;
				continue;
			}
			fprintf(f, "%c\n%*s", c, 2 * ++depth, "");
		} else if (c == '}' || c == ']') {
			fprintf(f, "\n%*s%c", 2 * --depth, "", c);
		} else if (c == ',') {
			fprintf(f, ",\n%*s", 2 * depth, "");
		} else if (c == ':') {
			fputs(": ", f);
		} else {
			fputc(c, f);
		}
	}
	fputc('\n', f);
}
