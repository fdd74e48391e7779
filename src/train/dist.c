/* dist.c — see dist.h. */
#include "train/dist.h"

#include <limits.h>
#include <mpi.h>
#include <stdlib.h>

#include "base/util.h"

static int g_active, g_rank, g_size = 1;

void dist_init(int *argc, char ***argv) {
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_SIZE")) return;
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    g_active = 1;
}

void dist_finalize(void) {
    if (g_active) MPI_Finalize();
    g_active = 0;
}

int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }

void dist_allreduce_sum(float *buf, size_t n) {
    if (!g_active || g_size == 1) return;
    while (n > 0) { /* MPI counts are ints */
        int chunk = n > (size_t)INT_MAX ? INT_MAX : (int)n;
        MPI_Allreduce(MPI_IN_PLACE, buf, chunk, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        buf += chunk;
        n -= (size_t)chunk;
    }
}

double dist_allreduce_sum_double(double v) {
    if (!g_active || g_size == 1) return v;
    double out;
    MPI_Allreduce(&v, &out, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return out;
}

void dist_abort(int code) {
    if (g_active) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}
