/*
 * cmd_save_check.c — what `ckpt save` looks at before it saves, so that it
 * never drops anything silently.
 *
 * The library's save reads item directories and skips what is not part of
 * a step (top-level files, names starting with '_' or '.'). A mount refuses
 * those same names when they are created (ckpt_pending_check_path); here
 * every path of the directory is checked by that same rule first, so
 * `ckpt save` and the mount agree: a path the rule refuses fails the save,
 * listed with the reason (or, with --skip-extra, is left out with a note),
 * and hidden files (.DS_Store, editors' swap files) are left out with a
 * note. _CHECKPOINT_METADATA keys a step does not keep are refused, and
 * the metrics of the flags are merged into the file's, keeping every digit.
 */
#include <cJSON.h>
#include <errno.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"

/* StepMetadata members (Orbax's), those a step keeps or rewrites. */
static const char *const known_keys[] = {
    "item_handlers",	    "item_metadata",	      "metrics",	 "performance_metrics",
    "init_timestamp_nsecs", "commit_timestamp_nsecs", "custom_metadata",
};

static struct {
	size_t base;   /* length of the directory's path + 1 */
	FILE *refused; /* "  path: reason\n" */
	FILE *hidden;  /* ", path" */
	size_t nrefused, nhidden;
} scan;

static int scan_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	const char *rel = path + scan.base;
	const char *name = path + ftw->base;
	if (ftw->level == 0)
		return FTW_CONTINUE;
	if (name[0] == '.') {
		fprintf(scan.hidden, "%s%s", scan.nhidden++ ? ", " : "", rel);
		return type == FTW_D ? FTW_SKIP_SUBTREE : FTW_CONTINUE;
	}
	if (ckpt_pending_check_path(rel, type == FTW_D) < 0) {
		const char *why = ckpt_error_last();
		size_t n = strlen(rel);
		/* the library's message names the path first: do not repeat it */
		if (strncmp(why, rel, n) == 0 && why[n] == ':')
			why += n + 1 + (why[n + 1] == ' ');
		fprintf(scan.refused, "  %s: %s\n", rel, why);
		scan.nrefused++;
		ckpt_error_clear();
		return type == FTW_D ? FTW_SKIP_SUBTREE : FTW_CONTINUE;
	}
	return FTW_CONTINUE;
}

/*
 * The text of dir/_CHECKPOINT_METADATA (malloc'd), its path into path;
 * NULL if it cannot be read (it is optional; the library reports a file it
 * cannot read) or when out of memory.
 */
