/*
 * multiprocess.c — several processes saving one step: checking the options
 * (ckpt/multiprocess.h) and the rendezvous and barriers the step writer
 * (step_writer.c) goes through (docs/format.md, "Several processes writing
 * one step").
 *
 * Design: the processes share nothing but the root's filesystem. They meet
 * in a rendezvous directory R = ROOT/<step name>.ckpt-tmp-rdv-<prefix>/
 * through small files, each written whole under a temporary name and
 * renamed (so a reader sees all of a file or none of it):
 *
 *   want.<i>     "<n_i>"            process i (primary too) is here; n_i is a
 *                                   fresh random nonce of this process's try
 *   attempt      "ckpt-mp 1 <a> <dir>\n<i> <n_i>\n..."   the primary's
 *                                   attempt a (its own nonce), its directory
 *                                   name and the n_i it saw for each process
 *   ack.<i>      "<a>"              i saw attempt a listing its n_i
 *   done.<i>     "<a>"              i's index ckpt.<i>.db is complete
 *   failed.<i>   "<a> <code>\n<message>"   i gave up
 *   dup.<i>      "<n>"              a process found its want.<i> overwritten
 *                                   by n: two processes claim index i
 *   result       "<a> <code>\n<message>"   the primary's outcome (0: the
 *                                   step is committed)
 *   alive        "<a> <count>"      the primary's heartbeat: rewritten with a
 *                                   new count at every poll of its waits and
 *                                   after each merge
 *
 * Barriers: 'start' (the primary has every want, publishes the attempt,
 * waits for every ack), 'saved' (the primary waits for every done), and
 * 'result' (the others wait for it). Every wait polls (1 ms doubling to
 * 50 ms) and ends after barrier_timeout_ms of this process's monotonic
 * clock: no clock is compared across hosts, no lock is taken across hosts.
 * Where the kernel tells (inotify on R: processes of one host, or a local
 * filesystem), a file renamed into R ends the current sleep at once, so a
 * barrier costs no backoff latency; other hosts' writes to a network
 * filesystem are seen by the polls.
 * The wait for 'result' starts again whenever the primary's heartbeat
 * changes, so it outlasts the primary's own waits (which end in a result
 * naming the missing process) and fails only when the primary stops for
 * barrier_timeout_ms (killed, or one merge that long).
 *
 * Invariants:
 *   1. Every file but want.<i> carries the attempt nonce a (or, dup.<i>,
 *      the want nonce it accuses), and a reader ignores a file whose nonce
 *      is not the one it waits for: files left by dead attempts are never
 *      mistaken for this attempt's.
 *   2. A process only writes into the attempt directory the primary listed
 *      its own fresh nonce in, so it never writes into a dead attempt's
 *      directory; the primary only merges the indexes of processes whose
 *      done.<i> carries its attempt's nonce.
 *   3. want.<i> is written once per try, after any stale one: once a
 *      process has written it, a different content there can only come
 *      from a live process claiming the same index (CKPT_EEXISTS).
 *   4. The primary writes `result` with code 0 only after the step is
 *      renamed into place; the others return the result they read.
 *   5. R holds no step and no store: root cleanup leaves it alone (it has
 *      many writers and none holds a lock), and the primary removes it after
 *      a committed save once every other process has left (removed its
 *      want.<i>), with any files of dead attempts. After a failed attempt R
 *      keeps its result for the processes still to read it; the next save of
 *      the step reuses R and its old files are ignored (1).
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error_private.h"
#include "fsutil.h"
#include "multiprocess_private.h"

#define DEFAULT_TIMEOUT_MS 300000u
#define FILE_MAX	   4096 /* bytes of one rendezvous file (a message, an attempt) */

struct ckpt_mp {
	unsigned index, count, primary;
	unsigned *others; /* active processes but the primary (in the primary: the rest) */
	size_t nothers;
	char prefix[CKPT_MULTIPROCESS_PREFIX_MAX + 1];
	uint64_t timeout_ms;
	uint64_t step;
	char *root, *stepname, *rdv;
	char me[17];	  /* this try's nonce (want.<index>); the primary's is the attempt's */
	char attempt[17]; /* the attempt's nonce, once known */
	char *attempt_name;
	char (*seen)[17]; /* primary: n_i per entry of others ("" until seen) */
	unsigned char *acked, *finished;
	uint64_t beats; /* primary: heartbeats written */
	int ino;	/* inotify on rdv (wakes the waits early), or -1: polls only */
};

