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
// 64·(s / 4) .. +63 (4 fragments), held in named variables (an array of fragments may live
// in local memory). The shared dimension (rkv + dr, the latent then the rope part) advances
// 32 columns a step through two staging buffers, as in matmul_cm.comp; an invocation fetches
// 16 columns of one query row and one key a step, as vec4s where every width and offset is a
// multiple of 4 floats (the model's layout), else element by element. Finished fragments
// pass through a per-subgroup scratch in shared memory on their way out, where the scale and
// the causal mask are applied. Tiles wholly above the causal diagonal only write −inf.
// With pack16 set, the operands come from float16 copies in the scratch (mla_pack16.comp:
// rows of ld16 uints, keys contiguous from position 0, zero past the row and past n_kv):
// half the bytes, two 16-byte loads a step for each of the invocation's query row and key.
// Push constants mirror glm_vk_mla_scores_push (vk/ops.h).
layout(local_size_x = 256) in;
// constant_id 0, AHEAD (bit 0; GLM_VK_MLA_AHEAD=0 clears it): with pack16, an invocation's loads
// run two steps ahead of the products (two register sets), where one step's products did not
// cover their latency.
// Bit 1, DIRECT (GLM_VK_MLA_DIRECT=0 clears it): a fragment wholly inside the rows, the row
// length and the causal bound goes straight to s (scaled), not through the scratch.
// Bit 2, PACK16: the host's pack16, known when the pipeline is built (the float32 paths compile
// away). Bit 3, ROLL (GLM_VK_MLA_ROLL=1): a step's two 16-column products in a loop that is not
// unrolled (fewer fragments loaded ahead: fewer registers).
layout(constant_id = 0) const uint MODE = 0;
const bool AHEAD2 = (MODE & 1u) != 0u, DIRECT = (MODE & 2u) != 0u, PACK16 = (MODE & 4u) != 0u;
const bool ROLL = (MODE & 8u) != 0u;

layout(std430, binding = 0) readonly buffer QL { float qlat[]; }; // [T*H][Rkv]
layout(std430, binding = 0) readonly buffer QL4 { vec4 qlat4[]; };
layout(std430, binding = 0) readonly buffer QH { uvec4 qh16[]; };  // K16 / Q16 (pack16)
layout(std430, binding = 1) readonly buffer Q { float q[]; };     // row t, head h at q_off + t*q_ld + h*dqk + dn
layout(std430, binding = 1) readonly buffer Q4 { vec4 q4[]; };
layout(std430, binding = 2) readonly buffer C { float c[]; };     // pool rows, c at c_off + row*c_ld
layout(std430, binding = 2) readonly buffer C4 { vec4 c4[]; };
layout(std430, binding = 3) readonly buffer KR { float kr[]; };   // pool rows, kr at kr_off + row*kr_ld
layout(std430, binding = 3) readonly buffer KR4 { vec4 kr4[]; };
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
    uint pack16, k16_off, q16_off, ld16; // float16 copies: uint offsets and row length
} p;

#define TR 128u // query rows per tile
#define TJ 128u // positions per tile
#define LDH 40u // float16 row stride of the staging tiles (32 + 8: no bank conflicts)

// As float16 quadruples (8-byte stores): element (b·TR·LDH + r·LDH + k) / 4 holds query row
// r0 + r, columns 32·step + k .. +3 (k a multiple of 4); ks likewise for position j0 + j.
shared f16vec4 qs[2u * TR * LDH / 4u];
shared f16vec4 ks[2u * TJ * LDH / 4u];
shared float cs[8u * 256u];       // a 16 × 16 fragment per subgroup, on the way out

vec4 qv[4], kv[4]; // a step's 16 columns of the invocation's query row and key, fetch to stash
uvec4 qh[2], kh[2]; // the same as float16 pairs (pack16)

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

#define ACC coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>

