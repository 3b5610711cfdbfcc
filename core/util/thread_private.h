/*
 * thread_private.h — the priority of the library's background threads
 * (library only).
 */
#ifndef CKPT_THREAD_PRIVATE_H
#define CKPT_THREAD_PRIVATE_H

#include <errno.h>
#include <sys/resource.h>
#include <unistd.h>


/*
 * How much nicer background threads run than their creator: the value
 * ckpt/async.h publishes as CKPT_ASYNC_NICE (async.c asserts they agree;
 * util/ cannot include the async layer's header).
 */
#define CKPT_THREAD_NICE 10

/*
 * Make the calling thread CKPT_THREAD_NICE nicer than it was (it inherited
 * its creator's value), at most 19. Linux: PRIO_PROCESS with a thread id
 * changes that thread only; threads it starts inherit the new value.
 * Best effort: failures are ignored.
 */
static inline void ckpt_thread_background(void)
{
	id_t tid = (id_t)gettid();
	int old;

	errno = 0;
	old = getpriority(PRIO_PROCESS, tid);
	if (old == -1 && errno)
		return;
	(void)setpriority(PRIO_PROCESS, tid, old + CKPT_THREAD_NICE > 19 ? 19 : old + CKPT_THREAD_NICE);
}

#endif
