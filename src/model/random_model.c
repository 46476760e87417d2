/* Synthetic GLM-4.7-Flash GGUF: see random_model.h. */
#include "model/random_model.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"
#include "ref/quantize.h"
#include "util/file.h"

/* GLM-4.7-Flash (model-spec §1). */
enum {
    H = 2048, N_HEAD = 20, Q_LORA = 768, KV_LORA = 512, QK_NOPE = 192, QK_ROPE = 64, V_HEAD = 256,
    FF_DENSE = 10240, FF_EXP = 1536, N_EXP = 64, N_USED = 4, VOCAB = 154880, CTX = 202752
};

/* How a tensor's values are drawn: weights ~ N(0, 0.02²) (the checkpoint's init scale; for the
 * quantized types drawn directly as blocks, see draw_row),
 * RMSNorm gains 1 + N(0, 0.05²), the router bias N(0, 0.01²) (small next to the sigmoid
 * scores it shifts, as trained e_score_correction_bias values are). */
typedef enum init_kind { INIT_WEIGHT, INIT_NORM, INIT_BIAS } init_kind;

typedef struct rtensor {
    char name[64];
    uint32_t n_dims;
    int64_t ne[4];
    glm_type src, type;
    init_kind init;
    uint64_t nbytes;
} rtensor;

typedef struct rplan {
    rtensor *t;
    uint64_t n, cap;
    int n_layers, n_block; /* n_block = deepseek2.block_count (MTP layer included) */
    bool mtp;
} rplan;

static glm_status plan_add(rplan *p, int layer, const char *name, int64_t ne0, int64_t ne1, int64_t ne2)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 64;
        rtensor *t = realloc(p->t, p->cap * sizeof *t);
        if (!t)
            return glm_errorf(GLM_ERR_NOMEM, "random model: out of memory");
        p->t = t;
    }
    rtensor *t = &p->t[p->n++];
    memset(t, 0, sizeof *t);
    if (layer >= 0)
        snprintf(t->name, sizeof t->name, "blk.%d.%s", layer, name);
    else
        snprintf(t->name, sizeof t->name, "%s", name);
    t->ne[0] = ne0, t->ne[1] = ne1, t->ne[2] = ne2, t->ne[3] = 1;
    t->n_dims = ne2 > 1 ? 3 : ne1 > 1 ? 2 : 1;
    bool norm = strstr(name, "norm") != NULL, bias = strstr(name, ".bias") != NULL;
    t->init = norm ? INIT_NORM : bias ? INIT_BIAS : INIT_WEIGHT;
    /* the converter writes 1-D tensors and the router as F32, the rest as BF16 */
    t->src = t->n_dims == 1 || strstr(name, "ffn_gate_inp") ? GLM_TYPE_F32 : GLM_TYPE_BF16;
    return GLM_OK;
}

/* One decoder layer's tensors (model-spec §6.2; gguf-spec §3.1). */
static glm_status plan_layer(rplan *p, int il, bool dense)
{
    GLM_TRY(plan_add(p, il, "attn_norm.weight", H, 1, 1));
    GLM_TRY(plan_add(p, il, "attn_q_a.weight", H, Q_LORA, 1));
    GLM_TRY(plan_add(p, il, "attn_q_a_norm.weight", Q_LORA, 1, 1));
    GLM_TRY(plan_add(p, il, "attn_q_b.weight", Q_LORA, N_HEAD * (QK_NOPE + QK_ROPE), 1));
    GLM_TRY(plan_add(p, il, "attn_kv_a_mqa.weight", H, KV_LORA + QK_ROPE, 1));
    GLM_TRY(plan_add(p, il, "attn_kv_a_norm.weight", KV_LORA, 1, 1));
    GLM_TRY(plan_add(p, il, "attn_k_b.weight", QK_NOPE, KV_LORA, N_HEAD));
    GLM_TRY(plan_add(p, il, "attn_v_b.weight", KV_LORA, V_HEAD, N_HEAD));
    GLM_TRY(plan_add(p, il, "attn_output.weight", N_HEAD * V_HEAD, H, 1));
    GLM_TRY(plan_add(p, il, "ffn_norm.weight", H, 1, 1));
    if (dense) {
        GLM_TRY(plan_add(p, il, "ffn_gate.weight", H, FF_DENSE, 1));
        GLM_TRY(plan_add(p, il, "ffn_up.weight", H, FF_DENSE, 1));
        return plan_add(p, il, "ffn_down.weight", FF_DENSE, H, 1);
    }
    GLM_TRY(plan_add(p, il, "ffn_gate_inp.weight", H, N_EXP, 1));
    GLM_TRY(plan_add(p, il, "exp_probs_b.bias", N_EXP, 1, 1));
    GLM_TRY(plan_add(p, il, "ffn_gate_exps.weight", H, FF_EXP, N_EXP));
    GLM_TRY(plan_add(p, il, "ffn_up_exps.weight", H, FF_EXP, N_EXP));
    GLM_TRY(plan_add(p, il, "ffn_down_exps.weight", FF_EXP, H, N_EXP));
    GLM_TRY(plan_add(p, il, "ffn_gate_shexp.weight", H, FF_EXP, 1));
    GLM_TRY(plan_add(p, il, "ffn_up_shexp.weight", H, FF_EXP, 1));
    return plan_add(p, il, "ffn_down_shexp.weight", FF_EXP, H, 1);
}

