/*
 * handler_plugin.c — a checkpoint handler written outside libckpt, loaded
 * as a plugin by `ckpt`, `ckptfs` and any program using the library
 * (docs/handlers.md, "Handler plugins"):
 *
 *	cc -shared -fPIC $(pkg-config --cflags ckpt) -o lines.so handler_plugin.c
 *	CKPT_HANDLER_PATH=$PWD/lines.so ckpt meta ROOT/100/notes
 *	ckptfs ROOT MNT -o handler_plugin=$PWD/lines.so
 *
 * The handler, example.lines_checkpoint_handler.LinesCheckpointHandler,
 * saves a text of "key=value" lines (save args: const char *; restore
 * gives a malloc'd copy) as one file, <item>/lines.txt. Like every handler
 * but PyTree, its item's files are its store keys, so the mount shows
 * lines.txt and `ckpt restore` writes it; what the plugin adds is the check
 * of such files coming from outside (every non-empty line has a '=') and
 * the item's description in `ckpt meta` ({"entries": N}).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ckpt/ckpt.h>
#include <ckpt/sys/error.h>
#include <ckpt/sys/handler.h>

#define LINES_TYPESTR "example.lines_checkpoint_handler.LinesCheckpointHandler"
#define LINES_FILE "lines.txt"
#define LINES_MAX (1u << 20)

int ckpt_handler_plugin_init(unsigned abi_version);

static const char *lines_typestr(const ckpt_handler *h)
{
	return LINES_TYPESTR;
}

static char *item_key(const char *item)
{
	size_t n = strlen(item) + sizeof("/" LINES_FILE);
	char *k = malloc(n);

	if (k)
		snprintf(k, n, "%s/%s", item, LINES_FILE);
	return k;
}

/* 0 if every non-empty line of text[0..len) has a '=', else the bad line's number. */
static size_t bad_line(const char *text, size_t len)
{
	size_t line = 1;

	for (size_t i = 0; i < len; line++) {
		size_t end = i;
		int eq = 0;
		while (end < len && text[end] != '\n')
			eq |= text[end++] == '=';
		if (end > i && !eq)
			return line;
		i = end + 1;
	}
	return 0;
}

static int check_text(const char *text, size_t len, const char *what)
{
	char msg[256];
	size_t line = bad_line(text, len);

	if (!line && len <= LINES_MAX)
		return 0;
	snprintf(msg, sizeof(msg), "%s:%zu: %s", what, line,
		 line ? "a line without '=' (want key=value)" : "larger than 1 MiB");
	return ckpt_error_set_str(CKPT_EINVAL, msg);
}

static int lines_save(ckpt_handler *h, ckpt_step_writer *w, const char *item, const void *args)
{
	const char *text = args;
	char *key;
	int rc;

	if (!text)
		return ckpt_error_set_str(CKPT_EINVAL, "lines handler: no text to save");
	if ((rc = check_text(text, strlen(text), item)) != 0)
		return rc;
	if (!(key = item_key(item)))
		return ckpt_error_set_str(CKPT_ENOMEM, "out of memory");
	rc = ckpt_batch_put(ckpt_step_writer_batch(w), key, strlen(key), text, strlen(text), NULL);
	free(key);
	return rc;
}

/* The item's text, NUL-terminated (*len: its length). */
static int read_text(char **out, size_t *len, ckpt_step *s, const char *item)
{
	char *key = item_key(item);
	void *v = NULL;
	int rc;

	*out = NULL;
	if (!key)
		return ckpt_error_set_str(CKPT_ENOMEM, "out of memory");
	rc = ckpt_store_get(&v, len, ckpt_step_store(s), key, strlen(key));
	free(key);
	if (rc)
		return rc;
	if (!(*out = realloc(v, *len + 1))) {
		free(v);
		return ckpt_error_set_str(CKPT_ENOMEM, "out of memory");
	}
	(*out)[*len] = '\0';
	return 0;
}

