/* no_init.c — a shared object without ckpt_handler_plugin_init: loading it
 * is an error naming the file (handler_plugin_test). */
int ckpt_not_a_plugin(void);
int ckpt_not_a_plugin(void)
{
	return 0;
}
