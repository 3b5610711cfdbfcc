/*
 * fs/ckptfs.c — `ckptfs ROOT MNT [-f] [-d] [-o opt,...]`: options, session, teardown.
 *
 * Setup, in layers (teardown undoes them in reverse order):
 *   1. options (fuse_opt: cache_size, max_open_steps, compression_level, ro/rw,
 *      log, nonempty; the rest goes to libfuse), each bad value named; the
 *      start checks (ROOT a root, not a step; MOUNTPOINT not a mount already,
 *      empty unless -o nonempty; docs/fs.md, "Options"); the log opened
 *      (docs/fs.md, "Where errors go")
 *   2. the view of ROOT (first scan: a missing ROOT is an error) and, unless
 *      -o ro, the pending steps adopted (passthrough.c)
 *   3. session, signal handlers, mount (read-write unless -o ro), daemonize
 *   4. threads: the root rescan (every 0.5 s, or when woken; it alone sends
 *      kernel invalidations, never a request handler: those queue them with
 *      ckptfs_inval_later) and the read-ahead raise
 *   5. the session loop (loop.c: workers that poll briefly after a metadata
 *      request before they sleep)
 */
#include "ckptfs.h"
#include "loop.h"
#include "passthrough.h"

#include <ckpt/sys/handler.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_CACHE_SIZE (256ull << 20)
#define DEFAULT_MAX_OPEN_STEPS 16u
#define FUSE_SUPER_MAGIC 0x65735546 /* statfs f_type of a FUSE mount */
#define READ_AHEAD_KB 4096 /* four 1 MiB requests ahead: docs/fs.md, "Reads" */

struct options {
	const char *root;
	char *cache_size;
	char *max_open_steps;
	char *compression_level;
	char *log;
	int ro;
	int nonempty;
	char *safetensors_sep;
	char *handler_plugin;
	char *spin_us;
};

static const struct fuse_opt opt_spec[] = {
	{"cache_size=%s", offsetof(struct options, cache_size), 0},
	{"max_open_steps=%s", offsetof(struct options, max_open_steps), 0},
	{"compression_level=%s", offsetof(struct options, compression_level), 0},
	{"log=%s", offsetof(struct options, log), 0},
	{"nonempty", offsetof(struct options, nonempty), 1},
	{"ro", offsetof(struct options, ro), 1},
	{"rw", offsetof(struct options, ro), 0},
	{"safetensors_sep=%s", offsetof(struct options, safetensors_sep), 0},
	{"handler_plugin=%s", offsetof(struct options, handler_plugin), 0},
	{"spin_us=%s", offsetof(struct options, spin_us), 0},
	FUSE_OPT_END,
};

/* Where the log goes in the background when there is no syslog (no /dev/log). */
static const char *default_log_hint(void)
{
	static char path[PATH_MAX];
	const char *run = getenv("XDG_RUNTIME_DIR");
	if (run && run[0] == '/')
		snprintf(path, sizeof(path), "%s/ckptfs.log", run);
	else
		snprintf(path, sizeof(path), "/tmp/ckptfs-%u.log", (unsigned)getuid());
	return path;
}

