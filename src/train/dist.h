/* dist.h — multi-process data parallelism over MPI (OpenMPI, started with mpirun). Without
 * mpirun the program never initialises MPI and behaves as one process of one; built without
 * MPI (`make MPI=0`) it is always one process and refuses to run under mpirun -np N > 1. */
#ifndef SMDLM_DIST_H
#define SMDLM_DIST_H

#include <stddef.h>

/* Initialises MPI when the process was started by mpirun (OMPI_COMM_WORLD_SIZE or PMI_SIZE
 * set); otherwise does nothing. −1 (and the error) when started by mpirun without MPI. */
int dist_init(int *argc, char ***argv);
void dist_finalize(void);
int dist_rank(void);
int dist_size(void);
/* In place: buf = Σ over ranks of buf (one contiguous buffer, one call). */
void dist_allreduce_sum(float *buf, size_t n);
double dist_allreduce_sum_double(double v);
/* Ends every process (an error on one rank must not leave the others waiting). */
void dist_abort(int code);
/* The MPI library ("Open MPI v4.1.4"), or NULL when built without MPI. */
const char *dist_backend(void);

#endif
