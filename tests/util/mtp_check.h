/* MTP speculative decoding against plain greedy decoding (engine/forward.h glm_mtp_*), shared
 * by the reference (test_forward, test_golden_ours) and Vulkan (test_vk_model) tests. */
#ifndef GLM_TEST_MTP_CHECK_H
#define GLM_TEST_MTP_CHECK_H

#include <stdint.h>

#include "backend/backend.h"
#include "model/model.h"

/* How the drafts are chosen before each step:
 *   TU_DRAFT_OWN    the MTP block's own chain (random weights: mostly rejected)
 *   TU_DRAFT_ORACLE every draft overwritten with the true next token (all accepted: long
 *                   accepted runs, the bonus token and n_draft + 1 MTP rows per step)
 *   TU_DRAFT_MIXED  step s: the first s mod (n_draft + 1) drafts true, the next one wrong
 *                   (every accepted length 0 .. n_draft, and rejections after accepts) */
typedef enum tu_draft_mode { TU_DRAFT_OWN, TU_DRAFT_ORACLE, TU_DRAFT_MIXED } tu_draft_mode;

/* Greedy MTP decoding (end-of-generation ids masked, as the golden continuations) with
 * n_draft drafts of prompt[T] must give exactly greedy[n_g]; checks both caches' lengths
 * after every step and the counters (all accepted in oracle mode). Returns the acceptance. */
double tu_mtp_check_greedy(const glm_model *m, glm_backend *b, const int32_t *prompt, int T, const int32_t *greedy,
                           int n_g, int n_draft, tu_draft_mode mode, const char *what);

#endif