/* ---- options ---- */

static int prefix_ok(const char *p)
{
	size_t n = strlen(p);

	if (n > CKPT_MULTIPROCESS_PREFIX_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
		      (p[i] >= '0' && p[i] <= '9') || p[i] == '_' || p[i] == '-'))
			return 0;
	return 1;
}

static int is_active(const ckpt_multiprocess_options *o, unsigned i)
{
	if (!o->active_processes)
		return i < o->process_count;
	for (size_t k = 0; k < o->nactive; k++)
		if (o->active_processes[k] == i)
			return 1;
	return 0;
}

int ckpt_multiprocess_check(const ckpt_multiprocess_options *o)
{
	if (!o)
		return 0;
	CKPT_CHECK_VERSION(o, CKPT_MULTIPROCESS_OPTIONS_VERSION, "ckpt_multiprocess_options");
	const unsigned n = o->process_count ? o->process_count : 1;
	if (o->process_index >= n)
		return ckpt_error_set(CKPT_EINVAL,
				      "multiprocess: process_index %u is not below process_count %u",
				      o->process_index, n);
	if (o->primary_host < -1 || (o->primary_host >= 0 && (unsigned)o->primary_host >= n))
		return ckpt_error_set(CKPT_EINVAL,
				      "multiprocess: primary_host %d is neither -1 nor a process "
				      "index below process_count %u",
				      o->primary_host, n);
	if (o->active_processes) {
		if (o->nactive == 0)
			return ckpt_error_set(CKPT_EINVAL,
					      "multiprocess: active_processes is empty (NULL: all)");
		for (size_t k = 0; k < o->nactive; k++) {
			if (o->active_processes[k] >= n)
				return ckpt_error_set(CKPT_EINVAL,
						      "multiprocess: active_processes[%zu] = %u is "
						      "not below process_count %u",
						      k, o->active_processes[k], n);
			for (size_t j = 0; j < k; j++)
				if (o->active_processes[j] == o->active_processes[k])
					return ckpt_error_set(
					    CKPT_EINVAL,
					    "multiprocess: process %u is twice in active_processes",
					    o->active_processes[k]);
		}
		if (o->primary_host >= 0 && !is_active(o, (unsigned)o->primary_host))
			return ckpt_error_set(CKPT_EINVAL,
					      "multiprocess: the primary (process %d) is not in "
					      "active_processes",
					      o->primary_host);
	}
	if (!is_active(o, o->process_index))
		return ckpt_error_set(CKPT_EINVAL,
				      "multiprocess: process %u is not in active_processes: it "
				      "takes no part in this save",
				      o->process_index);
	if (o->barrier_sync_key_prefix && !prefix_ok(o->barrier_sync_key_prefix))
		return ckpt_error_set(CKPT_EINVAL,
				      "multiprocess: barrier_sync_key_prefix '%s' must be at most %d "
				      "characters of [A-Za-z0-9_-]",
				      o->barrier_sync_key_prefix, CKPT_MULTIPROCESS_PREFIX_MAX);
	return 0;
}

int ckpt_mp_shared(const ckpt_multiprocess_options *o)
{
	return o && o->process_count > 1 && o->primary_host >= 0;
}

int ckpt_multiprocess_is_secondary(const ckpt_multiprocess_options *o)
{
	return ckpt_mp_shared(o) && o->process_index != (unsigned)o->primary_host;
}

/* ---- the object ---- */

