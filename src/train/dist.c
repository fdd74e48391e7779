/* dist.c — see dist.h. Built with SMDLM_MPI=0 (`make MPI=0`) it has no MPI: one process. */
#include "train/dist.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#ifndef SMDLM_MPI
#define SMDLM_MPI 1
#endif

#if SMDLM_MPI
#include <mpi.h>

static int g_active, g_rank, g_size = 1;

int dist_init(int *argc, char ***argv) {
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_SIZE")) return 0;
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    g_active = 1;
    return 0;
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

const char *dist_backend(void) {
    static char name[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(name, &len);
    char *nl = strchr(name, ',');  /* "Open MPI v4.1.4, package: ..." → "Open MPI v4.1.4" */
    if (nl) *nl = 0;
    return name;
}

#else /* built without MPI: always one process */

int dist_init(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *size = getenv("OMPI_COMM_WORLD_SIZE"); /* started by mpirun -np N */
    if (!size) size = getenv("PMI_SIZE");
    if (size && strtol(size, NULL, 10) > 1)
        return SM_ERR("this smdlm was built without MPI (make MPI=0): run it without mpirun");
    return 0;
}

void dist_finalize(void) {}
int dist_rank(void) { return 0; }
int dist_size(void) { return 1; }
void dist_allreduce_sum(float *buf, size_t n) { (void)buf, (void)n; }
double dist_allreduce_sum_double(double v) { return v; }
void dist_abort(int code) { exit(code); }
const char *dist_backend(void) { return NULL; }

#endif