static int layer_of(const char *name)
{
    return strncmp(name, "blk.", 4) == 0 ? atoi(name + 4) : -1;
}

/* llama-quantize's output order: tensors outside blk.N first, then by layer, then by name. */
static int rtensor_cmp(const void *x, const void *y)
{
    const rtensor *a = x, *b = y;
    int la = layer_of(a->name), lb = layer_of(b->name);
    return la != lb ? (la < lb ? -1 : 1) : strcmp(a->name, b->name);
}

static glm_status plan_build(rplan *p, const glm_random_model_params *prm)
{
    memset(p, 0, sizeof *p);
    p->n_layers = prm->n_layers ? prm->n_layers : GLM_RANDOM_FULL_LAYERS;
    if (p->n_layers < 1 || p->n_layers > GLM_RANDOM_FULL_LAYERS)
        return glm_errorf(GLM_ERR_INVALID, "random model: %d layers; expected 1..%d", p->n_layers,
                          GLM_RANDOM_FULL_LAYERS);
    p->mtp = prm->mtp;
    p->n_block = p->n_layers + (p->mtp ? 1 : 0);
    GLM_TRY(plan_add(p, -1, "token_embd.weight", H, VOCAB, 1));
    GLM_TRY(plan_add(p, -1, "output_norm.weight", H, 1, 1));
    GLM_TRY(plan_add(p, -1, "output.weight", H, VOCAB, 1));
    for (int il = 0; il < p->n_layers; il++)
        GLM_TRY(plan_layer(p, il, il == 0)); /* first_k_dense_replace = 1 */
    if (p->mtp) { /* the nextn layer is an MoE layer plus its own head (model-spec §5.1) */
        int il = p->n_layers;
        GLM_TRY(plan_layer(p, il, false));
        GLM_TRY(plan_add(p, il, "nextn.eh_proj.weight", 2 * H, H, 1));
        GLM_TRY(plan_add(p, il, "nextn.embed_tokens.weight", H, VOCAB, 1));
        GLM_TRY(plan_add(p, il, "nextn.enorm.weight", H, 1, 1));
        GLM_TRY(plan_add(p, il, "nextn.hnorm.weight", H, 1, 1));
        GLM_TRY(plan_add(p, il, "nextn.shared_head_head.weight", H, VOCAB, 1));
        GLM_TRY(plan_add(p, il, "nextn.shared_head_norm.weight", H, 1, 1));
    }
    qsort(p->t, p->n, sizeof *p->t, rtensor_cmp);
    for (uint64_t i = 0; i < p->n; i++) {
        rtensor *t = &p->t[i];
        t->type = glm_quant_tensor_type(prm->ftype, t->name, t->ne, t->src, p->n_block, NULL);
        if (!glm_ref_quantize_supported(t->type))
            return glm_errorf(GLM_ERR_UNSUPPORTED, "random model: %s: no quantizer for %s", t->name,
                              glm_type_name(t->type));
        t->nbytes = glm_row_bytes(t->type, t->ne[0]) * (uint64_t)(t->ne[1] * t->ne[2]);
    }
    return GLM_OK;
}

