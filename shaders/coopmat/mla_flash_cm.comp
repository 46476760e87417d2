#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
// mla_flash.comp on tensor cores, for GLM-4.7-Flash's shape (Rkv = 512, dr = 64, at most 32
// heads): workgroup (s, r) takes query row t = row0 + r and split s of its keys, cut in blocks
// of 32 keys (mla_splits.glsl's split_chunk_of with p.max_split: one block a split up to
// 32 · max_split keys, several beyond). For all heads at once:
//   1. the heads' queries [qlat_h | qr_h] (rows of 576, heads past H zero) go to shared memory
//      as float16, and each subgroup keeps the 18 query fragments its products need;
// then for each block of the split:
//   2. the block's cached rows [c_j | kr_j] go to shared memory as float16 (rows past the
//      block zero), each read from memory once for every head;
//   3. scores S = Q·Kᵀ (32 heads × 32 keys, 36 fragments deep): subgroup g takes heads
//      16 (g % 2), keys 16 ((g / 2) % 2) and half g / 4 of the depth; the halves add in step 4;
//   4. the online softmax: a head's running max m and sum l, the block's weights
//      exp(score·scale - m) (float16, zero past the block) and factor exp(m_old - m);
//   5. u = u·diag(factor) + P·C (32 heads × 512 latent columns, 32 keys deep): subgroup g
//      takes columns 64g..+63. KHR cooperative matrices do not say which row an invocation's
//      accumulator element is, so the kernel reads that map back from a loaded matrix whose
//      element (r, c) is r, and scales each element by its head's factor.
// Output as mla_flash's: a row of one split writes u / l, else the partial [m, l, 0, 0, u]
// of (r·H + h, s) for mla_combine.comp. The float16 operands are the only difference in
// rounding from mla_flash (its scores and weights are float32).
// Every load of steps 1-2 is unconditional (clamped addresses, selects after them) and each
// subgroup looks the block's 32 pool rows up once (lane i, key i; the loads take them by
// shuffle): a page lookup and a branch a load had the compiler wait on them one by one
// (staging 9.5 → 5.5 µs a call on the H100).
// Push constants mirror glm_vk_mla_split_push in src/backend/vk/ops.h; bindings as mla_flash.
#include "../mla_splits.glsl"
layout(local_size_x = 256) in;
// constant_id 1, EXP: measurement switches (bench profiles only; the results are wrong): stop
// after the length (1), after staging the rows (2), after S (3), after the softmax (4); 5 runs
// the whole kernel and then ~1,500 (5) or ~400 (6) straight-line integer instructions (the cost
// of code size: none measured on the H100). GLM_VK_MLA_CM_EXP=n selects them.
layout(constant_id = 1) const uint EXP = 0;
// constant_id 0, MULTI: splits may hold several blocks of 32 keys (the host sets it where the
// longest row has more than 32 · the split bound keys). Without it every split is one block and
// the block loop, the rescaling and its registers compile away (the multi-block form needs 255
// registers and spilled a little on the H100: 19.6 against 13.5 µs a call at depth 0 when it
// served single-block steps too).
layout(constant_id = 0) const uint MULTI = 0;

layout(std430, binding = 0) buffer CNT { uint cnt[]; };           // unused
layout(std430, binding = 1) readonly buffer Q4 { vec4 q4[]; };   // row t, head h at q_off + t*q_ld + h*dqk
layout(std430, binding = 2) readonly buffer C4 { vec4 c4[]; };   // pool rows, c at c_off + row*c_ld
layout(std430, binding = 3) readonly buffer KR4 { vec4 kr4[]; }; // pool rows, kr at kr_off + row*kr_ld
layout(std430, binding = 4) readonly buffer POS { int pos[]; };
layout(std430, binding = 5) readonly buffer PT { int ptab[]; };
layout(std430, binding = 6) readonly buffer PG { int pages[]; };
layout(std430, binding = 7) readonly buffer QL4 { vec4 qlat4[]; };  // scratch: qlat [T*H][512] at qlat_off,
layout(std430, binding = 7) writeonly buffer PART4 { vec4 part4[]; }; // u [T*H][512] at u_off, partials

