/*
 * mpi_profile.h - the MPI environment profiles shipped with azrdma.
 *
 * Profiles are data: each is a list of NAME=value settings meant for one
 * RDMA kind.  azrdma.conf may add profiles or replace these with
 * MpiProfile= lines; conf_load() starts from this list.
 */
#ifndef AZRDMA_MPI_PROFILE_H
#define AZRDMA_MPI_PROFILE_H

#include <stddef.h>

#include "az_rc.h"
#include "catalog.h"
#include "conf.h"

/* A new copy of the built-in profiles; free with mpi_profiles_free. */
enum az_rc mpi_profiles_builtin(struct conf_mpi_profile **out, size_t *count);
void mpi_profiles_free(struct conf_mpi_profile *profiles, size_t count);

/* The built-in profile used for kind when the image names none. */
const char *mpi_profile_default_for(enum rdma_kind kind);

#endif
