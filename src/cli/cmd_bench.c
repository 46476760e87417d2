/* glm47 bench -m MODEL [-p 512] [-n 128] [-d 0,4096] [-b 1,8] [-r 5] [--backend B] [--device N]
 * [--json] [--profile]: llama-bench's tests (issue 7). pp<P>: one prefill of P tokens;
 * tg<N>: N single-token decode steps; each at context depth d (the cache is first filled
 * with d tokens, untimed); tg<N> xB: B sequences (sharing the depth's pages) decode N
 * tokens each in N batched steps of B rows, reported as aggregate tokens/s; r timed repetitions after an untimed warm-up
 * (repetitions until 0.5 s have passed, at least one), reported as the
 * median with min, max and standard deviation of tokens/s. Inputs are random token ids (a
 * fixed stream), logits of the last row come back to the host as in a real step.
 * --profile (Vulkan): one more repetition per test with timestamp queries on, per kernel:
 * total ms, calls, share of the repetition's wall time, and for matvec the weight bytes it
 * had to read (each token reads the dense weights and its n_used experts' slabs) per second;
 * where tiled products (prefill) did part of that work, a line after the table gives the bytes
 * over matvec + matmul + matmul_cm time instead.
 * Speed is reported, never asserted. Exit 0 ok, 1 failure, 2 usage. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <vulkan/vulkan.h>

#include "backend/backend.h"
#include "backend/vk/backend_vk.h"
#include "backend/vk/ops.h"
#include "backend/vk/vk.h"
#include "cli/cli.h"
#include "engine/forward.h"
#include "model/model.h"

#define MAX_LIST 16

typedef struct bench_opts {
    const char *model, *backend;
    char device_backend[24];
    long pp[MAX_LIST], tg[MAX_LIST], depth[MAX_LIST], batch[MAX_LIST];
    int n_pp, n_tg, n_depth, n_batch;
    long reps, fold, draft;
    bool json, profile;
} bench_opts;

static const char k_usage[] =
    "usage: glm47 bench -m MODEL [-p 512] [-n 128] [-d 0,4096] [-b 1] [-r 5] [--backend auto|ref|vulkan]\n"
    "                   [--device N] [--fold 0..3] [--draft N] [--json] [--profile]\n"
    "  -p, -n, -d, -b take comma lists (0 in -p or -n skips that test); -r repetitions (median, min, max, stddev)\n"
    "  -b B           tg tests with B sequences decoding together (continuous batching), aggregate t/s\n"
    "  --profile      Vulkan only: per-kernel time, calls and matvec GB/s from timestamp queries\n"
    "  --fold F       which norms / residual adds the products take (1 attention, 2 FFN; default 3)\n"
    "  --draft N      also each tg test (one sequence) as greedy decoding with N MTP drafts a step\n"
    "                 (the model's MTP layer; t/s of the tokens it yields, and the acceptance)\n";

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "glm47 bench: %s%s%s\n%s", msg, arg ? ": " : "", arg ? arg : "", k_usage);
    return 2;
}

/* "a,b,c" of integers in [lo, hi] into out[*n]. */
static bool parse_list(const char *s, long lo, long hi, long *out, int *n)
{
    *n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < lo || v > hi || *n == MAX_LIST || (*end && *end != ','))
            return false;
        out[(*n)++] = v;
        s = *end ? end + 1 : end;
        if (*end && !*s)
            return false;
    }
    return *n > 0;
}

static int parse_args(bench_opts *o, int argc, char **argv)
{
    *o = (bench_opts){.backend = "auto", .pp = {512}, .tg = {128}, .depth = {0}, .batch = {1}, .n_pp = 1,
                      .n_tg = 1, .n_depth = 1, .n_batch = 1, .reps = 5, .fold = 3};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json") || !strcmp(a, "--profile")) {
            *(a[2] == 'j' ? &o->json : &o->profile) = true;
            continue;
        }
        if (strcmp(a, "-m") && strcmp(a, "-p") && strcmp(a, "-n") && strcmp(a, "-d") && strcmp(a, "-r") && strcmp(a, "-b") &&
            strcmp(a, "--backend") && strcmp(a, "--device") && strcmp(a, "--fold") && strcmp(a, "--draft"))
            return usage_error("unknown option", a);
        if (i + 1 >= argc)
            return usage_error("option needs a value", a);
        const char *v = argv[++i];
        long dev;
        int one;
        bool ok = true;
        if (!strcmp(a, "-m"))
            o->model = v;
        else if (!strcmp(a, "--backend"))
            o->backend = v;
        else if (!strcmp(a, "-p"))
            ok = parse_list(v, 0, 1 << 16, o->pp, &o->n_pp);
        else if (!strcmp(a, "-n"))
            ok = parse_list(v, 0, 1 << 16, o->tg, &o->n_tg);
        else if (!strcmp(a, "-d"))
            ok = parse_list(v, 0, 1 << 20, o->depth, &o->n_depth);
        else if (!strcmp(a, "-b"))
            ok = parse_list(v, 1, 256, o->batch, &o->n_batch);
        else if (!strcmp(a, "-r"))
            ok = parse_list(v, 1, 1000, &o->reps, &one) && one == 1;
        else if (!strcmp(a, "--fold"))
            ok = parse_list(v, 0, 3, &o->fold, &one) && one == 1;
        else if (!strcmp(a, "--draft"))
            ok = parse_list(v, 1, GLM_MTP_MAX_DRAFT, &o->draft, &one) && one == 1;
        else if ((ok = parse_list(v, 0, 1024, &dev, &one) && one == 1)) {
            snprintf(o->device_backend, sizeof o->device_backend, "vulkan:%ld", dev);
            o->backend = o->device_backend;
        }
        if (!ok)
            return usage_error("bad value", v);
    }
    if (!o->model)
        return usage_error("-m MODEL is required", NULL);
    if (o->profile && !strcmp(o->backend, "ref"))
        return usage_error("--profile needs the Vulkan backend", NULL);
    return 0;
}

