/*
 * store_params.c — helper of store_params.sh: measures the store for a list
 * of chunk sizes on float32 normal data and prints one table row per
 * configuration, after a plain-file baseline (write+fsync, pread).
 *
 * usage: store_params DIR SIZE_MIB LEVEL REPS CHUNK_KIB[:FILE_MIB]...
 * FILE_MIB is the target data file size (default 1024; shown as "1 MiB/64").
 * Each configuration runs REPS times (written afresh each time) and the
 * best figure of each column is printed: the machine is shared and noisy.
 * The page cache of the data files is dropped (fdatasync + posix_fadvise
 * DONTNEED) before every read measurement ("cold").
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
#define IO	(4u << 20)  /* bytes per write and per sequential read */
#define NRAND	2000	    /* random 4 KiB reads per measurement */

enum { WRITE, RATIO, SEQ, RAND, RAND_C, RAND_AGAIN, KIB_PER_READ, NCOL };

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "store_params: %s: %s (%s)\n", what, ckpt_error_last(),
		ckpt_error_name(rc));
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

/* Apply fn to every regular file of dir ("rm": unlink; else drop from the page cache). */
static void each_file(const char *dir, int rm)
{
	char p[8192];
	DIR *d = opendir(dir);
	struct dirent *e;

	while (d && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (rm) {
			unlink(p);
			continue;
		}
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

static uint64_t rand_off(unsigned *seed, uint64_t size)
{
	return (uint64_t)rand_r(seed) % (size / 4096) * 4096;
}

static void plain(double m[NCOL], const char *root, const void *pat, uint64_t size)
{
	char dir[4096], p[8192];
	char *buf = malloc(IO);
	unsigned seed = 1;
	double t0;
	int fd;

	snprintf(dir, sizeof(dir), "%s/plain", root);
	mkdir(dir, 0755);
	snprintf(p, sizeof(p), "%s/data", dir);
	t0 = now();
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	for (uint64_t off = 0; off < size; off += IO)
		if (write(fd, (const char *)pat + off % PATTERN, IO) != IO)
			exit(1);
	fsync(fd);
	close(fd);
	m[WRITE] = size / (now() - t0) / 1e6;
	m[RATIO] = 1;
	each_file(dir, 0);
	fd = open(p, O_RDONLY);
	t0 = now();
	for (uint64_t off = 0; off < size; off += IO)
		if (pread(fd, buf, IO, (off_t)off) != IO)
			exit(1);
	m[SEQ] = size / (now() - t0) / 1e6;
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	t0 = now();
	for (int i = 0; i < NRAND; i++)
		if (pread(fd, buf, 4096, (off_t)rand_off(&seed, size)) != 4096)
			exit(1);
	m[RAND] = NRAND / (now() - t0);
	m[RAND_C] = m[RAND_AGAIN] = NAN;
	m[KIB_PER_READ] = 4;
	close(fd);
	each_file(dir, 1);
	free(buf);
}

/* NRAND random 4 KiB reads of v; returns reads per second. */
static double random_reads(ckpt_value *v, uint64_t size)
{
	char buf[4096];
	unsigned seed = 1;
	size_t n;
	int rc;
	double t0 = now();

	for (int i = 0; i < NRAND; i++)
		if ((rc = ckpt_value_pread(&n, v, buf, sizeof(buf), rand_off(&seed, size))) < 0)
			die("random read", rc);
	return NRAND / (now() - t0);
}

static void store(double m[NCOL], const char *root, const void *pat, uint64_t size, int level,
		  uint32_t chunk_kib, uint64_t file_mib)
{
	char dir[4000], ddir[4096];
	ckpt_store_options o = CKPT_STORE_OPTIONS_INIT;
	ckpt_store *s;
	ckpt_batch *b;
	ckpt_value_writer *w;
	ckpt_value *v;
	char *buf = malloc(IO);
	uint64_t r0;
	double t0;
	size_t n;
	int rc;

	o.compression_level = level;
	o.chunk_size = chunk_kib << 10;
	o.target_data_file_size = file_mib << 20;
	snprintf(dir, sizeof(dir), "%s/store", root);
	snprintf(ddir, sizeof(ddir), "%s/d", dir);
	t0 = now();
	if ((rc = ckpt_store_open(&s, dir, CKPT_STORE_CREATE, &o)) < 0)
		die("open", rc);
	if ((rc = ckpt_batch_begin(&b, s)) < 0 ||
	    (rc = ckpt_value_writer_open(&w, b, "x", 1, NULL)) < 0)
		die("begin", rc);
	for (uint64_t off = 0; off < size; off += IO)
		if ((rc = ckpt_value_writer_write(w, (const char *)pat + off % PATTERN, IO)) < 0)
			die("write", rc);
	if ((rc = ckpt_value_writer_close(w)) < 0 || (rc = ckpt_batch_commit(b, NULL)) < 0)
		die("commit", rc);
	m[WRITE] = size / (now() - t0) / 1e6;
	ckpt_store_free(s);

	/* cold sequential read, then cold random reads, without a cache */
	each_file(ddir, 0);
	if ((rc = ckpt_store_open(&s, dir, CKPT_STORE_READONLY, &o)) < 0 ||
	    (rc = ckpt_value_open(&v, s, "x", 1)) < 0)
		die("reopen", rc);
	m[RATIO] = (double)ckpt_value_get_info(v)->stored_size / (double)size;
	t0 = now();
	for (uint64_t off = 0; off < size; off += IO)
		if ((rc = ckpt_value_pread(&n, v, buf, IO, off)) < 0)
			die("read", rc);
	m[SEQ] = size / (now() - t0) / 1e6;
	each_file(ddir, 0);
	r0 = ckpt_store_bytes_read(s);
	m[RAND] = random_reads(v, size);
	m[KIB_PER_READ] = (double)(ckpt_store_bytes_read(s) - r0) / NRAND / 1024;
	ckpt_value_free(v);
	ckpt_store_free(s);

	/* the same random reads with a 256 MiB chunk cache: cold, then again */
	each_file(ddir, 0);
	o.cache_size = 256ull << 20;
	if ((rc = ckpt_store_open(&s, dir, CKPT_STORE_READONLY, &o)) < 0 ||
	    (rc = ckpt_value_open(&v, s, "x", 1)) < 0)
		die("reopen", rc);
	m[RAND_C] = random_reads(v, size);
	m[RAND_AGAIN] = random_reads(v, size);
	ckpt_value_free(v);
	ckpt_store_free(s);
	each_file(ddir, 1);
	rmdir(ddir);
	snprintf(ddir, sizeof(ddir), "%s/ckpt.db", dir);
	unlink(ddir);
	rmdir(dir);
	free(buf);
}

static void print_row(const char *label, const char *level, const double m[NCOL])
{
	printf("%-10s %5s", label, level);
	for (int c = 0; c < NCOL; c++) {
		if (isnan(m[c]))
			printf(" %9s", "-");
		else
			printf(c == RATIO	   ? " %9.3f"
			       : c == KIB_PER_READ ? " %9.1f"
						   : " %9.0f",
			       m[c]);
	}
	printf("\n");
	fflush(stdout);
}

/* One table row: spec is "CHUNK_KIB[:FILE_MIB]", or NULL for the plain-file baseline. */
static void row(const char *root, const void *pat, uint64_t size, int level, int reps,
		const char *spec)
{
	uint32_t kib = spec ? (uint32_t)atoi(spec) : 0;
	const char *colon = spec ? strchr(spec, ':') : NULL;
	uint64_t file_mib = colon ? strtoull(colon + 1, NULL, 10) : 1024;
	double best[NCOL], m[NCOL];
	char label[32], lv[16];

	snprintf(lv, sizeof(lv), "%d", level);
	if (spec == NULL)
		snprintf(label, sizeof(label), "plain");
	else
		snprintf(label, sizeof(label), kib >= 1024 ? "%u MiB" : "%u KiB",
			 kib >= 1024 ? kib / 1024 : kib);
	if (colon)
		snprintf(label + strlen(label), sizeof(label) - strlen(label), "/%llu",
			 (unsigned long long)file_mib);
	for (int r = 0; r < reps; r++) {
		if (spec == NULL)
			plain(m, root, pat, size);
		else
			store(m, root, pat, size, level, kib, file_mib);
		for (int c = 0; c < NCOL; c++) /* best = highest rate; ratios do not vary */
			best[c] = r == 0 || m[c] > best[c] ? m[c] : best[c];
	}
	print_row(label, spec ? lv : "-", best);
}

int main(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr,
			"usage: store_params DIR SIZE_MIB LEVEL REPS CHUNK_KIB[:FILE_MIB]...\n");
		return 2;
	}
	uint64_t size = strtoull(argv[2], NULL, 10) << 20;
	int level = atoi(argv[3]), reps = atoi(argv[4]) > 0 ? atoi(argv[4]) : 1;
	float *pat = normal_floats(PATTERN / sizeof(float));

	size -= size % IO;
	printf("%-10s %5s %9s %9s %9s %9s %9s %9s %9s\n", "chunk", "level", "write", "stored/",
	       "seq_read", "rand4k/s", "+cache/s", "+cache/s", "KiB read");
	printf("%-10s %5s %9s %9s %9s %9s %9s %9s %9s\n", "", "", "MB/s", "raw", "MB/s", "cold",
	       "cold", "again", "per 4k");
	row(argv[1], pat, size, level, reps, NULL);
	for (int i = 5; i < argc; i++)
		row(argv[1], pat, size, level, reps, argv[i]);
	free(pat);
	return 0;
}
