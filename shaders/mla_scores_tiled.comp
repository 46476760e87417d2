#version 450
#extension GL_EXT_control_flow_attributes : require
// Absorbed-MLA scores of one prefill run (model-spec §2.5): T rows of one sequence at the
// consecutive positions pos0 .. pos0 + T - 1 (pos0 = pos[pos_off], its page list at
// ptab[ptab_off] of `pages`), s[t·H + h][j] = scale·(qlat·c_j + q_rope·kr_j) for positions
// j < s_ld, −inf past the causal limit pos0 + t. Key j is read from pool row
// pages[pt + j / page_size]·page_size + j % page_size (engine/kvcache.h). A tiled product: a
// workgroup computes 64 query rows × 64 positions, staging 32-wide slices of [qlat | q_rope]
// and [c | kr] in shared memory (float32), each invocation 4 × 4 scores; tiles wholly above
// the causal diagonal only write −inf. A row's scores depend on nothing but its own query
// and its sequence's keys. Push constants mirror glm_vk_mla_scores_push (vk/ops.h).
layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer QL { float qlat[]; }; // [T*H][Rkv]
layout(std430, binding = 1) readonly buffer Q { float q[]; };     // row t, head h at q_off + t*q_ld + h*dqk + dn
layout(std430, binding = 2) readonly buffer C { float c[]; };     // pool rows, c at c_off + row*c_ld
layout(std430, binding = 3) readonly buffer KR { float kr[]; };   // pool rows, kr at kr_off + row*kr_ld
layout(std430, binding = 4) readonly buffer POS { int pos[]; };
layout(std430, binding = 5) readonly buffer PT { int ptab[]; };
layout(std430, binding = 6) readonly buffer PG { int pages[]; };
layout(std430, binding = 7) writeonly buffer S { float s[]; };    // [T*H][s_ld]

layout(push_constant) uniform P {
    uint T, H, rkv, dr;
    uint dqk, dn, s_ld, s_off;
    uint q_off, q_ld, c_off, c_ld;
    uint kr_off, kr_ld, qlat_off, pos_off;
    uint ptab_off, pages_off, page_size;
    float scale;
    uint pad0, pad1, pad2, pad3;
} p;

shared float as[32][65]; // as[k][r]: query row r0 + r
shared float bs[32][65]; // bs[k][j]: cache position j0 + j

// acc[a][b] += Σ_k as[k][tr + 16a] · bs[k][tk + 16b] over the 32 staged columns.
void tile_products(uint tr, uint tk, inout float acc[4][4])
{
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
}

void main()
{
    uint tid = gl_LocalInvocationID.x;
    uint j0 = gl_WorkGroupID.x * 64u, r0 = gl_WorkGroupID.y * 64u, rows = p.T * p.H;
    uint tk = tid % 16u, tr = tid / 16u; // outputs: rows tr + 16a, positions tk + 16b
    uint rlast = min(r0 + 63u, rows - 1u), pos0 = uint(pos[p.pos_off]), n_kv = pos0 + p.T;
    if (j0 > pos0 + rlast / p.H) { // the whole tile is masked
        [[unroll]] for (uint a = 0u; a < 4u; a++)
            [[unroll]] for (uint b = 0u; b < 4u; b++) {
                uint row = r0 + tr + 16u * a, j = j0 + tk + 16u * b;
                if (row < rows && j < p.s_ld)
                    s[p.s_off + row * p.s_ld + j] = -1.0 / 0.0;
            }
        return;
    }
    float acc[4][4];
    [[unroll]] for (uint a = 0u; a < 4u; a++)
        [[unroll]] for (uint b = 0u; b < 4u; b++)
            acc[a][b] = 0.0;
    uint lr = tid / 4u, lq = 8u * (tid % 4u); // loader: row / position lr, columns lq .. lq+7
    // loads from clamped (always valid) places, zeroed by selects: no branch separates a
    // step's loads, so all of them are in flight before the first is used
    uint lrow = r0 + lr, crow = min(lrow, rows - 1u), lt = crow / p.H, lh = crow % p.H, lj = j0 + lr;
    uint cj = min(lj, n_kv - 1u); // a held position: its page exists
    uint pt = p.pages_off + uint(ptab[p.ptab_off]);
    uint prow = uint(pages[pt + cj / p.page_size]) * p.page_size + cj % p.page_size;
    bool rok = lrow < rows, jok = lj < n_kv;
    // the latent part (K = rkv)
    for (uint k0 = 0u; k0 < p.rkv; k0 += 32u) {
        [[unroll]] for (uint e = 0u; e < 8u; e++) {
            uint k = k0 + lq + e, ck = min(k, p.rkv - 1u);
            float av = qlat[p.qlat_off + crow * p.rkv + ck], bv = c[p.c_off + prow * p.c_ld + ck];
            as[lq + e][lr] = rok && k < p.rkv ? av : 0.0;
            bs[lq + e][lr] = jok && k < p.rkv ? bv : 0.0;
        }
        barrier();
        tile_products(tr, tk, acc);
        barrier();
    }
    // the rope part (K = dr)
    for (uint k0 = 0u; k0 < p.dr; k0 += 32u) {
        [[unroll]] for (uint e = 0u; e < 8u; e++) {
            uint k = k0 + lq + e, ck = min(k, p.dr - 1u);
            float av = q[p.q_off + lt * p.q_ld + lh * p.dqk + p.dn + ck], bv = kr[p.kr_off + prow * p.kr_ld + ck];
            as[lq + e][lr] = rok && k < p.dr ? av : 0.0;
            bs[lq + e][lr] = jok && k < p.dr ? bv : 0.0;
        }
        barrier();
        tile_products(tr, tk, acc);
        barrier();
    }
    [[unroll]] for (uint a = 0u; a < 4u; a++)
        [[unroll]] for (uint b = 0u; b < 4u; b++) {
            uint row = r0 + tr + 16u * a, j = j0 + tk + 16u * b;
            if (row < rows && j < p.s_ld)
                s[p.s_off + row * p.s_ld + j] = j > pos0 + row / p.H ? -1.0 / 0.0 : acc[a][b] * p.scale;
        }
}