/* ---- the model summary ------------------------------------------------------------------- */

typedef struct model_info {
    char type_mix[256];
    uint64_t params, tensor_bytes;
    uint64_t dense_bytes, slab_bytes; /* see matvec_bytes */
    long n_expert, n_used, n_batch;
} model_info;

static uint64_t tensor_elems(const glm_tensor *t)
{
    return (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
}

/* The weights a forward call over T tokens must read at least once through matmul/matmul_id
 * (model-spec §2-§4): every projection, router and lm_head in full (dense_bytes), and of each
 * expert tensor the slabs of min(n_expert, T·n_used) experts (slab_bytes: one slab of every
 * expert tensor summed). attn_k_b/attn_v_b (read by the attention kernels) and the embedding
 * row are left out. */
static void matvec_bytes(const glm_model *m, model_info *mi)
{
    mi->dense_bytes = m->output->nbytes;
    for (int l = 0; l < m->hp.num_hidden_layers; l++) {
        const glm_layer *L = &m->layers[l];
        const glm_tensor *full[] = {L->attn_q_a,     L->attn_q_b,     L->attn_kv_a_mqa, L->attn_output,
                                    L->ffn_gate,     L->ffn_up,       L->ffn_down,      L->ffn_gate_inp,
                                    L->ffn_gate_shexp, L->ffn_up_shexp, L->ffn_down_shexp};
        for (size_t i = 0; i < sizeof full / sizeof full[0]; i++)
            mi->dense_bytes += full[i] ? full[i]->nbytes : 0;
        const glm_tensor *exps[] = {L->ffn_gate_exps, L->ffn_up_exps, L->ffn_down_exps};
        for (size_t i = 0; i < 3; i++)
            if (exps[i] && exps[i]->ne[2] > 0)
                mi->slab_bytes += exps[i]->nbytes / (uint64_t)exps[i]->ne[2];
    }
    mi->n_expert = m->hp.n_routed_experts;
    mi->n_used = m->hp.num_experts_per_tok;
}

/* Bytes for one test: its forward calls (chunks of n_batch for a prefill, single steps for tg). */
static double test_weight_bytes(const model_info *mi, long n_pp, long n_tg, long n_batch)
{
    double sum = 0;
    for (long done = 0; done < n_pp; done += n_batch) {
        long T = n_pp - done < n_batch ? n_pp - done : n_batch, e = T * mi->n_used;
        sum += (double)mi->dense_bytes + (double)mi->slab_bytes * (double)(e < mi->n_expert ? e : mi->n_expert);
    }
    long e1 = mi->n_used < mi->n_expert ? mi->n_used : mi->n_expert;
    return sum + (double)n_tg * ((double)mi->dense_bytes + (double)mi->slab_bytes * (double)e1);
}

static void model_summary(const glm_model *m, model_info *mi)
{
    uint64_t count[GLM_TYPE_COUNT] = {0};
    memset(mi, 0, sizeof *mi);
    for (uint64_t i = 0; i < m->n_tensors; i++) {
        const glm_tensor *t = &m->tensors[i];
        if ((int)t->type >= 0 && t->type < GLM_TYPE_COUNT)
            count[t->type]++;
        mi->params += tensor_elems(t);
        mi->tensor_bytes += t->nbytes;
    }
    size_t len = 0;
    for (int t = 0; t < GLM_TYPE_COUNT && len < sizeof mi->type_mix; t++)
        if (count[t])
            len += (size_t)snprintf(mi->type_mix + len, sizeof mi->type_mix - len, "%s%s %llu", len ? ", " : "",
                                    glm_type_name(t), (unsigned long long)count[t]);
    matvec_bytes(m, mi);
}

/* "NVIDIA H100 80GB HBM3, driver NVIDIA 550.54" from VK_KHR_driver_properties (core 1.2). */
static void device_summary(glm_backend *b, char *out, size_t n)
{
    glm_vk *vk = glm_backend_vk_context(b);
    if (!vk) {
        snprintf(out, n, "cpu reference");
        return;
    }
    VkPhysicalDeviceDriverProperties drv = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &drv};
    vkGetPhysicalDeviceProperties2(glm_vk_physical_device(vk), &p2);
    snprintf(out, n, "%s, driver %.64s %.64s", glm_vk_device_name(vk), drv.driverName, drv.driverInfo);
}

/* ---- timing ------------------------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct bench_ctx {
    glm_forward *f;
    float *logits; /* [max batch][vocab] */
    int32_t *tokens;
    int64_t n_tokens, vocab;
    glm_seq **seqs; /* [max batch] for the batched tg tests */
    glm_step_item *items;
} bench_ctx;

/* Empty the cache and fill it with `depth` tokens (untimed). */
static glm_status set_depth(bench_ctx *c, long depth)
{
    GLM_TRY(glm_forward_truncate(c->f, 0));
    return depth > 0 ? glm_forward_eval(c->f, c->tokens, (int)depth, NULL, false, NULL, NULL) : GLM_OK;
}

/* n_tg steps of `batch` rows: sequence i shares the depth's pages, then decodes its own tokens. */
static glm_status run_batched(bench_ctx *c, long depth, long n_tg, long batch, double *secs)
{
    for (long i = 0; i < batch; i++)
        GLM_TRY(glm_seq_share_prefix(c->seqs[i], glm_forward_bound(c->f), depth));
    double t0 = now_s();
    glm_status s = GLM_OK;
    for (long k = 0; s == GLM_OK && k < n_tg; k++) {
        for (long i = 0; i < batch; i++)
            c->items[i] = (glm_step_item){ .seq = c->seqs[i], .tokens = c->tokens + depth + (k + i) % n_tg, .n = 1,
                                           .logits = c->logits + i * c->vocab };
        s = glm_forward_step(c->f, c->items, (int)batch);
    }
    *secs = now_s() - t0;
    for (long i = 0; i < batch; i++)
        glm_seq_truncate(c->seqs[i], 0);
    return s;
}

