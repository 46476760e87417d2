#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
// Absorbed-MLA attention core of decode rows over the paged latent cache (model-spec §2.5),
// every head in one workgroup: a workgroup takes query row t and split s of its keys
// (mla_splits.glsl with passes of FPASS keys and at most p.max_split splits), so each cached
// row [c_j | kr_j] is read from memory once for all heads. Invocation i serves head i / NSL
// (NSL = 32, 16 or 8 lanes a head: the most that fit the subgroup and 640 / NSL >= H) and lane
// i % NSL of it: the lane holds the vec4s i % NSL + NSL·k of the head's query
// [qlat_h | qr_h] in registers (k < 144 / NSL). A pass:
//   1. all 640 invocations load the pass's FPASS rows (every load issued together, a pass
//      ahead) into shared memory (lanes reading consecutive vec4s: no bank conflicts);
//   2. scores of 4 keys at a time: each lane forms its vec4s' parts of the dot products and
//      the NSL lanes of a head add them by XOR shuffles (every lane gets the same sums, bit
//      for bit: each step adds the same two values on both lanes);
//   3. online softmax, redone identically by the head's lanes (no barrier): running max m,
//      sum l, weights exp(score - m), and the factor alpha = exp(m_old - m) on the sums;
//   4. mix: lane k of a head holds u[4·(k + NSL·i) .. +3] = Σ exp(score - m) c_j.
// Output: a row of one split writes u / l itself, else the partial [m, l, 0, 0, u[Rkv]] of
// (local row · H + h, s), which mla_combine.comp merges.
// The kernel is kept small on purpose: the 4 keys of steps 2-4 are a loop that is not
// unrolled, and only the vec4 layout is compiled. On the H100 the time of this latency-bound
// kernel followed its binary's size (bench/RESULTS.md).
// Specialization constants: 0 FPASS (8 by default; 16 measured slower on the H100), 1 NSL / 8.
// The host checks H·NSL <= 640, Rkv + dr <= 576, Rkv <= 512, subgroups of at least NSL, vec4-aligned
// rows, queries and outputs, and pages of a power of two rows. Push constants mirror
// glm_vk_mla_split_push in src/backend/vk/ops.h.
#include "mla_splits.glsl"
#define WG 640u
layout(local_size_x = 640) in;
layout(constant_id = 0) const uint FPASS = 8u;
layout(constant_id = 1) const uint NSL8 = 4u; // lanes a head / 8: 1, 2 or 4 (a subgroup at least as wide)
const uint NSL = 8u * NSL8;

layout(std430, binding = 0) buffer CNT { uint cnt[]; };           // unused (mla_split's counts)
layout(std430, binding = 1) readonly buffer Q4 { vec4 q4[]; };   // row t, head h at q_off + t*q_ld + h*dqk
layout(std430, binding = 2) readonly buffer C4 { vec4 c4[]; };   // pool rows, c at c_off + row*c_ld
layout(std430, binding = 3) readonly buffer KR4 { vec4 kr4[]; }; // pool rows, kr at kr_off + row*kr_ld
layout(std430, binding = 4) readonly buffer POS { int pos[]; };
layout(std430, binding = 5) readonly buffer PT { int ptab[]; };
layout(std430, binding = 6) readonly buffer PG { int pages[]; };
layout(std430, binding = 7) readonly buffer QL4 { vec4 qlat4[]; }; // scratch: qlat [T*H][Rkv] at qlat_off,
layout(std430, binding = 7) writeonly buffer PART4 { vec4 part4[]; }; // u [T*H][Rkv] at u_off, partials
                                                                      // [rows*H][split_ld][part_stride] at part_off

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

const uint MAXV = (144u + NSL - 1u) / NSL; // vec4s of a lane's slice at most: Rkv + dr <= 576
const uint UV = 128u / NSL;        // vec4s of u a lane at most: Rkv <= 512
const uint KU = 4u;                // keys an iteration of steps 2-4
const uint KL = (FPASS * NSL * MAXV + WG - 1u) / WG; // key vec4s an invocation loads a pass
const float NEG_INF = -1.0 / 0.0;

shared vec4 sk[FPASS * NSL * MAXV]; // the pass's rows, key jj's vec4 v at jj·rowv + v

// vec4 d of a cached row's [c | kr]
vec4 key4(uint row, uint d, uint r4)
{
    return d < r4 ? c4[(p.c_off + row * p.c_ld) / 4u + d] : kr4[(p.kr_off + row * p.kr_ld) / 4u + d - r4];
}

uint pool_row(uint pt, uint j)
{
    return (uint(pages[pt + (j >> p.page_shift)]) << p.page_shift) | (j & (p.page_size - 1u));
}

// The rows of the pass of keys [jt, min(jt + FPASS, j1)): slot e = tid + WG·k of the pass's
// FPASS rows of rowv vec4s (zeros past the row's d4).
void load_pass(uint jt, uint j1, uint pt, uint rowv, uint d4, uint r4, out vec4 kv[KL])
{
    uint n = min(FPASS, j1 - jt);
    [[unroll]] for (uint k = 0u; k < KL; k++) {
        uint e = gl_LocalInvocationID.x + WG * k, jj = e / rowv, v = e - jj * rowv;
        kv[k] = vec4(0.0);
        if (jj < FPASS && v < d4)
            kv[k] = key4(pool_row(pt, jt + min(jj, n - 1u)), v, r4);
    }
}

