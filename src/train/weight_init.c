/* weight_init.c — see weight_init.h. */
#include "train/weight_init.h"

#include <math.h>
#include <string.h>

#include "base/rng.h"
#include "base/util.h"

void mdlm_init_weights(dit_model *m, uint64_t seed) {
    sm_rng g;
    rng_seed(&g, seed);
    int n = dit_param_count(&m->cfg);
    dit_param *tab = sm_malloc(sizeof *tab * (size_t)n);
    dit_param_table(&m->cfg, &m->w, tab);
    for (int i = 0; i < n; i++) {
        float *p = *tab[i].slot;
        int zero = strstr(tab[i].name, "adaLN") || strstr(tab[i].name, "output_layer.linear") ||
                   tab[i].ndim == 1;
        for (size_t j = 0; j < tab[i].numel; j++) {
            if (strstr(tab[i].name, "norm")) p[j] = 1.0f;
            else if (zero) p[j] = 0.0f;
            else { /* Box–Muller */
                double u1 = rng_uniform(&g), u2 = rng_uniform(&g);
                p[j] = (float)(0.02 * sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2));
            }
        }
    }
    free(tab);
}