/* One repetition at the current depth: a prefill of n_pp tokens or n_tg single steps; the
 * cache is put back to `depth` afterwards. *secs ← wall time of the timed part. */
static glm_status run_once(bench_ctx *c, long depth, long n_pp, long n_tg, long batch, double *secs)
{
    const int32_t *tok = c->tokens + depth;
    if (batch > 1)
        return run_batched(c, depth, n_tg, batch, secs);
    double t0 = now_s();
    glm_status s = GLM_OK;
    if (n_pp > 0)
        s = glm_forward_eval(c->f, tok, (int)n_pp, c->logits, false, NULL, NULL);
    for (long i = 0; s == GLM_OK && i < n_tg; i++)
        s = glm_forward_eval(c->f, tok + i, 1, c->logits, false, NULL, NULL);
    *secs = now_s() - t0;
    return s == GLM_OK ? glm_forward_truncate(c->f, depth) : s;
}

typedef struct bench_result {
    char test[48];
    long n_pp, n_tg, depth, batch;
    long draft;                   /* > 0: greedy decoding with MTP drafts (run_mtp) */
    long long drafts, accepted, steps; /* its drafts over the timed repetitions */
    double *ts; /* [reps] tokens/s */
    double median, min, max, mean, sd;
    bool profiled;
    double prof_wall_s;
    uint64_t kns[GLM_VK_KERNEL_COUNT], kcalls[GLM_VK_KERNEL_COUNT];
    glm_vk_host_prof host;
    glm_vk_prof_shape shapes[GLM_VK_PROF_SHAPES];
    uint32_t n_shapes;
} bench_result;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void stats(bench_result *r, long reps)
{
    double *s = malloc((size_t)reps * sizeof *s), sum = 0, sq = 0;
    for (long i = 0; i < reps; i++)
        sum += r->ts[i];
    r->mean = sum / (double)reps;
    for (long i = 0; i < reps; i++)
        sq += (r->ts[i] - r->mean) * (r->ts[i] - r->mean);
    r->sd = reps > 1 ? sqrt(sq / (double)(reps - 1)) : 0.0;
    if (!s) { /* the median needs a sorted copy; without one report the mean */
        r->median = r->mean, r->min = r->max = r->ts[0];
        return;
    }
    memcpy(s, r->ts, (size_t)reps * sizeof *s);
    qsort(s, (size_t)reps, sizeof *s, cmp_double);
    r->min = s[0], r->max = s[reps - 1];
    r->median = reps % 2 ? s[reps / 2] : 0.5 * (s[reps / 2 - 1] + s[reps / 2]);
    free(s);
}

/* Greedy decoding with `draft` MTP drafts a step after a prompt of the depth's tokens (at
 * least one; untimed, the MTP rows included) until n_tg tokens came out; *secs ← the timed
 * part scaled to n_tg tokens (a step may yield more). The caches go back to `depth`. */
static glm_status run_mtp(bench_ctx *c, long depth, long n_tg, long draft, double *secs, bench_result *r)
{
    GLM_TRY(glm_forward_truncate(c->f, 0));
    GLM_TRY(glm_forward_mtp_truncate(c->f, 0));
    glm_mtp_greedy g;
    glm_status s = glm_mtp_greedy_start_n(&g, c->f, c->tokens, depth > 0 ? (int)depth : 1, NULL, 0, (int)draft);
    long got = 0;
    double t0 = now_s();
    while (s == GLM_OK && got < n_tg) {
        int32_t out[GLM_MTP_MAX_DRAFT + 1];
        int k = 0;
        s = glm_mtp_greedy_step(&g, out, &k);
        got += k;
    }
    double dt = now_s() - t0;
    *secs = got > 0 ? dt * (double)n_tg / (double)got : dt;
    if (r)
        r->drafts += g.drafts, r->accepted += g.accepted, r->steps += g.steps;
    glm_mtp_greedy_free(&g);
    glm_status t = glm_forward_mtp_truncate(c->f, 0);
    if (s == GLM_OK)
        s = t;
    return s == GLM_OK ? set_depth(c, depth) : s;
}

/* The profiled extra repetition: timestamp queries on only while it runs. */
static glm_status profile_once(bench_ctx *c, glm_vk *vk, bench_result *r)
{
    GLM_TRY(glm_vk_set_profiling(vk, true));
    glm_vk_profile_reset(vk);
    glm_status s = r->draft ? run_mtp(c, r->depth, r->n_tg, r->draft, &r->prof_wall_s, NULL)
                            : run_once(c, r->depth, r->n_pp, r->n_tg, r->batch, &r->prof_wall_s);
    for (int k = 0; s == GLM_OK && k < GLM_VK_KERNEL_COUNT; k++)
        glm_vk_profile(vk, (glm_vk_kernel)k, &r->kns[k], &r->kcalls[k]);
    /* one matvec row for the three matvec kernels (the shape table below tells them apart) */
    r->kns[GLM_VK_MATVEC] += r->kns[GLM_VK_MATVEC_FAST] + r->kns[GLM_VK_MATVEC_Q8];
    r->kcalls[GLM_VK_MATVEC] += r->kcalls[GLM_VK_MATVEC_FAST] + r->kcalls[GLM_VK_MATVEC_Q8];
    r->kns[GLM_VK_MATVEC_FAST] = r->kcalls[GLM_VK_MATVEC_FAST] = 0;
    r->kns[GLM_VK_MATVEC_Q8] = r->kcalls[GLM_VK_MATVEC_Q8] = 0;
    glm_vk_host_profile(vk, &r->host);
    const glm_vk_prof_shape *sh;
    r->n_shapes = s == GLM_OK ? glm_vk_profile_shapes(vk, &sh) : 0;
    if (r->n_shapes)
        memcpy(r->shapes, sh, r->n_shapes * sizeof *sh);
    glm_status s2 = glm_vk_set_profiling(vk, false);
    r->profiled = s == GLM_OK;
    return s != GLM_OK ? s : s2;
}

