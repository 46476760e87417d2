/* A synthetic GLM-4.7-Flash GGUF (`glm47 quantize --random --like glm-4.7-flash`): the real
 * model's shapes (model-spec §1, §6.2; gguf-spec §3.1), deepseek2 metadata with the values of
 * the real files (gguf-spec §1.10), a byte-level tokenizer with the real special-token ids,
 * llama-quantize's per-tensor type policy (model/quantize.h) and random weights with
 * realistic scales (the common quantized types drawn directly as blocks, the rest quantized
 * from random floats). Used to measure speed (issue 7) since the real weights cannot be
 * fetched.
 * Written tensor by tensor through the GGUF writer's fill callback: memory holds one tensor.
 * Not here: the type policy (model/quantize.c), block formats (ref/quantize.c). */
#ifndef GLM_RANDOM_MODEL_H
#define GLM_RANDOM_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "model/quantize.h"
#include "util/status.h"

/* Standard deviation of the random weight matrices (the checkpoint's init scale). */
#define GLM_RANDOM_WEIGHT_STD 0.02f

/* The real model's decoder layer count (without the MTP layer). */
#define GLM_RANDOM_FULL_LAYERS 47

typedef struct glm_random_model_params {
    glm_ftype ftype;
    uint64_t seed;
    int n_layers; /* decoder layers, 1..47 (layer 0 dense, the rest MoE); 0 = 47 */
    bool mtp;     /* add the nextn (MTP) layer as layer n_layers */
    int n_threads; /* <= 0: 1 */
    void (*progress)(void *ctx, uint64_t i, uint64_t n, const char *name, glm_type from, glm_type to);
    void *progress_ctx;
} glm_random_model_params;

typedef struct glm_random_model_report {
    uint64_t n_tensors;
    uint64_t type_count[GLM_TYPE_COUNT]; /* tensors per ggml type */
    uint64_t bytes;                      /* tensor data, unpadded */
} glm_random_model_report;

/* Plan only (no file): the tensor count, type mix and data bytes `p` would produce. */
glm_status glm_random_model_plan(const glm_random_model_params *p, glm_random_model_report *rep);
/* Write the file atomically (no file and no temporary left on failure). rep may be NULL. */
glm_status glm_random_model_write(const char *out_path, const glm_random_model_params *p,
                                  glm_random_model_report *rep);

/* One row of n random weights drawn directly as `type` blocks (Q8_0, Q4_0, Q5_0, Q4_K, Q5_K,
 * Q6_K) from the 64-bit `stream`: dequantized, mean ≈ 0 and standard deviation ≈
 * GLM_RANDOM_WEIGHT_STD. False (dst untouched) for other types or n not a whole number of
 * blocks; those tensors are drawn as floats and quantized. */
bool glm_random_weight_row(void *dst, glm_type type, int64_t n, uint64_t stream);

#endif