// Writes the subgroup's fragment of query rows rf .. +15 × positions jf .. +15, scaled and
// masked, through its scratch.
void put_frag(ACC a, uint rf, uint jf, uint rows, uint pos0)
{
    if (rf >= rows || jf >= p.s_ld)
        return;
    if (DIRECT && ((p.s_off | p.s_ld) & 3u) == 0u && rf + 16u <= rows && jf + 16u <= p.s_ld &&
        jf + 15u <= pos0 + rf / p.H) {
        a = a * p.scale;
        coopMatStore(a, s, p.s_off + rf * p.s_ld + jf, p.s_ld, gl_CooperativeMatrixLayoutRowMajor);
        return;
    }
    uint sg = gl_SubgroupID;
    coopMatStore(a, cs, sg * 256u, 16u, gl_CooperativeMatrixLayoutRowMajor);
    subgroupMemoryBarrierShared();
    subgroupBarrier();
    for (uint e = gl_SubgroupInvocationID; e < 256u; e += 32u) {
        uint row = rf + e / 16u, jj = jf + e % 16u;
        if (row < rows && jj < p.s_ld)
            s[p.s_off + row * p.s_ld + jj] = jj > pos0 + row / p.H ? -1.0 / 0.0 : cs[sg * 256u + e] * p.scale;
    }
    subgroupMemoryBarrierShared();
    subgroupBarrier();
}

#define FRAG_ROW(OB, I, A0, A1)                                                                               \
    {                                                                                                         \
        coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA> af;                                       \
        coopMatLoad(af, qs, ((OB) * TR * LDH + (sn + 16u * I) * LDH + kk) / 4u, LDH / 4u,                       \
                    gl_CooperativeMatrixLayoutRowMajor);                                                      \
        A0 = coopMatMulAdd(af, bf0, A0);                                                                      \
        A1 = coopMatMulAdd(af, bf1, A1);                                                                      \
    }
// The products of the step staged in buffer OB (B[k][j] = key j's column k: column-major).
#define MULT_K(OB)                                                                                            \
    {                                                                                                         \
        coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB> bf0, bf1;                                 \
        coopMatLoad(bf0, ks, ((OB) * TJ * LDH + sm * LDH + kk) / 4u, LDH / 4u, gl_CooperativeMatrixLayoutColumnMajor);\
        coopMatLoad(bf1, ks, ((OB) * TJ * LDH + (sm + 16u) * LDH + kk) / 4u, LDH / 4u, gl_CooperativeMatrixLayoutColumnMajor);\
        FRAG_ROW(OB, 0u, a00, a01)                                                                            \
        FRAG_ROW(OB, 1u, a10, a11)                                                                            \
        FRAG_ROW(OB, 2u, a20, a21)                                                                            \
        FRAG_ROW(OB, 3u, a30, a31)                                                                            \
    }
#define MULT(OB)                                                                                              \
    {                                                                                                         \
        if (ROLL) {                                                                                           \
            [[dont_unroll]] for (uint kk = 0u; kk < 32u; kk += 16u)                                           \
                MULT_K(OB)                                                                                    \
        } else {                                                                                              \
            [[unroll]] for (uint kk = 0u; kk < 32u; kk += 16u)                                                \
                MULT_K(OB)                                                                                    \
        }                                                                                                     \
    }
// pack16: step ST's 16 columns (8 uints, 2 uvec4) of the invocation's query row and key
#define FETCH16(ST, QH, KH)                                                                                   \
    {                                                                                                         \
        uint k_ = (32u * (ST) + lc) / 2u;                                                                     \
        [[unroll]] for (uint v = 0u; v < 2u; v++) {                                                           \
            QH[v] = rok ? qh16[(p.q16_off + crow * p.ld16 + k_) / 4u + v] : uvec4(0u);                        \
            KH[v] = jok ? qh16[(p.k16_off + lj * p.ld16 + k_) / 4u + v] : uvec4(0u);                          \
        }                                                                                                     \
    }
// ... stashed into buffer B, the halves as they are
#define STASH16(B, QH, KH)                                                                                    \
    {                                                                                                         \
        uint o_ = ((B) * TR * LDH + lr * LDH + lc) / 4u;                                                      \
        [[unroll]] for (uint e = 0u; e < 4u; e++) {                                                           \
            qs[o_ + e] = f16vec4(unpackFloat2x16(QH[e / 2u][2u * (e % 2u)]),                                  \
                                 unpackFloat2x16(QH[e / 2u][2u * (e % 2u) + 1u]));                            \
            ks[o_ + e] = f16vec4(unpackFloat2x16(KH[e / 2u][2u * (e % 2u)]),                                  \
                                 unpackFloat2x16(KH[e / 2u][2u * (e % 2u) + 1u]));                            \
        }                                                                                                     \
    }