/* The untimed warm-up: repetitions until BENCH_WARM_SECS have passed in them (at least one, at
 * most BENCH_WARM_MAX), so that a short test (pp512: ~0.1 s on the H100) does not start its timed
 * repetitions before the device's clocks have risen from idle. */
#define BENCH_WARM_SECS 0.5
#define BENCH_WARM_MAX 10

/* Warm-up (untimed), reps timed repetitions, the optional profiled one. */
static glm_status run_test(bench_ctx *c, glm_vk *prof, bench_result *r, long reps)
{
    double secs, t0 = now_s();
    for (int w = 0; w < BENCH_WARM_MAX && (w == 0 || now_s() - t0 < BENCH_WARM_SECS); w++) {
        if (r->draft)
            GLM_TRY(run_mtp(c, r->depth, r->n_tg, r->draft, &secs, NULL));
        else
            GLM_TRY(run_once(c, r->depth, r->n_pp, r->n_tg, r->batch, &secs));
    }
    for (long i = 0; i < reps; i++) {
        if (r->draft)
            GLM_TRY(run_mtp(c, r->depth, r->n_tg, r->draft, &secs, r));
        else
            GLM_TRY(run_once(c, r->depth, r->n_pp, r->n_tg, r->batch, &secs));
        r->ts[i] = (double)(r->n_pp + r->n_tg * r->batch) / (secs > 0 ? secs : 1e-9);
    }
    stats(r, reps);
    return prof ? profile_once(c, prof, r) : GLM_OK;
}

/* ---- output ------------------------------------------------------------------------------ */

typedef struct bench_report {
    const bench_opts *o;
    const glm_model *m;
    const model_info *mi;
    const char *backend, *device;
    bench_result *r;
    int n;
} bench_report;

static bool legend;

static int cmp_shape_ns(const void *a, const void *b)
{
    uint64_t x = ((const glm_vk_prof_shape *)a)->ns, y = ((const glm_vk_prof_shape *)b)->ns;
    return x > y ? -1 : x < y;
}

/* The matvec (tiled: matmul) dispatches by shape, most time first: weight type (+swiglu,
 * matvec_fast; matmul_cm's token rows a tile), workgroup grid (matmul: weight-row tiles x token
 * tiles, for grouped experts plus one per expert, x heads). */
static void print_shapes(const bench_result *r, bool tiled)
{
    glm_vk_prof_shape sh[GLM_VK_PROF_SHAPES];
    uint32_t n = 0;
    for (uint32_t i = 0; i < r->n_shapes; i++) {
        glm_vk_kernel k = r->shapes[i].kernel;
        if (tiled ? k == GLM_VK_MATMUL || k == GLM_VK_MATMUL_CM
                  : k == GLM_VK_MATVEC || k == GLM_VK_MATVEC_FAST || k == GLM_VK_MATVEC_Q8)
            sh[n++] = r->shapes[i];
    }
    if (!n)
        return;
    qsort(sh, n, sizeof *sh, cmp_shape_ns);
    printf("\n| %s variant | grid | calls | ms | us/call |\n|---|---|---:|---:|---:|\n", tiled ? "matmul" : "matvec");
    for (uint32_t i = 0; i < n; i++) {
        uint32_t v = sh[i].variant;
        const char *extra = "";
        if (sh[i].kernel == GLM_VK_MATMUL)
            extra = " (plain, 64 tokens)";
        else if (sh[i].kernel == GLM_VK_MATMUL_CM)
            extra = v / 64 % 4 == 1   ? (v / 256 % 2 ? " (cm, 128 tokens, 1 ahead)" : " (cm, 128 tokens)")
                    : v / 64 % 4 == 2 ? (v / 256 % 2 ? " (cm, 32 tokens, 1 ahead)" : " (cm, 32 tokens)")
                                      : (v / 256 % 2 ? " (cm, 64 tokens, 1 ahead)" : " (cm, 64 tokens)");
        else if (sh[i].kernel == GLM_VK_MATVEC_Q8) /* bit 128: one row */
            extra = v / 128 % 2 ? " (8-bit x, 1 row)" : " (8-bit x)";
        else if (sh[i].kernel == GLM_VK_MATVEC_FAST) /* bits: 128 one row, 512 x staged */
            extra = v / 128 % 2 ? (v / 512 % 2 ? " (fast, 1 row, staged)" : " (fast, 1 row)")
                                : (v / 512 % 2 ? " (fast, staged)" : " (fast)");
        printf("| %s%s%s%s | %ux%ux%u | %llu | %.3f | %.1f |\n", glm_type_name((glm_type)(v % 64)),
               !tiled && v / 64 % 2 ? "+swiglu" : "", !tiled && v / 256 % 2 ? "+norm" : "", extra, sh[i].gx,
               sh[i].gy, sh[i].gz,
               (unsigned long long)sh[i].count, 1e-6 * (double)sh[i].ns,
               1e-3 * (double)sh[i].ns / (double)(sh[i].count ? sh[i].count : 1));
    }
}

