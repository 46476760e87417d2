#version 450
#extension GL_EXT_control_flow_attributes : require
// mla_scores.comp for prefill: the same scores (push constants and bindings identical), as
// a tiled product. A workgroup computes 64 query rows (row = t·H + h) × 64 cache positions,
// staging 32-wide slices of [qlat | q_rope] and [c | kr] in shared memory (float32), each
// invocation 4 × 4 scores. Tiles wholly above the causal diagonal only write −inf.
layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer QL { float qlat[]; }; // [T*H][Rkv]
layout(std430, binding = 1) readonly buffer Q { float q[]; };     // row t, head h at q_off + t*q_ld + h*dqk + dn
layout(std430, binding = 2) readonly buffer C { float c[]; };     // view [ctx][Rkv]
layout(std430, binding = 3) readonly buffer KR { float kr[]; };   // view [ctx][dr]
layout(std430, binding = 4) writeonly buffer S { float s[]; };    // [T*H][n_kv]

layout(push_constant) uniform P {
    uint T, H, rkv, dr;
    uint dqk, dn, pos0, n_kv;
    uint q_off, q_ld, c_off, c_ld;
    uint kr_off, kr_ld, qlat_off, s_off;
    float scale;
    uint pad0, pad1, pad2;
} p;

shared float as[32][65]; // as[k][r]: query row r0 + r
shared float bs[32][65]; // bs[k][j]: cache position j0 + j

void main()
{
    uint tid = gl_LocalInvocationID.x;
    uint j0 = gl_WorkGroupID.x * 64u, r0 = gl_WorkGroupID.y * 64u, rows = p.T * p.H;
    uint tk = tid % 16u, tr = tid / 16u; // outputs: rows tr + 16a, positions tk + 16b
    uint rlast = min(r0 + 63u, rows - 1u);
    if (j0 > p.pos0 + rlast / p.H) { // the whole tile is masked
        [[unroll]] for (uint a = 0u; a < 4u; a++)
            [[unroll]] for (uint b = 0u; b < 4u; b++) {
                uint row = r0 + tr + 16u * a, j = j0 + tk + 16u * b;
                if (row < rows && j < p.n_kv)
                    s[p.s_off + row * p.n_kv + j] = -1.0 / 0.0;
            }
        return;
    }
    float acc[4][4];
    [[unroll]] for (uint a = 0u; a < 4u; a++)
        [[unroll]] for (uint b = 0u; b < 4u; b++)
            acc[a][b] = 0.0;
    uint lr = tid / 4u, lq = 8u * (tid % 4u); // loader: row / position lr, columns lq .. lq+7
    uint lrow = r0 + lr, lt = lrow / p.H, lh = lrow % p.H, lj = j0 + lr;
    // the latent part (K = rkv), then the rope part (K = dr)
    for (uint part = 0u; part < 2u; part++) {
        uint K = part == 0u ? p.rkv : p.dr;
        for (uint k0 = 0u; k0 < K; k0 += 32u) {
            [[unroll]] for (uint e = 0u; e < 8u; e++) {
                uint k = k0 + lq + e;
                float av = 0.0, bv = 0.0;
                if (lrow < rows && k < K)
                    av = part == 0u ? qlat[p.qlat_off + lrow * p.rkv + k] : q[p.q_off + lt * p.q_ld + lh * p.dqk + p.dn + k];
                if (lj < p.n_kv && k < K)
                    bv = part == 0u ? c[p.c_off + lj * p.c_ld + k] : kr[p.kr_off + lj * p.kr_ld + k];
                as[lq + e][lr] = av;
                bs[lq + e][lr] = bv;
            }
            barrier();
            [[unroll]] for (uint kk = 0u; kk < 32u; kk++) {
                float x[4], y[4];
                [[unroll]] for (uint a = 0u; a < 4u; a++) {
                    x[a] = as[kk][tr + 16u * a];
                    y[a] = bs[kk][tk + 16u * a];
                }
                [[unroll]] for (uint a = 0u; a < 4u; a++)
                    [[unroll]] for (uint b = 0u; b < 4u; b++)
                        acc[a][b] += x[a] * y[b];
            }
            barrier();
        }
    }
    [[unroll]] for (uint a = 0u; a < 4u; a++)
        [[unroll]] for (uint b = 0u; b < 4u; b++) {
            uint row = r0 + tr + 16u * a, j = j0 + tk + 16u * b;
            if (row < rows && j < p.n_kv)
                s[p.s_off + row * p.n_kv + j] = j > p.pos0 + row / p.H ? -1.0 / 0.0 : acc[a][b] * p.scale;
        }
}
