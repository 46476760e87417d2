/* Log-softmax and top-k of one logits row (see logprobs.h). */
#include "engine/logprobs.h"

#include <math.h>

/* A logit with NaN read as -inf. */
static float val(const float *l, int32_t v) { return l[v] == l[v] ? l[v] : -INFINITY; }

/* id a ranks above id b: larger logit, or equal and lower id. */
static int above(const float *l, int32_t a, int32_t b)
{
    return val(l, a) > val(l, b) || (val(l, a) == val(l, b) && a < b);
}

glm_status glm_logprobs_top(const float *logits, int32_t n_vocab, int32_t chosen, int k, float *chosen_lp,
                            int32_t *top_ids, float *top_lps)
{
    if (n_vocab <= 0 || chosen < 0 || chosen >= n_vocab)
        return glm_errorf(GLM_ERR_INVALID, "logprobs: token %d outside the vocabulary of %d", (int)chosen,
                          (int)n_vocab);
    if (k < 0 || k > GLM_LOGPROBS_MAX_TOP || k > n_vocab)
        return glm_errorf(GLM_ERR_INVALID, "logprobs: top %d outside [0, %d]", k, GLM_LOGPROBS_MAX_TOP);
    float mx = -INFINITY;
    for (int32_t v = 0; v < n_vocab; v++)
        if (logits[v] > mx) /* NaN never compares greater */
            mx = logits[v];
    if (!isfinite(mx))
        return glm_errorf(GLM_ERR_INVALID, "logprobs: the logits have no finite maximum");
    double sum = 0;
    for (int32_t v = 0; v < n_vocab; v++)
        if (logits[v] > -INFINITY) /* false for NaN and -inf */
            sum += exp((double)logits[v] - (double)mx);
    const double lse = (double)mx + log(sum);
#define LP(v) (logits[v] > -INFINITY ? (float)((double)logits[v] - lse) : -INFINITY)
    *chosen_lp = LP(chosen);
    /* top k: a sorted insertion list (k ≤ 20); most rows reject a candidate at the last slot */
    int n = 0;
    for (int32_t v = 0; v < n_vocab && k > 0; v++) {
        if (n == k && !above(logits, v, top_ids[k - 1]))
            continue;
        int p = n < k ? n++ : k - 1;
        while (p > 0 && above(logits, v, top_ids[p - 1])) {
            top_ids[p] = top_ids[p - 1];
            p--;
        }
        top_ids[p] = v;
    }
    for (int i = 0; i < k; i++)
        top_lps[i] = LP(top_ids[i]);
#undef LP
    return GLM_OK;
}