static void print_profile(const bench_report *rp, const bench_result *r)
{
    uint64_t total = 0;
    for (int k = 0; k < GLM_VK_KERNEL_COUNT; k++)
        total += r->kns[k];
    printf("\nprofile %s (one extra repetition, wall %.3f ms, kernels %.3f ms):\n\n", r->test,
           1e3 * r->prof_wall_s, 1e-6 * (double)total);
    printf("| kernel | ms | calls | %% of wall | GB/s |\n|---|---:|---:|---:|---:|\n");
    uint64_t tiled_ns = r->kns[GLM_VK_MATMUL] + r->kns[GLM_VK_MATMUL_CM];
    double weight_bytes = test_weight_bytes(rp->mi, r->n_pp, r->n_tg, rp->mi->n_batch);
    legend = true;
    for (int k = 0; k < GLM_VK_KERNEL_COUNT; k++) {
        if (!r->kcalls[k])
            continue;
        double ms = 1e-6 * (double)r->kns[k], pct = 100.0 * ms / (1e3 * r->prof_wall_s);
        printf("| %s | %.3f | %llu | %.1f | ", glm_vk_kernel_name((glm_vk_kernel)k), ms,
               (unsigned long long)r->kcalls[k], pct);
        /* the weight bytes over the matvec time only where no tiled product shared them */
        if (k == GLM_VK_MATVEC && r->kns[k] && !tiled_ns)
            printf("%.2f |\n", weight_bytes / (double)r->kns[k]);
        else
            printf(" |\n");
    }
    if (tiled_ns)
        printf("\nweight products (matvec, matmul, matmul_cm): %.3f ms, %.2f GB/s of weights\n",
               1e-6 * (double)(tiled_ns + r->kns[GLM_VK_MATVEC]),
               weight_bytes / (double)(tiled_ns + r->kns[GLM_VK_MATVEC]));
    if (r->host.recordings) {
        /* the device idles from a forward's begin to its first submit */
        double n = (double)r->host.recordings;
        printf("\nhost, per forward (%llu): recording %.1f us (first submit after %.1f us), %.1f command buffers, "
               "waiting %.1f us\n",
               (unsigned long long)r->host.recordings, 1e-3 * (double)r->host.record_ns / n,
               1e-3 * (double)r->host.first_submit_ns / n, (double)r->host.submits / n,
               1e-3 * (double)r->host.wait_ns / n);
    }
    print_shapes(r, false);
    print_shapes(r, true);
}

/* "16.88 GiB" / "2.79 MiB"; "29.94 B" / "1.23 M" (llama-bench's units). */
static void human(char *out, size_t n, double v, bool bytes)
{
    double g = bytes ? 1024.0 * 1024.0 * 1024.0 : 1e9, mm = bytes ? 1024.0 * 1024.0 : 1e6;
    if (v >= g)
        snprintf(out, n, "%.2f %s", v / g, bytes ? "GiB" : "B");
    else
        snprintf(out, n, "%.2f %s", v / mm, bytes ? "MiB" : "M");
}

static void print_markdown(const bench_report *rp)
{
    const model_info *mi = rp->mi;
    const char *base = strrchr(rp->o->model, '/');
    base = base ? base + 1 : rp->o->model;
    char size[32], params[32];
    human(size, sizeof size, (double)mi->tensor_bytes, true);
    human(params, sizeof params, (double)mi->params, false);
    printf("device: %s\nmodel: %s (%s, %s params; %s)\nrepetitions: %ld after a warm-up (untimed repetitions until 0.5 s have passed)\n\n", rp->device,
           rp->o->model, size, params, mi->type_mix, rp->o->reps);
    printf("| model | size | params | backend | test | t/s (median) | min | max | stddev |\n"
           "|---|---:|---:|---|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < rp->n; i++) {
        const bench_result *r = &rp->r[i];
        printf("| %s | %s | %s | %s | %s | %.2f | %.2f | %.2f | %.2f |\n", base, size, params, rp->backend, r->test,
               r->median, r->min, r->max, r->sd);
    }
    for (int i = 0, first = 1; i < rp->n; i++) {
        const bench_result *r = &rp->r[i];
        if (r->draft)
            printf("%s%s: mtp accepted %lld of %lld drafts (%.1f%%), %.2f tokens per forward\n",
                   first-- > 0 ? "\n" : "", r->test, r->accepted, r->drafts,
                   r->drafts ? 100.0 * (double)r->accepted / (double)r->drafts : 0.0,
                   r->steps ? (double)(r->steps + r->accepted) / (double)r->steps : 0.0);
    }
    for (int i = 0; i < rp->n; i++)
        if (rp->r[i].profiled)
            print_profile(rp, &rp->r[i]);
    if (legend)
        printf("\nGB/s (matvec): weight bytes each forward call must read at least once (all dense weights,\n"
               "the slabs of min(experts, tokens x %ld) experts) / matvec time. %% of wall: kernel time over the\n"
               "profiled repetition's wall time (timestamp queries add overhead to that repetition only).\n",
               rp->mi->n_used);
}