int ckpt_mp_new(ckpt_mp **out, const ckpt_multiprocess_options *o, const char *final,
		uint64_t step)
{
	const char *slash = strrchr(final, '/');
	ckpt_mp *mp;
	int rc;

	*out = NULL;
	if ((rc = ckpt_multiprocess_check(o)) < 0)
		return rc;
	assert(ckpt_mp_shared(o) && slash);
	if (!(mp = calloc(1, sizeof(*mp))))
		return ckpt_error_nomem();
	mp->index = o->process_index;
	mp->count = o->process_count;
	mp->primary = (unsigned)o->primary_host;
	mp->step = step;
	mp->timeout_ms = o->barrier_timeout_ms ? o->barrier_timeout_ms : DEFAULT_TIMEOUT_MS;
	snprintf(mp->prefix, sizeof(mp->prefix), "%s",
		 o->barrier_sync_key_prefix ? o->barrier_sync_key_prefix : "");
	mp->root = strndup(final, (size_t)(slash - final));
	mp->stepname = strdup(slash + 1);
	mp->rdv = ckpt_asprintf("%s%s%s", final, CKPT_MP_RDV_INFIX, mp->prefix);
	mp->others = calloc(mp->count, sizeof(*mp->others));
	mp->seen = calloc(mp->count, sizeof(*mp->seen));
	mp->acked = calloc(mp->count, 1);
	mp->finished = calloc(mp->count, 1);
	if (!mp->root || !mp->stepname || !mp->rdv || !mp->others || !mp->seen || !mp->acked ||
	    !mp->finished) {
		ckpt_mp_free(mp);
		return ckpt_error_nomem();
	}
	mp->ino = -1;
	for (unsigned i = 0; i < mp->count; i++)
		if (i != mp->primary && is_active(o, i))
			mp->others[mp->nothers++] = i;
	ckpt_nonce(mp->me);
	*out = mp;
	return 0;
}

void ckpt_mp_free(ckpt_mp *mp)
{
	if (!mp)
		return;
	free(mp->root);
	free(mp->stepname);
	free(mp->rdv);
	free(mp->others);
	free(mp->seen);
	free(mp->acked);
	free(mp->finished);
	free(mp->attempt_name);
	if (mp->ino >= 0)
		close(mp->ino);
	free(mp);
}

int ckpt_mp_is_primary(const ckpt_mp *mp)
{
	return mp->index == mp->primary;
}

unsigned ckpt_mp_index(const ckpt_mp *mp)
{
	return mp->index;
}

const unsigned *ckpt_mp_others(const ckpt_mp *mp, size_t *n)
{
	*n = mp->nothers;
	return mp->others;
}

/* ---- files of the rendezvous ---- */

/* Write R/name whole: a temporary name, then a rename over any old one. */
static int put(const ckpt_mp *mp, const char *name, const char *text)
{
	char nonce[17];
	char *path, *tmp;
	int rc;

	ckpt_nonce(nonce);
	path = ckpt_asprintf("%s/%s", mp->rdv, name);
	tmp = ckpt_asprintf("%s/.%s.%s", mp->rdv, name, nonce);
	rc = path && tmp ? ckpt_write_file(tmp, text, strlen(text)) : CKPT_ENOMEM;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = ckpt_error_errno(CKPT_EIO, errno, "rename %s to %s", tmp, path);
	if (rc && tmp)
		unlink(tmp);
	free(path);
	free(tmp);
	return rc;
}

/* R/name's text (malloc'd) in *out, or NULL if it does not exist (not an error). */
static int get(const ckpt_mp *mp, const char *name, char **out)
{
	char *path = ckpt_asprintf("%s/%s", mp->rdv, name);
	int rc = path ? ckpt_read_file(out, NULL, path, FILE_MAX) : CKPT_ENOMEM;

	free(path);
	if (rc == CKPT_ENOTFOUND) {
		*out = NULL;
		return 0;
	}
	return rc;
}

static void drop(const ckpt_mp *mp, const char *name)
{
	char *path = ckpt_asprintf("%s/%s", mp->rdv, name);

	if (path)
		unlink(path);
	free(path);
}

/* "<nonce>" leading a file's text (16 hex digits, then the end, a space or a newline). */
static int leads_with(const char *text, const char *nonce)
{
	return text && strlen(nonce) == 16 && strncmp(text, nonce, 16) == 0 &&
	       (text[16] == '\0' || text[16] == ' ' || text[16] == '\n');
}

/* A file holding exactly one nonce: copy it to out (17 bytes); 0 if text is not one. */
static int one_nonce(char out[17], const char *text)
{
	size_t n = text ? strspn(text, "0123456789abcdef") : 0;

	if (n != 16 || (text[16] != '\0' && text[16] != '\n'))
		return 0;
	memcpy(out, text, 16);
	out[16] = '\0';
	return 1;
}

