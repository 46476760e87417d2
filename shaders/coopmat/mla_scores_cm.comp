#version 450
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
// mla_scores_tiled.comp on tensor cores (VK_KHR_cooperative_matrix): the same scores, bindings
// and push constants, with a workgroup computing 128 query rows × 128 positions from float16
// copies of [qlat | q_rope] and [c | kr] as 16×16×16 fragments accumulating in float32.
// Eight subgroups of 32: subgroup s owns positions 32·(s % 4) .. +31 (2 fragments) × rows
// 64·(s / 4) .. +63 (4 fragments). The shared dimension (rkv + dr, the latent then the rope
// part) advances 32 columns a step through two staging buffers, as in matmul_cm.comp.
// Finished fragments pass through a per-subgroup scratch in shared memory on their way out,
// where the scale and the causal mask are applied. Tiles wholly above the causal diagonal
// only write −inf. Push constants mirror glm_vk_mla_scores_push (vk/ops.h).
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

#define TR 128u // query rows per tile
#define TJ 128u // positions per tile
#define LDH 40u // float16 row stride of the staging tiles (32 + 8: no bank conflicts)

shared float16_t qs[2u * TR * LDH]; // qs[b·TR·LDH + r·LDH + k]: query row r0 + r, column 32·step + k
shared float16_t ks[2u * TJ * LDH]; // ks[b·TJ·LDH + j·LDH + k]: position j0 + j
shared float cs[8u * 256u];       // a 16 × 16 fragment per subgroup, on the way out

float qv[16], kv[16]; // a step's 16 columns of the invocation's query row and key, fetch to stash

// Column k of the concatenated [latent | rope] width: the query's and the key's value.
float query_at(uint row, uint k)
{
    if (k < p.rkv)
        return qlat[p.qlat_off + row * p.rkv + k];
    uint t = row / p.H, h = row % p.H;
    return q[p.q_off + t * p.q_ld + h * p.dqk + p.dn + k - p.rkv];
}

float key_at(uint prow, uint k)
{
    return k < p.rkv ? c[p.c_off + prow * p.c_ld + k] : kr[p.kr_off + prow * p.kr_ld + k - p.rkv];
}

void main()
{
    uint tid = gl_LocalInvocationID.x, sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    uint j0 = gl_WorkGroupID.x * TJ, r0 = gl_WorkGroupID.y * TR, rows = p.T * p.H;
    uint rlast = min(r0 + TR - 1u, rows - 1u), pos0 = uint(pos[p.pos_off]), n_kv = pos0 + p.T;
    if (j0 > pos0 + rlast / p.H) { // the whole tile is masked
        for (uint e = tid; e < TR * TJ; e += 256u) {
            uint row = r0 + e / TJ, j = j0 + e % TJ;
            if (row < rows && j < p.s_ld)
                s[p.s_off + row * p.s_ld + j] = -1.0 / 0.0;
        }
        return;
    }
    // loader: query row / position tid / 2, columns 16·(tid % 2) .. +15 of each step
    uint lr = tid / 2u, lc = 16u * (tid % 2u);
    uint lrow = r0 + lr, lj = j0 + lr;
    bool rok = lrow < rows, jok = lj < n_kv;
    uint pt = p.pages_off + uint(ptab[p.ptab_off]);
    uint cj = min(lj, n_kv - 1u); // a held position: its page exists
    uint prow = uint(pages[pt + cj / p.page_size]) * p.page_size + cj % p.page_size;
    uint kw = p.rkv + p.dr, nsteps = (kw + 31u) / 32u;

    uint sm = 32u * (sg % 4u), sn = 64u * (sg / 4u);
    coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator> acc[4][2];
    [[unroll]] for (uint i = 0u; i < 4u; i++)
        [[unroll]] for (uint j = 0u; j < 2u; j++)
            acc[i][j] = coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>(0.0);

    for (uint st = 0u; st <= nsteps; st++) {
        uint b = st % 2u;
        if (st < nsteps) { // fetch step st into registers
            [[unroll]] for (uint e = 0u; e < 16u; e++) {
                uint k = 32u * st + lc + e;
                qv[e] = rok && k < kw ? query_at(lrow, k) : 0.0;
                kv[e] = jok && k < kw ? key_at(prow, k) : 0.0;
            }
        }
        if (st > 0u) { // multiply step st - 1 out of buffer 1 - b
            uint ob = 1u - b;
            [[unroll]] for (uint kk = 0u; kk < 32u; kk += 16u) {
                coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB> bf[2];
                [[unroll]] for (uint j = 0u; j < 2u; j++) // B[k][j] = key j's column k: column-major
                    coopMatLoad(bf[j], ks, ob * TJ * LDH + (sm + 16u * j) * LDH + kk, LDH,
                                gl_CooperativeMatrixLayoutColumnMajor);
                [[unroll]] for (uint i = 0u; i < 4u; i++) {
                    coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA> af;
                    coopMatLoad(af, qs, ob * TR * LDH + (sn + 16u * i) * LDH + kk, LDH,
                                gl_CooperativeMatrixLayoutRowMajor);
                    acc[i][0] = coopMatMulAdd(af, bf[0], acc[i][0]);
                    acc[i][1] = coopMatMulAdd(af, bf[1], acc[i][1]);
                }
            }
        }
        if (st < nsteps) { // stash step st into buffer b
            uint o = b * TR * LDH + lr * LDH + lc;
            [[unroll]] for (uint e = 0u; e < 16u; e++) {
                qs[o + e] = float16_t(qv[e]);
                ks[o + e] = float16_t(kv[e]);
            }
        }
        barrier();
    }

    [[unroll]] for (uint i = 0u; i < 4u; i++)
        [[unroll]] for (uint j = 0u; j < 2u; j++) {
            uint rf = r0 + sn + 16u * i, jf = j0 + sm + 16u * j; // the fragment's first row and position
            if (rf >= rows || jf >= p.s_ld)
                continue;
            coopMatStore(acc[i][j], cs, sg * 256u, 16u, gl_CooperativeMatrixLayoutRowMajor);
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            for (uint e = lane; e < 256u; e += 32u) {
                uint row = rf + e / 16u, jj = jf + e % 16u;
                if (row < rows && jj < p.s_ld)
                    s[p.s_off + row * p.s_ld + jj] = jj > pos0 + row / p.H ? -1.0 / 0.0 : cs[sg * 256u + e] * p.scale;
            }
            subgroupMemoryBarrierShared();
            subgroupBarrier();
        }
}