#define SHORT_USAGE "usage: %s ROOT MOUNTPOINT [-f] [-d] [-o opt,...]   (--help for more)\n"

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s ROOT MOUNTPOINT [-f] [-d] [-o opt,...]\n"
		"Show the checkpoint root ROOT as a directory tree at MOUNTPOINT; `mkdir\n"
		"MOUNTPOINT/<step>` starts a pending step written file by file.\n"
		"Unmount with: fusermount3 -u MOUNTPOINT\n\n"
		"ckptfs options:\n"
		"    -o cache_size=BYTES    decompressed-chunk cache for all open steps\n"
		"                           together (suffix K, M, G; default 256M)\n"
		"    -o max_open_steps=N    steps kept open at once (default %u)\n"
		"    -o compression_level=N zstd level for steps finalized through the\n"
		"                           mount (0 = store raw; default: the library's)\n"
		"    -o ro                  read-only: no pending steps, every change EROFS\n"
		"    -o safetensors_sep=C   joins keys into the tensor names of\n"
		"                           <item>.safetensors (default '.')\n"
		"    -o log=FILE            append the log to FILE (default: stderr with -f,\n"
		"                           else syslog, else $XDG_RUNTIME_DIR/ckptfs.log\n"
		"                           or /tmp/ckptfs-<uid>.log: said at start)\n"
		"    -o nonempty            allow a MOUNTPOINT that is not empty\n"
		"    -o handler_plugin=LIB  load handler plugins: .so files or directories,\n"
		"                           ':'-separated (also $CKPT_HANDLER_PATH;\n"
		"                           docs/handlers.md)\n"
		"    -o spin_us=N           microseconds a worker that answered a metadata\n"
		"                           request polls for the next before it sleeps\n"
		"                           (0..100000; default %u; 0 saves CPU, costs\n"
		"                           latency: docs/fs.md, \"Threads\")\n"
		"    -o max_threads=N       workers (default: one per CPU, 2 to 10)\n\n"
		"Where errors go: a refused change (mkdir, cp, setfattr ...) fails with an\n"
		"errno; the reason is logged (above) and kept: `ckpt status MOUNTPOINT`,\n"
		"`getfattr -n user.ckpt.errors MOUNTPOINT` (or MOUNTPOINT/<pending step>),\n"
		"`cat MOUNTPOINT/.ckptfs-errors`.\n",
		prog, DEFAULT_MAX_OPEN_STEPS, CKPTFS_DEFAULT_SPIN_US);
}

/* A usage error: the message, the one-line usage; exit status 2. */
static int usage_error(const char *prog, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int usage_error(const char *prog, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n" SHORT_USAGE, prog);
	va_end(ap);
	return 2;
}

/* An -o option's number in [lo, hi]; else 2 (message printed). */
static int parse_num_opt(long *out, const char *prog, const char *name, const char *s, long lo,
			 long hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (!errno && end != s && !*end && v >= lo && v <= hi) {
		*out = v;
		return 0;
	}
	return usage_error(prog, "bad value '%s' for -o %s: want a whole number from %ld to %ld",
			   s, name, lo, hi);
}

/*
 * ROOT must be a checkpoint root: an existing directory, not a step
 * (holding ckpt.db) nor a pending step's directory. Returns 0 or 1
 * (message printed, naming what to mount instead).
 */
static int check_root(const char *prog, const char *root)
{
	char path[PATH_MAX], parent[PATH_MAX];
	struct stat st;
	if (stat(root, &st)) {
		fprintf(stderr, "%s: %s: %s\n", prog, root,
			errno == ENOENT ? "no such directory" : strerror(errno));
		return 1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "%s: %s: not a directory\n", prog, root);
		return 1;
	}
	snprintf(parent, sizeof(parent), "%s/..", root);
	if (!realpath(parent, path))
		snprintf(path, sizeof(path), "%s/..", root);
	snprintf(parent, sizeof(parent), "%s/ckpt.db", root);
	if (access(parent, F_OK) == 0) {
		fprintf(stderr,
			"%s: %s is a step (it holds ckpt.db), not a checkpoint root; mount the "
			"root that holds it: %s %s MOUNTPOINT\n",
			prog, root, prog, path);
		return 1;
	}
	snprintf(parent, sizeof(parent), "%s/files", root);
	if (strstr(root, ".ckpt-tmp-") && access(parent, F_OK) == 0) {
		fprintf(stderr,
			"%s: %s is a pending step, not a checkpoint root; mount the root that "
			"holds it: %s %s MOUNTPOINT\n",
			prog, root, prog, path);
		return 1;
	}
	return 0;
}

/*
 * The mount point must be a directory that is not a mount point already
 * (a second mount would stack on the first) and, unless -o nonempty, empty
 * (its files would be hidden). Returns 0 or 1 (message printed).
 */