static char *read_step_metadata(char path[4096], const char *dir)
{
	char buf[4096], *text = NULL;
	size_t len = 0, n;
	snprintf(path, 4096, "%s/_CHECKPOINT_METADATA", dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	FILE *m = open_memstream(&text, &len);
	while (m && (n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, m);
	fclose(f);
	if (!m || fclose(m) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* Unknown members of DIR/_CHECKPOINT_METADATA: an error naming them. */
static int check_step_metadata(const char *dir)
{
	char path[4096], *text = read_step_metadata(path, dir);
	int rc = 0;
	if (!text)
		return 0;
	cJSON *doc = cJSON_Parse(text);
	for (const cJSON *c = cJSON_IsObject(doc) ? doc->child : NULL; c && !rc; c = c->next) {
		size_t k = 0;
		while (k < sizeof(known_keys) / sizeof(known_keys[0]) &&
		       strcmp(known_keys[k], c->string))
			k++;
		if (k == sizeof(known_keys) / sizeof(known_keys[0]))
			rc = cli_errorf(
			    "%s: a step does not keep the key '%s' (nothing saved); put it "
			    "in \"metrics\" (numbers, e.g. --metric %s=...) or "
			    "\"custom_metadata\"",
			    path, c->string, c->string);
	}
	cJSON_Delete(doc);
	free(text);
	return rc;
}

int cli_save_check(const char *dir, int skip_extra)
{
	char *refused = NULL, *hidden = NULL;
	size_t rlen = 0, hlen = 0;
	int rc = 0;

	memset(&scan, 0, sizeof(scan));
	scan.base = strlen(dir) + 1;
	while (scan.base > 2 && dir[scan.base - 2] == '/')
		scan.base--;
	scan.refused = open_memstream(&refused, &rlen);
	scan.hidden = open_memstream(&hidden, &hlen);
	if (!scan.refused || !scan.hidden) {
		rc = cli_errorf("out of memory");
		goto done;
	}
	if (nftw(dir, scan_cb, 16, FTW_PHYS | FTW_ACTIONRETVAL) != 0) {
		rc = cli_errorf("%s: %s", dir, strerror(errno));
		goto done;
	}
	fclose(scan.refused);
	fclose(scan.hidden);
	scan.refused = scan.hidden = NULL;
	if (rlen && refused[rlen - 1] == '\n')
		refused[rlen - 1] = '\0'; /* the last line's end: cli_errorf adds one */
	if (scan.nrefused && !skip_extra) {
		rc = cli_errorf("nothing saved: %zu path%s in %s cannot be part of a step "
				"(move %s out, or --skip-extra saves without %s):\n%s",
				scan.nrefused, scan.nrefused > 1 ? "s" : "", dir,
				scan.nrefused > 1 ? "them" : "it",
				scan.nrefused > 1 ? "them" : "it", refused);
		goto done;
	}
	if (scan.nrefused)
		fprintf(stderr, "ckpt: note: not saved (--skip-extra):\n%s\n", refused);
	if (scan.nhidden)
		fprintf(stderr, "ckpt: note: hidden files not saved: %s\n", hidden);
	rc = check_step_metadata(dir);
done:
	if (scan.refused)
		fclose(scan.refused);
	if (scan.hidden)
		fclose(scan.hidden);
	free(refused);
	free(hidden);
	return rc;
}

/* Add the members of the JSON object text js to obj, each as written. */
static int merge_object(cJSON *obj, const char *js, const char *what)
{
	cJSON *doc = cJSON_Parse(js);
	int rc = 0;
	if (!cJSON_IsObject(doc))
		rc = cli_errorf("%s: not a JSON object: %s", what, js);
	for (const cJSON *c = rc ? NULL : doc->child; c && !rc; c = c->next) {
		char *raw = cli_json_member_text(js, c->string);
		cJSON_DeleteItemFromObjectCaseSensitive(obj, c->string);
		if (!raw || !cJSON_AddRawToObject(obj, c->string, raw))
			rc = cli_errorf("out of memory");
		free(raw);
	}
	cJSON_Delete(doc);
	return rc;
}

int cli_save_metrics(char **out, const char *dir, const char *json, char *const *kv, size_t nkv)
{
	char path[4096], *file = NULL, *fm = NULL;
	cJSON *obj = NULL;
	int rc = 0;

	*out = NULL;
	if (!json && nkv == 0)
		return 0; /* the file's metrics, as the library reads them */
	if (!(obj = cJSON_CreateObject()))
		return cli_errorf("out of memory");
	if ((file = read_step_metadata(path, dir))) {
		cJSON *doc = cJSON_Parse(file);
		if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(doc, "metrics")))
			fm = cli_json_member_text(file, "metrics");
		cJSON_Delete(doc);
	}
	if (fm)
		rc = merge_object(obj, fm, path);
	if (!rc && json)
		rc = merge_object(obj, json, "--metrics");
	for (size_t i = 0; !rc && i < nkv; i++) {
		char *eq = strchr(kv[i], '=');
		if (!eq || eq == kv[i]) {
			rc = cli_errorf("--metric %s: want NAME=VALUE", kv[i]);
			break;
		}
		char *name = strndup(kv[i], (size_t)(eq - kv[i]));
		cJSON *v = cJSON_Parse(eq + 1);
		cJSON_DeleteItemFromObjectCaseSensitive(obj, name ? name : "");
		/* a JSON value (a number keeps its digits) as written, else a string */
		if (!name || !(v ? cJSON_AddRawToObject(obj, name, eq + 1)
				 : cJSON_AddStringToObject(obj, name, eq + 1)))
			rc = cli_errorf("out of memory");
		cJSON_Delete(v);
		free(name);
	}
	if (!rc && !(*out = cJSON_PrintUnformatted(obj)))
		rc = cli_errorf("out of memory");
	cJSON_Delete(obj);
	free(file);
	free(fm);
	return rc;
}
