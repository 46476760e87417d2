/* See mtp_check.h. */
#include "util/mtp_check.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/forward.h"

/* One run of the check; fused_off: every step with the host round trip (engine/mtp.c keeps
 * one-draft greedy steps on the device where the backend can). */
static double check_one(const glm_model *m, glm_backend *b, const int32_t *prompt, int T, const int32_t *greedy,
                        int n_g, int n_draft, tu_draft_mode mode, const char *what, bool fused_off,
                        long long *accepted)
{
    glm_forward *f = NULL;
    /* room for the whole chain to the end: the verify of the last step reaches n_draft past */
    ck_assert_msg(glm_forward_create(&f, m, b, T + n_g + n_draft + 1, T) == GLM_OK, "%s", glm_last_error());
    glm_mtp_greedy g;
    ck_assert_msg(glm_mtp_greedy_start_n(&g, f, prompt, T, m->eos_ids, m->n_eos, n_draft) == GLM_OK, "%s: %s", what,
                  glm_last_error());
    g.fused_off = fused_off;
    const int32_t V = (int32_t)m->hp.vocab_size;
    int32_t *got = malloc(sizeof(int32_t) * (size_t)(n_g + n_draft + 1));
    int n = 0, step = 0;
    got[n++] = g.last;
    while (n < n_g) {
        ck_assert_int_eq(g.n_chain, n_draft);
        int good = mode == TU_DRAFT_ORACLE ? n_draft : mode == TU_DRAFT_MIXED ? step % (n_draft + 1) : 0;
        for (int i = 0; i < n_draft && mode != TU_DRAFT_OWN; i++) {
            /* past the known continuation any token will do: it is the tail of the chain */
            int32_t truth = n + i < n_g ? greedy[n + i] : 0;
            g.chain[i] = i < good ? truth : (truth + 1 + i) % V;
        }
        if (mode != TU_DRAFT_OWN)
            g.draft = g.chain[0];
        int32_t out[GLM_MTP_MAX_DRAFT + 1];
        int k = 0;
        long long acc0 = g.accepted;
        ck_assert_msg(glm_mtp_greedy_step(&g, out, &k) == GLM_OK, "%s: %s", what, glm_last_error());
        ck_assert_msg(k >= 1 && k <= n_draft + 1, "%s: %d tokens from one step", what, k);
        ck_assert_int_eq(g.accepted - acc0, k - 1);
        if (mode == TU_DRAFT_ORACLE && n + n_draft < n_g)
            ck_assert_msg(k == n_draft + 1, "%s: oracle step %d kept %d of %d", what, step, k - 1, n_draft);
        if (mode == TU_DRAFT_MIXED && n + good < n_g)
            ck_assert_msg(k == good + 1, "%s: step %d kept %d drafts, %d were right", what, step, k - 1, good);
        for (int i = 0; i < k; i++)
            got[n++] = out[i];
        ck_assert_int_eq(glm_forward_n_past(f), n - 1 + T);
        ck_assert_int_eq(glm_forward_mtp_n_past(f), n - 1 + T);
        step++;
    }
    for (int i = 0; i < n_g; i++)
        ck_assert_msg(got[i] == greedy[i], "%s: n_draft %d mode %d: token %d is %d, greedy %d", what, n_draft,
                      (int)mode, i, got[i], greedy[i]);
    ck_assert_int_eq(g.steps, step);
    double rate = g.drafts ? (double)g.accepted / (double)g.drafts : 0.0;
    printf("%s: mtp n_draft %d mode %d%s: %lld of %lld drafts accepted, %.2f tokens per forward\n", what, n_draft,
           (int)mode, n_draft == 1 ? (fused_off ? " (host round trip)" : " (ids on the device)") : "", g.accepted,
           g.drafts, (double)(g.steps + g.accepted) / (double)g.steps);
    *accepted = g.accepted;
    fflush(stdout);
    glm_mtp_greedy_free(&g);
    glm_forward_destroy(f);
    free(got);
    return rate;
}

double tu_mtp_check_greedy(const glm_model *m, glm_backend *b, const int32_t *prompt, int T, const int32_t *greedy,
                           int n_g, int n_draft, tu_draft_mode mode, const char *what)
{
    long long acc_dev = 0, acc_host = 0;
    double rate = check_one(m, b, prompt, T, greedy, n_g, n_draft, mode, what, false, &acc_dev);
    if (n_draft == 1) { /* both forms of the one-draft step: the same tokens, the same acceptance */
        check_one(m, b, prompt, T, greedy, n_g, n_draft, mode, what, true, &acc_host);
        ck_assert_msg(acc_dev == acc_host, "%s: %lld drafts accepted with the ids on the device, %lld without", what,
                      acc_dev, acc_host);
    }
    return rate;
}