glm_status glm_random_model_plan(const glm_random_model_params *prm, glm_random_model_report *rep)
{
    rplan p;
    glm_status s = plan_build(&p, prm);
    memset(rep, 0, sizeof *rep);
    for (uint64_t i = 0; s == GLM_OK && i < p.n; i++) {
        rep->n_tensors++;
        rep->type_count[p.t[i].type]++;
        rep->bytes += p.t[i].nbytes;
    }
    free(p.t);
    return s;
}

/* ---- metadata (gguf-spec §1.10) ---------------------------------------------------------- */

static glm_status arch_metadata(glm_gguf_writer *w, const rplan *p, uint64_t seed)
{
    char name[96];
    snprintf(name, sizeof name, "GLM-4.7-Flash random (seed %llu)", (unsigned long long)seed);
    GLM_TRY(glm_gguf_writer_set_str(w, "general.architecture", "deepseek2"));
    GLM_TRY(glm_gguf_writer_set_str(w, "general.type", "model"));
    GLM_TRY(glm_gguf_writer_set_str(w, "general.name", name));
    static const char *const keys[] = {
        "block_count", "context_length", "embedding_length", "feed_forward_length", "attention.head_count",
        "attention.head_count_kv", "expert_count", "expert_used_count", "expert_group_count",
        "expert_group_used_count", "expert_gating_func", "leading_dense_block_count", "vocab_size",
        "attention.q_lora_rank", "attention.kv_lora_rank", "attention.key_length", "attention.value_length",
        "attention.key_length_mla", "attention.value_length_mla", "expert_feed_forward_length",
        "expert_shared_count", "rope.dimension_count"};
    const uint32_t vals[] = {(uint32_t)p->n_block, CTX, H, FF_DENSE, N_HEAD, 1 /* MLA as MQA */, N_EXP, N_USED,
                             1, 1, 2 /* sigmoid */, 1, VOCAB, Q_LORA, KV_LORA, KV_LORA + QK_ROPE, KV_LORA,
                             QK_NOPE + QK_ROPE, V_HEAD, FF_EXP, 1, QK_ROPE};
    char key[96];
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        snprintf(key, sizeof key, "deepseek2.%s", keys[i]);
        GLM_TRY(glm_gguf_writer_set_u32(w, key, vals[i]));
    }
    GLM_TRY(glm_gguf_writer_set_f32(w, "deepseek2.rope.freq_base", 1e6f));
    GLM_TRY(glm_gguf_writer_set_f32(w, "deepseek2.attention.layer_norm_rms_epsilon", 1e-5f));
    GLM_TRY(glm_gguf_writer_set_f32(w, "deepseek2.expert_weights_scale", 1.8f));
    GLM_TRY(glm_gguf_writer_set_bool(w, "deepseek2.expert_weights_norm", true));
    if (p->mtp)
        GLM_TRY(glm_gguf_writer_set_u32(w, "deepseek2.nextn_predict_layers", 1));
    return GLM_OK;
}

/* The 36 special tokens at their real ids 154820.. (model-spec §7.1). */
static const char *const k_special[] = {
    "<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>", "<|system|>", "<|user|>",
    "<|assistant|>", "<|observation|>", "<|begin_of_image|>", "<|end_of_image|>", "<|begin_of_video|>",
    "<|end_of_video|>", "<|begin_of_audio|>", "<|end_of_audio|>", "<|begin_of_transcription|>",
    "<|end_of_transcription|>", "<|code_prefix|>", "<|code_middle|>", "<|code_suffix|>", "<think>", "</think>",
    "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<arg_key>", "</arg_key>",
    "<arg_value>", "</arg_value>", "/nothink", "<|begin_of_box|>", "<|end_of_box|>", "<|image|>", "<|video|>"};
enum { SPECIAL0 = 154820, N_SPECIAL = 36 };

/* GPT-2's byte → printable code point map, UTF-8 encoded into out (≤ 3 bytes + NUL). */
static void byte_token(int b, char out[4])
{
    int cp = b, n = 0;
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    if (!printable) {
        for (int c = 0; c < b; c++)
            n += !((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255));
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp, out[1] = 0;
    } else if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 63)), out[2] = 0;
    }
}

/* A byte-level vocabulary: the 256 byte tokens, a few merges over lowercase letter pairs
 * ("Ġ" + letter, then common bigrams) so BPE has work to do, the special tokens at their real
 * ids, and distinct "[PAD<id>]" placeholders (type UNUSED, as the converter pads) elsewhere. */