static int check_mountpoint(const char *prog, const char *mnt, int nonempty)
{
	char up[PATH_MAX];
	struct stat st, pst;
	if (stat(mnt, &st)) {
		if (errno == ENOTCONN)
			fprintf(stderr,
				"%s: %s: a mount whose daemon is gone (%s): unmount it first: "
				"fusermount3 -u %s\n",
				prog, mnt, strerror(errno), mnt);
		else
			fprintf(stderr, "%s: mount point %s: %s\n", prog, mnt, strerror(errno));
		return 1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "%s: mount point %s: not a directory\n", prog, mnt);
		return 1;
	}
	snprintf(up, sizeof(up), "%s/..", mnt);
	if (stat(up, &pst) == 0 && (pst.st_dev != st.st_dev || pst.st_ino == st.st_ino)) {
		fprintf(stderr,
			"%s: %s is already a mount point; unmount it first (fusermount3 -u %s) "
			"or choose another directory\n",
			prog, mnt, mnt);
		return 1;
	}
	DIR *d = opendir(mnt);
	struct dirent *e;
	int empty = 1;
	while (d && empty && (e = readdir(d)))
		empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
	if (d)
		closedir(d);
	if (!empty && !nonempty) {
		fprintf(stderr,
			"%s: mount point %s is not empty (its files would be hidden while "
			"mounted); use an empty directory, or -o nonempty\n",
			prog, mnt);
		return 1;
	}
	return 0;
}

/* The first non-option is ROOT; keep the second (the mount point) for libfuse. */
static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct options *o = data;
	if (key == FUSE_OPT_KEY_NONOPT && !o->root) {
		o->root = arg;
		return 0;
	}
	return 1;
}

