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
// 64·(s / 4) .. +63 (4 fragments), held in named variables (an array of fragments may live in
// local memory). Cache positions advance 32 a step through two staging buffers, as in
// matmul_cm.comp; positions past the tile's last causal position are not visited (inside it
// softmax has made the masked probabilities exactly 0). Probabilities and cache rows are
// fetched as vec4s where every stride and offset is a multiple of 4 floats (the model's
// layout), else element by element. Finished fragments go straight to u where whole and
// aligned, else through a per-subgroup scratch in shared memory.
// With pack16 set, P comes as float16 pairs written by softmax.comp over its own rows and c
// as the float16 key rows of mla_pack16.comp (ld16 uints a position, contiguous from
// position 0): half the bytes, two 16-byte loads a step for each. Split over the positions as
// mla_mix_tiled.comp: workgroup z takes [z·chunk, z·chunk + chunk) and writes its partial sum
// at u_off + z·part_ld (the host splits only float32 operands).
// Push constants mirror glm_vk_mla_mix_push (vk/ops.h).
layout(local_size_x = 256) in;
// constant_id 0, bit 0 AHEAD (GLM_VK_MLA_AHEAD=0 clears it): with pack16, an invocation's loads
// run two steps ahead of the products (two register sets), where one step's products did not
// cover their latency.
// Bit 2, PACK16: the host's pack16, known when the pipeline is built (the float32 paths compile
// away). Bit 3, ROLL (GLM_VK_MLA_ROLL=1): a step's two 16-position products in a loop that is
// not unrolled (fewer fragments loaded ahead: fewer registers).
layout(constant_id = 0) const uint MODE = 0;
const bool AHEAD2 = (MODE & 1u) != 0u, PACK16 = (MODE & 4u) != 0u, ROLL = (MODE & 8u) != 0u;

layout(std430, binding = 0) readonly buffer S { float s[]; };  // [T*H][s_ld]
layout(std430, binding = 0) readonly buffer S4 { vec4 s4[]; };
layout(std430, binding = 0) readonly buffer SH { uvec4 sh16[]; }; // packed P and K16 (pack16)
layout(std430, binding = 1) readonly buffer C { float c[]; };  // pool rows, c at c_off + row*c_ld
layout(std430, binding = 1) readonly buffer C4 { vec4 c4[]; };
layout(std430, binding = 2) readonly buffer POS { int pos[]; };
layout(std430, binding = 3) readonly buffer PT { int ptab[]; };
layout(std430, binding = 4) readonly buffer PG { int pages[]; };
layout(std430, binding = 5) writeonly buffer U { float u[]; }; // [T*H][Rkv]

layout(push_constant) uniform P {
    uint T, H, rkv, s_ld;
    uint c_off, c_ld, s_off, u_off;
    uint pos_off, ptab_off, pages_off, page_size;
    uint pack16, c16_off, c16_ld; // float16 operands: K16's uint offset and row length
    uint chunk, part_ld, pad0, pad1, pad2;
} p;

#define TR 128u // rows per tile
#define TK 128u // channels per tile
#define LDA 40u // float16 row stride of the P tile (32 positions + 8)
#define LDB 136u // float16 row stride of the c tile (128 channels + 8)

// As float16 quadruples (8-byte stores): element (b·TR·LDA + r·LDA + j) / 4 of ps holds
// P[r0 + r][j0 + j .. +3], element (b·32·LDB + j·LDB + k) / 4 of vs c[position j0 + j][k0 + k .. +3].
shared f16vec4 ps[2u * TR * LDA / 4u];
shared f16vec4 vs[2u * 32u * LDB / 4u];
shared float cs[8u * 256u];        // a 16 × 16 fragment per subgroup, on the way out

vec4 pv[4], cv[4]; // a step's values of the invocation, fetch to stash
uvec4 ph[2], ch[2]; // the same as float16 pairs (pack16)
uint u_base;        // where this split's rows start: u_off + z·part_ld

#define ACC coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>

// Writes the subgroup's fragment of rows rf .. +15 × channels kf .. +15.
void put_frag(ACC a, uint rf, uint kf, uint rows, bool direct)
{
    if (rf >= rows || kf >= p.rkv)
        return;
    if (direct && rf + 16u <= rows && kf + 16u <= p.rkv) {
        coopMatStore(a, u, u_base + rf * p.rkv + kf, p.rkv, gl_CooperativeMatrixLayoutRowMajor);
        return;
    }
    uint sg = gl_SubgroupID;
    coopMatStore(a, cs, sg * 256u, 16u, gl_CooperativeMatrixLayoutRowMajor);
    subgroupMemoryBarrierShared();
    subgroupBarrier();
    for (uint e = gl_SubgroupInvocationID; e < 256u; e += 32u) {
        uint row = rf + e / 16u, k = kf + e % 16u;
        if (row < rows && k < p.rkv)
            u[u_base + row * p.rkv + k] = cs[sg * 256u + e];
    }
    subgroupMemoryBarrierShared();
    subgroupBarrier();
}

