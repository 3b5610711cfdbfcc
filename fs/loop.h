/*
 * fs/loop.h — the daemon's session loop (fs/loop.c): leader/followers with a
 * spinning leader, instead of fuse_session_loop_mt.
 */
#ifndef CKPTFS_LOOP_H
#define CKPTFS_LOOP_H

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif
#include <fuse_lowlevel.h>

/* Default -o spin_us: how long a leader polls without sleeping. */
#define CKPTFS_DEFAULT_SPIN_US 200u

/*
 * Serve se with nworkers threads (at least 1) until the session exits; the
 * leader polls the device for spin_us microseconds before it sleeps (0: it
 * sleeps at once). Returns 0 once the session ended (unmount, signal), or a
 * negative errno of a failed device read or of starting the threads.
 */
int ckptfs_loop(struct fuse_session *se, unsigned nworkers, unsigned spin_us);

#endif