static glm_status tokenizer_metadata(glm_gguf_writer *w)
{
    static const char *const bigrams[] = {"th", "he", "in", "er", "an", "re", "on", "at", "en", "nd"};
    enum { N_BI = sizeof bigrams / sizeof bigrams[0], N_MERGE = 26 + N_BI };
    char **tok = calloc(VOCAB, sizeof *tok), **merges = calloc(N_MERGE, sizeof *merges);
    int32_t *type = malloc(VOCAB * sizeof *type);
    glm_status s = tok && merges && type ? GLM_OK : glm_errorf(GLM_ERR_NOMEM, "random model: out of memory");
    char buf[64];
    for (int i = 0; s == GLM_OK && i < VOCAB; i++) {
        type[i] = 1; /* NORMAL */
        if (i < 256) {
            byte_token(i, buf);
        } else if (i < 256 + 26) { /* "Ġa".."Ġz" */
            snprintf(buf, sizeof buf, "\xC4\xA0%c", 'a' + (i - 256));
            if ((merges[i - 256] = malloc(8)))
                snprintf(merges[i - 256], 8, "\xC4\xA0 %c", 'a' + (i - 256));
        } else if (i < 256 + N_MERGE) {
            const char *bg = bigrams[i - 256 - 26];
            snprintf(buf, sizeof buf, "%s", bg);
            if ((merges[i - 256] = malloc(8)))
                snprintf(merges[i - 256], 8, "%c %c", bg[0], bg[1]);
        } else if (i >= SPECIAL0 && i < SPECIAL0 + N_SPECIAL) {
            snprintf(buf, sizeof buf, "%s", k_special[i - SPECIAL0]);
            type[i] = 3; /* CONTROL */
        } else {
            snprintf(buf, sizeof buf, "[PAD%d]", i);
            type[i] = 5; /* UNUSED */
        }
        if (!(tok[i] = strdup(buf)) || (i >= 256 && i < 256 + N_MERGE && !merges[i - 256]))
            s = glm_errorf(GLM_ERR_NOMEM, "random model: out of memory");
    }
    if (s == GLM_OK)
        s = glm_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    if (s == GLM_OK)
        s = glm_gguf_writer_set_str(w, "tokenizer.ggml.pre", "glm4");
    if (s == GLM_OK)
        s = glm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tok, VOCAB);
    if (s == GLM_OK)
        s = glm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GLM_GGUF_INT32, type, VOCAB);
    if (s == GLM_OK)
        s = glm_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)merges, N_MERGE);
    /* the real files' ids (gguf-spec §1.10) */
    static const char *const id_keys[] = {"eos", "padding", "bos", "eot", "unknown", "eom"};
    static const uint32_t ids[] = {154820, 154821, 154822, 154827, 154820, 154829};
    for (size_t i = 0; s == GLM_OK && i < sizeof ids / sizeof ids[0]; i++) {
        snprintf(buf, sizeof buf, "tokenizer.ggml.%s_token_id", id_keys[i]);
        s = glm_gguf_writer_set_u32(w, buf, ids[i]);
    }
    for (int i = 0; tok && i < VOCAB; i++)
        free(tok[i]);
    for (int i = 0; merges && i < N_MERGE; i++)
        free(merges[i]);
    free(tok);
    free(merges);
    free(type);
    return s;
}

/* ---- tensor data ------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The stream of row r of tensor i, seeded by (seed, i, r), so the bytes do not depend on the
 * thread count. */
static uint64_t row_stream(uint64_t seed, uint64_t i, int64_t r)
{
    uint64_t st = seed ^ (i * 0xD1B54A32D192ED03ull) ^ ((uint64_t)r * 0x8CB92BA72F3D8DD7ull);
    splitmix64(&st);
    return st;
}

/* Float rows (norm gains, biases, and the types without a direct block draw below): normal
 * deviates approximated by Irwin-Hall with 4 uniforms (16 bits each from one 64-bit draw),
 * rescaled to unit variance: cheap and bounded. */