/* "<nonce> <code>\n<message>" of failed.<i> and result: the code and the message. */
int ckpt_mp_parse_outcome(int *code, const char **msg, const char *text, const char *nonce)
{
	char *end;
	long v;

	if (!leads_with(text, nonce) || text[16] != ' ')
		return 0;
	errno = 0;
	v = strtol(text + 17, &end, 10);
	if (errno || end == text + 17 || v > 0 || v < -1000 || (*end != '\n' && *end != '\0'))
		return 0;
	*code = v < CKPT_EREADONLY ? CKPT_ERROR : (int)v; /* a code this library does not know */
	*msg = *end ? end + 1 : end;
	return 1;
}

/*
 * The attempt file "ckpt-mp 1 <a> <dir>\n" then "<i> <n_i>\n" lines: if it
 * lists process `index` with nonce `mine`, copy a to nonce_out and the
 * directory name (malloc'd) to *dir and return 1; 0 if it does not (or is
 * not an attempt file); CKPT_ENOMEM.
 */
int ckpt_mp_parse_attempt(const char *text, unsigned index, const char *mine, char nonce_out[17],
			  char **dir)
{
	char a[17], name[256], first[32];
	const char *p;
	size_t n;
	int used = 0;

	*dir = NULL;
	if (!text || strncmp(text, "ckpt-mp 1 ", 10) != 0 || strlen(text) < 27 ||
	    text[26] != ' ')
		return 0;
	memcpy(first, text + 10, 16);
	first[16] = '\0';
	if (!one_nonce(a, first))
		return 0;
	p = text + 27;
	n = strcspn(p, "\n/");
	if (n == 0 || n >= sizeof(name) || p[n] != '\n' || p[0] == '.')
		return 0; /* one name of the root, not hidden, not "." or ".." */
	memcpy(name, p, n);
	name[n] = '\0';
	for (p += n + 1; *p;) {
		/* "<i> <16 hex digits>\n" */
		unsigned long i = 0;
		size_t d = strspn(p, "0123456789");
		if (d == 0 || d > 9 || p[d] != ' ')
			return 0;
		for (size_t k = 0; k < d; k++)
			i = i * 10 + (unsigned long)(p[k] - '0');
		if (strspn(p + d + 1, "0123456789abcdef") != 16 || p[d + 17] != '\n')
			return 0;
		if (i == index && strncmp(p + d + 1, mine, 16) == 0)
			used = 1;
		p += d + 18;
	}
	if (!used)
		return 0;
	memcpy(nonce_out, a, 17);
	*dir = strdup(name);
	return *dir ? 1 : ckpt_error_nomem();
}

/* ---- waiting ---- */

typedef struct waiter {
	struct timespec start;
	unsigned sleep_us;
} waiter;

static void wait_begin(waiter *w)
{
	clock_gettime(CLOCK_MONOTONIC, &w->start);
	w->sleep_us = 1000;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Sleep up to ms on the inotify descriptor fd, ending early when a file
 * other than the heartbeat is renamed into or created in R (the primary
 * rewrites `alive` at every poll: waking on it would spin).
 */
static void sleep_on(int fd, int ms)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	const int64_t end = mono_ms() + ms;
	int64_t left = ms;

	while (left > 0) {
		struct pollfd p = {fd, POLLIN, 0};
		ssize_t n;
		if (poll(&p, 1, (int)left) <= 0)
			return;
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			for (char *e = buf; e < buf + n;) {
				const struct inotify_event *ev = (const struct inotify_event *)e;
				if (ev->len && ev->name[0] != '.' && strcmp(ev->name, "alive") != 0)
					left = 0; /* drain the rest, then look */
				e += sizeof(*ev) + ev->len;
			}
		if (left > 0)
			left = end - mono_ms();
	}
}

/* 1 once mp's timeout has passed since wait_begin; else sleep (backing off) and 0. */
static int wait_more(const ckpt_mp *mp, waiter *w)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	uint64_t ms = (uint64_t)(now.tv_sec - w->start.tv_sec) * 1000 +
		      (uint64_t)((now.tv_nsec - w->start.tv_nsec) / 1000000);

	if (ms >= mp->timeout_ms)
		return 1;
	if (mp->ino >= 0)
		sleep_on(mp->ino, (int)(w->sleep_us / 1000));
	else
		usleep(w->sleep_us);
	if (w->sleep_us < 50000)
		w->sleep_us = w->sleep_us * 2 > 50000 ? 50000 : w->sleep_us * 2;
	return 0;
}

