/* dataset_loss.c — see dataset_loss.h. */
#include "train/dataset_loss.h"

#include <string.h>

#include "base/rng.h"
#include "base/util.h"

int dataset_loss(trainer *tr, const shard_set *data, size_t max_blocks, uint64_t seed, int sm,
                 progress *prog, double *nats, long *tokens) {
    const int B = tr->B, T = tr->T;
    size_t n = max_blocks && max_blocks < data->nblocks ? max_blocks : data->nblocks;
    n -= n % (size_t)B;
    if (n == 0) return SM_ERR("the data has fewer than %d blocks (one batch)", B);
    if (T > data->block_len) return SM_ERR("length %d exceeds the data's blocks (%d)", T, data->block_len);
    sm_rng g;
    rng_seed(&g, seed);
    int32_t *tmp = sm_malloc(sizeof(int32_t) * (size_t)data->block_len);
    int32_t *x0 = sm_malloc(sizeof(int32_t) * (size_t)B * T), *xt = sm_malloc(sizeof(int32_t) * (size_t)B * T);
    float *t = sm_malloc(sizeof(float) * (size_t)B);
    double sum = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i += (size_t)B) {
        for (int b = 0; b < B && !rc; b++) {
            rc = shards_read_block(data, i + (size_t)b, tmp);
            memcpy(x0 + (size_t)b * T, tmp, sizeof(int32_t) * (size_t)T);
        }
        if (rc) break;
        if (tr->cfg.causal) memcpy(xt, x0, sizeof(int32_t) * (size_t)B * T);
        else mdlm_noise_batch(&g, x0, xt, t, B, T, tr->cfg.mask_id);
        train_batch bt = {xt, x0, t};
        sum += trainer_loss(tr, &bt, sm && !tr->cfg.causal);
        progress_report(prog, (double)(i + (size_t)B), (double)n, "blocks");
    }
    free(tmp), free(x0), free(xt), free(t);
    *nats = sum / (double)(n / (size_t)B);
    *tokens = (long)n * (tr->cfg.causal ? T - 1 : T);
    return rc;
}
