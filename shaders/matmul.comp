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

// The tile's token rows: slot s (< BN) reads x row tok_x[s] and writes y row tok_y[s];
// -1 marks an empty slot. Filled by fill_rows() before the first barrier.
shared int tok_x[BN];
shared int tok_y[BN];

void fill_rows()
{
    for (uint s = gl_LocalInvocationID.x; s < BN; s += WG_SIZE) {
        int xr, yr;
        slot_rows(s, xr, yr);
        tok_x[s] = xr;
        tok_y[s] = yr;
    }
}

// Columns 32c + 8q .. +7 of the x row in slot s (zeros for an empty slot or `valid` false;
// row 0 is read instead, so the loads need no branch).
void load_x8(uint s, uint c, uint q, bool valid, out float v[8])
{
    int t = tok_x[s];
    uint o = x_base + uint(max(t, 0)) * p.x_ld + c * 32u + 8u * q;
    bool use = valid && t >= 0;
    [[unroll]] for (uint j = 0u; j < 8u; j++) {
        float xv = x[o + j];
        v[j] = use ? xv : 0.0;
    }
}

// One step of the shared dimension: columns 64·step .. +63 (two chunks) of the tile's 64
// weight rows and 64 token slots, held in registers between fetch_step and the kernel's copy
// into shared memory so that the loads of the next step overlap the products of this one.
// Element e of load it is row / slot r = idx / 8, column 32·(part / 4) + 8·(part % 4) + e,
// where idx = invocation + it·WG_SIZE and part = idx % 8. Chunks past the row are zeros.
#define LOADS (64u * 8u / WG_SIZE)
float wreg[LOADS][8], xreg[LOADS][8];

void fetch_step(uint wbase, uint m0, uint step, uint nchunks)
{
    [[unroll]] for (uint it = 0u; it < LOADS; it++) {
        uint idx = gl_LocalInvocationID.x + it * WG_SIZE, r = idx / 8u, part = idx % 8u;
        uint c = 2u * step + part / 4u, q = part % 4u;
        bool valid = c < nchunks; // a chunk past the row (odd chunk count): zeros
        c = min(c, nchunks - 1u);
        float v[8];
        load_w8(wbase, m0 + r, c, q, valid && m0 + r < p.nrows, v);
        wreg[it] = v;
        load_x8(r, c, q, valid, v);
        xreg[it] = v;
    }
}

void store_y(uint s, uint m, float v)
{
    int t = tok_y[s];
    if (t >= 0 && m < p.nrows)
        y[y_base + uint(t) * p.y_ld + m] = v;
}

shared float ws[32][BM + 1]; // ws[k][m] = W[m0 + m][64·step + 32·half + k]
shared float xs[32][BN + 1]; // xs[k][s] = x[slot s][64·step + 32·half + k]

void main()
{
    uint wbase;
    if (!tile_rows(wbase))
        return;
    fill_rows();
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
