/*
 * ckpt/json.h — JsonCheckpointHandler: one JSON document per item.
 *
 * Files of the item (the mount, the interchange directory, the store keys):
 *   <item>/<filename>     the JSON text, stored as given (validated, never
 *                         re-printed: big integers keep every digit)
 *
 * save args:    const char *   NUL-terminated JSON text (any JSON value)
 * restore args: NULL
 * restore out:  char *         the JSON text, NUL-terminated (free())
 * metadata out: NULL           (Orbax's JsonCheckpointHandler has none)
 * Restoring an item whose file is missing is CKPT_ENOTFOUND.
 */
#ifndef CKPT_JSON_H
#define CKPT_JSON_H

#include "ckpt/common.h"

#include "ckpt/handler.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CKPT_JSON_TYPESTR "orbax.checkpoint._src.handlers.json_checkpoint_handler.JsonCheckpointHandler"
#define CKPT_JSON_DEFAULT_FILENAME "metadata"

/*
 * filename NULL: "metadata". Free with ckpt_handler_free().
 * Returns 0, CKPT_EINVAL (filename is not a plain file name), CKPT_ENOMEM.
 */
CKPT_API int ckpt_json_handler_new(ckpt_handler **out, const char *filename);

/*
 * Check that text[0..len) is one JSON value.
 * Returns 0, CKPT_EINVAL (text is NULL or not one JSON value: the message
 * names `what` and the line and column of the first error), CKPT_ENOMEM.
 */
CKPT_API int ckpt_json_check(const char *text, size_t len, const char *what);

#ifdef __cplusplus
}
#endif
#endif
