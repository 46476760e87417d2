/* Per-kernel parity report: every Vulkan kernel (backend/vk/ops.h) against the reference
 * path (ref/) over a shape table — small odd shapes always, GLM-4.7-Flash's real sizes
 * (model-spec §1) with `full` — on random inputs from one printed seed. Each row holds the
 * NMSE, the max |ref − gpu|, whether every output was written (outputs are poisoned first
 * and followed by a poisoned guard zone), pass/fail and the wall time of the GPU submit.
 * Integer outputs (moe_route ids, argmax) must match exactly; get_rows must be bit-identical.
 * Used by `glm47 parity` (src/cli/cmd_parity.c) and tests/test_parity.c.
 * Not here: the kernels themselves, whole-model comparisons (tests/test_backend_vk.c). */
#ifndef GLM_VK_PARITY_H
#define GLM_VK_PARITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/vk/vk.h"
#include "model/types.h"
#include "util/status.h"

/* The NMSE bounds the report applies. They are the values of tests/tolerances.h
 * (TOL_VK_ELEMENTWISE_NMSE, TOL_VK_MATVEC_NMSE, TOL_VK_ATTENTION_NMSE), which documents the
 * observed errors; the library cannot include tests/, so keep the two in step
 * (tests/test_parity.c asserts they are equal). */
#define GLM_PARITY_ELEMENTWISE_NMSE 1e-10
#define GLM_PARITY_MATVEC_NMSE 1e-9
#define GLM_PARITY_ATTENTION_NMSE 1e-9
/* The tiled matmul: float32 like matvec (TOL_VK_MATMUL_NMSE); on tensor cores float16
 * operands with float32 accumulation (TOL_VK_MATMUL_CM_NMSE). */
#define GLM_PARITY_MATMUL_NMSE 1e-9
#define GLM_PARITY_MATMUL_CM_NMSE 1e-5

typedef struct glm_parity_row {
    char op[16];       /* one of glm_parity_op_names() */
    char type[16];     /* weight type ("q4_K") or "f32" / "i32" */
    char shape[80];    /* human-readable shape, e.g. "2048->5120 x2" */
    bool exact;        /* integer (or bitwise) comparison: mismatches, not NMSE, decide */
    bool skipped;      /* a buffer exceeds the device's maxStorageBufferRange */
    double nmse;       /* Σ(ref−gpu)² / Σref² over the float outputs */
    double max_abs;    /* max |ref − gpu| over the float outputs */
    double bound;      /* the NMSE bound applied (0 for exact rows) */
    uint64_t mismatches; /* differing integer outputs (exact rows) */
    bool written;      /* every output written and finite, guard zone untouched */
    bool pass;
    double usec;       /* wall time of record + submit + fence wait, microseconds (the faster
                        * of two submits when the first took < 100 ms, except the in-place rope) */
} glm_parity_row;

typedef struct glm_parity_report {
    glm_parity_row *rows;
    size_t n, cap;
    uint64_t seed;
    char device[512]; /* "name (driver info), Vulkan a.b.c, driver x" */
} glm_parity_report;

typedef struct glm_parity_options {
    uint64_t seed;
    bool full;       /* add GLM-4.7-Flash's real sizes */
    const char *ops; /* comma-separated op names; NULL or "" for all */
    /* Test hook: added (times the result's RMS where that exceeds 1) to the first element of
     * every float reference result, and when non-zero also flips the first integer
     * reference id, so a test can prove that a wrong result fails. 0 in normal use. */
    double ref_perturb;
    /* Test hook: record no kernel at all, so the poisoned outputs stay unwritten and every
     * row must fail its written check. false in normal use. */
    bool test_no_dispatch;
} glm_parity_options;

/* The op names the report knows, in report order; *n gets the count. */
const char *const *glm_parity_op_names(size_t *n);

/* GLM_ERR_INVALID with a one-line message naming the first unknown op of a comma list. */
glm_status glm_parity_check_ops(const char *ops);

/* Run every selected op over the shape table on `vk`; rows are appended to *rep (which the
 * caller zero-initializes and frees with glm_parity_report_free). A failing comparison is
 * a row with pass = false, not an error; errors are device or allocation failures. */
/* Random weight blocks of type t for parity checks: random bytes exercise every code, the
 * fp16 scale fields (gguf-spec §2.2) get small finite values and MXFP4 exponents a sane range.
 * rng_state: a splitmix64 state (tests/util/testutil.h's tu_rng.s is one). */
void glm_parity_random_blocks(uint8_t *dst, glm_type t, size_t nblocks, uint64_t *rng_state);

/* A contiguous latent cache c [n][rkv], kr [n][dr] laid out as a paged pool (engine/kvcache.h):
 * pool [n_pages·page_size][rkv + dr] with n_pages = ceil(n / page_size) + 1 (one page stays
 * unused), the pages in a shuffled order given by pages[n_pages]; unused rows hold NaN, so
 * reading one shows. rng_state: a splitmix64 state. */
void glm_parity_page_cache(float *pool, int32_t *pages, const float *c, const float *kr, uint32_t n, uint32_t rkv,
                           uint32_t dr, uint32_t page_size, uint64_t *rng_state);

/* Two sequences in one pool, for attention over the rows of a step: A's nA positions then
 * B's nB, each laid out by glm_parity_page_cache (B's pages after A's), and the step rows
 * meta = pos[T] | ptab[T] | A's page list | B's page list (backend.h glm_kv_rows) for TA
 * query rows of A at positions nA-TA .. nA-1 and one of B at nB-1 (T = TA + 1). pool has room
 * for glm_parity_pages(nA) + glm_parity_pages(nB) pages, meta for 2·T plus as many ids. */
void glm_parity_two_seq_cache(float *pool, int32_t *meta, const float *cA, const float *kA, uint32_t nA, uint32_t TA,
                              const float *cB, const float *kB, uint32_t nB, uint32_t rkv, uint32_t dr,
                              uint32_t page_size, uint64_t *rng_state);
static inline uint32_t glm_parity_pages(uint32_t n, uint32_t page_size) { return (n + page_size - 1) / page_size + 1; }

glm_status glm_parity_run(glm_vk *vk, const glm_parity_options *opt, glm_parity_report *rep);
void glm_parity_report_free(glm_parity_report *rep);

/* Number of rows with pass = false. */
size_t glm_parity_failures(const glm_parity_report *rep);

/* The report as Markdown (header line with device and seed, then one table) or as a JSON
 * object; a malloc'd NUL-terminated string, NULL when out of memory. */
char *glm_parity_markdown(const glm_parity_report *rep);
char *glm_parity_json(const glm_parity_report *rep);

#endif