static cJSON *result_json(const bench_report *rp, const bench_result *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "test", r->test);
    cJSON_AddNumberToObject(o, "n_prompt", (double)r->n_pp);
    cJSON_AddNumberToObject(o, "n_gen", (double)r->n_tg);
    cJSON_AddNumberToObject(o, "n_depth", (double)r->depth);
    cJSON_AddNumberToObject(o, "n_seq", (double)r->batch);
    if (r->draft) {
        cJSON_AddNumberToObject(o, "n_draft", (double)r->draft);
        cJSON_AddNumberToObject(o, "mtp_drafts", (double)r->drafts);
        cJSON_AddNumberToObject(o, "mtp_accepted", (double)r->accepted);
        cJSON_AddNumberToObject(o, "mtp_steps", (double)r->steps);
    }
    cJSON *s = cJSON_AddArrayToObject(o, "samples_ts");
    for (long i = 0; i < rp->o->reps; i++)
        cJSON_AddItemToArray(s, cJSON_CreateNumber(r->ts[i]));
    cJSON_AddNumberToObject(o, "median_ts", r->median);
    cJSON_AddNumberToObject(o, "avg_ts", r->mean);
    cJSON_AddNumberToObject(o, "stddev_ts", r->sd);
    cJSON_AddNumberToObject(o, "min_ts", r->min);
    cJSON_AddNumberToObject(o, "max_ts", r->max);
    if (r->profiled) {
        cJSON *p = cJSON_AddArrayToObject(o, "profile");
        for (int k = 0; k < GLM_VK_KERNEL_COUNT; k++) {
            if (!r->kcalls[k])
                continue;
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "kernel", glm_vk_kernel_name((glm_vk_kernel)k));
            cJSON_AddNumberToObject(e, "ms", 1e-6 * (double)r->kns[k]);
            cJSON_AddNumberToObject(e, "calls", (double)r->kcalls[k]);
            cJSON_AddNumberToObject(e, "pct_wall", 1e-7 * (double)r->kns[k] / r->prof_wall_s);
            if (k == GLM_VK_MATVEC && r->kns[k])
                cJSON_AddNumberToObject(e, "gbps", test_weight_bytes(rp->mi, r->n_pp, r->n_tg, rp->mi->n_batch) /
                                                       (double)r->kns[k]);
            cJSON_AddItemToArray(p, e);
        }
        cJSON_AddNumberToObject(o, "profile_wall_ms", 1e3 * r->prof_wall_s);
        if (r->host.recordings) {
            double n = (double)r->host.recordings;
            cJSON_AddNumberToObject(o, "host_record_us", 1e-3 * (double)r->host.record_ns / n);
            cJSON_AddNumberToObject(o, "host_first_submit_us", 1e-3 * (double)r->host.first_submit_ns / n);
            cJSON_AddNumberToObject(o, "host_wait_us", 1e-3 * (double)r->host.wait_ns / n);
        }
    }
    return o;
}

/* A probe's list of measurement-switch sets, "b1,b2,..." (each 0..31, at most 8; 16: the matvec
 * probe's products take an 8-bit x): how many. */
static unsigned probe_bits_list(const char *q, unsigned long most, unsigned out[8])
{
    unsigned n = 0;
    while (q && *q && n < 8) {
        char *end;
        unsigned long bits = strtoul(q, &end, 10);
        if (end == q || bits > most)
            break;
        out[n++] = (unsigned)bits;
        q = *end == ',' ? end + 1 : end;
    }
    return n;
}

static bool print_json(const bench_report *rp)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", rp->o->model);
    cJSON_AddNumberToObject(root, "model_size", (double)rp->mi->tensor_bytes);
    cJSON_AddNumberToObject(root, "model_n_params", (double)rp->mi->params);
    cJSON_AddStringToObject(root, "model_type_mix", rp->mi->type_mix);
    cJSON_AddStringToObject(root, "backend", rp->backend);
    cJSON_AddStringToObject(root, "device", rp->device);
    cJSON_AddNumberToObject(root, "reps", (double)rp->o->reps);
    cJSON *arr = cJSON_AddArrayToObject(root, "results");
    for (int i = 0; i < rp->n; i++)
        cJSON_AddItemToArray(arr, result_json(rp, &rp->r[i]));
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    if (!s)
        return false;
    printf("%s\n", s);
    free(s);
    return true;
}

/* ---- driver ------------------------------------------------------------------------------ */

/* The tests in llama-bench's order: for each depth, every pp then every tg (at each -b). */
static int plan_results(const bench_opts *o, bench_result **out)
{
    int n = 0;
    bench_result *r = calloc((size_t)o->n_depth * (size_t)(o->n_pp + o->n_tg * (o->n_batch + 1)), sizeof *r);
    for (int d = 0; r && d < o->n_depth; d++) {
        for (int i = 0; i < o->n_pp + o->n_tg * o->n_batch; i++) {
            bool pp = i < o->n_pp;
            int ti = pp ? 0 : (i - o->n_pp) / o->n_batch, bi = pp ? 0 : (i - o->n_pp) % o->n_batch;
            long v = pp ? o->pp[i] : o->tg[ti], bt = pp ? 1 : o->batch[bi];
            if (v == 0)
                continue;
            bench_result *x = &r[n++];
            x->n_pp = pp ? v : 0, x->n_tg = pp ? 0 : v, x->depth = o->depth[d], x->batch = bt;
            snprintf(x->test, sizeof x->test, "%s%ld", pp ? "pp" : "tg", v);
            if (bt > 1)
                snprintf(x->test + strlen(x->test), sizeof x->test - strlen(x->test), " x%ld", bt);
            if (x->depth)
                snprintf(x->test + strlen(x->test), sizeof x->test - strlen(x->test), " @ d%ld", x->depth);
        }
        for (int ti = 0; r && o->draft && ti < o->n_tg; ti++) { /* --draft: each tg once more, with MTP */
            if (o->tg[ti] == 0)
                continue;
            bench_result *x = &r[n++];
            x->n_tg = o->tg[ti], x->depth = o->depth[d], x->batch = 1, x->draft = o->draft;
            snprintf(x->test, sizeof x->test, "tg%ld mtp%ld", x->n_tg, x->draft);
            if (x->depth)
                snprintf(x->test + strlen(x->test), sizeof x->test - strlen(x->test), " @ d%ld", x->depth);
        }
    }
    *out = r;
    return r ? n : -1;
}

