/* Scalar reference matvec / matmul over quantized weights (gguf-spec §4: W is {n, rows}
 * in ggml order, y = x·Wᵀ, both read along the contiguous n axis).
 *
 * Math: y[t][r] = Σ_{k=0}^{n-1} W[r][k] · x[t][k], with W[r] the bit-exact dequantization of
 * row r (ref/dequant.c). Accumulation: one float32 sum per output, k ascending, no FMA
 * (-ffp-contract=off) — the order every parity test assumes. The error of that sum is
 * bounded by γ_n Σ|W x| (γ_n = n·2⁻²⁴/(1 − n·2⁻²⁴)); tests/test_matmul.c checks it.
 *
 * Memory: one dequantized row in caller scratch; no whole-matrix float copy, no allocation.
 * Not here: activation quantization, threads, SIMD (see backend/ for the fast paths). */
#include "ref/matmul.h"

#include "ref/dequant.h"

#include <math.h>
#include <string.h>

/* Shape and type checks shared by both entry points; names the offending value. */
static glm_status check_args(glm_type type, size_t row_bytes, int64_t rows, int64_t n, int64_t T, const char *op)
{
    if (!glm_ref_dequant_supported(type))
        return glm_errorf(GLM_ERR_UNSUPPORTED, "%s: weight type %s (id %d) is not supported", op, glm_type_name(type),
                          (int)type);
    const glm_type_traits *t = glm_type_info(type);
    if (rows < 0 || n < 0 || T < 0)
        return glm_errorf(GLM_ERR_INVALID, "%s: negative shape rows=%lld n=%lld T=%lld", op, (long long)rows,
                          (long long)n, (long long)T);
    if (n % t->block != 0)
        return glm_errorf(GLM_ERR_INVALID, "%s: row length %lld is not a multiple of the %s block (%u)", op,
                          (long long)n, t->name, t->block);
    if (row_bytes < glm_row_bytes(type, n))
        return glm_errorf(GLM_ERR_INVALID, "%s: row stride %zu bytes < packed %s row of %lld elements (%zu bytes)", op,
                          row_bytes, t->name, (long long)n, glm_row_bytes(type, n));
    return GLM_OK;
}

/* Σ_k a[k]·b[k] in float32, k ascending. */
static float dot_f32(const float *a /*[n]*/, const float *b /*[n]*/, int64_t n)
{
    float acc = 0.0f;
    for (int64_t k = 0; k < n; k++)
        acc += a[k] * b[k];
    return acc;
}

glm_status glm_ref_matvec(float *y /*[rows]*/, const uint8_t *w /*[rows][row_bytes]*/, size_t row_bytes,
                          glm_type type, int64_t rows, int64_t n, const float *x /*[n]*/, float *scratch /*[n]*/)
{
    GLM_TRY(check_args(type, row_bytes, rows, n, 1, "matvec"));
    for (int64_t r = 0; r < rows; r++) {
        glm_ref_dequant_row(scratch, w + (size_t)r * row_bytes, type, n);
        y[r] = dot_f32(scratch, x, n);
    }
    return GLM_OK;
}

glm_status glm_ref_matmul(float *y /*[T][rows]*/, const uint8_t *w /*[rows][row_bytes]*/, size_t row_bytes,
                          glm_type type, int64_t rows, int64_t n, const float *x /*[T][n]*/, int64_t T,
                          float *scratch /*[n]*/)
{
    GLM_TRY(check_args(type, row_bytes, rows, n, T, "matmul"));
    if (T == 0)
        return GLM_OK;
    /* row-outer loop: each weight row is dequantized once and reused by all T tokens */
    for (int64_t r = 0; r < rows; r++) {
        glm_ref_dequant_row(scratch, w + (size_t)r * row_bytes, type, n);
        for (int64_t t = 0; t < T; t++)
            y[t * rows + r] = dot_f32(scratch, x + t * n, n);
    }
    return GLM_OK;
}

uint32_t glm_ref_x8_words(int64_t n) { return (uint32_t)(n / 2); }

/* Word of the codes region holding columns 4i .. 4i + 3 (natural word i); its scale is word
 * n / 4 + that. */
static int64_t x8_word(int64_t i) { return (i & ~(int64_t)63) + 8 * (i & 7) + ((i >> 3) & 7); }

glm_status glm_ref_quant_x8(uint32_t *y, const float *x, int64_t n)
{
    if (n <= 0 || n % 256 != 0)
        return glm_errorf(GLM_ERR_INVALID, "quant_x8: row length %lld is not a positive multiple of 256", (long long)n);
    for (int64_t k = 0; k < n; k++)
        if (!isfinite(x[k]))
            return glm_errorf(GLM_ERR_INVALID, "quant_x8: column %lld is not finite", (long long)k);
    for (int64_t i = 0; i < n / 4; i++) {
        const float *xw = x + 4 * i;
        float m = 0.0f;
        for (int k = 0; k < 4; k++)
            m = fmaxf(m, fabsf(xw[k]));
        float inv = m > 0.0f ? 127.0f / m : 0.0f, d = m / 127.0f;
        uint32_t wd = 0;
        for (int k = 0; k < 4; k++) {
            long c = m > 0.0f ? lrintf(xw[k] * inv) : 0;
            wd |= (uint32_t)(uint8_t)(int8_t)(c > 127 ? 127 : c < -127 ? -127 : c) << (8 * k);
        }
        y[x8_word(i)] = wd;
        memcpy(&y[n / 4 + x8_word(i)], &d, sizeof d);
    }
    return GLM_OK;
}

void glm_ref_x8_dequant(float *x, const uint32_t *x8, int64_t n)
{
    for (int64_t k = 0; k < n; k++) {
        int64_t w = x8_word(k / 4);
        float d;
        memcpy(&d, &x8[n / 4 + w], sizeof d);
        x[k] = d * (float)(int8_t)(uint8_t)(x8[w] >> (8 * (k % 4)));
    }
}
