/*
 * mpi_profile.c - the built-in MPI environment profiles.
 *
 * Settings from reference/rdma-mpi-healthcheck.md: Intel MPI 5.x over DAPL
 * on the Network Direct sizes (the classic RDMA cluster guide's
 * I_MPI_FABRICS=shm:dapl, I_MPI_DAPL_PROVIDER=ofa-v2-ib0,
 * I_MPI_DYNAMIC_CONNECTION=0), MS-MPI on the same network (the HPC Pack
 * guide's MSMPI_DISABLE_SOCK, MSMPI_PRECONNECT and MPICH_NETMASK for
 * 172.16.0.0/16), Intel MPI 2019+ over libfabric's mlx provider and Open
 * MPI / HPC-X over UCX on the InfiniBand SR-IOV sizes (Debian's Open MPI
 * disables UCX unless OMPI_MCA_pml=ucx is set).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "mpi_profile.h"

struct builtin_profile {
	const char *name;
	enum rdma_kind rdma;
	const char *const env[8];
};

static const struct builtin_profile _builtin[] = {
	{"intelmpi-dapl", RDMA_ND,
	 {"I_MPI_FABRICS=shm:dapl", "I_MPI_DAPL_PROVIDER=ofa-v2-ib0",
	  "I_MPI_DYNAMIC_CONNECTION=0", NULL}},
	{"msmpi", RDMA_ND,
	 {"MSMPI_DISABLE_SOCK=1", "MSMPI_PRECONNECT=all",
	  "MPICH_NETMASK=172.16.0.0/255.255.0.0", NULL}},
	{"intelmpi-ofi", RDMA_IB,
	 {"I_MPI_FABRICS=shm:ofi", "FI_PROVIDER=mlx", NULL}},
	{"openmpi-ucx", RDMA_IB,
	 {"OMPI_MCA_pml=ucx", "OMPI_MCA_osc=ucx",
	  "UCX_NET_DEVICES=mlx5_ib0:1", NULL}},
};

#define N_BUILTIN (sizeof(_builtin) / sizeof(_builtin[0]))

const char *mpi_profile_default_for(enum rdma_kind kind)
{
	switch (kind) {
	case RDMA_ND:
		return "intelmpi-dapl";
	case RDMA_IB:
		return "openmpi-ucx";
	default:
		return NULL;
	}
}

enum az_rc mpi_profiles_builtin(struct conf_mpi_profile **out, size_t *count)
{
	struct conf_mpi_profile *list = calloc(N_BUILTIN, sizeof(*list));

	*out = NULL;
	*count = 0;
	if (!list)
		return AZ_ENOMEM;
	for (size_t i = 0; i < N_BUILTIN; i++) {
		const struct builtin_profile *b = &_builtin[i];
		size_t n = 0;

		while (b->env[n])
			n++;
		list[i].name = strdup(b->name);
		list[i].rdma = b->rdma;
		list[i].env = calloc(n, sizeof(char *));
		list[i].line = 0;
		if (!list[i].name || !list[i].env) {
			mpi_profiles_free(list, i + 1);
			return AZ_ENOMEM;
		}
		for (size_t j = 0; j < n; j++) {
			list[i].env[j] = strdup(b->env[j]);
			if (!list[i].env[j]) {
				list[i].env_count = j;
				mpi_profiles_free(list, i + 1);
				return AZ_ENOMEM;
			}
		}
		list[i].env_count = n;
	}
	*out = list;
	*count = N_BUILTIN;
	return AZ_OK;
}

void mpi_profiles_free(struct conf_mpi_profile *profiles, size_t count)
{
	if (!profiles)
		return;
	for (size_t i = 0; i < count; i++) {
		for (size_t j = 0; j < profiles[i].env_count; j++)
			free(profiles[i].env[j]);
		free(profiles[i].env);
		free(profiles[i].name);
	}
	free(profiles);
}

char *mpi_profile_env_text(const struct conf_mpi_profile *p)
{
	struct az_buf b = {0};
	enum az_rc rc = AZ_OK;

	for (size_t i = 0; i < p->env_count && rc == AZ_OK; i++)
		rc = buf_printf(&b, "%s\n", p->env[i]);
	if (rc == AZ_OK)
		rc = buf_printf(&b, MPI_PROFILE_VAR "=%s\n", p->name);
	if (rc != AZ_OK) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

enum az_rc mpi_profile_env_text_check(const char *text, char *err,
                                      size_t errlen)
{
	size_t line = 1;

	if (strlen(text) > MPI_PROFILE_TEXT_MAX)
		return az_err(AZ_EINVAL, err, errlen,
		              "MPI profile record larger than %d bytes",
		              MPI_PROFILE_TEXT_MAX);
	for (const char *p = text; *p; line++) {
		const char *name = p;

		if (!isalpha((unsigned char)*p) && *p != '_')
			return az_err(AZ_EINVAL, err, errlen,
			              "MPI profile record line %zu: no "
			              "variable name", line);
		while (isalnum((unsigned char)*p) || *p == '_')
			p++;
		if (*p != '=' || p - name > 255)
			return az_err(AZ_EINVAL, err, errlen,
			              "MPI profile record line %zu: not "
			              "NAME=value", line);
		p += strcspn(p, "\n");
		if (*p)
			p++;
	}
	return AZ_OK;
}