layout(push_constant) uniform P {
    uint rows, H, rkv, dr;
    uint dqk, dn, q_off, q_ld;
    uint c_off, c_ld, kr_off, kr_ld;
    uint qlat_off, part_off, pos_off, pos_ld;
    uint ptab_off, ptab_ld, pages_off, page_size;
    uint split_ld, row0, u_off;
    float scale;
    uint vec4_rows, max_split, flash, page_shift; // page_size = 1 << page_shift
} p;

const uint KB = 32u;   // keys a split at most
const uint CV = 128u;  // of its c
const uint LK = 146u;  // f16vec4s a row in shared memory (576 + 8 halves: no bank conflicts)
const uint LP = 10u;   // f16vec4s a row of the weights P (32 + 8 halves)
const float NEG_INF = -1.0 / 0.0;

shared f16vec4 ks[32u * LK];     // the queries (step 1), then the split's rows (steps 2-5)
shared float ss[2u * 32u * 32u]; // the two depth halves of S [half][head][key]; then the output scratch
shared f16vec4 ps[32u * LP];     // P [head][key] as float16
shared float sm[32u], sl[32u], sa[32u]; // a head's running m and l, and the block's factor

#define FA coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA>
#define FB coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB>
#define ACC coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>

uint pool_row(uint pt, uint j)
{
    return (uint(pages[pt + (j >> p.page_shift)]) << p.page_shift) | (j & (p.page_size - 1u));
}

// Fragment (u = output column group) of u's subgroup: out to the subgroup's scratch, then a
// lane's 8 floats of row l / 2 to memory (u / l where the row has one split).
void put_u(ACC a, uint mt, uint col, uint t, uint rl, uint s, bool one)
{
    uint sg = gl_SubgroupID, ln = gl_SubgroupInvocationID;
    coopMatStore(a, ss, sg * 256u, 16u, gl_CooperativeMatrixLayoutRowMajor);
    subgroupMemoryBarrierShared();
    subgroupBarrier();
    uint h = 16u * mt + ln / 2u, o = sg * 256u + (ln / 2u) * 16u + 8u * (ln % 2u);
    if (h < p.H) {
        vec4 a0 = vec4(ss[o], ss[o + 1u], ss[o + 2u], ss[o + 3u]);
        vec4 a1 = vec4(ss[o + 4u], ss[o + 5u], ss[o + 6u], ss[o + 7u]);
        uint d4 = (col + 8u * (ln % 2u)) / 4u; // the lane's first vec4 of u
        if (one) {
            float il = 1.0 / sl[h];
            uint ub = (p.u_off + (t * p.H + h) * p.rkv) / 4u + d4;
            part4[ub] = a0 * il;
            part4[ub + 1u] = a1 * il;
        } else {
            uint pb = (p.part_off + ((rl * p.H + h) * p.split_ld + s) * part_stride(p.rkv)) / 4u + 1u + d4;
            part4[pb] = a0;
            part4[pb + 1u] = a1;
        }
    }
    subgroupMemoryBarrierShared();
    subgroupBarrier();
}

// The partial's m and l of each head (not for a row of one split)
void write_ml(uint s, uint rl, bool one)
{
    uint tid = gl_LocalInvocationID.x;
    if (!one && tid < p.H) {
        uint pb = (p.part_off + ((rl * p.H + tid) * p.split_ld + s) * part_stride(p.rkv)) / 4u;
        part4[pb] = vec4(sm[tid], sl[tid], 0.0, 0.0);
    }
}

// The rows of keys j .. j + nk - 1 (nk >= 1) of the row whose pages start at pt: invocation
// tid's vec4s e = tid + 256k, of the 32 rows' latent parts (128 vec4s a row) for k < 16 and of
// their rope parts (16 a row) for k = 16, 17; rows past nk repeat the last. Every load is
// unconditional, and lane i of each subgroup looks up key i's pool row once (the loads take it
// by shuffle), so they all go out together.
void load_block(uint pt, uint j, uint nk, uint tid, out vec4 kv[18])
{
    uint myrow = pool_row(pt, j + min(gl_SubgroupInvocationID, nk - 1u));
    [[unroll]] for (uint k = 0u; k < 18u; k++) {
        uint jj = k < 16u ? (tid + 256u * k) >> 7 : (tid + 256u * (k - 16u)) >> 4;
        uint v = k < 16u ? tid & 127u : tid & 15u, row = subgroupShuffle(myrow, jj);
        kv[k] = k < 16u ? c4[(p.c_off + row * p.c_ld) / 4u + v] : kr4[(p.kr_off + row * p.kr_ld) / 4u + v];
    }
}

