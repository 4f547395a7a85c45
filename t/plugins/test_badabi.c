/*
 * test_badabi.c - a test-only plugin built for an ABI this sluice does not
 * have: the loader must refuse it at start-up, before calling anything.
 */
#include <stdlib.h>

#include <sluice/plugin.h>

static int
badabi_init(void **state_r, const char **error_r)
{
	(void)state_r;
	(void)error_r;
	abort(); /* never reached: the ABI check comes first */
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI + 1000,
	.name = "test_badabi",
	.init = badabi_init,
};
