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

/*
 * A profile written out for a node that has no azrdma.conf (configless
 * Slurm): job_submit/azrdma records it in an interactive job, spank/azrdma's
 * job prolog keeps it on each of the job's nodes for the steps.  One
 * NAME=value per line, the last MPI_PROFILE_VAR=<name>.
 */
#define MPI_PROFILE_TEXT_MAX 65536

/* The variable that names a task's profile, and the record's in
 * spank_job_env. */
#define MPI_PROFILE_VAR "AZRDMA_MPI_PROFILE"
#define MPI_PROFILE_RECORD_VAR "SPANK_AZRDMA_MPI_ENV"

/* p as that text (caller frees), NULL when out of memory. */
char *mpi_profile_env_text(const struct conf_mpi_profile *p);

/*
 * Whether text is such a record: at most MPI_PROFILE_TEXT_MAX bytes, every
 * line NAME=value with NAME of letters, digits and _ (not a digit first).
 * What reaches a root-run job prolog is checked before it is written.
 */
enum az_rc mpi_profile_env_text_check(const char *text, char *err,
                                      size_t errlen);

#endif
