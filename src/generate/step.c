/* step.c — see step.h. */
#include "generate/step.h"

#include <stdlib.h>

#include "base/util.h"

#define LISTED 8 /* positions named in the message */

int gen_position_error(const lm_model *m, const char *when, const char *problem,
                       const int32_t *pos, int n, int T) {
    sm_buf list = {0};
    for (int i = 0; i < n && i < LISTED; i++)
        sm_buf_printf(&list, "%s%d:%d", i ? ", " : "", pos[i] / T, pos[i] % T);
    if (n > LISTED) sm_buf_printf(&list, " and %d more", n - LISTED);
    sm_buf who = {0};
    sm_buf_str(&who, "the model");
    if (m->name) sm_buf_printf(&who, " '%s'", m->name);
    if (problem)
        SM_ERR("%s: %s: %s at %d position%s (sample:position %s)", when, who.s, problem, n,
               n == 1 ? "" : "s", list.s);
    else
        SM_ERR("%s: %s predicted NaN or infinite logits at %d position%s (sample:position %s): "
               "its weights hold non-finite values, or its activations overflow "
               "(--check-weights, or check_weights when loading, names a bad tensor)",
               when, who.s, n, n == 1 ? "" : "s", list.s);
    free(who.s);
    free(list.s);
    return -1;
}