/* "process 2 did not reach barrier 'saved' within 30 s (barrier_sync_key_prefix 'x', step 7)" */
static int timed_out(const ckpt_mp *mp, unsigned who, const char *barrier, const char *why)
{
	char span[48];

	if (mp->timeout_ms % 1000 == 0)
		snprintf(span, sizeof(span), "%" PRIu64 " s", mp->timeout_ms / 1000);
	else
		snprintf(span, sizeof(span), "%" PRIu64 " ms", mp->timeout_ms);
	return ckpt_error_set(CKPT_EBUSY,
			      "%s %u did not reach barrier '%s' within %s%s "
			      "(barrier_sync_key_prefix '%s', step %" PRIu64 ")",
			      who == mp->primary ? "the primary, process" : "process", who, barrier,
			      span, why, mp->prefix, mp->step);
}

static int claimed_twice(const ckpt_mp *mp, unsigned who)
{
	return ckpt_error_set(CKPT_EEXISTS,
			      "process index %u is claimed by two processes "
			      "(barrier_sync_key_prefix '%s', step %" PRIu64 ")",
			      who, mp->prefix, mp->step);
}

/* want.<who> still holds `expect` (else: claimed twice); dup.<who> does not accuse it. */
static int check_claim(const ckpt_mp *mp, unsigned who, const char *expect)
{
	char name[32], *text = NULL, got[17];
	int rc;

	snprintf(name, sizeof(name), "want.%u", who);
	if ((rc = get(mp, name, &text)) < 0)
		return rc;
	rc = text && one_nonce(got, text) && strcmp(got, expect) != 0 ? claimed_twice(mp, who) : 0;
	free(text);
	snprintf(name, sizeof(name), "dup.%u", who);
	if (rc == 0 && (rc = get(mp, name, &text)) == 0) {
		rc = text && one_nonce(got, text) && strcmp(got, expect) == 0 ? claimed_twice(mp, who)
									      : 0;
		free(text);
	}
	return rc;
}

/* ---- the primary ---- */

void ckpt_mp_primary_beat(ckpt_mp *mp)
{
	char text[48];

	snprintf(text, sizeof(text), "%s %" PRIu64 "\n", mp->attempt, ++mp->beats);
	put(mp, "alive", text); /* best effort: a missed beat only shortens the others' wait */
}

static int write_want(ckpt_mp *mp)
{
	char name[32], text[20];
	int rc = ckpt_mkdir_p(mp->rdv);

	if (rc == 0 && mp->ino < 0) { /* without inotify the waits only poll */
		mp->ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
		if (mp->ino >= 0 && inotify_add_watch(mp->ino, mp->rdv, IN_MOVED_TO | IN_CREATE) < 0) {
			close(mp->ino);
			mp->ino = -1;
		}
	}
	snprintf(name, sizeof(name), "want.%u", mp->index);
	snprintf(text, sizeof(text), "%s\n", mp->me);
	return rc ? rc : put(mp, name, text);
}

/* Remove ROOT/<step name>.ckpt-tmp-mp-<prefix>-<16 hex> directories: dead attempts. */
static int remove_dead_attempts(const ckpt_mp *mp)
{
	char *head = ckpt_asprintf("%s%s%s-", mp->stepname, CKPT_MP_ATTEMPT_INFIX, mp->prefix);
	DIR *d = head ? opendir(mp->root) : NULL;
	struct dirent *e;
	int rc = head ? 0 : CKPT_ENOMEM;
	char nonce[17];

	if (head && !d)
		rc = ckpt_error_errno(CKPT_EIO, errno, "open root %s", mp->root);
	while (rc == 0 && d && (e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, head, strlen(head)) != 0 ||
		    !one_nonce(nonce, e->d_name + strlen(head)))
			continue;
		char *p = ckpt_asprintf("%s/%s", mp->root, e->d_name);
		rc = p ? ckpt_rmtree(p) : CKPT_ENOMEM;
		free(p);
	}
	if (d)
		closedir(d);
	free(head);
	return rc;
}

