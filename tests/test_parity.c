/* The per-kernel parity report (backend/vk/parity.h): over the small shape table every op
 * appears and every row passes on whatever device glm_vk picks (lavapipe in CI, with the
 * validation layer when installed); a perturbed reference makes every row fail, so the
 * pass/fail logic is shown able to fail; the report's bounds equal tests/tolerances.h. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/vk/parity.h"
#include "model/types.h"
#include "tolerances.h"
#include "util/testutil.h"

static glm_vk *g_vk;
static uint64_t g_seed;

static void setup(void)
{
    glm_vk_options o = { .device_index = -1, .validation = true };
    ck_assert_msg(glm_vk_create(&g_vk, &o) == GLM_OK, "no Vulkan device: %s", glm_last_error());
    g_seed = tu_seed("parity");
}

static void teardown(void)
{
    uint32_t msgs = glm_vk_validation_messages(g_vk);
    glm_vk_destroy(g_vk);
    ck_assert_msg(msgs == 0, "%u validation messages", msgs);
}

static size_t rows_of(const glm_parity_report *rep, const char *op)
{
    size_t n = 0;
    for (size_t i = 0; i < rep->n; i++)
        n += strcmp(rep->rows[i].op, op) == 0;
    return n;
}

START_TEST(test_bounds_match_tolerances)
{
    ck_assert(GLM_PARITY_ELEMENTWISE_NMSE == TOL_VK_ELEMENTWISE_NMSE);
    ck_assert(GLM_PARITY_MATVEC_NMSE == TOL_VK_MATVEC_NMSE);
    ck_assert(GLM_PARITY_MATMUL_NMSE == TOL_VK_MATMUL_NMSE);
    ck_assert(GLM_PARITY_MATMUL_CM_NMSE == TOL_VK_MATMUL_CM_NMSE);
    ck_assert(GLM_PARITY_ATTENTION_NMSE == TOL_VK_ATTENTION_NMSE);
}
END_TEST

START_TEST(test_small_table_passes)
{
    glm_parity_options o = { .seed = g_seed };
    glm_parity_report rep = { 0 };
    ck_assert_msg(glm_parity_run(g_vk, &o, &rep) == GLM_OK, "%s", glm_last_error());
    char *md = glm_parity_markdown(&rep);
    ck_assert(md != NULL);
    printf("%s", md);
    ck_assert_msg(glm_parity_failures(&rep) == 0, "%zu failing rows (seed %llu)", glm_parity_failures(&rep),
                  (unsigned long long)g_seed);
    size_t nops;
    const char *const *ops = glm_parity_op_names(&nops);
    ck_assert_uint_eq(nops, 14);
    for (size_t i = 0; i < nops; i++) {
        ck_assert_msg(rows_of(&rep, ops[i]) > 0, "op %s missing from the report", ops[i]);
        ck_assert_msg(strstr(md, ops[i]) != NULL, "op %s missing from the Markdown", ops[i]);
    }
    /* all 16 weight types of the matvec kernel appear */
    char seen[32][16];
    size_t nseen = 0;
    for (size_t i = 0; i < rep.n; i++) {
        const glm_parity_row *r = &rep.rows[i];
        ck_assert_msg(!r->skipped && r->written && r->usec > 0, "row %s %s %s", r->op, r->type, r->shape);
        bool dup = false;
        for (size_t j = 0; j < nseen; j++)
            dup |= !strcmp(seen[j], r->type);
        if (!strcmp(r->op, "matvec") && !dup && nseen < 32)
            snprintf(seen[nseen++], sizeof seen[0], "%s", r->type);
    }
    ck_assert_uint_eq(nseen, 16);
    ck_assert(strstr(md, "seed ") != NULL && strstr(md, glm_vk_device_name(g_vk)) != NULL);
    char *js = glm_parity_json(&rep);
    ck_assert(js != NULL && strstr(js, "\"rows\"") != NULL && strstr(js, "\"mla_attention\"") != NULL);
    free(js);
    free(md);
    glm_parity_report_free(&rep);
}
END_TEST

/* A reference result off by 1 in its first element (or first id) must fail every row. */
START_TEST(test_perturbed_reference_fails)
{
    glm_parity_options o = { .seed = g_seed, .ref_perturb = 1.0 };
    glm_parity_report rep = { 0 };
    ck_assert_msg(glm_parity_run(g_vk, &o, &rep) == GLM_OK, "%s", glm_last_error());
    ck_assert(rep.n > 50);
    ck_assert_uint_eq(glm_parity_failures(&rep), rep.n);
    for (size_t i = 0; i < rep.n; i++) {
        const glm_parity_row *r = &rep.rows[i];
        ck_assert_msg(!r->pass, "row %s %s %s passed against a wrong reference", r->op, r->type, r->shape);
        ck_assert(r->written); /* the failure comes from the comparison, not the poison */
        if (r->exact)
            ck_assert_uint_ge(r->mismatches, 1);
        else
            ck_assert(r->nmse > r->bound && r->max_abs >= 0.5);
    }
    glm_parity_report_free(&rep);
}
END_TEST

/* No kernel runs: the poisoned outputs must be caught by the written check (rope works in
 * place on its input, so there the comparison itself fails). */
START_TEST(test_unwritten_outputs_fail)
{
    glm_parity_options o = { .seed = g_seed, .test_no_dispatch = true };
    glm_parity_report rep = { 0 };
    ck_assert_msg(glm_parity_run(g_vk, &o, &rep) == GLM_OK, "%s", glm_last_error());
    ck_assert(rep.n > 50);
    ck_assert_uint_eq(glm_parity_failures(&rep), rep.n);
    for (size_t i = 0; i < rep.n; i++) {
        const glm_parity_row *r = &rep.rows[i];
        if (strcmp(r->op, "rope") != 0)
            ck_assert_msg(!r->written, "row %s %s %s: poisoned output counted as written", r->op, r->type, r->shape);
    }
    glm_parity_report_free(&rep);
}
END_TEST

START_TEST(test_op_selection)
{
    glm_parity_options o = { .seed = g_seed, .ops = "argmax,copy" };
    glm_parity_report rep = { 0 };
    ck_assert(glm_parity_run(g_vk, &o, &rep) == GLM_OK);
    ck_assert(rows_of(&rep, "argmax") > 0 && rows_of(&rep, "copy") > 0);
    ck_assert_uint_eq(rows_of(&rep, "argmax") + rows_of(&rep, "copy"), rep.n);
    glm_parity_report_free(&rep);
    /* an unknown op is refused before anything runs, with its name in one line */
    o.ops = "matvec,nosuch";
    ck_assert_int_eq(glm_parity_run(g_vk, &o, &rep), GLM_ERR_INVALID);
    ck_assert(strstr(glm_last_error(), "'nosuch'") != NULL && !strchr(glm_last_error(), '\n'));
    ck_assert_uint_eq(rep.n, 0);
    ck_assert_int_eq(glm_parity_check_ops("matvec,"), GLM_OK); /* a trailing comma is harmless */
    ck_assert_int_eq(glm_parity_check_ops(",x"), GLM_ERR_INVALID);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("parity");
    TCase *tc = tcase_create("report");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_bounds_match_tolerances);
    tcase_add_test(tc, test_small_table_passes);
    tcase_add_test(tc, test_perturbed_reference_fails);
    tcase_add_test(tc, test_unwritten_outputs_fail);
    tcase_add_test(tc, test_op_selection);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