static glm_status bench_all(bench_ctx *c, glm_vk *prof, bench_result *r, int n, long reps)
{
    long depth = -1;
    for (int i = 0; i < n; i++) {
        if (!(r[i].ts = calloc((size_t)reps, sizeof *r[i].ts)))
            return glm_errorf(GLM_ERR_NOMEM, "bench: out of memory");
        if (r[i].depth != depth)
            GLM_TRY(set_depth(c, depth = r[i].depth));
        GLM_TRY(run_test(c, prof, &r[i], reps));
        fprintf(stderr, "bench: %s: %.2f t/s\n", r[i].test, r[i].median);
    }
    return GLM_OK;
}

/* Token ids for every position a test touches: a fixed pseudo-random stream over the vocab. */
static int32_t *make_tokens(const bench_opts *o, int vocab, int64_t *n_out)
{
    long most_d = 0, most_t = 1;
    for (int i = 0; i < o->n_depth; i++)
        most_d = o->depth[i] > most_d ? o->depth[i] : most_d;
    for (int i = 0; i < o->n_pp; i++)
        most_t = o->pp[i] > most_t ? o->pp[i] : most_t;
    for (int i = 0; i < o->n_tg; i++)
        most_t = o->tg[i] > most_t ? o->tg[i] : most_t;
    *n_out = most_d + most_t + (o->draft ? o->draft + 2 : 0); /* an MTP step's verify reaches past */
    int32_t *t = malloc((size_t)*n_out * sizeof *t);
    uint64_t x = 0x2545F4914F6CDD1Dull;
    for (int64_t i = 0; t && i < *n_out; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        t[i] = (int32_t)((x >> 33) % (uint64_t)vocab);
    }
    return t;
}

