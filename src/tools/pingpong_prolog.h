/*
 * pingpong_prolog.h - azrdma-pingpong's Prolog mode (no MPI): each node of
 * a job checks the RDMA path to the next one.  See pingpong_prolog.c.
 */
#ifndef AZRDMA_PINGPONG_PROLOG_H
#define AZRDMA_PINGPONG_PROLOG_H

#include <stdbool.h>

/* --prolog, or no argument at all under SLURM_SCRIPT_CONTEXT=prolog_slurmd. */
bool pp_prolog_wanted(int argc, char **argv);
/* The Prolog mode; its exit status (0 ok, 1 a broken pair, 2 misuse). */
int pp_prolog_main(int argc, char **argv);

#endif
