/*
 * fs/loop.c — the session loop: N workers reading /dev/fuse; a worker that
 * has just answered a metadata request watches the device for spin_us
 * before it sleeps.
 *
 * Why not fuse_session_loop_mt: on a VM a request that finds every worker
 * asleep waits for one to be woken (an interrupt to an idle CPU: 50-75 µs
 * per round trip here), and a serial client pays that on every request:
 * `getfattr -d -R` sends sixteen per file, a numpy peek seven. A client's
 * next request usually comes a few tens of microseconds after our reply;
 * the worker that sent the reply is still awake then, and takes it at once
 * (docs/fs.md, "Threads"). After a READ or WRITE it does not spin (see
 * moves_data).
 *
 * The device stays blocking: sleeping workers wait in read(), where the
 * kernel wakes one of them per request (no herd). A spinning worker polls
 * with a zero timeout, yielding the CPU between polls; when the device has
 * a request it reads it, and whoever reads first serves it (a woken sleeper
 * that finds nothing sleeps again in the kernel).
 *
 * Invariants:
 *  1. A worker spins only within spin_us of answering a request, so an idle
 *     mount uses no CPU.
 *  2. A worker can be cancelled only while it waits in the device read
 *     (as in libfuse's loop), never while it serves a request.
 *  3. The loop ends when the session exits (unmount: every read fails with
 *     ENODEV; a signal: fuse_session_exit, seen by the waiting thread within
 *     WAIT_MS, which then cancels the readers).
 */
#include "loop.h"

#include <errno.h>
#include <linux/fuse.h> /* the request header: libfuse does not install its copy */
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_WORKERS 64
#define WAIT_MS	    250 /* the waiting thread looks at fuse_session_exited this often */

struct loop {
	struct fuse_session *se;
	uint64_t spin_ns;
	int err; /* the first failed read other than the session's end (atomic) */
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * A READ or WRITE (a WRITE's data may come as a pipe: FUSE_BUF_IS_FD). After
 * one the worker does not spin: data requests come in bursts that keep the
 * workers busy, or wait for the disk. In a trial that spun after every
 * request, cold random 4 KiB reads took 113-168 µs each instead of 89-113
 * (the reply wakes the reader on the spinning worker's CPU) and a cold
 * `cat` of compressed leaves fell from 0.84 to 0.54 of its limit (the
 * spinner took CPU from the decoding workers).
 */
static int moves_data(const struct fuse_buf *b)
{
	uint32_t op;

	if ((b->flags & FUSE_BUF_IS_FD) || b->size < sizeof(struct fuse_in_header) ||
	    b->mem == NULL)
		return 1;
	memcpy(&op, (const char *)b->mem + offsetof(struct fuse_in_header, opcode), sizeof(op));
	return op == FUSE_READ || op == FUSE_WRITE;
}

static void free_buf(void *p)
{
	free(((struct fuse_buf *)p)->mem);
}

static void *worker_main(void *arg)
{
	struct loop *l = arg;
	struct fuse_buf buf = {.mem = NULL};
	struct pollfd pfd = {.fd = fuse_session_fd(l->se), .events = POLLIN};
	uint64_t until = 0; /* spin until then (invariant 1) */
	int spin;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	pthread_cleanup_push(free_buf, &buf);
	while (!fuse_session_exited(l->se)) {
		int res;
		while (until && now_ns() < until && poll(&pfd, 1, 0) == 0)
			sched_yield(); /* a client on this CPU goes first */
		pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL); /* invariant 2 */
		res = fuse_session_receive_buf(l->se, &buf);
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
		if (res == -EINTR || res == -EAGAIN)
			continue;
		if (res <= 0) {
			int zero = 0;
			if (res < 0 && res != -ENODEV)
				__atomic_compare_exchange_n(&l->err, &zero, res, 0,
							    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
			fuse_session_exit(l->se);
			break;
		}
		spin = l->spin_ns && !moves_data(&buf);
		fuse_session_process_buf(l->se, &buf);
		until = spin ? now_ns() + l->spin_ns : 0;
	}
	pthread_cleanup_pop(1);
	return NULL;
}

int ckptfs_loop(struct fuse_session *se, unsigned nworkers, unsigned spin_us)
{
	struct loop l = {.se = se, .spin_ns = (uint64_t)spin_us * 1000u};
	pthread_t t[MAX_WORKERS];
	unsigned n = 0;

	if (nworkers < 1)
		nworkers = 1;
	if (nworkers > MAX_WORKERS)
		nworkers = MAX_WORKERS;
	for (; n < nworkers; n++)
		if (pthread_create(&t[n], NULL, worker_main, &l) != 0)
			break;
	if (n == 0)
		return -EAGAIN;
	while (!fuse_session_exited(se)) { /* a signal interrupts the sleep (invariant 3) */
		struct timespec ts = {.tv_nsec = WAIT_MS * 1000000L};
		nanosleep(&ts, NULL);
	}
	for (unsigned i = 0; i < n; i++)
		pthread_cancel(t[i]); /* those still in read(); the others have ended */
	for (unsigned i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	fuse_session_reset(se);
	return __atomic_load_n(&l.err, __ATOMIC_RELAXED);
}