static void fill_row(float *x, int64_t n, init_kind kind, uint64_t st)
{
    const float unit = (float)(sqrt(3.0) / 65536.0); /* sum of 4 U(0,1) has variance 1/3 */
    const float scale = kind == INIT_WEIGHT ? GLM_RANDOM_WEIGHT_STD : kind == INIT_NORM ? 0.05f : 0.01f;
    const float base = kind == INIT_NORM ? 1.0f : 0.0f;
    for (int64_t j = 0; j < n; j++) {
        uint64_t z = splitmix64(&st);
        float sum = (float)(z & 0xFFFF) + (float)((z >> 16) & 0xFFFF) + (float)((z >> 32) & 0xFFFF) +
                    (float)(z >> 48) - 2.0f * 65536.0f;
        x[j] = base + scale * unit * sum;
    }
}

/* ---- quantized blocks drawn directly ----------------------------------------------------- *
 * Quantizing random floats costs ~13 M weights/s per core (the K-type searches); drawing the
 * blocks is ~100x faster. A block's codes are iid draws of round(zero + sd·N(0,1)) clipped to
 * the type's levels (what quantizing Gaussian weights gives), looked up from a 65536-entry
 * inverse-CDF table; the scales are set so that the dequantized values have mean ≈ 0 and
 * standard deviation GLM_RANDOM_WEIGHT_STD: step = std / (the table's code deviation), and
 * for the K types each sub-block scale is drawn in a narrow band around it with its min
 * matching (min = scale · zero), as fitted sub-blocks of Gaussian weights look. */

typedef struct code_table {
    uint8_t code[65536];
    float step; /* value of one code step */
} code_table;

typedef struct draw_type {
    glm_type type;
    int levels;
    float zero, sd; /* codes ~ round(zero + sd·N(0,1)), value = step·(code - zero) */
} draw_type;

static const draw_type k_draw[] = {
    { GLM_TYPE_Q8_0, 255, 127.0f, 55.0f }, /* stored as code - 127 */
    { GLM_TYPE_Q4_0, 16, 8.0f, 3.5f },
    { GLM_TYPE_Q5_0, 32, 16.0f, 7.0f },
    { GLM_TYPE_Q4_K, 16, 7.5f, 3.57f },
    { GLM_TYPE_Q5_K, 32, 15.5f, 7.4f },
    { GLM_TYPE_Q6_K, 64, 32.0f, 14.0f },
};
enum { N_DRAW = sizeof k_draw / sizeof k_draw[0] };

static code_table *g_tables[N_DRAW];
static pthread_once_t g_tables_once = PTHREAD_ONCE_INIT;

static void build_tables(void)
{
    for (int t = 0; t < N_DRAW; t++) {
        const draw_type *d = &k_draw[t];
        code_table *ct = malloc(sizeof *ct);
        if (!ct)
            continue; /* that type falls back to quantizing floats */
        int c = 0;
        double sum = 0, sum2 = 0;
        for (int u = 0; u < 65536; u++) {
            double pu = (u + 0.5) / 65536.0;
            /* smallest code whose CDF reaches pu: P(code <= c) = Φ((c + 0.5 - zero) / sd) */
            while (c < d->levels - 1 && 0.5 * erfc(-((c + 0.5 - d->zero) / d->sd) / sqrt(2.0)) < pu)
                c++;
            ct->code[u] = (uint8_t)c;
            sum += c - d->zero;
            sum2 += (c - d->zero) * (c - d->zero);
        }
        double mean = sum / 65536, var = sum2 / 65536 - mean * mean;
        ct->step = (float)(GLM_RANDOM_WEIGHT_STD / sqrt(var));
        g_tables[t] = ct;
    }
}

static const code_table *table_of(glm_type type)
{
    pthread_once(&g_tables_once, build_tables);
    for (int t = 0; t < N_DRAW; t++)
        if (k_draw[t].type == type)
            return g_tables[t];
    return NULL;
}

/* Code draws, 4 per 64-bit word. */
typedef struct code_src {
    const code_table *t;
    uint64_t *st, word;
    int left;
} code_src;

static inline uint32_t next_code(code_src *s)
{
    if (!s->left) {
        s->word = splitmix64(s->st);
        s->left = 4;
    }
    uint32_t c = s->t->code[s->word & 0xFFFF];
    s->word >>= 16;
    s->left--;
    return c;
}

static inline void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }

/* 6-bit scales sc[8] and mins m[8] packed as Q4_K/Q5_K store them (12 bytes). */
static void pack_scales_k4(uint8_t *s, const uint8_t *sc, const uint8_t *m)
{
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(sc[j] | ((sc[j + 4] >> 4) << 6));
        s[j + 4] = (uint8_t)(m[j] | ((m[j + 4] >> 4) << 6));
        s[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
    }
}

