/*
 * manager_private.h — the CheckpointManager's invariants, checked in one
 * call (manager.c; library only).
 */
#ifndef CKPT_MANAGER_PRIVATE_H
#define CKPT_MANAGER_PRIVATE_H

#include "ckpt/manager.h"

/*
 * Assert every invariant of manager.c that its state can show, as SQLite's
 * assert_pager_state: `assert(ckpt_manager_check(m))`. Returns 1.
 */
int ckpt_manager_check(const ckpt_manager *m);

#endif
