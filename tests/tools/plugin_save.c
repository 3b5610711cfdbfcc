/*
 * plugin_save.c — `plugin_save PLUGIN ROOT STEP ITEM TEXT`: load a handler
 * plugin and save ROOT/STEP with one item of the example plugin's type
 * (docs/examples/handler_plugin.c), saved by its own handler
 * (tests/e2e/handlers_plugin.sh).
 */
#include <stdio.h>
#include <stdlib.h>

#include <ckpt/ckpt.h>
#include <ckpt/sys/handler.h>

int main(int argc, char **argv)
{
	ckpt_registry *r = NULL;
	int rc;

	if (argc != 6) {
		fprintf(stderr, "usage: plugin_save PLUGIN ROOT STEP ITEM TEXT\n");
		return 2;
	}
	ckpt_composite_arg arg = {argv[4], "example.lines_checkpoint_handler.LinesCheckpointHandler",
				  argv[5]};
	rc = ckpt_handler_plugin_load(argv[1]);
	if (rc == 0)
		rc = ckpt_registry_new(&r);
	if (rc == 0)
		rc = ckpt_composite_save_step(argv[2], strtoull(argv[3], NULL, 10), r, &arg, 1,
					      NULL);
	ckpt_registry_free(r);
	if (rc)
		fprintf(stderr, "plugin_save: %s\n", ckpt_error_last());
	return rc ? 1 : 0;
}