void main()
{
    uint tid = gl_LocalInvocationID.x, s = gl_WorkGroupID.x, rl = gl_WorkGroupID.y;
    if (rl >= p.rows)
        return;
    uint t = p.row0 + rl, h = tid / NSL, sl = tid % NSL;
    bool act = h < p.H;
    uint hq = act ? h : 0u;
    uint r4 = p.rkv / 4u, d4 = (p.rkv + p.dr + 3u) / 4u, u4 = (p.rkv + 3u) / 4u;
    uint sv = (d4 + NSL - 1u) / NSL, rowv = NSL * sv; // a row's vec4s in shared memory (zeros past d4)
    uint nv = d4 > sl ? (d4 - sl + NSL - 1u) / NSL : 0u; // this lane's vec4s of a row: sl + 8i, i < nv
    uint nu = u4 > sl ? (u4 - sl + NSL - 1u) / NSL : 0u; // and of u

    // this lane's vec4s sl + 8i of the head's query [qlat_h | qr_h]
    vec4 qv[MAXV];
    uint qb = p.qlat_off + (t * p.H + hq) * p.rkv, rb = p.q_off + t * p.q_ld + hq * p.dqk + p.dn;
    [[unroll]] for (uint i = 0u; i < MAXV; i++) {
        uint d = sl + NSL * i;
        qv[i] = vec4(0.0);
        if (act && i < nv) // as key4 reads [c | kr]
            qv[i] = d < r4 ? qlat4[qb / 4u + d] : q4[rb / 4u + d - r4];
    }
    uint pt = p.pages_off + uint(ptab[p.ptab_off + t * p.ptab_ld]);
    // the queries' and page table's loads above are in flight before the row's length is known
    uint len = uint(pos[p.pos_off + t * p.pos_ld]) + 1u;
    uint chunk = split_chunk_of(len, FPASS, p.max_split), ns = (len + chunk - 1u) / chunk;
    if (s >= ns)
        return; // past the row's last split: no partial (the combine stops before it)
    uint j0 = s * chunk, j1 = min(len, j0 + chunk);

    float m = NEG_INF, l = 0.0;
    vec4 u[UV];
    [[unroll]] for (uint i = 0u; i < UV; i++)
        u[i] = vec4(0.0);
    // 1. a pass's rows go to shared memory through registers, loaded a pass ahead: the next
    // pass's loads are in flight while this one is computed (a short pass repeats its last row)
    vec4 kv[KL];
    load_pass(j0, j1, pt, rowv, d4, r4, kv);
    for (uint jt = j0; jt < j1; jt += FPASS) {
        uint n = min(FPASS, j1 - jt);
        barrier(); // every lane is done with the previous pass's rows
        [[unroll]] for (uint k = 0u; k < KL; k++) {
            uint e = tid + WG * k;
            if (e < FPASS * rowv)
                sk[e] = kv[k];
        }
        barrier();
        if (jt + FPASS < j1)
            load_pass(jt + FPASS, j1, pt, rowv, d4, r4, kv);
        // the heads past H skip steps 2-4 (a head's lanes always together, so every
        // shuffle below reads an active lane)
        if (!act)
            continue;
        // KU keys at a time (a loop, not unrolled: the kernel stays small)
        [[dont_unroll]] for (uint j = 0u; j < n; j += KU) {
            uint kb = j * rowv + sl;
            // 2. scores
            float a[KU], b[KU]; // two sums a key (even and odd vec4s): shorter chains
            [[unroll]] for (uint k = 0u; k < KU; k++)
                a[k] = b[k] = 0.0;
            [[unroll]] for (uint i = 0u; i < MAXV; i += 2u) {
                if (i < nv)
                    [[unroll]] for (uint k = 0u; k < KU; k++)
                        a[k] += dot(qv[i], sk[kb + k * rowv + NSL * i]);
                if (i + 1u < MAXV && i + 1u < nv)
                    [[unroll]] for (uint k = 0u; k < KU; k++)
                        b[k] += dot(qv[i + 1u], sk[kb + k * rowv + NSL * (i + 1u)]);
            }
            [[unroll]] for (uint k = 0u; k < KU; k++)
                a[k] += b[k];
            [[unroll]] for (uint mk = 1u; mk < NSL; mk <<= 1)
                [[unroll]] for (uint k = 0u; k < KU; k++)
                    a[k] += subgroupShuffleXor(a[k], mk);
            // 3. online softmax (keys past the pass weigh 0)
            float mn = m;
            [[unroll]] for (uint k = 0u; k < KU; k++) {
                a[k] = j + k < n ? a[k] * p.scale : NEG_INF;
                mn = max(mn, a[k]);
            }
            float alpha = exp(m - mn);
            [[unroll]] for (uint k = 0u; k < KU; k++)
                a[k] = exp(a[k] - mn);
            l = l * alpha + ((a[0] + a[1]) + (a[2] + a[3]));
            m = mn;
            // 4. mix
            [[unroll]] for (uint i = 0u; i < UV; i++)
                if (i < nu) {
                    vec4 x = u[i] * alpha;
                    [[unroll]] for (uint k = 0u; k < KU; k++)
                        x += a[k] * sk[kb + k * rowv + NSL * i];
                    u[i] = x;
                }
        }
    }
    if (!act)
        return;
    if (ns == 1u) { // the whole row in this workgroup: u / l, the combine skips the row
        uint ub = (p.u_off + (t * p.H + h) * p.rkv) / 4u;
        [[unroll]] for (uint i = 0u; i < UV; i++)
            if (i < nu)
                part4[ub + sl + NSL * i] = u[i] / l;
        return;
    }
    uint stride = part_stride(p.rkv), pb = p.part_off + ((rl * p.H + h) * p.split_ld + s) * stride;
    if (sl == 0u)
        part4[pb / 4u] = vec4(m, l, 0.0, 0.0);
    [[unroll]] for (uint i = 0u; i < UV; i++)
        if (i < nu)
            part4[pb / 4u + 1u + sl + NSL * i] = u[i];
}
