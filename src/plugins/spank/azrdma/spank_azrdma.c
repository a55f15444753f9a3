/*
 * spank_azrdma.c - spank/azrdma: the MPI environment in every task.
 *
 * This revision registers the plugin and checks that azrdma.conf is
 * readable where it runs; applying the job's MPI profile to each task and
 * the --rdma-env option are the job_submit/spank issue's work.
 */
#include <slurm/spank.h>

#include "conf.h"
#include "log.h"
#include "sl_plugin.h"

SPANK_PLUGIN(azrdma, 1);

int slurm_spank_init(spank_t sp, int ac, char **av)
{
	struct azrdma_conf *conf;

	/* Only where tasks run: srun, salloc and sbatch need no config. */
	if (spank_context() != S_CTX_REMOTE)
		return ESPANK_SUCCESS;
	sl_plugin_log_init("spank/azrdma");
	conf = sl_plugin_conf_load();
	if (!conf)
		return ESPANK_ERROR;
	conf_free(conf);
	return ESPANK_SUCCESS;
}