static int lines_restore(void **out, ckpt_handler *h, ckpt_step *s, const char *item,
			 const void *args)
{
	size_t len;

	return read_text((char **)out, &len, s, item);
}

static int lines_snapshot(void **out, ckpt_handler *h, const void *args)
{
	*out = args ? strdup(args) : NULL;
	return !args || *out ? 0 : ckpt_error_set_str(CKPT_ENOMEM, "out of memory");
}

static void lines_snapshot_free(ckpt_handler *h, void *snap)
{
	free(snap);
}

static void lines_close(ckpt_handler *h)
{
	free(h);
}

static const ckpt_handler_vtable lines_vt = {
    .version = CKPT_HANDLER_VTABLE_VERSION,
    .typestr = lines_typestr,
    .save = lines_save,
    .snapshot = lines_snapshot,
    .snapshot_free = lines_snapshot_free,
    .restore = lines_restore,
    .close = lines_close,
};

static int lines_create(ckpt_handler **out)
{
	ckpt_handler *h = malloc(sizeof(*h));

	if (!h)
		return ckpt_error_set_str(CKPT_ENOMEM, "out of memory");
	h->vt = &lines_vt;
	*out = h;
	return 0;
}

/* A file of an item from outside: only lines.txt, every line key=value. */
static int lines_check_file(int item_dirfd, const char *name, int fd, const char *what)
{
	char *buf = malloc(LINES_MAX + 1);
	ssize_t n = 0, got;
	int rc;

	if (strcmp(name, LINES_FILE) != 0) {
		char msg[256];
		snprintf(msg, sizeof(msg), "%s: a lines item holds only %s", what, LINES_FILE);
		free(buf);
		return ckpt_error_set_str(CKPT_EINVAL, msg);
	}
	if (!buf)
		return ckpt_error_set_str(CKPT_ENOMEM, "out of memory");
	while (n <= (ssize_t)LINES_MAX && (got = pread(fd, buf + n, LINES_MAX + 1 - n, n)) > 0)
		n += got;
	rc = check_text(buf, (size_t)n, what);
	free(buf);
	return rc;
}

static int lines_check_dir(int item_dirfd, const char *what)
{
	char msg[256];

	if (faccessat(item_dirfd, LINES_FILE, F_OK, 0) == 0)
		return 0;
	snprintf(msg, sizeof(msg), "%s: %s is missing", what, LINES_FILE);
	return ckpt_error_set_str(CKPT_EINVAL, msg);
}

static int lines_describe(char **out, ckpt_step *s, const char *item)
{
	char *text = NULL;
	size_t len, entries = 0;
	int rc = read_text(&text, &len, s, item);

	for (char *p = text; rc == 0 && p && *p;) { /* count key=value lines */
		char *nl = strchr(p, '\n');
		entries += nl != p && memchr(p, '=', nl ? (size_t)(nl - p) : strlen(p)) != NULL;
		p = nl ? nl + 1 : NULL;
	}
	free(text);
	if (rc)
		return rc;
	if (!(*out = malloc(64)))
		return ckpt_error_set_str(CKPT_ENOMEM, "out of memory");
	snprintf(*out, 64, "{\"entries\": %zu}", entries);
	return 0;
}

int ckpt_handler_plugin_init(unsigned abi_version)
{
	const ckpt_handler_type_info info = {
	    .version = CKPT_HANDLER_TYPE_INFO_VERSION,
	    .typestr = LINES_TYPESTR,
	    .create = lines_create,
	    .check_file = lines_check_file,
	    .check_dir = lines_check_dir,
	    .describe = lines_describe,
	};

	if (abi_version != CKPT_HANDLER_PLUGIN_ABI)
		return ckpt_error_set_str(CKPT_EVERSION, "lines plugin: built for another ABI");
	return ckpt_handler_type_register_info(&info);
}
