/* llama-greedy: greedy decoding of a GGUF model by llama.cpp's library (CPU), printing for
 * every generated token its id and llama.cpp's top-K candidates with their log-probabilities.
 * It is the other side of tests/test_llama_greedy.sh: compiled by tools/llama-fetch.sh against
 * the headers and libraries of the private root it fetches, and run through that root's own
 * dynamic loader (the build host's glibc is older). Not part of glm47 or of `make check`.
 *
 * Usage: llama-greedy -m MODEL --ids 1,2,3 [-n N] [--top K] [--threads T]
 *                     [--kv KEY=int:V | KEY=float:V]... [--kv-f32] [--logits FILE] [--topk] [--nll]
 *                     [--mask-eog]
 * --logits writes the logits of every prompt row to FILE (float32, n_prompt x n_vocab, host
 * order), for a teacher-forced comparison with `glm47 eval --dump`. --kv-f32 keeps the KV
 * cache in float32 and turns flash attention off (fewer roundings on llama.cpp's side).
 * --nll prints "nll SUM COUNT" instead of generating: the summed -log p(ids[i+1] | ids[..i]) over
 * the prompt (a perplexity window, scored as `glm47 perplexity` scores one).
 * --topk prints, on stderr, the experts llama.cpp routes every prompt row to in every MoE
 * layer ("topk LAYER ROW: e1 e2 ..."), to set beside `glm47 eval --dump`'s topk_ids.
 * --mask-eog never chooses the end-of-generation ids (and leaves them out of the
 * log-probabilities), as `glm47 run --ignore-eos` masks them.
 * Output: one line per generated token: "ID c1:lp1 c2:lp2 ... cK:lpK" (candidates by
 * log-probability, highest first; ties to the lower id). End-of-generation tokens do not
 * stop it (the caller compares a fixed number of tokens). Errors: one line on stderr, exit 1
 * (2 for a usage error). */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"

#define MAX_IDS 4096
#define MAX_KV 8
#define MAX_TOP 1024

static void usage(void) {
    fprintf(stderr, "usage: llama-greedy -m MODEL --ids 1,2,3 [-n N] [--top K] [--threads T] [--kv KEY=int:V]... "
                    "[--kv-f32] [--logits FILE] [--topk] [--nll] [--mask-eog]\n");
    exit(2);
}

static void quiet_log(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level == GGML_LOG_LEVEL_ERROR)
        fputs(text, stderr);
}

static int parse_int(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* "1,2,3" → ids; returns the count or -1 */
static int parse_ids(const char *s, llama_token *ids, int cap) {
    int n = 0;
    while (*s) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno || end == s || v < 0 || v > 0x7fffffff || n == cap)
            return -1;
        ids[n++] = (llama_token)v;
        if (*end == ',')
            end++;
        else if (*end)
            return -1;
        s = end;
    }
    return n;
}

/* KEY=int:V or KEY=float:V → a metadata override */
static int parse_kv(const char *s, struct llama_model_kv_override *kv) {
    const char *eq = strchr(s, '=');
    if (!eq || (size_t)(eq - s) >= sizeof kv->key)
        return -1;
    memset(kv, 0, sizeof *kv);
    memcpy(kv->key, s, (size_t)(eq - s));
    long v;
    if (!strncmp(eq + 1, "int:", 4) && !parse_int(eq + 5, -(1L << 31), (1L << 31) - 1, &v)) {
        kv->tag = LLAMA_KV_OVERRIDE_TYPE_INT;
        kv->val_i64 = v;
        return 0;
    }
    char *end;
    if (!strncmp(eq + 1, "float:", 6)) {
        kv->val_f64 = strtod(eq + 7, &end);
        kv->tag = LLAMA_KV_OVERRIDE_TYPE_FLOAT;
        return end == eq + 7 || *end ? -1 : 0;
    }
    return -1;
}

