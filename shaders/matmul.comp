#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
// Tiled matrix products for many token rows (prefill): a workgroup computes 64 weight rows ×
// 64 token rows. Each 32-column step dequantizes the weight tile once into shared memory
// (float32) and reuses it for all 64 tokens, so weights are read once per 64 tokens instead
// of once per token as in matvec.comp. Float32 arithmetic throughout; each invocation owns a
// 4 × 4 block of outputs. The weight type is specialization constant 0; the modes (plain,
// grouped experts) are described in matmul_tile.glsl. Mirrors ref/matmul.c.
#define BM 64u
#define BN 64u
#define WG_SIZE 256u
layout(local_size_x = 256) in;

#include "matmul_tile.glsl"

shared float ws[32][BM + 1]; // ws[k][m] = W[m0 + m][32c + k]
shared float xs[32][BN + 1]; // xs[k][s] = x[slot s][32c + k]

void main()
{
    uint wbase;
    if (!tile_rows(wbase))
        return;
    uint tid = gl_LocalInvocationID.x;
    uint m0 = gl_WorkGroupID.x * BM;
    uint lr = tid / 4u, lq = tid % 4u; // loader: row lr, elements 8·lq .. 8·lq+7
    uint tm = tid % 16u, tn = tid / 16u;
    float acc[4][4];
    [[unroll]] for (uint i = 0u; i < 4u; i++)
        [[unroll]] for (uint j = 0u; j < 4u; j++)
            acc[i][j] = 0.0;
    barrier(); // tok_x / tok_y written
    uint nchunks = p.ncols / 32u;
    float v[8];
    for (uint c = 0u; c < nchunks; c++) {
        load_w8(wbase, m0 + lr, c, lq, v);
        [[unroll]] for (uint j = 0u; j < 8u; j++)
            ws[8u * lq + j][lr] = v[j];
        load_x8(lr, c, lq, v);
        [[unroll]] for (uint j = 0u; j < 8u; j++)
            xs[8u * lq + j][lr] = v[j];
        barrier();
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
    [[unroll]] for (uint i = 0u; i < 4u; i++)
        [[unroll]] for (uint j = 0u; j < 4u; j++)
            store_y(tn + 16u * j, m0 + tm + 16u * i, acc[i][j]);
}