/* One row of n weights of `type` drawn as blocks into dst; false when the type has no
 * direct draw (the caller quantizes floats then). */
static bool draw_row(uint8_t *dst, glm_type type, int64_t n, uint64_t st)
{
    const code_table *t = table_of(type);
    if (!t)
        return false;
    code_src cs = { t, &st, 0, 0 };
    const float step = t->step;
    /* a K-type sub-block scale: nominal 56 (Q6_K: 112), drawn in [48, 64) ([96, 128)) */
    for (int64_t b = 0; b < n / glm_type_info(type)->block; b++) {
        switch (type) {
        case GLM_TYPE_Q8_0: {
            uint8_t *p = dst + b * 34;
            put16(p, glm_fp32_to_fp16(step));
            for (int j = 0; j < 32; j++)
                p[2 + j] = (uint8_t)(int8_t)((int)next_code(&cs) - 127);
            break;
        }
        case GLM_TYPE_Q4_0: {
            uint8_t *p = dst + b * 18;
            put16(p, glm_fp32_to_fp16(step));
            for (int j = 0; j < 16; j++)
                p[2 + j] = (uint8_t)(next_code(&cs) | (next_code(&cs) << 4));
            break;
        }
        case GLM_TYPE_Q5_0: {
            uint8_t *p = dst + b * 22;
            put16(p, glm_fp32_to_fp16(step));
            uint32_t qh = 0;
            for (int j = 0; j < 16; j++) {
                uint32_t lo = next_code(&cs), hi = next_code(&cs);
                p[6 + j] = (uint8_t)((lo & 15) | ((hi & 15) << 4));
                qh |= ((lo >> 4) << j) | ((hi >> 4) << (j + 16));
            }
            for (int j = 0; j < 4; j++)
                p[2 + j] = (uint8_t)(qh >> (8 * j));
            break;
        }
        case GLM_TYPE_Q4_K: case GLM_TYPE_Q5_K: {
            bool q5 = type == GLM_TYPE_Q5_K;
            uint8_t *p = dst + b * (q5 ? 176 : 144);
            uint8_t sc[8], m[8];
            uint64_t r = splitmix64(&st);
            for (int j = 0; j < 8; j++)
                sc[j] = m[j] = (uint8_t)(48 + ((r >> (4 * j)) & 15));
            put16(p, glm_fp32_to_fp16(step / 56.0f));
            put16(p + 2, glm_fp32_to_fp16(step * k_draw[q5 ? 4 : 3].zero / 56.0f));
            pack_scales_k4(p + 4, sc, m);
            uint8_t *qh = p + 16, *qs = p + (q5 ? 48 : 16);
            if (q5)
                memset(qh, 0, 32);
            for (int pp = 0; pp < 4; pp++)
                for (int l = 0; l < 32; l++) {
                    uint32_t lo = next_code(&cs), hi = next_code(&cs);
                    qs[32 * pp + l] = (uint8_t)((lo & 15) | ((hi & 15) << 4));
                    if (q5)
                        qh[l] |= (uint8_t)(((lo >> 4) << (2 * pp)) | ((hi >> 4) << (2 * pp + 1)));
                }
            break;
        }
        case GLM_TYPE_Q6_K: {
            uint8_t *p = dst + b * 210, *ql = p, *qh = p + 128;
            uint64_t r = splitmix64(&st);
            memset(p, 0, 192);
            for (int i = 0; i < 256; i++) {
                int h = i / 128, k = (i / 32) % 4, l = i % 32;
                uint32_t c = next_code(&cs);
                ql[64 * h + l + 32 * (k & 1)] |= (uint8_t)((c & 15) << (4 * (k >> 1)));
                qh[32 * h + l] |= (uint8_t)((c >> 4) << (2 * k));
            }
            for (int j = 0; j < 16; j++)
                p[192 + j] = (uint8_t)(96 + ((r >> (4 * j)) & 31));
            put16(p + 208, glm_fp32_to_fp16(step / 112.0f));
            break;
        }
        default:
            return false;
        }
    }
    return true;
}