/* Graph callback for --topk: the routed expert ids of each MoE layer, once per prompt. */
static bool print_topk(struct ggml_tensor *t, bool ask, void *user) {
    bool *done = user;
    if (strncmp(t->name, "ffn_moe_topk-", 13) || *done)
        return ask ? false : true;
    if (ask)
        return true;
    for (int64_t r = 0; r < t->ne[1]; r++) {
        fprintf(stderr, "topk %s row %lld:", t->name + 13, (long long)r);
        for (int64_t e = 0; e < t->ne[0]; e++)
            fprintf(stderr, " %d", *(const int32_t *)((const char *)t->data + r * t->nb[1] + e * t->nb[0]));
        fprintf(stderr, "\n");
    }
    return true;
}

/* The K best of logits[n] as log-probabilities (highest first, ties to the lower id); ids with
 * skip[i] set take no part (neither chosen nor in the normalization). */
static void top_k(const float *logits, const bool *skip, int n, int k, int *id, double *lp) {
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < n; i++)
        if (!skip[i])
            mx = logits[i] > mx ? logits[i] : mx;
    for (int i = 0; i < n; i++)
        if (!skip[i])
            sum += exp((double)logits[i] - mx);
    double lse = mx + log(sum);
    for (int j = 0; j < k; j++)
        id[j] = -1;
    for (int i = 0; i < n; i++) {
        if (skip[i])
            continue;
        int j = k;
        while (j > 0 && (id[j - 1] < 0 || logits[i] > logits[id[j - 1]]))
            j--;
        if (j == k)
            continue;
        memmove(id + j + 1, id + j, (size_t)(k - j - 1) * sizeof *id);
        id[j] = i;
    }
    for (int j = 0; j < k; j++)
        lp[j] = (double)logits[id[j]] - lse;
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *ids_arg = NULL, *logits_path = NULL;
    long n_gen = 16, k = 4, threads = 2;
    struct llama_model_kv_override kv[MAX_KV + 1];
    int n_kv = 0;
    bool kv_f32 = false, topk = false, topk_done = false, nll = false, mask_eog = false;
    memset(kv, 0, sizeof kv);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--kv-f32") || !strcmp(a, "--topk") || !strcmp(a, "--nll") || !strcmp(a, "--mask-eog")) {
            *(a[2] == 'k' ? &kv_f32 : a[2] == 't' ? &topk : a[2] == 'n' ? &nll : &mask_eog) = true;
            continue;
        }
        if (!v)
            usage();
        i++;
        if (!strcmp(a, "-m"))
            model_path = v;
        else if (!strcmp(a, "--logits"))
            logits_path = v;
        else if (!strcmp(a, "--ids"))
            ids_arg = v;
        else if (!strcmp(a, "-n")) {
            if (parse_int(v, 1, MAX_IDS, &n_gen))
                usage();
        } else if (!strcmp(a, "--top")) {
            if (parse_int(v, 1, MAX_TOP, &k))
                usage();
        } else if (!strcmp(a, "--threads")) {
            if (parse_int(v, 1, 256, &threads))
                usage();
        } else if (!strcmp(a, "--kv")) {
            if (n_kv == MAX_KV || parse_kv(v, &kv[n_kv++]))
                usage();
        } else
            usage();
    }
    static llama_token ids[2 * MAX_IDS];
    int n_prompt = ids_arg ? parse_ids(ids_arg, ids, MAX_IDS) : -1;
    if (!model_path || n_prompt <= 0)
        usage();

    llama_log_set(quiet_log, NULL);
    ggml_backend_load_all();
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    mp.kv_overrides = n_kv ? kv : NULL;
    struct llama_model *model = llama_model_load_from_file(model_path, mp);
    if (!model) {
        fprintf(stderr, "llama-greedy: %s: llama.cpp cannot load the model\n", model_path);
        return 1;
    }
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    int n_vocab = llama_vocab_n_tokens(vocab);
    if (k > n_vocab)
        k = n_vocab;
    bool *skip = calloc((size_t)n_vocab, sizeof *skip);
    if (!skip) {
        fprintf(stderr, "llama-greedy: out of memory\n");
        return 1;
    }
    for (int v = 0; mask_eog && v < n_vocab; v++)
        skip[v] = llama_vocab_is_eog(vocab, v);
    for (int i = 0; i < n_prompt; i++)
        if (ids[i] >= n_vocab) {
            fprintf(stderr, "llama-greedy: token id %d is outside the vocabulary (%d)\n", ids[i], n_vocab);
            return 1;
        }
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)(n_prompt + n_gen + 16);
    cp.n_batch = cp.n_ubatch = (uint32_t)n_prompt;
    cp.n_threads = cp.n_threads_batch = (int32_t)threads;
    cp.no_perf = true;
    if (kv_f32) {
        cp.type_k = cp.type_v = GGML_TYPE_F32;
        cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    }
    if (topk) {
        cp.cb_eval = print_topk;
        cp.cb_eval_user_data = &topk_done;
    }
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "llama-greedy: %s: cannot create a llama.cpp context\n", model_path);
        return 1;
    }
    int cand[MAX_TOP];
    double lp[MAX_TOP];
    llama_token *next = ids + n_prompt;
    /* the prompt in one batch, with an output row for every position when --logits asks */
    struct llama_batch pb = llama_batch_init(n_prompt, 0, 1);
    pb.n_tokens = n_prompt;
    for (int i = 0; i < n_prompt; i++) {
        pb.token[i] = ids[i];
        pb.pos[i] = i;
        pb.n_seq_id[i] = 1;
        pb.seq_id[i][0] = 0;
        pb.logits[i] = logits_path || nll || i == n_prompt - 1;
    }
    if (llama_decode(ctx, pb)) {
        fprintf(stderr, "llama-greedy: llama_decode failed on the prompt\n");
        return 1;
    }
    llama_batch_free(pb);
    topk_done = true;
    if (logits_path) {
        FILE *f = fopen(logits_path, "wb");
        bool ok = f != NULL;
        for (int i = 0; ok && i < n_prompt; i++)
            ok = fwrite(llama_get_logits_ith(ctx, i), sizeof(float), (size_t)n_vocab, f) == (size_t)n_vocab;
        if (f && fclose(f))
            ok = false;
        if (!ok) {
            fprintf(stderr, "llama-greedy: %s: cannot write the logits: %s\n", logits_path, strerror(errno));
            return 1;
        }
    }
    if (nll) {
        double sum = 0;
        for (int i = 0; i + 1 < n_prompt; i++) {
            const float *l = llama_get_logits_ith(ctx, i);
            double mx = l[0], se = 0;
            for (int v = 1; v < n_vocab; v++)
                mx = l[v] > mx ? l[v] : mx;
            for (int v = 0; v < n_vocab; v++)
                se += exp((double)l[v] - mx);
            sum += -((double)l[ids[i + 1]] - mx - log(se));
        }
        printf("nll %.9f %d\n", sum, n_prompt - 1);
        n_gen = 0;
    }
    struct llama_batch batch = {0};
    for (long t = 0; t < n_gen; t++) {
        if (t > 0 && llama_decode(ctx, batch)) {
            fprintf(stderr, "llama-greedy: llama_decode failed at generated token %ld\n", t);
            return 1;
        }
        top_k(llama_get_logits_ith(ctx, -1), skip, n_vocab, (int)k, cand, lp);
        next[t] = cand[0];
        printf("%d", cand[0]);
        for (int j = 0; j < k; j++)
            printf(" %d:%.6f", cand[j], lp[j]);
        printf("\n");
        batch = llama_batch_get_one(next + t, 1);
    }
    free(skip);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return fflush(stdout) == 0 ? 0 : 1;
}