#define FRAG_ROW(OB, I, A0, A1)                                                                               \
    {                                                                                                         \
        coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA> af;                                       \
        coopMatLoad(af, ps, ((OB) * TR * LDA + (sn + 16u * I) * LDA + kk) / 4u, LDA / 4u,                       \
                    gl_CooperativeMatrixLayoutRowMajor);                                                      \
        A0 = coopMatMulAdd(af, bf0, A0);                                                                      \
        A1 = coopMatMulAdd(af, bf1, A1);                                                                      \
    }
// The products of the step staged in buffer OB (B[position][channel]: row-major).
#define MULT_K(OB)                                                                                            \
    {                                                                                                         \
        coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB> bf0, bf1;                                 \
        coopMatLoad(bf0, vs, ((OB) * 32u * LDB + kk * LDB + sm) / 4u, LDB / 4u, gl_CooperativeMatrixLayoutRowMajor);\
        coopMatLoad(bf1, vs, ((OB) * 32u * LDB + kk * LDB + sm + 16u) / 4u, LDB / 4u, gl_CooperativeMatrixLayoutRowMajor);\
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
// pack16: step ST's 8 uints (2 uvec4) of P's row ar and of c16's position bj. Positions j' ..
// j' + 7 (j' = j + 8v < jend) lie in the padded row, and those at or past jend hold probability
// 0; past the row would be its stale float32.
#define FETCH16(ST, PH, CH)                                                                                   \
    {                                                                                                         \
        uint j_ = jz + 32u * (ST) + aq, jb_ = jz + 32u * (ST) + bj, k_ = k0 + bq;                             \
        [[unroll]] for (uint v = 0u; v < 2u; v++) {                                                           \
            PH[v] = aok && j_ + 8u * v < jend ? sh16[(s_row + j_ / 2u) / 4u + v] : uvec4(0u);                  \
            CH[v] = jb_ < jend && k_ < p.rkv ? sh16[(p.c16_off + jb_ * p.c16_ld + k_ / 2u) / 4u + v] : uvec4(0u); \
        }                                                                                                     \
    }
// ... stashed into buffer B, the halves as they are
#define STASH16(B, PH, CH)                                                                                    \
    {                                                                                                         \
        uint oa_ = ((B) * TR * LDA + ar * LDA + aq) / 4u, ob_ = ((B) * 32u * LDB + bj * LDB + bq) / 4u;       \
        [[unroll]] for (uint e = 0u; e < 4u; e++) {                                                           \
            ps[oa_ + e] = f16vec4(unpackFloat2x16(PH[e / 2u][2u * (e % 2u)]),                                 \
                                  unpackFloat2x16(PH[e / 2u][2u * (e % 2u) + 1u]));                           \
            vs[ob_ + e] = f16vec4(unpackFloat2x16(CH[e / 2u][2u * (e % 2u)]),                                 \
                                  unpackFloat2x16(CH[e / 2u][2u * (e % 2u) + 1u]));                           \
        }                                                                                                     \
    }

void main()
{
    uint tid = gl_LocalInvocationID.x, sg = gl_SubgroupID;
    uint k0 = gl_WorkGroupID.x * TK, r0 = gl_WorkGroupID.y * TR, rows = p.T * p.H;
    uint rlast = min(r0 + TR - 1u, rows - 1u);
    uint pos0 = uint(pos[p.pos_off]), pt = p.pages_off + uint(ptab[p.ptab_off]);
    uint jend = pos0 + rlast / p.H + 1u; // ≤ pos0 + T: held positions only
    uint jz = gl_WorkGroupID.z * p.chunk;
    u_base = p.u_off + gl_WorkGroupID.z * p.part_ld;
    jend = min(jend, jz + p.chunk); // this split's positions: [jz, jend), maybe none
    uint ar = tid / 2u, aq = 16u * (tid % 2u);  // P loader: row ar, positions aq .. aq+15
    uint bj = tid / 8u, bq = 16u * (tid % 8u);  // c loader: position bj, channels bq .. bq+15
    uint arow = min(r0 + ar, rows - 1u);
    bool aok = r0 + ar < rows;
    bool vec = ((p.s_ld | p.s_off | p.c_off | p.c_ld | p.rkv) & 3u) == 0u;
    uint s_row = p.s_off + arow * p.s_ld;

    uint sm = 32u * (sg % 4u), sn = 64u * (sg / 4u);
    ACC a00 = ACC(0.0), a01 = ACC(0.0), a10 = ACC(0.0), a11 = ACC(0.0);
    ACC a20 = ACC(0.0), a21 = ACC(0.0), a30 = ACC(0.0), a31 = ACC(0.0);

    uint nsteps = jend > jz ? (jend - jz + 31u) / 32u : 0u;
    if (AHEAD2 && PACK16 && nsteps > 0u) {
        // step st's loads go out while step st - 2's products run: register sets a (even steps)
        // and b (odd), staging buffers 0 and 1 likewise
        uvec4 pa[2], ca[2], pb[2], cb[2];
        FETCH16(0u, pa, ca)
        if (nsteps > 1u)
            FETCH16(1u, pb, cb)
        STASH16(0u, pa, ca)
        barrier();
        for (uint st = 0u; st < nsteps; st += 2u) {
            if (st + 2u < nsteps)
                FETCH16(st + 2u, pa, ca)
            MULT(0u)
            if (st + 1u < nsteps)
                STASH16(1u, pb, cb)
            barrier();
            if (st + 1u < nsteps) {
                if (st + 3u < nsteps)
                    FETCH16(st + 3u, pb, cb)
                MULT(1u)
                if (st + 2u < nsteps)
                    STASH16(0u, pa, ca)
                barrier();
            }
        }
    } else
    for (uint st = 0u; st <= nsteps; st++) {
        uint b = st % 2u;
        if (st < nsteps && PACK16) { // fetch step st: 8 uints of P and of c16
            FETCH16(st, ph, ch)
        } else if (st < nsteps) { // fetch step st
            uint j0 = jz + 32u * st, jb = j0 + bj;
            uint cj = min(jb, jend - 1u);
            uint crow = uint(pages[pt + cj / p.page_size]) * p.page_size + cj % p.page_size;
            uint c_row = p.c_off + crow * p.c_ld;
            if (vec) {
                // positions j .. j+3 lie in the row (s_ld is a multiple of 4 above j); the
                // ones at or past jend count 0
                [[unroll]] for (uint v = 0u; v < 4u; v++) {
                    uint j = j0 + aq + 4u * v, k = k0 + bq + 4u * v;
                    vec4 sv = aok && j < jend ? s4[(s_row + j) / 4u] : vec4(0.0);
                    pv[v] = mix(vec4(0.0), sv, lessThan(uvec4(j) + uvec4(0u, 1u, 2u, 3u), uvec4(jend)));
                    cv[v] = jb < jend && k < p.rkv ? c4[(c_row + k) / 4u] : vec4(0.0);
                }
            } else {
                [[unroll]] for (uint e = 0u; e < 16u; e++) {
                    uint j = j0 + aq + e, k = k0 + bq + e;
                    float sv = s[s_row + min(j, jend - 1u)];
                    float v = c[c_row + min(k, p.rkv - 1u)];
                    pv[e / 4u][e % 4u] = aok && j < jend ? sv : 0.0;
                    cv[e / 4u][e % 4u] = jb < jend && k < p.rkv ? v : 0.0;
                }
            }
        }
        if (st > 0u) // multiply step st - 1 out of buffer 1 - b
            MULT(1u - b)
        if (st < nsteps && PACK16) { // stash step st into buffer b
            STASH16(b, ph, ch)
        } else if (st < nsteps) {
            uint oa = (b * TR * LDA + ar * LDA + aq) / 4u, ob2 = (b * 32u * LDB + bj * LDB + bq) / 4u;
            [[unroll]] for (uint e = 0u; e < 4u; e++) {
                ps[oa + e] = f16vec4(pv[e]);
                vs[ob2 + e] = f16vec4(cv[e]);
            }
        }
        barrier();
    }

    bool direct = ((u_base | p.rkv) & 3u) == 0u;
    uint rf = r0 + sn, kf = k0 + sm;
    put_frag(a00, rf, kf, rows, direct);
    put_frag(a01, rf, kf + 16u, rows, direct);
    put_frag(a10, rf + 16u, kf, rows, direct);
    put_frag(a11, rf + 16u, kf + 16u, rows, direct);
    put_frag(a20, rf + 32u, kf, rows, direct);
    put_frag(a21, rf + 32u, kf + 16u, rows, direct);
    put_frag(a30, rf + 48u, kf, rows, direct);
    put_frag(a31, rf + 48u, kf + 16u, rows, direct);
}