void main()
{
    uint tid = gl_LocalInvocationID.x, sg = gl_SubgroupID;
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
    // vec4 fetches: every width, stride and offset a multiple of 4 floats
    bool vec = ((p.rkv | p.dr | p.dqk | p.dn | p.q_off | p.q_ld | p.c_off | p.c_ld | p.kr_off | p.kr_ld | p.qlat_off) &
                3u) == 0u;
    uint crow = min(lrow, rows - 1u);
    uint q_lat = p.qlat_off + crow * p.rkv, q_rope = p.q_off + (crow / p.H) * p.q_ld + (crow % p.H) * p.dqk + p.dn;
    uint k_lat = p.c_off + prow * p.c_ld, k_rope = p.kr_off + prow * p.kr_ld;

    uint sm = 32u * (sg % 4u), sn = 64u * (sg / 4u);
    ACC a00 = ACC(0.0), a01 = ACC(0.0), a10 = ACC(0.0), a11 = ACC(0.0);
    ACC a20 = ACC(0.0), a21 = ACC(0.0), a30 = ACC(0.0), a31 = ACC(0.0);

    if (AHEAD2 && PACK16) {
        // step st's loads go out while step st - 2's products run: register sets a (even steps)
        // and b (odd), staging buffers 0 and 1 likewise
        uvec4 qa[2], ka[2], qb[2], kb[2];
        FETCH16(0u, qa, ka)
        if (nsteps > 1u)
            FETCH16(1u, qb, kb)
        STASH16(0u, qa, ka)
        barrier();
        for (uint st = 0u; st < nsteps; st += 2u) {
            if (st + 2u < nsteps)
                FETCH16(st + 2u, qa, ka)
            MULT(0u)
            if (st + 1u < nsteps)
                STASH16(1u, qb, kb)
            barrier();
            if (st + 1u < nsteps) {
                if (st + 3u < nsteps)
                    FETCH16(st + 3u, qb, kb)
                MULT(1u)
                if (st + 2u < nsteps)
                    STASH16(0u, qa, ka)
                barrier();
            }
        }
    } else
    for (uint st = 0u; st <= nsteps; st++) {
        uint b = st % 2u;
        if (st < nsteps) { // fetch step st into registers
            if (PACK16) { // 16 columns = 8 uints = 2 uvec4 of each row
                FETCH16(st, qh, kh)
            } else if (vec) {
                [[unroll]] for (uint v = 0u; v < 4u; v++) {
                    uint k = 32u * st + lc + 4u * v;
                    bool kin = k < kw, lat = k < p.rkv;
                    vec4 a = vec4(0.0), bb = vec4(0.0);
                    if (rok && kin)
                        a = lat ? qlat4[(q_lat + k) / 4u] : q4[(q_rope + k - p.rkv) / 4u];
                    if (jok && kin)
                        bb = lat ? c4[(k_lat + k) / 4u] : kr4[(k_rope + k - p.rkv) / 4u];
                    qv[v] = a;
                    kv[v] = bb;
                }
            } else {
                [[unroll]] for (uint e = 0u; e < 16u; e++) {
                    uint k = 32u * st + lc + e;
                    qv[e / 4u][e % 4u] = rok && k < kw ? query_at(lrow, k) : 0.0;
                    kv[e / 4u][e % 4u] = jok && k < kw ? key_at(prow, k) : 0.0;
                }
            }
        }
        if (st > 0u) // multiply step st - 1 out of buffer 1 - b
            MULT(1u - b)
        if (st < nsteps && PACK16) { // stash step st into buffer b
            STASH16(b, qh, kh)
        } else if (st < nsteps) {
            uint o = (b * TR * LDH + lr * LDH + lc) / 4u;
            [[unroll]] for (uint e = 0u; e < 4u; e++) {
                qs[o + e] = f16vec4(qv[e]);
                ks[o + e] = f16vec4(kv[e]);
            }
        }
        barrier();
    }

    uint rf = r0 + sn, jf = j0 + sm;
    put_frag(a00, rf, jf, rows, pos0);
    put_frag(a01, rf, jf + 16u, rows, pos0);
    put_frag(a10, rf + 16u, jf, rows, pos0);
    put_frag(a11, rf + 16u, jf + 16u, rows, pos0);
    put_frag(a20, rf + 32u, jf, rows, pos0);
    put_frag(a21, rf + 32u, jf + 16u, rows, pos0);
    put_frag(a30, rf + 48u, jf, rows, pos0);
    put_frag(a31, rf + 48u, jf + 16u, rows, pos0);
}
