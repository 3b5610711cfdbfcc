/* wrong_abi.c — a plugin built for an ABI version this library does not
 * have: its init refuses (handler_plugin_test). */
#include <ckpt/sys/error.h>
#include <ckpt/sys/handler.h>

int ckpt_handler_plugin_init(unsigned abi_version);
int ckpt_handler_plugin_init(unsigned abi_version)
{
	if (abi_version != CKPT_HANDLER_PLUGIN_ABI + 1)
		return ckpt_error_set_str(CKPT_EVERSION, "wrong_abi plugin: built for ABI 2");
	return 0;
}
