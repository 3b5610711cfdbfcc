/*
 * store_params.c — helper of store_params.sh: measures the store for a list
 * of chunk sizes on float32 normal data and prints one table row per run,
 * with a plain-file baseline (write+fsync, read) for the ratios.
 *
 * usage: store_params DIR SIZE_MIB LEVEL CHUNK_KIB[:FILE_MIB]...
 * FILE_MIB is the target data file size (default 1024; shown as "1 MiB/64").
 * Page cache is dropped for the data files (posix_fadvise DONTNEED after
 * fsync) before each read measurement, so reads come from the disk.
 */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckpt/error.h"
#include "ckpt/store.h"

#define PATTERN (64u << 20) /* distinct data; repeated to reach SIZE */
#define IO (4u << 20)
#define NRAND 2000

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "store_params: %s: %s (%s)\n", what, ckpt_error_last(), ckpt_error_name(rc));
	exit(1);
}

static float *normal_floats(size_t n)
{
	float *f = malloc(n * sizeof(*f));
	uint64_t x = 88172645463325252ull;
	for (size_t i = 0; i + 1 < n; i += 2) {
		double u[2];
		for (int k = 0; k < 2; k++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			u[k] = ((double)(x >> 11) + 0.5) / 9007199254740992.0;
		}
		double r = sqrt(-2 * log(u[0]));
		f[i] = (float)(r * cos(2 * M_PI * u[1]));
		f[i + 1] = (float)(r * sin(2 * M_PI * u[1]));
	}
	return f;
}

static void drop_cache(const char *dir)
{
	char p[4096];
	DIR *d = opendir(dir);
	struct dirent *e;

	while (d && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		int fd = open(p, O_RDONLY);
		if (fd >= 0) {
			fdatasync(fd);
			posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
			close(fd);
		}
	}
	if (d)
		closedir(d);
}

static void baseline(const char *dir, const void *pat, uint64_t size)
{
	char p[4096];
	char *buf = malloc(IO);
	double t0, tw, tr, trand;
	uint64_t off;
	unsigned seed = 1;
	int fd;

	snprintf(p, sizeof(p), "%s/plain", dir);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/plain/data", dir);
	t0 = now();
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	for (off = 0; off < size; off += IO)
		if (write(fd, (const char *)pat + off % PATTERN, IO) != IO)
			exit(1);
	fsync(fd);
	close(fd);
	tw = now() - t0;
	snprintf(p, sizeof(p), "%s/plain", dir);
	drop_cache(p);
	snprintf(p, sizeof(p), "%s/plain/data", dir);
	fd = open(p, O_RDONLY);
	t0 = now();
	for (off = 0; off < size; off += IO)
		if (pread(fd, buf, IO, (off_t)off) != IO)
			exit(1);
	tr = now() - t0;
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	t0 = now();
	for (int i = 0; i < NRAND; i++)
		if (pread(fd, buf, 4096, (off_t)((uint64_t)rand_r(&seed) % (size / 4096)) * 4096) != 4096)
			exit(1);
	trand = now() - t0;
	close(fd);
	printf("%-10s %6s %9.0f %6s %9.0f %9.0f %9s %9s %9.1f\n", "plain", "-", size / tw / 1e6,
	       "1.000", size / tr / 1e6, NRAND / trand, "-", "-", 4.0);
	free(buf);
}

