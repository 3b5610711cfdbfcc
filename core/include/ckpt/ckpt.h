/* ckpt/ckpt.h — everything of libckpt. */
#ifndef CKPT_CKPT_H
#define CKPT_CKPT_H
#include "ckpt/error.h"
#include "ckpt/dtype.h"
#include "ckpt/npy.h"
#include "ckpt/store.h"
#include "ckpt/tree.h"
#include "ckpt/root.h"
#include "ckpt/step.h"
#include "ckpt/clone.h"
#include "ckpt/handler.h"
#include "ckpt/pytree.h"
#include "ckpt/checkpointer.h"
#include "ckpt/interchange.h"
#include "ckpt/pending.h"
#include "ckpt/async.h"
#include "ckpt/manager.h"
#include "ckpt/composite.h"
#include "ckpt/json.h"
#include "ckpt/array.h"
#include "ckpt/proto.h"
#include "ckpt/random_key.h"
#endif