int ckpt_mp_primary_gather(ckpt_mp *mp, char **attempt_dir)
{
	waiter w;
	int rc;

	assert(ckpt_mp_is_primary(mp));
	*attempt_dir = NULL;
	memcpy(mp->attempt, mp->me, sizeof(mp->attempt));
	if ((rc = remove_dead_attempts(mp)) < 0 || (rc = write_want(mp)) < 0)
		return rc;
	wait_begin(&w);
	for (;;) {
		size_t missing = mp->nothers;
		if ((rc = check_claim(mp, mp->index, mp->me)) < 0)
			return rc;
		for (size_t k = 0; k < mp->nothers; k++) {
			char name[32], *text = NULL;
			snprintf(name, sizeof(name), "want.%u", mp->others[k]);
			if ((rc = get(mp, name, &text)) < 0)
				return rc;
			if (one_nonce(mp->seen[k], text))
				missing--;
			free(text);
		}
		if (missing == 0)
			break;
		if (wait_more(mp, &w)) {
			for (size_t k = 0; k < mp->nothers; k++)
				if (!mp->seen[k][0])
					return timed_out(mp, mp->others[k], "start", "");
		}
	}
	mp->attempt_name = ckpt_asprintf("%s%s%s-%s", mp->stepname, CKPT_MP_ATTEMPT_INFIX,
					 mp->prefix, mp->attempt);
	*attempt_dir = mp->attempt_name ? ckpt_asprintf("%s/%s", mp->root, mp->attempt_name) : NULL;
	return *attempt_dir ? 0 : CKPT_ENOMEM;
}

static int publish(ckpt_mp *mp)
{
	size_t cap = 64 + strlen(mp->attempt_name) + mp->nothers * 32, len;
	char *text = malloc(cap);
	int rc;

	if (!text)
		return ckpt_error_nomem();
	len = (size_t)snprintf(text, cap, "ckpt-mp 1 %s %s\n", mp->attempt, mp->attempt_name);
	for (size_t k = 0; k < mp->nothers; k++)
		len += (size_t)snprintf(text + len, cap - len, "%u %s\n", mp->others[k], mp->seen[k]);
	rc = put(mp, "attempt", text);
	free(text);
	return rc;
}

/* The others' want.<i> as seen in the attempt (a changed one: republish before its ack). */
static int recheck_wants(ckpt_mp *mp, int *changed)
{
	for (size_t k = 0; k < mp->nothers; k++) {
		char name[32], *text = NULL, got[17];
		int rc;
		snprintf(name, sizeof(name), "want.%u", mp->others[k]);
		if ((rc = get(mp, name, &text)) < 0)
			return rc;
		int ok = one_nonce(got, text);
		free(text);
		if (!ok || strcmp(got, mp->seen[k]) == 0) {
			if ((rc = check_claim(mp, mp->others[k], mp->seen[k])) < 0)
				return rc;
			continue;
		}
		if (mp->acked[k]) /* invariant 3: a second live process took index i */
			return claimed_twice(mp, mp->others[k]);
		memcpy(mp->seen[k], got, sizeof(got)); /* we had read a dead try's want */
		*changed = 1;
	}
	return check_claim(mp, mp->index, mp->me);
}

int ckpt_mp_primary_publish(ckpt_mp *mp)
{
	waiter w;
	int rc = publish(mp);

	wait_begin(&w);
	while (rc == 0) {
		size_t missing = 0;
		int changed = 0;
		for (size_t k = 0; rc == 0 && k < mp->nothers; k++) {
			char name[32], *text = NULL;
			if (mp->acked[k])
				continue;
			snprintf(name, sizeof(name), "ack.%u", mp->others[k]);
			if ((rc = get(mp, name, &text)) < 0)
				break;
			mp->acked[k] = leads_with(text, mp->attempt);
			missing += !mp->acked[k];
			free(text);
		}
		if (rc == 0)
			rc = recheck_wants(mp, &changed);
		if (rc == 0 && changed)
			rc = publish(mp);
		if (rc || missing == 0)
			break;
		ckpt_mp_primary_beat(mp);
		if (wait_more(mp, &w)) {
			for (size_t k = 0; k < mp->nothers; k++)
				if (!mp->acked[k])
					return timed_out(mp, mp->others[k], "start", "");
		}
	}
	return rc;
}