/* "256M", "1G", "4096", "64KiB" -> bytes; -1 if malformed or overflowing. */
static int parse_size(uint64_t *out, const char *s)
{
	static const char units[] = "KMG";
	char *end;
	unsigned shift = 0;

	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		return -1;
	const char *u = *end && (*end & ~0x20) ? strchr(units, *end & ~0x20) : NULL;
	if (u) {
		shift = 10 * (unsigned)(u - units + 1);
		end++;
		if (*end == 'i')
			end++;
	}
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end || (shift && v > (ULLONG_MAX >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

/*
 * Each inode the kernel knows in a pending step holds an fd (passthrough.c):
 * the soft fd limit goes to the hard one, which root raises to fs.nr_open
 * (neither may exceed fs.nr_open).
 */
static void raise_fd_limit(void)
{
	struct rlimit now, most;
	unsigned long nr_open = 0;
	FILE *f = fopen("/proc/sys/fs/nr_open", "r");
	if (f) {
		if (fscanf(f, "%lu", &nr_open) != 1)
			nr_open = 0;
		fclose(f);
	}
	if (getrlimit(RLIMIT_NOFILE, &now))
		return;
	most = now;
	if (nr_open > most.rlim_max)
		most.rlim_max = nr_open;
	most.rlim_cur = most.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &most) == 0)
		return;
	/* not allowed to raise the hard limit, or it is above fs.nr_open */
	now.rlim_cur = nr_open && now.rlim_max > nr_open ? nr_open : now.rlim_max;
	setrlimit(RLIMIT_NOFILE, &now);
}

/* ---- background threads ---- */

struct bg {
	struct ckptfs *fs;
	const char *mnt;
};

static void invalidate(const char *name, void *p)
{
	struct ckptfs *fs = p;
	/* ENOENT (the kernel had no such entry) is the common, harmless result. */
	fuse_lowlevel_notify_inval_entry(fs->se, VIEW_ROOT_INO, name, strlen(name));
}

static double mono_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void queue_inval(struct ckptfs *fs, fuse_ino_t parent, const char *name, fuse_ino_t child,
			int rescan)
{
	double due = child ? mono_now() + CKPTFS_LET_GO_DELAY : 0;
	pthread_mutex_lock(&fs->bg_lock);
	if (name && fs->ninval == fs->capinval) {
		size_t cap = fs->capinval ? fs->capinval * 2 : 16;
		struct ckptfs_inval *q = realloc(fs->inval, cap * sizeof(*q));
		if (q) {
			fs->inval = q;
			fs->capinval = cap;
		}
	}
	/* Out of memory: the entry times out anyway (pending entries: 1 s at most). */
	if (name && fs->ninval < fs->capinval && (fs->inval[fs->ninval].name = strdup(name))) {
		fs->inval[fs->ninval].parent = parent;
		fs->inval[fs->ninval].child = child;
		fs->inval[fs->ninval++].due = due;
		fs->ninval_now += !due;
	}
	fs->rescan_now |= rescan;
	if (!due || rescan) /* a delayed one waits for the periodic wake-up */
		pthread_cond_signal(&fs->bg_cond);
	pthread_mutex_unlock(&fs->bg_lock);
}

void ckptfs_inval_later(struct ckptfs *fs, fuse_ino_t parent, const char *name, int rescan)
{
	queue_inval(fs, parent, name, 0, rescan);
}

void ckptfs_let_go_later(struct ckptfs *fs, fuse_ino_t parent, const char *name, fuse_ino_t child)
{
	queue_inval(fs, parent, name, child, 0);
}

/* Send the queued invalidations now due. Called with bg_lock held; drops it meanwhile. */
static void send_invals(struct ckptfs *fs)
{
	double now = mono_now();
	size_t i = 0;
	while (i < fs->ninval) {
		struct ckptfs_inval iv = fs->inval[i];
		if (iv.due > now) {
			i++;
			continue;
		}
		fs->inval[i] = fs->inval[--fs->ninval]; /* order does not matter */
		fs->ninval_now -= !iv.due;
		pthread_mutex_unlock(&fs->bg_lock);
		if (!iv.child || pend_may_let_go(fs->pend, iv.child, iv.parent, iv.name))
			fuse_lowlevel_notify_inval_entry(fs->se, iv.parent, iv.name, strlen(iv.name));
		free(iv.name);
		pthread_mutex_lock(&fs->bg_lock);
	}
}

static void *rescan_main(void *p)
{
	struct bg *bg = p;
	struct ckptfs *fs = bg->fs;
	int adopt_again = 0;
	pthread_mutex_lock(&fs->bg_lock);
	while (!fs->bg_stop) {
		struct timespec t;
		clock_gettime(CLOCK_REALTIME, &t);
		t.tv_nsec += 500000000;
		if (t.tv_nsec >= 1000000000) {
			t.tv_sec++;
			t.tv_nsec -= 1000000000;
		}
		if (!fs->ninval_now && !fs->rescan_now)
			pthread_cond_timedwait(&fs->bg_cond, &fs->bg_lock, &t);
		if (fs->bg_stop)
			break;
		send_invals(fs);
		int force = fs->rescan_now;
		fs->rescan_now = 0;
		pthread_mutex_unlock(&fs->bg_lock);
		struct timespec before = view_root_mtime(fs->view);
		int rc = view_rescan(fs->view, force, invalidate, fs);
		if (rc)
			ckptfs_log("rescan %s: %s", view_root_path(fs->view), ckpt_error_last());
		struct timespec after = view_root_mtime(fs->view);
		/* Adopt pending steps when ROOT changed, and while another process holds some. */
		if (fs->pend && (force || adopt_again || before.tv_sec != after.tv_sec ||
				 before.tv_nsec != after.tv_nsec)) {
			rc = pend_adopt(fs->pend);
			adopt_again = rc > 0;
			if (rc < 0)
				ckptfs_log("pending steps of %s: %s", view_root_path(fs->view),
					   ckpt_error_last());
		}
		pthread_mutex_lock(&fs->bg_lock);
	}
	pthread_mutex_unlock(&fs->bg_lock);
	return NULL;
}

/*
 * Buffered reads arrive in read-ahead-sized requests: raise the mount's
 * read-ahead (128 KiB by default) through its bdi. The stat() is answered by
 * the session loop, so this runs beside it. Failure is harmless.
 */
static void *readahead_main(void *p)
{
	struct bg *bg = p;
	struct statfs sfs;
	struct stat st;
	char path[64], val[16];
	/* Until the mount is live, mnt is the directory below it: its bdi is the disk's,
	 * which must never be changed (a peek then read up to 2x a chunk from it). */
	for (int i = 0; i < 100; i++) {
		if (statfs(bg->mnt, &sfs) == 0 && sfs.f_type == FUSE_SUPER_MAGIC)
			break;
		usleep(20000);
	}
	if (statfs(bg->mnt, &sfs) != 0 || sfs.f_type != FUSE_SUPER_MAGIC || stat(bg->mnt, &st))
		return NULL;
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", major(st.st_dev),
		 minor(st.st_dev));
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	int n = snprintf(val, sizeof(val), "%d", READ_AHEAD_KB);
	if (write(fd, val, (size_t)n) != n && !ckptfs_foreground)
		ckptfs_log("%s: %s", path, strerror(errno));
	close(fd);
	return NULL;
}

