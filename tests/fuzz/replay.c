/*
 * replay.c — standalone driver for the fuzz targets: feeds every file of the
 * directories and files named on the command line to LLVMFuzzerTestOneInput()
 * and prints how many inputs ran. With libFuzzer, link the target without
 * this file instead. An empty or missing corpus directory runs 0 inputs.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Run one file; returns 1 if it ran, 0 if it could not be read. */
static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL, *exact;
	size_t len = 0, cap = 0, n;

	if (!f) {
		perror(path);
		return 0;
	}
	do {
		if (len == cap) {
			uint8_t *nb = realloc(buf, cap = cap ? 2 * cap : 4096);

			if (!nb) {
				free(buf);
				fclose(f);
				return 0;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	fclose(f);
	/* An exact-size copy, so ASan catches reads past the input. */
	exact = malloc(len ? len : 1);
	if (exact) {
		memcpy(exact, buf, len);
		LLVMFuzzerTestOneInput(exact, len);
	}
	free(exact);
	free(buf);
	return exact != NULL;
}

int main(int argc, char **argv)
{
	unsigned long ran = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;
		DIR *d;
		struct dirent *e;

		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "%s: no such file or directory, skipped\n", argv[i]);
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			ran += (unsigned long)run_file(argv[i]);
			continue;
		}
		if (!(d = opendir(argv[i]))) {
			perror(argv[i]);
			continue;
		}
		while ((e = readdir(d))) {
			char path[4096];

			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
			if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
				ran += (unsigned long)run_file(path);
		}
		closedir(d);
	}
	printf("replayed %lu inputs\n", ran);
	return 0;
}