int ckpt_mp_primary_wait_saved(ckpt_mp *mp)
{
	waiter w;
	int rc = 0;

	wait_begin(&w);
	for (;;) {
		size_t missing = 0;
		int changed = 0;
		for (size_t k = 0; k < mp->nothers; k++) {
			char name[32], *text = NULL;
			const char *msg;
			int code;
			if (mp->finished[k])
				continue;
			snprintf(name, sizeof(name), "failed.%u", mp->others[k]);
			if ((rc = get(mp, name, &text)) < 0)
				return rc;
			if (ckpt_mp_parse_outcome(&code, &msg, text, mp->attempt)) {
				rc = ckpt_error_set(code < 0 ? code : CKPT_ERROR,
						    "process %u failed: %s", mp->others[k], msg);
				free(text);
				return rc;
			}
			free(text);
			snprintf(name, sizeof(name), "done.%u", mp->others[k]);
			if ((rc = get(mp, name, &text)) < 0)
				return rc;
			mp->finished[k] = leads_with(text, mp->attempt);
			missing += !mp->finished[k];
			free(text);
		}
		if ((rc = recheck_wants(mp, &changed)) < 0)
			return rc;
		assert(!changed); /* every process acked: a change is claimed_twice */
		if (missing == 0)
			return 0;
		ckpt_mp_primary_beat(mp);
		if (wait_more(mp, &w)) {
			for (size_t k = 0; k < mp->nothers; k++)
				if (!mp->finished[k])
					return timed_out(mp, mp->others[k], "saved", "");
		}
	}
}

int ckpt_mp_primary_result(ckpt_mp *mp, int rc, int published)
{
	char *text = NULL;
	char *msg = rc ? strdup(ckpt_error_last()) : NULL; /* put may overwrite the message */
	char name[32];
	waiter w;

	snprintf(name, sizeof(name), "want.%u", mp->index);
	if (!published) { /* nobody joined this attempt: take back our want, R if empty */
		drop(mp, name);
		rmdir(mp->rdv);
	} else if ((text = ckpt_asprintf("%s %d\n%s", mp->attempt, rc, msg ? msg : ""))) {
		put(mp, "result", text);
	}
	free(text);
	if (msg) {
		ckpt_error_set(rc, "%s", msg);
		free(msg);
	}
	if (rc || !published)
		return 0; /* R keeps the result for processes still to read it (invariant 5) */
	/* Invariant 5: remove R once every other process has read the result and left. */
	wait_begin(&w);
	for (;;) {
		size_t left = 0;
		for (size_t k = 0; k < mp->nothers; k++) {
			char wn[32], *t = NULL, got[17];
			snprintf(wn, sizeof(wn), "want.%u", mp->others[k]);
			get(mp, wn, &t);
			left += !one_nonce(got, t) || strcmp(got, mp->seen[k]) != 0;
			free(t);
		}
		if (left == mp->nothers)
			break;
		if (wait_more(mp, &w))
			return 0; /* a process died after its index was merged: R stays */
	}
	ckpt_rmtree(mp->rdv); /* everyone has left: with it go files of dead attempts */
	ckpt_error_clear();
	return 0;
}

/* ---- the others ---- */

static void leave(const ckpt_mp *mp)
{
	static const char *const kinds[] = {"ack", "done", "want"};
	char name[32];

	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		snprintf(name, sizeof(name), "%s.%u", kinds[k], mp->index);
		drop(mp, name);
	}
}

