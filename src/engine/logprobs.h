/* Log-probabilities of generated tokens for the API's logprobs / top_logprobs: the natural
 * log-softmax of one row of the model's logits, as OpenAI reports them. They describe the
 * model's own distribution, before the sampler's transforms (penalties, temperature, top-k,
 * top-p, min-p), so the numbers do not depend on the sampling settings; ids the caller masked
 * to -inf (ignore_eos) get -inf. Computed on the host in double (max-shifted sum of exps).
 * Not here: sampling (ref/sampler.h), the JSON shapes (server/). */
#ifndef GLM_LOGPROBS_H
#define GLM_LOGPROBS_H

#include <stdint.h>

#include "util/status.h"

#define GLM_LOGPROBS_MAX_TOP 20

/* logits[n_vocab] → *chosen_lp = log p(chosen); top_ids/top_lps[k] = the k most likely ids
 * (k in [0, GLM_LOGPROBS_MAX_TOP], k ≤ n_vocab) in descending order, ties to the lower id.
 * NaN logits count as -inf. Fails (GLM_ERR_INVALID) on a bad k or chosen, or when no logit is
 * finite. One pass plus O(k) per id that enters the top list; no allocation. */
glm_status glm_logprobs_top(const float *logits, int32_t n_vocab, int32_t chosen, int k, float *chosen_lp,
                            int32_t *top_ids, float *top_lps);

#endif
