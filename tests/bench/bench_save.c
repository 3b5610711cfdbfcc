/*
 * bench_save — a save from memory through the library, the way a training job
 * saves (and the way the Python writers of peers.py are timed): the arrays are
 * loaded first, then ckpt_checkpointer_save() with the PyTree handler and
 * default options is timed (it fsyncs before returning).
 *
 * Usage: bench_save ROOT STEP DIR [--no-compress]
 * DIR holds one directory per item; inside, directories are dicts and *.npy
 * files arrays (other files are ignored). Prints "elapsed=<s> bytes=<n> leaves=<n>".
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <ckpt/ckpt.h>

struct tally {
	uint64_t bytes, leaves;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Build the dict tree of directory `dir` into *out. */
static int load_dir(ckpt_tree **out, const char *dir, struct tally *t)
{
	ckpt_tree *node = NULL, *child = NULL;
	ckpt_npy_header h;
	struct dirent *de;
	struct stat st;
	DIR *d = NULL;
	char path[4096];
	void *data;
	size_t len;
	int rc;

	if ((rc = ckpt_tree_new(&node, CKPT_TREE_DICT)) < 0)
		return rc;
	if (!(d = opendir(dir))) {
		fprintf(stderr, "bench_save: cannot open %s\n", dir);
		rc = CKPT_EIO;
		goto done;
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		len = strlen(de->d_name);
		if (stat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			if ((rc = load_dir(&child, path, t)) < 0)
				goto done;
		} else if (len > 4 && !strcmp(de->d_name + len - 4, ".npy")) {
			if ((rc = ckpt_npy_read_file(&h, &data, path)) < 0)
				goto done;
			if ((rc = ckpt_tree_new_array(&child, h.dtype, h.ndim, h.shape, data,
						      CKPT_TREE_OWN)) < 0)
				goto done;
			de->d_name[len - 4] = '\0';
			t->bytes += h.data_len;
			t->leaves++;
		} else {
			continue;
		}
		rc = ckpt_tree_add(node, de->d_name, child);
		child = NULL;
		if (rc < 0)
			goto done;
	}
	*out = node;
	node = NULL;
	rc = 0;
done:
	if (d)
		closedir(d);
	ckpt_tree_free(node);
	return rc;
}

int main(int argc, char **argv)
{
	ckpt_handler *h = NULL;
	ckpt_tree *trees[16] = {NULL};
	ckpt_pytree_save_args args[16];
	ckpt_item_args items[16];
	ckpt_step_writer_options opts = CKPT_STEP_WRITER_OPTIONS_INIT;
	char names[16][256], path[4096];
	struct tally t = {0, 0};
	struct dirent *de;
	DIR *d = NULL;
	size_t n = 0;
	int rc = 1;
	double t0;

	if (argc < 4 || argc > 5 || (argc == 5 && strcmp(argv[4], "--no-compress"))) {
		fprintf(stderr, "usage: bench_save ROOT STEP DIR [--no-compress]\n");
		return 2;
	}
	if (argc == 5)
		opts.store.compression_level = 0;
	if (ckpt_pytree_handler_new(&h) < 0 || !(d = opendir(argv[3])))
		goto fail;
	while ((de = readdir(d)) && n < 16) {
		if (de->d_name[0] == '.' || de->d_name[0] == '_')
			continue;
		snprintf(path, sizeof(path), "%s/%s", argv[3], de->d_name);
		snprintf(names[n], sizeof(names[n]), "%s", de->d_name);
		if (load_dir(&trees[n], path, &t) < 0)
			goto fail;
		args[n] = (ckpt_pytree_save_args)CKPT_PYTREE_SAVE_ARGS_INIT;
		args[n].item = trees[n];
		items[n] = (ckpt_item_args){names[n], h, &args[n]};
		n++;
	}
	t0 = now();
	if (ckpt_checkpointer_save(argv[1], strtoull(argv[2], NULL, 10), items, n, &opts) < 0)
		goto fail;
	printf("elapsed=%.6f bytes=%" PRIu64 " leaves=%" PRIu64 "\n", now() - t0, t.bytes,
	       t.leaves);
	rc = 0;
	goto done;
fail:
	fprintf(stderr, "bench_save: %s: %s\n", argv[3], ckpt_error_last());
done:
	if (d)
		closedir(d);
	for (size_t i = 0; i < n; i++)
		ckpt_tree_free(trees[i]);
	ckpt_handler_free(h);
	return rc;
}
