/* linear_tiles.h — what linear.c's fp32 tiles and linear_q8.c's int8 tiles share: the tile
 * and panel sizes and the switch that instantiates an always_inline tile body per row count. */
#ifndef SMDLM_LINEAR_TILES_H
#define SMDLM_LINEAR_TILES_H

#include <stddef.h>

#include "compute/linear.h"

#define TILE_R 4      /* rows of W per tile kernel call */
#define PANEL_ROWS 64 /* rows of W per OpenMP task */

/* Calls the instance of an always_inline tile body for nb = 1..4 (the last argument, NB, a
 * constant in each call). */
#define NB_SWITCH(kernel, ...)                                                                  \
    switch (nb) {                                                                                \
    case 1: kernel(__VA_ARGS__, 1); break;                                                       \
    case 2: kernel(__VA_ARGS__, 2); break;                                                       \
    case 3: kernel(__VA_ARGS__, 3); break;                                                       \
    default: kernel(__VA_ARGS__, 4); break;                                                      \
    }

/* Rows of W per OpenMP task for OC output rows: PANEL_ROWS, halved (down to TILE_R) until
 * every thread has several panels (the 128-row k/v projections). */
int linear_panel_rows(int OC);

/* linear_forward on q8 weights through the int8 kernels of `path` (generic, avx2 or
 * avx512vnni; linear_q8.c). */
void linear_q8_forward(float *out, const float *inp, const linear_w *w, const float *bias, int N,
                       linear_path path);

#endif