int ckpt_mp_join(ckpt_mp *mp, char **attempt_dir)
{
	char name[32], *text = NULL, *dir = NULL, *claim = NULL;
	waiter w;
	int rc, fd;

	assert(!ckpt_mp_is_primary(mp));
	*attempt_dir = NULL;
	if ((rc = write_want(mp)) < 0)
		return rc;
	wait_begin(&w);
	for (;;) {
		snprintf(name, sizeof(name), "want.%u", mp->index);
		if ((rc = get(mp, name, &text)) < 0)
			return rc;
		char got[17];
		if (one_nonce(got, text) && strcmp(got, mp->me) != 0) {
			snprintf(name, sizeof(name), "dup.%u", mp->index); /* tell the primary */
			put(mp, name, text);
			free(text);
			return claimed_twice(mp, mp->index);
		}
		free(text);
		if ((rc = get(mp, "attempt", &text)) < 0)
			return rc;
		rc = ckpt_mp_parse_attempt(text, mp->index, mp->me, mp->attempt, &dir);
		free(text);
		if (rc < 0)
			return rc;
		if (rc == 1)
			break;
		if (wait_more(mp, &w))
			return timed_out(mp, mp->primary, "start", " (no attempt lists this process)");
	}
	mp->attempt_name = dir;
	snprintf(name, sizeof(name), "ack.%u", mp->index);
	char ack[20];
	snprintf(ack, sizeof(ack), "%s\n", mp->attempt);
	if ((rc = put(mp, name, ack)) < 0)
		return rc;
	/* The claim of ckpt.<i>.db in the attempt: a second claimant is refused. */
	claim = ckpt_asprintf("%s/%s/claim.%u", mp->root, dir, mp->index);
	if (!claim)
		return CKPT_ENOMEM;
	fd = open(claim, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		rc = errno == EEXIST ? ckpt_error_set(CKPT_EEXISTS,
						      "%s: ckpt.%u.db is already claimed: process "
						      "index %u is claimed by two processes",
						      claim, mp->index, mp->index)
				     : ckpt_error_errno(CKPT_EIO, errno, "create %s", claim);
	else
		close(fd);
	free(claim);
	if (rc == 0 && !(*attempt_dir = ckpt_asprintf("%s/%s", mp->root, dir)))
		rc = CKPT_ENOMEM;
	return rc;
}

int ckpt_mp_done(ckpt_mp *mp)
{
	char name[32], text[20], *res = NULL;
	waiter w;
	int rc;

	snprintf(name, sizeof(name), "done.%u", mp->index);
	snprintf(text, sizeof(text), "%s\n", mp->attempt);
	if ((rc = put(mp, name, text)) < 0)
		return rc;
	char beat[64] = "";
	wait_begin(&w);
	for (;;) {
		const char *msg;
		int code;
		char *alive = NULL;
		if ((rc = get(mp, "alive", &alive)) < 0)
			break;
		if (leads_with(alive, mp->attempt) && strncmp(alive, beat, sizeof(beat) - 1) != 0) {
			snprintf(beat, sizeof(beat), "%s", alive);
			wait_begin(&w); /* the primary is alive: wait anew */
		}
		free(alive);
		if ((rc = get(mp, "result", &res)) < 0)
			break;
		if (ckpt_mp_parse_outcome(&code, &msg, res, mp->attempt)) {
			rc = code == 0 ? 0
				       : ckpt_error_set(code, "the primary (process %u) failed the "
							      "save: %s",
							mp->primary, msg);
			break;
		}
		free(res);
		res = NULL;
		if (wait_more(mp, &w)) {
			rc = timed_out(mp, mp->primary, "result", "");
			break;
		}
	}
	free(res);
	leave(mp);
	return rc;
}

void ckpt_mp_failed(ckpt_mp *mp, int rc)
{
	char name[32];
	char *text;

	if (!mp->attempt[0])
		return; /* no attempt joined: the primary times out naming this process */
	text = ckpt_asprintf("%s %d\n%s", mp->attempt, rc < 0 ? rc : CKPT_ERROR,
			     ckpt_error_last());
	snprintf(name, sizeof(name), "failed.%u", mp->index);
	if (text)
		put(mp, name, text);
	free(text);
	leave(mp);
}

/* ---- owned copies (async, manager) ---- */

struct ckpt_mp_options_copy {
	ckpt_multiprocess_options o;
	unsigned *active;
	char *prefix;
};

int ckpt_mp_options_dup(ckpt_mp_options_copy **out, const ckpt_multiprocess_options *in)
{
	ckpt_mp_options_copy *c;
	int rc;

	*out = NULL;
	if (!in)
		return 0;
	if ((rc = ckpt_multiprocess_check(in)) < 0)
		return rc;
	if (!(c = calloc(1, sizeof(*c))))
		return ckpt_error_nomem();
	c->o = *in;
	if (in->active_processes &&
	    !(c->active = malloc(in->nactive * sizeof(*c->active))))
		goto nomem;
	if (in->active_processes)
		memcpy(c->active, in->active_processes, in->nactive * sizeof(*c->active));
	if (in->barrier_sync_key_prefix && !(c->prefix = strdup(in->barrier_sync_key_prefix)))
		goto nomem;
	c->o.active_processes = c->active;
	c->o.barrier_sync_key_prefix = c->prefix;
	*out = c;
	return 0;
nomem:
	ckpt_mp_options_free(c);
	return ckpt_error_nomem();
}

const ckpt_multiprocess_options *ckpt_mp_options_of(const ckpt_mp_options_copy *c)
{
	return c ? &c->o : NULL;
}

void ckpt_mp_options_free(ckpt_mp_options_copy *c)
{
	if (!c)
		return;
	free(c->active);
	free(c->prefix);
	free(c);
}