static void run(const char *root, const void *pat, uint64_t size, int level, uint32_t chunk_kib,
		uint64_t file_mib)
{
	char dir[4000], ddir[4096];
	ckpt_store_options o = CKPT_STORE_OPTIONS_INIT;
	ckpt_store *s;
	ckpt_batch *b;
	ckpt_value_writer *w;
	ckpt_value *v;
	char *buf = malloc(IO);
	double t0, tw, tr, trand, trand_c;
	uint64_t off, r0;
	unsigned seed = 1;
	size_t n;
	int rc;

	o.compression_level = level;
	o.chunk_size = chunk_kib << 10;
	o.target_data_file_size = file_mib << 20;
	snprintf(dir, sizeof(dir), "%s/store-%u-%d-%llu", root, chunk_kib, level,
		 (unsigned long long)file_mib);
	snprintf(ddir, sizeof(ddir), "%s/d", dir);
	t0 = now();
	if ((rc = ckpt_store_open(&s, dir, CKPT_STORE_CREATE, &o)) < 0)
		die("open", rc);
	if ((rc = ckpt_batch_begin(&b, s)) < 0 ||
	    (rc = ckpt_value_writer_open(&w, b, "x", 1, NULL)) < 0)
		die("begin", rc);
	for (off = 0; off < size; off += IO)
		if ((rc = ckpt_value_writer_write(w, (const char *)pat + off % PATTERN, IO)) < 0)
			die("write", rc);
	if ((rc = ckpt_value_writer_close(w)) < 0 || (rc = ckpt_batch_commit(b, NULL)) < 0)
		die("commit", rc);
	tw = now() - t0;
	ckpt_store_free(s);
	drop_cache(ddir);

	if ((rc = ckpt_store_open(&s, dir, CKPT_STORE_READONLY, &o)) < 0 ||
	    (rc = ckpt_value_open(&v, s, "x", 1)) < 0)
		die("reopen", rc);
	double ratio = (double)ckpt_value_get_info(v)->stored_size / (double)size;
	t0 = now();
	for (off = 0; off < size; off += IO)
		if ((rc = ckpt_value_pread(&n, v, buf, IO, off)) < 0)
			die("read", rc);
	tr = now() - t0;
	drop_cache(ddir);
	r0 = ckpt_store_bytes_read(s);
	t0 = now();
	for (int i = 0; i < NRAND; i++)
		if ((rc = ckpt_value_pread(&n, v, buf, 4096,
					   (uint64_t)rand_r(&seed) % (size / 4096) * 4096)) < 0)
			die("random read", rc);
	trand = now() - t0;
	double amp = (double)(ckpt_store_bytes_read(s) - r0) / NRAND / 1024;
	ckpt_value_free(v);
	ckpt_store_free(s);

	/* random reads again with a 256 MiB chunk cache, cold page cache */
	drop_cache(ddir);
	o.cache_size = 256ull << 20;
	if ((rc = ckpt_store_open(&s, dir, CKPT_STORE_READONLY, &o)) < 0 ||
	    (rc = ckpt_value_open(&v, s, "x", 1)) < 0)
		die("reopen", rc);
	seed = 1;
	t0 = now();
	for (int i = 0; i < NRAND; i++)
		if ((rc = ckpt_value_pread(&n, v, buf, 4096,
					   (uint64_t)rand_r(&seed) % (size / 4096) * 4096)) < 0)
			die("random read", rc);
	trand_c = now() - t0;
	seed = 1;
	t0 = now();
	for (int i = 0; i < NRAND; i++)
		if ((rc = ckpt_value_pread(&n, v, buf, 4096,
					   (uint64_t)rand_r(&seed) % (size / 4096) * 4096)) < 0)
			die("random read", rc);
	double twarm = now() - t0;
	printf(" %6d %9.0f %6.3f %9.0f %9.0f %9.0f %9.0f %9.1f\n", level, size / tw / 1e6, ratio, size / tr / 1e6,
	       NRAND / trand, NRAND / trand_c, NRAND / twarm, amp);
	ckpt_value_free(v);
	ckpt_store_free(s);
	free(buf);
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: store_params DIR SIZE_MIB LEVEL CHUNK_KIB[:FILE_MIB]...\n");
		return 2;
	}
	uint64_t size = strtoull(argv[2], NULL, 10) << 20;
	int level = atoi(argv[3]);
	float *pat = normal_floats(PATTERN / sizeof(float));

	size -= size % IO;
	printf("%-10s %6s %9s %6s %9s %9s %9s %9s %9s\n", "chunk", "level", "write", "ratio",
	       "seq_read", "rand4k/s", "+cache/s", "+cache/s", "KiB/4k");
	printf("%-10s %6s %9s %6s %9s %9s %9s %9s %9s\n", "", "", "MB/s", "", "MB/s", "cold",
	       "cold", "again", "read");
	baseline(argv[1], pat, size);
	for (int i = 4; i < argc; i++) {
		uint32_t kib = (uint32_t)atoi(argv[i]);
		const char *colon = strchr(argv[i], ':');
		uint64_t file_mib = colon ? strtoull(colon + 1, NULL, 10) : 1024;
		char label[32];
		snprintf(label, sizeof(label), kib >= 1024 ? "%u MiB" : "%u KiB",
			 kib >= 1024 ? kib / 1024 : kib);
		if (colon)
			snprintf(label + strlen(label), sizeof(label) - strlen(label), "/%llu",
				 (unsigned long long)file_mib);
		printf("%-10s", label);
		fflush(stdout);
		run(argv[1], pat, size, level, kib, file_mib);
	}
	free(pat);
	return 0;
}
