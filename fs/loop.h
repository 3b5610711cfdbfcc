/*
 * fs/loop.h — the daemon's session loop (fs/loop.c): workers that poll the
 * device briefly after a metadata request, instead of fuse_session_loop_mt.
 */
#ifndef CKPTFS_LOOP_H
#define CKPTFS_LOOP_H

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif
#include <fuse_lowlevel.h>

/* Default -o spin_us: how long a worker polls after a metadata request. */
#define CKPTFS_DEFAULT_SPIN_US 200u

/*
 * Serve se with nworkers threads (at least 1, at most 64) until the session
 * exits; a worker that has answered a metadata request polls the device for
 * spin_us microseconds before it sleeps (0: it sleeps at once). Returns 0
 * once the session ended (unmount, signal), or a negative errno of a failed
 * device read or of starting the threads.
 */
int ckptfs_loop(struct fuse_session *se, unsigned nworkers, unsigned spin_us);

#endif