static glm_status bench_model(const bench_opts *o, glm_model *m, glm_backend *b)
{
    model_info mi;
    model_summary(m, &mi);
    char device[512];
    device_summary(b, device, sizeof device);
    glm_vk *vk = glm_backend_vk_context(b);
    if (o->profile && !vk)
        return glm_errorf(GLM_ERR_INVALID, "--profile needs the Vulkan backend (this run uses %s)", b->ops->name);
    if (o->draft && !m->mtp)
        return glm_errorf(GLM_ERR_UNSUPPORTED, "%s: --draft needs a model with an MTP layer (this one has none)",
                          o->model);
    bench_ctx c = {0};
    bench_result *r = NULL;
    int n = plan_results(o, &r);
    long most_b = 1;
    for (int i = 0; i < o->n_batch; i++)
        most_b = o->batch[i] > most_b ? o->batch[i] : most_b;
    c.vocab = m->hp.vocab_size;
    c.tokens = make_tokens(o, m->hp.vocab_size, &c.n_tokens);
    c.logits = malloc((size_t)most_b * (size_t)m->hp.vocab_size * sizeof *c.logits);
    c.seqs = calloc((size_t)most_b, sizeof *c.seqs);
    c.items = calloc((size_t)most_b, sizeof *c.items);
    glm_status s = n >= 0 && c.tokens && c.logits && c.seqs && c.items ? GLM_OK
                                                                        : glm_errorf(GLM_ERR_NOMEM, "bench: out of memory");
    long most_pp = 1;
    for (int i = 0; i < o->n_pp; i++)
        most_pp = o->pp[i] > most_pp ? o->pp[i] : most_pp;
    mi.n_batch = most_pp < 512 ? most_pp : 512; /* prefill chunks: llama-bench's default ubatch */
    /* the batched tests' sequences share the depth's pages and add their own */
    long rows = mi.n_batch > most_b ? mi.n_batch : most_b; /* a step's rows: also an MTP verify's */
    if (rows < o->draft + 1)
        rows = o->draft + 1;
    if (s == GLM_OK)
        s = glm_forward_create_pool(&c.f, m, b, c.n_tokens, (int)rows,
                                    (c.n_tokens + GLM_KV_PAGE) * (most_b > 1 ? most_b + 1 : 1));
    if (s == GLM_OK)
        glm_forward_set_folds(c.f, (unsigned)o->fold);
    for (long i = 0; s == GLM_OK && most_b > 1 && i < most_b; i++)
        s = glm_seq_create(c.f, &c.seqs[i]);
    if (s == GLM_OK)
        s = bench_all(&c, o->profile ? vk : NULL, r, n, o->reps);
    /* what a decode step's ~1 dispatch per op costs before any work: 512 empty dispatches */
    double floor_chained = 0, floor_grouped = 0;
    if (s == GLM_OK && o->profile)
        s = glm_vk_dispatch_floor(vk, 512, &floor_chained, &floor_grouped);
    /* GLM_BENCH_PROBE=b1,b2,...: the matvec probe with each set of measurement switches;
     * GLM_BENCH_MMPROBE=b1,b2,...: the grouped-product probe likewise */
    unsigned pb[8], mb[8], pbits[8], mbits[8], np = 0, nm = 0;
    unsigned npb = o->profile ? probe_bits_list(getenv("GLM_BENCH_PROBE"), 31, pb) : 0;
    unsigned nmb = o->profile ? probe_bits_list(getenv("GLM_BENCH_MMPROBE"), 127, mb) : 0;
    glm_vk_probe probe[8] = {0};
    double mm_us[8];
    for (unsigned i = 0; s == GLM_OK && i < npb; i++) {
        glm_vk_matvec_probe_bits(pb[i]);
        if (glm_vk_matvec_probe(vk, &probe[np]) == GLM_OK)
            pbits[np++] = pb[i];
        glm_vk_matvec_probe_bits(0);
    }
    /* GLM_BENCH_GRID=n1,n2,...: the grid-barrier probe with n workgroups of 64 (at most 8 counts) */
    unsigned ng = 0;
    uint32_t gn[8];
    bool gres[8];
    double gus[8];
    for (const char *q = o->profile ? getenv("GLM_BENCH_GRID") : NULL; s == GLM_OK && q && *q && ng < 8;) {
        char *end;
        unsigned long n = strtoul(q, &end, 10);
        if (end == q || n == 0 || n > 65535)
            break;
        gn[ng] = (uint32_t)n;
        s = glm_vk_grid_probe(vk, gn[ng], 200, 200000, &gres[ng], &gus[ng]);
        ng += s == GLM_OK;
        q = *end == ',' ? end + 1 : end;
    }
    /* GLM_BENCH_MMPROBE_N=n: the grouped-product probe's products a timed recording (default 100) */
    const char *mn_env = getenv("GLM_BENCH_MMPROBE_N");
    unsigned long mn = mn_env && *mn_env ? strtoul(mn_env, NULL, 10) : 100;
    for (unsigned i = 0; s == GLM_OK && i < nmb; i++) {
        glm_vk_matmul_probe_bits(mb[i]);
        if (glm_vk_matmul_id_probe(vk, (uint32_t)(mn > 1000 ? 0 : mn), &mm_us[nm]) == GLM_OK)
            mbits[nm++] = mb[i];
        else
            fprintf(stderr, "glm47 bench: %s\n", glm_last_error());
        glm_vk_matmul_probe_bits(0);
    }
    /* GLM_BENCH_DMPROBE=b1,b2,...: the dense-product probe (prefill's o_proj) with each set of
     * matmul_cm's switches; GLM_BENCH_DMPROBE_T=n: its token rows (default 512);
     * GLM_BENCH_DMPROBE_N=n: products a timed recording (default 100) */
    unsigned db[8], dbits[8], nd = 0;
    unsigned ndb = o->profile ? probe_bits_list(getenv("GLM_BENCH_DMPROBE"), 31, db) : 0;
    const char *dt_env = getenv("GLM_BENCH_DMPROBE_T"), *dn_env = getenv("GLM_BENCH_DMPROBE_N");
    unsigned long dt = dt_env && *dt_env ? strtoul(dt_env, NULL, 10) : 512;
    unsigned long dn = dn_env && *dn_env ? strtoul(dn_env, NULL, 10) : 100;
    double dm_us[8];
    for (unsigned i = 0; s == GLM_OK && i < ndb; i++) {
        glm_vk_matmul_probe_bits(db[i]);
        glm_status ps = glm_vk_matmul_dense_probe(vk, (uint32_t)(dt > 4096 ? 0 : dt), (uint32_t)(dn > 1000 ? 0 : dn),
                                                  &dm_us[nd]);
        if (ps == GLM_OK)
            dbits[nd++] = db[i];
        else
            fprintf(stderr, "glm47 bench: %s\n", glm_last_error());
        glm_vk_matmul_probe_bits(0);
    }
    if (s == GLM_OK) {
        bench_report rp = {o, m, &mi, b->ops->name, device, r, n};
        if (o->json ? !print_json(&rp) : (print_markdown(&rp), false))
            s = glm_errorf(GLM_ERR_NOMEM, "bench: out of memory for the JSON text");
        if (!o->json && o->profile)
            printf("\ndispatch floor (512 empty 1-workgroup dispatches, best of 3): %.2f us a dispatch with a "
                   "barrier before each, %.2f us in runs of 8 between barriers\n",
                   floor_chained, floor_grouped);
        for (unsigned i = 0; !o->json && i < np; i++)
            printf("matvec probe (switches %u), Q4_K 2048x5120 (%.1f MB): %.2f us cold, %.2f us hot; 16384x5120 "
                   "(%.1f MB) cold %.2f us (%.0f GB/s); the two alternating %.2f us a pair (small after big: %.2f "
                   "us)\n",
                   pbits[i], probe[i].small_bytes / 1e6, probe[i].cold_us, probe[i].hot_us, probe[i].big_bytes / 1e6,
                   probe[i].big_us, probe[i].big_bytes / (probe[i].big_us * 1e3), probe[i].pair_us,
                   probe[i].pair_us - probe[i].big_us);
        for (unsigned i = 0; !o->json && i < ng; i++)
            printf("grid barrier, %u workgroups of 64: %s, %.2f us a barrier (200 rounds)\n", gn[i],
                   gres[i] ? "all resident" : "NOT all resident (a wait timed out)", gus[i]);
        for (unsigned i = 0; !o->json && i < nd; i++)
            printf("dense-product probe (switches %u), Q4_K 2048x5120 (o_proj), %lu tokens: %.1f us (%.1f TFLOP/s)\n",
                   dbits[i], dt, dm_us[i], 2.0 * (double)dt * 2048 * 5120 / (dm_us[i] * 1e6));
        for (unsigned i = 0; !o->json && i < nm; i++)
            printf("grouped-product probe (switches %u), Q4_K 1536x2048 x 65 experts, 512 tokens x (4 + 1): %.1f us "
                   "(%.1f TFLOP/s useful)\n",
                   mbits[i], mm_us[i], 2.0 * 512 * 5 * 1536 * 2048 / (mm_us[i] * 1e6));
    }
    for (int i = 0; r && i < n; i++)
        free(r[i].ts);
    free(r);
    free(c.tokens);
    free(c.logits);
    for (long i = 0; c.seqs && i < most_b; i++)
        glm_seq_destroy(c.seqs[i]);
    free(c.seqs), free(c.items);
    glm_forward_destroy(c.f);
    return s;
}

int glm_cmd_bench(int argc, char **argv)
{
    bench_opts o;
    int rc = parse_args(&o, argc, argv);
    if (rc)
        return rc;
    glm_model *m = NULL;
    glm_backend *b = NULL;
    glm_status s = glm_model_open(&m, o.model);
    if (s == GLM_OK)
        s = glm_cli_backend_create(&b, o.backend, m);
    if (s == GLM_OK)
        s = bench_model(&o, m, b);
    glm_backend_destroy(b);
    glm_model_close(m);
    return s == GLM_OK ? 0 : glm_cli_fail("bench");
}
