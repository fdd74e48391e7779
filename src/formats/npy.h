/* npy.h — NumPy .npy v1/v2/v3 reader and v1 writer: little-endian '<i4', '<i8', '<f4', C order. */
#ifndef SMDLM_NPY_H
#define SMDLM_NPY_H

#include <stddef.h>
#include <stdint.h>

#define NPY_MAX_DIMS 8

typedef enum { NPY_I4 = 0, NPY_I8, NPY_F4 } npy_dtype;

typedef struct {
    npy_dtype dtype;
    int ndim;
    int64_t shape[NPY_MAX_DIMS];
    size_t numel;
    void *data; /* owned, malloc'ed; numel elements of dtype */
} npy_array;

/* Reads the whole file: the header is capped at 1 MiB and the data must fill the rest of
 * the file exactly. Errors name file and reason. */
int npy_read(const char *path, npy_array *out);
int npy_write(const char *path, npy_dtype dtype, int ndim, const int64_t *shape,
              const void *data);
void npy_free(npy_array *a);

/* Convenience for token ids: read an integer array (i4 or i8) of 1 or 2 dims into int32
 * [B, T] (1-D means B = 1), checking every id is in [0, vocab). */
int npy_read_ids(const char *path, int vocab, int32_t **ids, int *B, int *T);

#endif