void main()
{
    uint tid = gl_LocalInvocationID.x, s = gl_WorkGroupID.x, rl = gl_WorkGroupID.y, sg = gl_SubgroupID;
    if (rl >= p.rows)
        return;
    uint t = p.row0 + rl;
    // The loads go out in the order their addresses are known: the queries' (which need nothing),
    // the page table's and the length's, then the keys' (which wait for those). Every load is
    // unconditional (a clamped address, a select after it), so they all go out together.
    // Invocation tid takes vec4s e = tid + 256k: of the 32 rows' latent parts (128 vec4s a row)
    // for k < 16, of their rope parts (16 a row) for k = 16, 17.
    uint qb = p.qlat_off / 4u + t * p.H * CV, rb = (p.q_off + t * p.q_ld + p.dn) / 4u;
    vec4 qv[18];
    [[unroll]] for (uint k = 0u; k < 18u; k++) {
        uint h = k < 16u ? (tid + 256u * k) >> 7 : (tid + 256u * (k - 16u)) >> 4;
        uint v = k < 16u ? tid & 127u : tid & 15u, hc = min(h, p.H - 1u);
        vec4 x = k < 16u ? qlat4[qb + hc * CV + v] : q4[rb + hc * (p.dqk / 4u) + v];
        qv[k] = h < p.H ? x : vec4(0.0);
    }
    uint pt = p.pages_off + uint(ptab[p.ptab_off + t * p.ptab_ld]);
    uint len = uint(pos[p.pos_off + t * p.pos_ld]) + 1u;
    uint chunk = split_chunk_of(len, KB, p.max_split), ns = (len + chunk - 1u) / chunk;
    if (s >= ns)
        return; // past the row's last split
    uint j0 = s * chunk, n = min(chunk, len - j0), nb = MULTI != 0u ? (n + KB - 1u) / KB : 1u; // keys, blocks
    uint sink = (p.part_off + ((rl * p.H) * p.split_ld + s) * part_stride(p.rkv)) / 4u;
    if (EXP == 1u) {
        if (tid == 0u)
            part4[sink] = vec4(float(len), float(pt), 0.0, 0.0);
        return;
    }
    // block 0's rows (a block's rows past its keys repeat its last and are zeroed in step 2):
    // lane i of each subgroup looks up key i's pool row once, and the loads take it by shuffle
    vec4 kv[18];
    load_block(pt, j0, min(KB, n), tid, kv);
    // 1. the queries, as float16 rows of shared memory; heads past H zero. ss holds the row
    // index r of element (r, c) of a 16 × 16 matrix for the accumulators' element map.
    [[unroll]] for (uint k = 0u; k < 18u; k++) {
        uint h = k < 16u ? (tid + 256u * k) >> 7 : (tid + 256u * (k - 16u)) >> 4;
        uint v = k < 16u ? tid & 127u : CV + (tid & 15u);
        ks[h * LK + v] = f16vec4(qv[k]);
    }
    ss[tid] = float(tid >> 4);
    barrier();
    uint mt = sg % 2u, nt = (sg / 2u) % 2u, kh = sg / 4u;
    FA q0, q1, q2, q3, q4_, q5, q6, q7, q8, q9, q10, q11, q12, q13, q14, q15, q16, q17;
#define QLOAD(V, I) coopMatLoad(V, ks, 16u * mt * LK + 4u * (18u * kh + I), LK, gl_CooperativeMatrixLayoutRowMajor);
    QLOAD(q0, 0u) QLOAD(q1, 1u) QLOAD(q2, 2u) QLOAD(q3, 3u) QLOAD(q4_, 4u) QLOAD(q5, 5u)
    QLOAD(q6, 6u) QLOAD(q7, 7u) QLOAD(q8, 8u) QLOAD(q9, 9u) QLOAD(q10, 10u) QLOAD(q11, 11u)
    QLOAD(q12, 12u) QLOAD(q13, 13u) QLOAD(q14, 14u) QLOAD(q15, 15u) QLOAD(q16, 16u) QLOAD(q17, 17u)
    // Which row of a 16 × 16 accumulator each of this invocation's elements is: KHR cooperative
    // matrices leave that map to the implementation, so it is read back from a matrix whose
    // element (r, c) is r. u's fragments are rescaled per head through it (step 5).
    ACC rowof;
    coopMatLoad(rowof, ss, 0u, 16u, gl_CooperativeMatrixLayoutRowMajor);
    barrier(); // every subgroup holds its query fragments and the map: ks and ss may go

    // u = Σ_blocks P·C: subgroup sg's latent columns 64 sg + 16 f .. +15 of heads 0..15 (a) and
    // 16..31 (b), rescaled by each head's exp(m_old - m_new) before each block's products
    ACC ua0 = ACC(0.0), ua1 = ACC(0.0), ua2 = ACC(0.0), ua3 = ACC(0.0);
    ACC ub0 = ACC(0.0), ub1 = ACC(0.0), ub2 = ACC(0.0), ub3 = ACC(0.0);
    [[dont_unroll]] for (uint b = 0u; b < nb; b++) {
        uint nk = min(KB, n - KB * b); // this block's keys
        if (MULTI != 0u && b > 0u) {
            load_block(pt, j0 + KB * b, nk, tid, kv);
            barrier(); // every subgroup is done with the last block's rows and weights
        }
        // 2. the block's rows (loaded above); rows past nk zero
        [[unroll]] for (uint k = 0u; k < 18u; k++) {
            uint jj = k < 16u ? (tid + 256u * k) >> 7 : (tid + 256u * (k - 16u)) >> 4;
            uint v = k < 16u ? tid & 127u : CV + (tid & 15u);
            ks[jj * LK + v] = jj < nk ? f16vec4(kv[k]) : f16vec4(0.0);
        }
        barrier();
        if (EXP == 2u) {
            if (tid < 32u)
                part4[sink + tid] = vec4(ks[tid * LK + 3u]);
            return;
        }

        // 3. S: B[k][key] = K[key][k], column-major out of the key rows
        ACC sc = ACC(0.0), sd = ACC(0.0); // even and odd fragments of the depth: two shorter chains
#define SPROD(A, V, I)                                                                                            \
    {                                                                                                             \
        FB fb;                                                                                                    \
        coopMatLoad(fb, ks, 16u * nt * LK + 4u * (18u * kh + I), LK, gl_CooperativeMatrixLayoutColumnMajor);     \
        A = coopMatMulAdd(V, fb, A);                                                                              \
    }
        SPROD(sc, q0, 0u) SPROD(sd, q1, 1u) SPROD(sc, q2, 2u) SPROD(sd, q3, 3u) SPROD(sc, q4_, 4u) SPROD(sd, q5, 5u)
        SPROD(sc, q6, 6u) SPROD(sd, q7, 7u) SPROD(sc, q8, 8u) SPROD(sd, q9, 9u) SPROD(sc, q10, 10u) SPROD(sd, q11, 11u)
        SPROD(sc, q12, 12u) SPROD(sd, q13, 13u) SPROD(sc, q14, 14u) SPROD(sd, q15, 15u) SPROD(sc, q16, 16u)
        SPROD(sd, q17, 17u)
        sc = sc + sd;
        coopMatStore(sc, ss, kh * 1024u + 16u * mt * 32u + 16u * nt, 32u, gl_CooperativeMatrixLayoutRowMajor);
        barrier();
        if (EXP == 3u) {
            if (tid < 32u)
                part4[sink + tid] = vec4(ss[tid * 33u]);
            return;
        }

        // 4. the online softmax over the blocks: head tid / 8, keys 4 (tid % 8) .. +3, the head's
        // 8 lanes by shuffles; m and l run in sm, sl, the block's factor exp(m_old - m) in sa
        {
            uint h = tid / 8u, k0 = 4u * (tid % 8u);
            float mo = b > 0u ? sm[h] : NEG_INF, lo = b > 0u ? sl[h] : 0.0;
            float x[4];
            float mx = mo;
            [[unroll]] for (uint k = 0u; k < 4u; k++) {
                uint j = k0 + k;
                x[k] = j < nk ? (ss[h * 32u + j] + ss[1024u + h * 32u + j]) * p.scale : NEG_INF;
                mx = max(mx, x[k]);
            }
            [[unroll]] for (uint mk = 1u; mk < 8u; mk <<= 1)
                mx = max(mx, subgroupShuffleXor(mx, mk));
            float sum = 0.0;
            [[unroll]] for (uint k = 0u; k < 4u; k++) {
                x[k] = k0 + k < nk && h < p.H ? exp(x[k] - mx) : 0.0;
                sum += x[k];
            }
            [[unroll]] for (uint mk = 1u; mk < 8u; mk <<= 1)
                sum += subgroupShuffleXor(sum, mk);
            ps[h * LP + tid % 8u] = f16vec4(x[0], x[1], x[2], x[3]);
            subgroupMemoryBarrierShared(); // the head's 8 lanes (one subgroup) have read its old
            subgroupBarrier();             // m and l
            if (tid % 8u == 0u) {
                float al = exp(mo - mx); // 0 for the first block
                sm[h] = mx;
                sl[h] = lo * al + sum;
                sa[h] = al;
            }
        }
        barrier();
        if (EXP == 4u) {
            if (tid < 32u)
                part4[sink + tid] = vec4(ps[tid * LP]);
            return;
        }

        // 5. u = u·diag(alpha) + P·C: subgroup sg takes latent columns 64 sg .. +63 (4 fragments)
        // of both head halves
        FA p00, p01, p10, p11; // P's fragments: heads 16i, keys 16j
        coopMatLoad(p00, ps, 0u, LP, gl_CooperativeMatrixLayoutRowMajor);
        coopMatLoad(p01, ps, 4u, LP, gl_CooperativeMatrixLayoutRowMajor);
        coopMatLoad(p10, ps, 16u * LP, LP, gl_CooperativeMatrixLayoutRowMajor);
        coopMatLoad(p11, ps, 16u * LP + 4u, LP, gl_CooperativeMatrixLayoutRowMajor);
        if (MULTI != 0u && b > 0u)
            for (int e = 0; e < rowof.length(); e++) {
                uint r = uint(rowof[e]);
                float fa = sa[r], fb = sa[16u + r];
                ua0[e] *= fa, ua1[e] *= fa, ua2[e] *= fa, ua3[e] *= fa;
                ub0[e] *= fb, ub1[e] *= fb, ub2[e] *= fb, ub3[e] *= fb;
            }
#define UPROD(F, UA, UB)                                                                                           \
    {                                                                                                              \
        FB c0, c1; /* keys 0..15 and 16..31 of latent columns 64 sg + 16 F .. +15 */                            \
        coopMatLoad(c0, ks, (64u * sg + 16u * F) / 4u, LK, gl_CooperativeMatrixLayoutRowMajor);                  \
        coopMatLoad(c1, ks, 16u * LK + (64u * sg + 16u * F) / 4u, LK, gl_CooperativeMatrixLayoutRowMajor);       \
        UA = coopMatMulAdd(p00, c0, UA);                                                                          \
        UA = coopMatMulAdd(p01, c1, UA);                                                                          \
        UB = coopMatMulAdd(p10, c0, UB);                                                                          \
        UB = coopMatMulAdd(p11, c1, UB);                                                                          \
    }
        if (MULTI == 0u) {
            // one block: each column group's two fragments go out as soon as they are done (a
            // loop that is not unrolled: two accumulators live, not eight)
            write_ml(s, rl, ns == 1u);
            [[dont_unroll]] for (uint f = 0u; f < 4u; f++) {
                ACC u0 = ACC(0.0), u1 = ACC(0.0);
                UPROD(f, u0, u1)
                put_u(u0, 0u, 64u * sg + 16u * f, t, rl, s, ns == 1u);
                put_u(u1, 1u, 64u * sg + 16u * f, t, rl, s, ns == 1u);
            }
            return;
        }
        UPROD(0u, ua0, ub0) UPROD(1u, ua1, ub1) UPROD(2u, ua2, ub2) UPROD(3u, ua3, ub3)
    }

    // Output: a row of one split writes u / l, else the partial [m, l, 0, 0, u]
    bool one = ns == 1u;
    write_ml(s, rl, one);
    put_u(ua0, 0u, 64u * sg, t, rl, s, one);
    put_u(ub0, 1u, 64u * sg, t, rl, s, one);
    put_u(ua1, 0u, 64u * sg + 16u, t, rl, s, one);
    put_u(ub1, 1u, 64u * sg + 16u, t, rl, s, one);
    put_u(ua2, 0u, 64u * sg + 32u, t, rl, s, one);
    put_u(ub2, 1u, 64u * sg + 32u, t, rl, s, one);
    put_u(ua3, 0u, 64u * sg + 48u, t, rl, s, one);
    put_u(ub3, 1u, 64u * sg + 48u, t, rl, s, one);
}
