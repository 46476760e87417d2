#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
// Tiled matrix products for many token rows (prefill): a workgroup computes 64 weight rows ×
// 64 token rows. Each 64-column step dequantizes the weight tile once into shared memory
// (float32) and reuses it for all 64 tokens, so weights are read once per 64 tokens instead
// of once per token as in matvec.comp. Float32 arithmetic throughout; each invocation owns a
// 4 × 4 block of outputs. The weight type is specialization constant 0; the modes (plain,
// grouped experts) are described in matmul_tile.glsl. Mirrors ref/matmul.c.
#define BM 64u
#define BN 64u
#define WG_SIZE 256u
layout(local_size_x = 256) in;

#include "matmul_tile.glsl"

shared float ws[32][BM + 1]; // ws[k][m] = W[m0 + m][64·step + 32·half + k]
shared float xs[32][BN + 1]; // xs[k][s] = x[slot s][64·step + 32·half + k]

void main()
{
    uint wbase;
    if (!tile_rows(wbase))
        return;
    uint tid = gl_LocalInvocationID.x;
    uint m0 = gl_WorkGroupID.x * BM;
    uint tm = tid % 16u, tn = tid / 16u;
    float acc[4][4];
    [[unroll]] for (uint i = 0u; i < 4u; i++)
        [[unroll]] for (uint j = 0u; j < 4u; j++)
            acc[i][j] = 0.0;
    barrier(); // tok_x / tok_y written
    uint nchunks = p.ncols / 32u, nsteps = (nchunks + 1u) / 2u;
    fetch_step(wbase, m0, 0u, nchunks);
    // a step is two halves of 32 columns through shared memory (lavapipe allows 32 KiB);
    // an invocation's loads all lie in half (tid % 8) / 4 (fetch_step's layout, WG_SIZE % 8 == 0)
    for (uint st = 0u; st < nsteps; st++) {
        for (uint half_ = 0u; half_ < 2u; half_++) {
            if ((tid % 8u) / 4u == half_) {
                [[unroll]] for (uint it = 0u; it < LOADS; it++) {
                    uint r = (tid + it * WG_SIZE) / 8u, k = 8u * (tid % 4u);
                    [[unroll]] for (uint j = 0u; j < 8u; j++) {
                        ws[k + j][r] = wreg[it][j];
                        xs[k + j][r] = xreg[it][j];
                    }
                }
            }
            barrier();
            if (half_ == 1u && st + 1u < nsteps)
                fetch_step(wbase, m0, st + 1u, nchunks);
            [[unroll]] for (uint kk = 0u; kk < 32u; kk++) {
                float a[4], b[4];
                [[unroll]] for (uint i = 0u; i < 4u; i++) {
                    a[i] = ws[kk][tm + 16u * i];
                    b[i] = xs[kk][tn + 16u * i];
                }
                [[unroll]] for (uint i = 0u; i < 4u; i++)
                    [[unroll]] for (uint j = 0u; j < 4u; j++)
                        acc[i][j] += a[i] * b[j];
            }
            barrier();
        }
    }
    [[unroll]] for (uint i = 0u; i < 4u; i++)
        [[unroll]] for (uint j = 0u; j < 4u; j++)
            store_y(tn + 16u * j, m0 + tm + 16u * i, acc[i][j]);
}
