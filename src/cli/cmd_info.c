/* glm47 info MODEL: what glm_model_open found — source, architecture, every hyper-parameter,
 * MTP, gating, tensor count and bytes per type, file size — plus a tokenizer summary read
 * straight from the metadata (GGUF tokenizer.ggml.* keys, or tokenizer.json), so it works
 * without the tokenizer module. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "model/gguf.h"
#include "model/model.h"
#include "util/file.h"

/* tokenizer.json of the real model is ~20 MB. */
#define INFO_TOKENIZER_MAX (256u << 20)

static void print_hparams(const glm_hparams *h)
{
    printf("hparams:\n");
#define P_INT(k) printf("  %-26s %d\n", #k, h->k)
#define P_FLT(k) printf("  %-26s %g\n", #k, (double)h->k)
    P_INT(hidden_size);
    P_INT(num_hidden_layers);
    P_INT(num_attention_heads);
    P_INT(q_lora_rank);
    P_INT(kv_lora_rank);
    P_INT(qk_nope_head_dim);
    P_INT(qk_rope_head_dim);
    P_INT(v_head_dim);
    P_INT(intermediate_size);
    P_INT(moe_intermediate_size);
    P_INT(n_routed_experts);
    P_INT(n_shared_experts);
    P_INT(num_experts_per_tok);
    P_INT(n_group);
    P_INT(topk_group);
    P_INT(first_k_dense_replace);
    P_INT(num_nextn_predict_layers);
    P_INT(vocab_size);
    P_INT(max_position_embeddings);
    P_FLT(rms_norm_eps);
    P_FLT(qkv_a_norm_eps);
    P_FLT(rope_theta);
    P_FLT(routed_scaling_factor);
    printf("  %-26s %s\n", "norm_topk_prob", h->norm_topk_prob ? "true" : "false");
    printf("  %-26s %s\n", "gating", h->gating == GLM_GATING_SIGMOID ? "sigmoid" : "softmax");
#undef P_INT
#undef P_FLT
}

static void print_tensors(const glm_model *m)
{
    uint64_t bytes = 0, nb[GLM_TYPE_COUNT] = { 0 };
    int n[GLM_TYPE_COUNT] = { 0 };
    for (uint64_t i = 0; i < m->n_tensors; i++) {
        const glm_tensor *t = &m->tensors[i];
        bytes += t->nbytes;
        if ((int)t->type >= 0 && t->type < GLM_TYPE_COUNT) {
            n[t->type]++;
            nb[t->type] += t->nbytes;
        }
    }
    printf("tensors: %" PRIu64 " (%" PRIu64 " bytes, %.2f MiB)\n", m->n_tensors, bytes, bytes / 1048576.0);
    for (int t = 0; t < GLM_TYPE_COUNT; t++)
        if (n[t])
            printf("  type %-8s %5d tensors %14" PRIu64 " bytes\n", glm_type_name(t), n[t], nb[t]);
}

static void print_gguf_tokenizer(const glm_gguf *g)
{
    const glm_gguf_kv *tok = glm_gguf_find_kv(g, "tokenizer.ggml.tokens");
    const glm_gguf_kv *mer = glm_gguf_find_kv(g, "tokenizer.ggml.merges");
    glm_str model = { "?", 1 };
    (void)glm_gguf_get_str(g, "tokenizer.ggml.model", &model);
    printf("tokenizer: gguf metadata, model %.*s, vocab %" PRIu64 ", merges %" PRIu64 "\n", (int)model.len, model.ptr,
           tok && tok->type == GLM_GGUF_ARRAY ? tok->arr_count : 0,
           mer && mer->type == GLM_GGUF_ARRAY ? mer->arr_count : 0);
    static const char *const ids[][2] = { { "bos", "tokenizer.ggml.bos_token_id" },
                                          { "eos", "tokenizer.ggml.eos_token_id" },
                                          { "eot", "tokenizer.ggml.eot_token_id" },
                                          { "eom", "tokenizer.ggml.eom_token_id" },
                                          { "pad", "tokenizer.ggml.padding_token_id" } };
    printf("  special ids:");
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        uint32_t v;
        if (glm_gguf_get_u32(g, ids[i][1], &v) == GLM_OK)
            printf(" %s %u", ids[i][0], v);
    }
    printf("\n");
}

static void print_hf_tokenizer(const glm_model *m)
{
    char *text = NULL;
    size_t len = 0;
    if (!m->tokenizer_json_path || glm_file_read_all(&text, &len, m->tokenizer_json_path, INFO_TOKENIZER_MAX) != GLM_OK) {
        printf("tokenizer: no readable tokenizer.json\n");
        free(text);
        return;
    }
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (!root || !cJSON_IsObject(vocab))
        printf("tokenizer: %s is not a tokenizers JSON with model.vocab\n", m->tokenizer_json_path);
    else
        printf("tokenizer: tokenizer.json, model %s, vocab %d, merges %d, added tokens %d\n",
               cJSON_IsString(type) ? type->valuestring : "?", cJSON_GetArraySize(vocab),
               cJSON_IsArray(merges) ? cJSON_GetArraySize(merges) : 0,
               cJSON_IsArray(added) ? cJSON_GetArraySize(added) : 0);
    cJSON_Delete(root);
    printf("  special ids:");
    if (m->bos_id >= 0)
        printf(" bos %d", m->bos_id);
    if (m->pad_id >= 0)
        printf(" pad %d", m->pad_id);
    printf(" (config.json)\n");
}

int glm_cmd_info(int argc, char **argv)
{
    static const char usage[] = "usage: glm47 info [-m] MODEL   (a .gguf file or a Hugging Face directory)\n";
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        fputs(usage, stdout);
        return 0;
    }
    /* `info MODEL`, or `info -m MODEL` as the other commands take it */
    const char *path = argc == 2 && argv[1][0] != '-' ? argv[1]
                       : argc == 3 && (!strcmp(argv[1], "-m") || !strcmp(argv[1], "--model")) ? argv[2]
                                                                                                 : NULL;
    if (!path) {
        fputs(usage, stderr);
        return 2;
    }
    glm_model *m;
    if (glm_model_open(&m, path) != GLM_OK)
        return glm_cli_fail("info");
    printf("model: %s\n", m->path);
    printf("source: %s\n", m->source == GLM_SOURCE_GGUF ? "gguf" : "hf");
    printf("architecture: %s\n", m->arch);
    printf("file size: %" PRIu64 " bytes (%.2f MiB)\n", m->file_bytes, m->file_bytes / 1048576.0);
    print_hparams(&m->hp);
    if (m->mtp)
        printf("mtp: present (layer %d)\n", m->hp.num_hidden_layers);
    else
        printf("mtp: absent\n");
    printf("gating: %s\n", m->hp.gating == GLM_GATING_SIGMOID ? "sigmoid" : "softmax");
    print_tensors(m);
    if (m->source == GLM_SOURCE_GGUF)
        print_gguf_tokenizer(m->gguf);
    else
        print_hf_tokenizer(m);
    printf("eos ids:");
    for (int i = 0; i < m->n_eos; i++)
        printf(" %d", m->eos_ids[i]);
    printf("\n");
    glm_model_close(m);
    return 0;
}
