#version 450
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
// mla_mix_tiled.comp on tensor cores (VK_KHR_cooperative_matrix): u = P·c with the same
// bindings and push constants, a workgroup computing 128 rows (t·H + h) × 128 latent channels
// from float16 copies of P and c as 16×16×16 fragments accumulating in float32. Eight
// subgroups of 32: subgroup s owns channels 32·(s % 4) .. +31 (2 fragments) × rows
// 64·(s / 4) .. +63 (4 fragments). Cache positions advance 32 a step through two staging
// buffers, as in matmul_cm.comp; positions past the tile's last causal position are not
// visited (inside it softmax has made the masked probabilities exactly 0). Finished fragments
// pass through a per-subgroup scratch in shared memory on their way out.
// Push constants mirror glm_vk_mla_mix_push (vk/ops.h).
layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer S { float s[]; };  // [T*H][s_ld]
layout(std430, binding = 1) readonly buffer C { float c[]; };  // pool rows, c at c_off + row*c_ld
layout(std430, binding = 2) readonly buffer POS { int pos[]; };
layout(std430, binding = 3) readonly buffer PT { int ptab[]; };
layout(std430, binding = 4) readonly buffer PG { int pages[]; };
layout(std430, binding = 5) writeonly buffer U { float u[]; }; // [T*H][Rkv]

layout(push_constant) uniform P {
    uint T, H, rkv, s_ld;
    uint c_off, c_ld, s_off, u_off;
    uint pos_off, ptab_off, pages_off, page_size;
} p;

#define TR 128u // rows per tile
#define TK 128u // channels per tile
#define LDA 40u // float16 row stride of the P tile (32 positions + 8)
#define LDB 136u // float16 row stride of the c tile (128 channels + 8)

shared float16_t ps[2u * TR * LDA]; // ps[b·TR·LDA + r·LDA + j]: P[r0 + r][j0 + j]
shared float16_t vs[2u * 32u * LDB]; // vs[b·32·LDB + j·LDB + k]: c[position j0 + j][k0 + k]
shared float cs[8u * 256u];        // a 16 × 16 fragment per subgroup, on the way out

float pv[16], cv[16]; // a step's values of the invocation, fetch to stash

void main()
{
    uint tid = gl_LocalInvocationID.x, sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    uint k0 = gl_WorkGroupID.x * TK, r0 = gl_WorkGroupID.y * TR, rows = p.T * p.H;
    uint rlast = min(r0 + TR - 1u, rows - 1u);
    uint pos0 = uint(pos[p.pos_off]), pt = p.pages_off + uint(ptab[p.ptab_off]);
    uint jend = pos0 + rlast / p.H + 1u; // ≤ pos0 + T: held positions only
    uint ar = tid / 2u, aq = 16u * (tid % 2u);  // P loader: row ar, positions aq .. aq+15
    uint bj = tid / 8u, bq = 16u * (tid % 8u);  // c loader: position bj, channels bq .. bq+15
    uint arow = min(r0 + ar, rows - 1u);
    bool aok = r0 + ar < rows;

    uint sm = 32u * (sg % 4u), sn = 64u * (sg / 4u);
    coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator> acc[4][2];
    [[unroll]] for (uint i = 0u; i < 4u; i++)
        [[unroll]] for (uint j = 0u; j < 2u; j++)
            acc[i][j] = coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>(0.0);

    uint nsteps = (jend + 31u) / 32u;
    for (uint st = 0u; st <= nsteps; st++) {
        uint b = st % 2u;
        if (st < nsteps) { // fetch step st
            uint j0 = 32u * st, jb = j0 + bj;
            uint cj = min(jb, jend - 1u);
            uint crow = uint(pages[pt + cj / p.page_size]) * p.page_size + cj % p.page_size;
            [[unroll]] for (uint e = 0u; e < 16u; e++) {
                uint j = j0 + aq + e, k = k0 + bq + e;
                float sv = s[p.s_off + arow * p.s_ld + min(j, jend - 1u)];
                float v = c[p.c_off + crow * p.c_ld + min(k, p.rkv - 1u)];
                pv[e] = aok && j < jend ? sv : 0.0;
                cv[e] = jb < jend && k < p.rkv ? v : 0.0;
            }
        }
        if (st > 0u) { // multiply step st - 1 out of buffer 1 - b
            uint ob = 1u - b;
            [[unroll]] for (uint kk = 0u; kk < 32u; kk += 16u) {
                coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB> bf[2];
                [[unroll]] for (uint j = 0u; j < 2u; j++) // B[position][channel]: row-major
                    coopMatLoad(bf[j], vs, ob * 32u * LDB + kk * LDB + sm + 16u * j, LDB,
                                gl_CooperativeMatrixLayoutRowMajor);
                [[unroll]] for (uint i = 0u; i < 4u; i++) {
                    coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA> af;
                    coopMatLoad(af, ps, ob * TR * LDA + (sn + 16u * i) * LDA + kk, LDA,
                                gl_CooperativeMatrixLayoutRowMajor);
                    acc[i][0] = coopMatMulAdd(af, bf[0], acc[i][0]);
                    acc[i][1] = coopMatMulAdd(af, bf[1], acc[i][1]);
                }
            }
        }
        if (st < nsteps) { // stash step st into buffer b
            uint oa = b * TR * LDA + ar * LDA + aq, ob2 = b * 32u * LDB + bj * LDB + bq;
            [[unroll]] for (uint e = 0u; e < 16u; e++) {
                ps[oa + e] = float16_t(pv[e]);
                vs[ob2 + e] = float16_t(cv[e]);
            }
        }
        barrier();
    }

    [[unroll]] for (uint i = 0u; i < 4u; i++)
        [[unroll]] for (uint j = 0u; j < 2u; j++) {
            uint rf = r0 + sn + 16u * i, kf = k0 + sm + 16u * j; // the fragment's first row and channel
            if (rf >= rows || kf >= p.rkv)
                continue;
            coopMatStore(acc[i][j], cs, sg * 256u, 16u, gl_CooperativeMatrixLayoutRowMajor);
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            for (uint e = lane; e < 256u; e += 32u) {
                uint row = rf + e / 16u, k = kf + e % 16u;
                if (row < rows && k < p.rkv)
                    u[p.u_off + row * p.rkv + k] = cs[sg * 256u + e];
            }
            subgroupMemoryBarrierShared();
            subgroupBarrier();
        }
}
