/* Scalar reference products of a weight matrix in any supported ggml type with float32
 * activations: y = W·x for one token (matvec) and for T tokens (matmul, prefill).
 * W is `rows` rows of `n` elements, row r at w + r*row_bytes (row_bytes >= the packed row
 * size, so a 3-D expert slab or a padded layout works). Each row is dequantized once into
 * caller scratch (ref/dequant.c) and dotted in float32 in index order.
 * Not here: activation quantization (ggml's Q8_K path; we keep x in float32), threading,
 * expert routing (callers pick the slab), or anything faster than plain loops. */
#ifndef GLM_REF_MATMUL_H
#define GLM_REF_MATMUL_H

#include <stddef.h>
#include <stdint.h>

#include "model/types.h"
#include "util/status.h"

/* y[r] = Σ_{k<n} W[r][k]·x[k], r < rows. scratch holds n floats (one dequantized row).
 * GLM_ERR_UNSUPPORTED for a type without a dequantizer, GLM_ERR_INVALID for n not a
 * multiple of the block, rows/n < 0, or row_bytes smaller than a packed row; y untouched
 * then. */
glm_status glm_ref_matvec(float *y /*[rows]*/, const uint8_t *w /*[rows][row_bytes]*/, size_t row_bytes,
                          glm_type type, int64_t rows, int64_t n, const float *x /*[n]*/, float *scratch /*[n]*/);

/* y[t][r] = Σ_k W[r][k]·x[t][k] for t < T (ggml mul_mat: output row per token). Exactly T
 * matvecs (bit-identical to them), but each weight row is dequantized once for all T. */
glm_status glm_ref_matmul(float *y /*[T][rows]*/, const uint8_t *w /*[rows][row_bytes]*/, size_t row_bytes,
                          glm_type type, int64_t rows, int64_t n, const float *x /*[T][n]*/, int64_t T,
                          float *scratch /*[n]*/);

/* 8-bit activations (the Vulkan decode products' x, shaders/quant_x8.comp): a row of n
 * columns (a multiple of 256) in words of 4 columns, each with its scale d = max|x| / 127
 * (float32 division) and codes q = x · (127 / max|x|) rounded half to even, clamped to ±127 (all
 * 0 where the 4 are 0). Laid out in glm_ref_x8_words(n) = n / 2 32-bit words: the codes (4 a
 * word, little-endian), then each word's scale (float32 bits) in the same order, where the 64
 * words of each 256 columns are the 8 × 8 words of the natural order transposed (word 8c + g of
 * them holds columns 32g + 4c .. 32g + 4c + 3). GLM_ERR_INVALID for n not a multiple of 256 or a
 * non-finite x (y untouched). */
uint32_t glm_ref_x8_words(int64_t n);
glm_status glm_ref_quant_x8(uint32_t *y /*[glm_ref_x8_words(n)]*/, const float *x /*[n]*/, int64_t n);
/* x[k] = d · q of column k: the row glm_ref_quant_x8 stands for. A product with x8 is
 * glm_ref_matvec with this row as x. */
void glm_ref_x8_dequant(float *x /*[n]*/, const uint32_t *x8, int64_t n);

#endif