/*
 * Worker threads by default: one per CPU, at least 2, at most libfuse's 10.
 * Idle workers wait on /dev/fuse in turn and each request wakes the one that
 * waited longest, so every extra idle worker makes a serial client's requests
 * (getfattr -d -R: 16 a file) land on colder threads: 10 workers took 2-3x as
 * long as 2 on a 2-CPU VM, while reads were no faster (docs/fs.md).
 */
static int default_max_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 2 ? 2 : n > 10 ? 10 : (int)n;
}

/* Whether the command line sets -o max_threads (then it is the user's). */
static int user_max_threads(int argc, char *argv[])
{
	for (int i = 1; i < argc; i++)
		if (strstr(argv[i], "max_threads="))
			return 1;
	return 0;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct options o = {0};
	unsigned max_open_steps = DEFAULT_MAX_OPEN_STEPS, spin_us = CKPTFS_DEFAULT_SPIN_US;
	int compression_level = -1;
	struct fuse_cmdline_opts co = {0};
	struct ckptfs fs = {.uid = getuid(), .gid = getgid()};
	struct bg bg = {.fs = &fs};
	pthread_t rescan_thread, ra_thread;
	int ret = 1, mounted = 0, threads = 0, rc;
	uint64_t cache_size = DEFAULT_CACHE_SIZE;

	pthread_mutex_init(&fs.bg_lock, NULL);
	pthread_cond_init(&fs.bg_cond, NULL);
	/*
	 * Read buffers and chunks are ~1 MiB, above glibc's mmap threshold: every
	 * read would mmap, fault in and munmap (a TLB shootdown on each core).
	 * Keep them in the heap; this more than doubled read throughput here.
	 */
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	raise_fd_limit();

	/* 1. options */
	if (fuse_opt_parse(&args, &o, opt_spec, opt_proc) || fuse_parse_cmdline(&args, &co)) {
		fprintf(stderr, SHORT_USAGE, argv[0]);
		ret = 2;
		goto out_args;
	}
	if (co.show_help) {
		usage(stdout, argv[0]);
		printf("\nFUSE options:\n");
		fuse_cmdline_help();
		fuse_lowlevel_help();
		ret = 0;
		goto out_args;
	}
	if (co.show_version) {
		printf("ckptfs %s\n", CKPT_VERSION);
		printf("FUSE library version %s\n", fuse_pkgversion());
		fuse_lowlevel_version();
		ret = 0;
		goto out_args;
	}
	if (!o.root || !co.mountpoint) {
		ret = usage_error(argv[0], "need ROOT and MOUNTPOINT");
		goto out_args;
	}
	long num = 0;
	if (o.cache_size && parse_size(&cache_size, o.cache_size)) {
		ret = usage_error(argv[0], "bad value '%s' for -o cache_size: want %s", o.cache_size,
				  "a size such as 256M, 1G or 1048576");
		goto out_args;
	}
	if (o.max_open_steps) {
		if ((ret = parse_num_opt(&num, argv[0], "max_open_steps", o.max_open_steps, 1,
					 1 << 20)))
			goto out_args;
		max_open_steps = (unsigned)num;
	}
	if (o.compression_level) {
		if ((ret = parse_num_opt(&num, argv[0], "compression_level", o.compression_level, 0,
					 19)))
			goto out_args;
		compression_level = (int)num;
	}
	if (o.spin_us) {
		if ((ret = parse_num_opt(&num, argv[0], "spin_us", o.spin_us, 0, 100000)))
			goto out_args;
		spin_us = (unsigned)num;
	}
	ret = 1;
	if (check_root(argv[0], o.root) || check_mountpoint(argv[0], co.mountpoint, o.nonempty))
		goto out_args;
	if (ckpt_handler_plugin_load_path(NULL) || ckpt_handler_plugin_load_path(o.handler_plugin)) {
		fprintf(stderr, "%s: %s\n", argv[0], ckpt_error_last());
		goto out_args;
	}
	fs.ro = o.ro;
	fs.compression_level = compression_level;
	if ((o.ro && fuse_opt_add_arg(&args, "-oro")) || fuse_opt_add_arg(&args, "-osubtype=ckptfs") ||
	    fuse_opt_add_arg(&args, "-odefault_permissions")) {
		fprintf(stderr, "%s: out of memory\n", argv[0]);
		goto out_args;
	}
	ckptfs_foreground = co.foreground;
	/* The log: -o log=FILE; in the background without syslog, a file we name. */
	const char *log = o.log;
	int no_syslog = !log && !co.foreground && access("/dev/log", W_OK) != 0;
	if (no_syslog)
		log = default_log_hint();
	if (log && (rc = ckptfs_log_open(log))) {
		fprintf(stderr, "%s: -o log=%s: %s\n", argv[0], log, strerror(rc));
		goto out_args;
	}

	/* 2. the view */
	char *root = realpath(o.root, NULL);
	if (!root) {
		fprintf(stderr, "%s: %s: %s\n", argv[0], o.root, strerror(errno));
		goto out_args;
	}
	struct view_config vc = {.cache_size = cache_size, .max_open_steps = max_open_steps,
				 .st_sep = o.safetensors_sep ? o.safetensors_sep[0] : '.'};
	rc = view_new(&fs.view, root, &vc);
	free(root);
	if (rc || (rc = view_rescan(fs.view, 1, NULL, NULL)) ||
	    (!fs.ro && (rc = pend_new(&fs.pend, &fs)))) {
		fprintf(stderr, "%s: %s: %s\n", argv[0], o.root, ckpt_error_last());
		goto out_view;
	}
	if (fs.pend && (rc = pend_adopt(fs.pend)) < 0)
		fprintf(stderr, "%s: %s: pending steps: %s\n", argv[0], o.root, ckpt_error_last());

	/* 3. session */
	fs.se = fuse_session_new(&args, &ckptfs_ops, sizeof(ckptfs_ops), &fs);
	if (!fs.se) { /* it has printed which option it did not know */
		fprintf(stderr, SHORT_USAGE, argv[0]);
		ret = 2;
		goto out_view;
	}
	if (fuse_set_signal_handlers(fs.se))
		goto out_session;
	if (fuse_session_mount(fs.se, co.mountpoint))
		goto out_signals;
	mounted = 1;
	if (no_syslog)
		fprintf(stderr, "%s: no syslog here (/dev/log): the log goes to %s\n", argv[0], log);
	if (fuse_daemonize(co.foreground))
		goto out_unmount;

	/* 4. threads (after daemonizing: fork keeps only the calling thread) */
	bg.mnt = co.mountpoint;
	if (pthread_create(&rescan_thread, NULL, rescan_main, &bg) == 0)
		threads |= 1;
	if (pthread_create(&ra_thread, NULL, readahead_main, &bg) == 0)
		threads |= 2;

	/* 5. loop */
	if (!user_max_threads(argc, argv))
		co.max_threads = default_max_threads();
	if (co.singlethread)
		ret = fuse_session_loop(fs.se);
	else if ((ret = ckptfs_loop(fs.se, co.max_threads, spin_us)) < 0)
		ckptfs_log("session loop: %s", strerror(-ret));
	ret = ret ? 1 : 0;

	pthread_mutex_lock(&fs.bg_lock);
	fs.bg_stop = 1;
	pthread_cond_signal(&fs.bg_cond);
	pthread_mutex_unlock(&fs.bg_lock);
	if (threads & 1)
		pthread_join(rescan_thread, NULL);
out_unmount:
	if (mounted)
		fuse_session_unmount(fs.se);
	if (threads & 2)
		pthread_join(ra_thread, NULL); /* its stat() fails once unmounted */
out_signals:
	fuse_remove_signal_handlers(fs.se);
out_session:
	fuse_session_destroy(fs.se);
out_view:
	pend_free(fs.pend); /* before the view: clone stubs hold steps of it */
	view_free(fs.view);
	for (size_t i = 0; i < fs.ninval; i++)
		free(fs.inval[i].name);
	free(fs.inval);
out_args:
	free(co.mountpoint);
	free(o.cache_size);
	free(o.safetensors_sep);
	free(o.max_open_steps);
	free(o.compression_level);
	free(o.log);
	free(o.handler_plugin);
	free(o.spin_us);
	ckptfs_log_close();
	fuse_opt_free_args(&args);
	pthread_cond_destroy(&fs.bg_cond);
	pthread_mutex_destroy(&fs.bg_lock);
	return ret;
}