bool glm_random_weight_row(void *dst, glm_type type, int64_t n, uint64_t stream)
{
    if (n <= 0 || n % glm_type_info(type)->block)
        return false;
    return draw_row(dst, type, n, stream);
}

typedef struct fill_ctx {
    const rplan *p;
    const glm_random_model_params *prm;
} fill_ctx;

typedef struct fill_job {
    const rtensor *t;
    uint64_t index, seed;
    uint8_t *dst;
    int64_t r0, r1;
    glm_status s;
    char msg[256];
} fill_job;

static void *fill_rows(void *arg)
{
    fill_job *j = arg;
    const rtensor *t = j->t;
    size_t row = glm_row_bytes(t->type, t->ne[0]);
    float *x = malloc((size_t)t->ne[0] * sizeof *x);
    j->s = x ? GLM_OK : glm_errorf(GLM_ERR_NOMEM, "%s: out of memory", t->name);
    for (int64_t r = j->r0; j->s == GLM_OK && r < j->r1; r++) {
        uint64_t st = row_stream(j->seed, j->index, r);
        if (t->init == INIT_WEIGHT && draw_row(j->dst + (size_t)r * row, t->type, t->ne[0], st))
            continue;
        fill_row(x, t->ne[0], t->init, st);
        j->s = glm_ref_quantize_row(j->dst + (size_t)r * row, x, t->type, t->ne[0]);
    }
    if (j->s != GLM_OK)
        snprintf(j->msg, sizeof j->msg, "%s", glm_last_error());
    free(x);
    return NULL;
}

/* The writer's fill callback: rows split over the worker threads. */
static glm_status fill_tensor(void *ctx, uint64_t index, void *dst, uint64_t nbytes)
{
    const fill_ctx *c = ctx;
    const rtensor *t = &c->p->t[index];
    (void)nbytes;
    if (c->prm->progress)
        c->prm->progress(c->prm->progress_ctx, index, c->p->n, t->name, t->src, t->type);
    int64_t rows = t->ne[1] * t->ne[2];
    int n = c->prm->n_threads > 0 ? c->prm->n_threads : 1;
    if (n > rows)
        n = (int)rows;
    fill_job jobs[64];
    pthread_t th[64];
    if (n > 64)
        n = 64;
    int started = 0;
    for (int k = 0; k < n; k++)
        jobs[k] = (fill_job){t, index, c->prm->seed, dst, rows * k / n, rows * (k + 1) / n, GLM_OK, ""};
    for (int k = 1; k < n; k++, started++)
        if (pthread_create(&th[k], NULL, fill_rows, &jobs[k]) != 0)
            break;
    fill_rows(&jobs[0]);
    for (int k = started + 1; k < n; k++) /* threads that could not start: run here */
        fill_rows(&jobs[k]);
    for (int k = 1; k <= started; k++)
        pthread_join(th[k], NULL);
    for (int k = 0; k < n; k++)
        if (jobs[k].s != GLM_OK)
            return glm_errorf(jobs[k].s, "%s", jobs[k].msg);
    return GLM_OK;
}

glm_status glm_random_model_write(const char *out_path, const glm_random_model_params *prm,
                                  glm_random_model_report *rep)
{
    rplan p;
    glm_gguf_writer *w = NULL;
    glm_status s = plan_build(&p, prm);
    if (s == GLM_OK)
        s = glm_gguf_writer_create(&w, 0);
    if (s == GLM_OK)
        s = arch_metadata(w, &p, prm->seed);
    if (s == GLM_OK)
        s = tokenizer_metadata(w);
    if (s == GLM_OK)
        s = glm_gguf_writer_set_u32(w, "general.quantization_version", 2);
    if (s == GLM_OK)
        s = glm_gguf_writer_set_u32(w, "general.file_type", (uint32_t)prm->ftype);
    fill_ctx fc = {&p, prm};
    for (uint64_t i = 0; s == GLM_OK && i < p.n; i++)
        s = glm_gguf_writer_add_tensor_fill(w, p.t[i].name, p.t[i].type, p.t[i].n_dims, p.t[i].ne, p.t[i].nbytes,
                                            fill_tensor, &fc);
    if (s == GLM_OK)
        s = glm_gguf_writer_write(w, out_path);
    glm_gguf_writer_destroy(w);
    free(p.t);
    if (s == GLM_OK && rep)
        s = glm_random_model_plan(prm, rep);
    return s;
}
