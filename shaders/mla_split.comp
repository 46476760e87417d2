#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
// Absorbed-MLA attention core of decode rows over the paged latent cache, split over the
// sequence (model-spec §2.5; flash-decoding). MLA's heads share one latent key/value row
// [c_j | kr_j], so a workgroup takes query row t, split s of its keys (mla_splits.glsl) and a
// group of up to MAX_NH heads (the H heads cut into ceil(H / MAX_NH) equal groups,
// gl_WorkGroupID.y = local row · groups + group): each cached row of the split is read once
// for all heads of the group. Keys go in passes of PASS, every load of a pass issued together:
//   1. scores: the 32 invocations of a lane group (tid / 32) take keys kk and kk + 8 of the
//      pass; lane p holds the vec4s p, p + 32, ... of [qlat_h | qr_h] for every head in
//      registers, loads the same vec4s of both keys' [c_j | kr_j] (coalesced) and forms its
//      parts of c_j·qlat_h + kr_j·qr_h; the parts are summed by shuffles inside the subgroup
//      (min(32, subgroup size) lanes) and, where a subgroup is narrower than 32, the
//      subgroups' sums through shared memory in order.
//   2. online softmax per head (one invocation each): running max m, sum l = Σ exp(score - m),
//      the pass's weights exp(score - m) and the factor alpha = exp(m_old - m).
//   3. mix: invocation i holds u[h][2i, 2i+1] = Σ exp(score - m) c_j for every head of the
//      group and adds the pass's weighted c rows (read coalesced, the rows of step 1).
// Output: a row of one split writes u = u / l itself, else the partial [m, l, 0, 0, u[Rkv]] of
// (local row · H + h, s); a row of at most MAX_INLINE splits is then merged here by the last
// of its workgroups to finish (an arrival count per row and group of heads), a longer one by
// mla_combine.comp. Where Rkv, dr and the
// cache offsets and strides are multiples of 4 (vec4_rows), keys are read as vec4 / vec2,
// else element by element.
// Push constants mirror glm_vk_mla_split_push in src/backend/vk/ops.h.
#include "mla_splits.glsl"
#define WG 256u
layout(local_size_x = 256) in;

layout(std430, binding = 0) buffer CNT { uint cnt[]; };           // [T][groups] arrivals, left 0
layout(std430, binding = 1) readonly buffer Q { float q[]; };     // row t, head h at q_off + t*q_ld + h*dqk
layout(std430, binding = 2) readonly buffer C { float c[]; };     // pool rows, c at c_off + row*c_ld
layout(std430, binding = 2) readonly buffer C4 { vec4 c4[]; };
layout(std430, binding = 2) readonly buffer C2 { vec2 c2[]; };
layout(std430, binding = 3) readonly buffer KR { float kr[]; };   // pool rows, kr at kr_off + row*kr_ld
layout(std430, binding = 3) readonly buffer KR4 { vec4 kr4[]; };
layout(std430, binding = 4) readonly buffer POS { int pos[]; };
layout(std430, binding = 5) readonly buffer PT { int ptab[]; };
layout(std430, binding = 6) readonly buffer PG { int pages[]; };
layout(std430, binding = 7) readonly buffer QL { float qlat[]; };   // scratch: qlat [T*H][Rkv] at qlat_off,
layout(std430, binding = 7) coherent buffer PART { float part[]; };  // u [T*H][Rkv] at u_off, partials
                                                                     // [rows*H][split_ld][part_stride] at part_off

layout(push_constant) uniform P {
    uint rows, H, rkv, dr;
    uint dqk, dn, q_off, q_ld;
    uint c_off, c_ld, kr_off, kr_ld;
    uint qlat_off, part_off, pos_off, pos_ld;
    uint ptab_off, ptab_ld, pages_off, page_size;
    uint split_ld, row0, u_off;
    float scale;
    uint vec4_rows, pad0, pad1, pad2;
} p;

const uint MAX_NH = 2u; // heads per workgroup (4: 1.6x slower a call on an H100, more registers)
const uint LG = 32u;    // invocations per key in step 1
const uint KPL = 2u;    // keys per lane group in a pass (PASS = KPL · WG / LG)
const uint SL = 5u;     // vec4s per lane: ceil((Rkv + dr) / 4) <= SL · LG (host-checked)
const float NEG_INF = -1.0 / 0.0;

shared float sp[PASS * MAX_NH * LG]; // step 1 sums [key][h][subgroup part]
shared float sw[PASS * MAX_NH];      // weights exp(score - m) [key][h]
shared float salpha[MAX_NH];
shared float sl[MAX_NH];             // l of a row of one split, L of an inline merge
shared float smw[MAX_NH * MAX_INLINE]; // an inline merge's w_s [h][s]
shared uint slast;
shared uint srow[2u * PASS];         // pool rows of the pass, double-buffered

// vec4 d of a cached row's [c | kr] (zero past its end)
vec4 key4(uint row, uint d, uint r4)
{
    uint cb = p.c_off + row * p.c_ld, kb = p.kr_off + row * p.kr_ld;
    if (p.vec4_rows != 0u)
        return d < r4 ? c4[cb / 4u + d] : kr4[kb / 4u + d - r4];
    vec4 v = vec4(0.0);
    [[unroll]] for (uint i = 0u; i < 4u; i++) {
        uint e = 4u * d + i;
        v[i] = e < p.rkv ? c[cb + e] : (e - p.rkv < p.dr ? kr[kb + e - p.rkv] : 0.0);
    }
    return v;
}

uint pool_row(uint pt, uint j)
{
    return uint(pages[pt + j / p.page_size]) * p.page_size + j % p.page_size;
}

void main()
{
    uint tid = gl_LocalInvocationID.x, s = gl_WorkGroupID.x;
    uint groups = (p.H + MAX_NH - 1u) / MAX_NH, hpg = (p.H + groups - 1u) / groups;
    if (gl_WorkGroupID.y >= p.rows * groups)
        return;
    uint t = p.row0 + gl_WorkGroupID.y / groups, h0 = hpg * (gl_WorkGroupID.y % groups);
    uint nh = min(hpg, p.H - h0);
    uint r4 = p.rkv / 4u, d4 = (p.rkv + p.dr + 3u) / 4u, lane = tid % LG, kk = tid / LG;
    vec4 qv[MAX_NH][SL];
    [[unroll]] for (uint hh = 0u; hh < MAX_NH; hh++) {
        uint qb = p.qlat_off + (t * p.H + h0 + hh) * p.rkv, rb = p.q_off + t * p.q_ld + (h0 + hh) * p.dqk + p.dn;
        [[unroll]] for (uint i = 0u; i < SL; i++) {
            uint d = lane + LG * i;
            qv[hh][i] = vec4(0.0);
            if (hh < nh && d < d4)
                [[unroll]] for (uint i4 = 0u; i4 < 4u; i4++) {
                    uint e = 4u * d + i4; // element of [qlat | qr], as key4 reads [c | kr]
                    qv[hh][i][i4] = e < p.rkv ? qlat[qb + e] : (e - p.rkv < p.dr ? q[rb + e - p.rkv] : 0.0);
                }
        }
    }
    uint pt = p.pages_off + uint(ptab[p.ptab_off + t * p.ptab_ld]);
    // the queries' and page table's loads above are in flight before the row's length is known
    uint len = uint(pos[p.pos_off + t * p.pos_ld]) + 1u;
    uint chunk = split_chunk(len), ns = (len + chunk - 1u) / chunk;
    if (s >= ns)
        return; // past the row's last split: no partial (the combine stops before it)
    uint j0 = s * chunk, j1 = min(len, j0 + chunk);
    uint rw = min(LG, gl_SubgroupSize), nparts = LG / rw;
    bool mixer = 2u * tid < p.rkv;
    vec2 acc[MAX_NH];
    [[unroll]] for (uint hh = 0u; hh < MAX_NH; hh++)
        acc[hh] = vec2(0.0);
    float m = NEG_INF, l = 0.0; // invocation tid < nh: head tid's running max and sum

    // pool rows of the pass (a short pass repeats its last row); the next pass's are loaded
    // while this one runs
    uint prow = tid < PASS ? pool_row(pt, min(j0 + tid, j1 - 1u)) : 0u;
    for (uint jt = j0, buf = 0u; jt < j1; jt += PASS, buf ^= PASS) {
        uint n = min(PASS, j1 - jt);
        if (tid < PASS)
            srow[buf + tid] = prow;
        barrier();
        if (tid < PASS && jt + PASS < j1)
            prow = pool_row(pt, min(jt + PASS + tid, j1 - 1u));
        // step 1: both keys' loads in flight together; vec4s past the row load a valid vec4
        // against a zero query
        vec4 kv[KPL][SL];
        [[unroll]] for (uint u = 0u; u < KPL; u++) {
            uint row = srow[buf + kk + u * (WG / LG)];
            [[unroll]] for (uint i = 0u; i < SL; i++)
                kv[u][i] = key4(row, min(lane + LG * i, d4 - 1u), r4);
        }
        [[unroll]] for (uint u = 0u; u < KPL; u++)
            [[unroll]] for (uint hh = 0u; hh < MAX_NH; hh++) {
                if (hh >= nh)
                    continue; // nh is the same in the whole workgroup: the shuffles stay uniform
                float a = 0.0;
                [[unroll]] for (uint i = 0u; i < SL; i++)
                    a += dot(qv[hh][i], kv[u][i]);
                for (uint mk = 1u; mk < rw; mk <<= 1)
                    a += subgroupShuffleXor(a, mk);
                if (lane % rw == 0u)
                    sp[((kk + u * (WG / LG)) * MAX_NH + hh) * LG + lane / rw] = a;
            }
        barrier();
        if (tid < nh) {
            float sc[PASS];
            float mn = m;
            [[unroll]] for (uint jj = 0u; jj < PASS; jj++) {
                float a = 0.0;
                for (uint k = 0u; k < nparts; k++)
                    a += sp[(jj * MAX_NH + tid) * LG + k];
                sc[jj] = a * p.scale;
                if (jj < n)
                    mn = max(mn, sc[jj]);
            }
            float sum = 0.0;
            [[unroll]] for (uint jj = 0u; jj < PASS; jj++) {
                float e = jj < n ? exp(sc[jj] - mn) : 0.0;
                sw[jj * MAX_NH + tid] = e;
                sum += e;
            }
            float alpha = exp(m - mn);
            l = l * alpha + sum;
            m = mn;
            salpha[tid] = alpha;
        }
        barrier();
        if (mixer) {
            [[unroll]] for (uint hh = 0u; hh < MAX_NH; hh++)
                if (hh < nh)
                    acc[hh] *= salpha[hh];
            vec2 cv[PASS]; // the whole pass's loads in flight together (weight 0 past the row)
            [[unroll]] for (uint jj = 0u; jj < PASS; jj++)
                cv[jj] = p.vec4_rows != 0u ? c2[(p.c_off + srow[buf + jj] * p.c_ld) / 2u + tid]
                                           : vec2(c[p.c_off + srow[buf + jj] * p.c_ld + 2u * tid],
                                                  2u * tid + 1u < p.rkv ? c[p.c_off + srow[buf + jj] * p.c_ld + 2u * tid + 1u]
                                                                        : 0.0);
            [[unroll]] for (uint jj = 0u; jj < PASS; jj++)
                [[unroll]] for (uint hh = 0u; hh < MAX_NH; hh++)
                    if (hh < nh)
                        acc[hh] += sw[jj * MAX_NH + hh] * cv[jj];
        }
        // no barrier: the next pass writes srow[other half] before, and sp / sw / salpha only
        // after, a barrier that every invocation reaches after this mix
    }
    uint rl0 = (t - p.row0) * p.H + h0;
    if (ns == 1u) {
        // the whole row in this workgroup: u = u / l, the combine skips the row
        if (tid < nh)
            sl[tid] = l;
        barrier();
        if (mixer)
            [[unroll]] for (uint hh = 0u; hh < MAX_NH; hh++)
                if (hh < nh) {
                    uint ub = p.u_off + (t * p.H + h0 + hh) * p.rkv + 2u * tid;
                    vec2 v = acc[hh] / sl[hh];
                    part[ub] = v.x;
                    if (2u * tid + 1u < p.rkv)
                        part[ub + 1u] = v.y;
                }
        return;
    }
    uint stride = part_stride(p.rkv);
    if (tid < nh) {
        uint pb = p.part_off + ((rl0 + tid) * p.split_ld + s) * stride;
        part[pb] = m;
        part[pb + 1u] = l;
        part[pb + 2u] = 0.0;
        part[pb + 3u] = 0.0;
    }
    if (mixer)
        [[unroll]] for (uint hh = 0u; hh < MAX_NH; hh++)
            if (hh < nh) {
                uint pb = p.part_off + ((rl0 + hh) * p.split_ld + s) * stride + 4u + 2u * tid;
                part[pb] = acc[hh].x;
                if (2u * tid + 1u < p.rkv)
                    part[pb + 1u] = acc[hh].y;
            }
    if (ns > MAX_INLINE)
        return; // mla_combine.comp merges the row
    // inline merge: the workgroup that finishes last among the row's splits (for this group of
    // heads) merges them, reading every partial back in split order, so the result does not
    // depend on which one that is; it leaves the arrival count at 0 for the next dispatch
    memoryBarrierBuffer();
    barrier();
    if (tid == 0u) {
        uint ci = t * groups + gl_WorkGroupID.y % groups;
        uint last = atomicAdd(cnt[ci], 1u) == ns - 1u ? 1u : 0u;
        if (last != 0u)
            atomicExchange(cnt[ci], 0u);
        slast = last;
    }
    barrier();
    if (slast == 0u)
        return;
    memoryBarrierBuffer();
    // every split's loads issued together, the sums in split order
    if (tid < nh) {
        uint pb = p.part_off + (rl0 + tid) * p.split_ld * stride;
        float ms[MAX_INLINE], ls[MAX_INLINE], M = NEG_INF, L = 0.0;
        [[unroll]] for (uint k = 0u; k < MAX_INLINE; k++) {
            ms[k] = k < ns ? part[pb + k * stride] : NEG_INF;
            ls[k] = k < ns ? part[pb + k * stride + 1u] : 0.0;
        }
        [[unroll]] for (uint k = 0u; k < MAX_INLINE; k++)
            M = max(M, ms[k]);
        [[unroll]] for (uint k = 0u; k < MAX_INLINE; k++) {
            float w = k < ns ? exp(ms[k] - M) : 0.0;
            smw[tid * MAX_INLINE + k] = w;
            L += ls[k] * w;
        }
        sl[tid] = L;
    }
    barrier();
    if (mixer)
        [[unroll]] for (uint hh = 0u; hh < MAX_NH; hh++)
            if (hh < nh) {
                uint pb = p.part_off + (rl0 + hh) * p.split_ld * stride + 4u + 2u * tid;
                vec2 pv[MAX_INLINE];
                [[unroll]] for (uint k = 0u; k < MAX_INLINE; k++)
                    pv[k] = k < ns ? vec2(part[pb + k * stride], 2u * tid + 1u < p.rkv ? part[pb + k * stride + 1u] : 0.0)
                                   : vec2(0.0);
                vec2 a = vec2(0.0);
                [[unroll]] for (uint k = 0u; k < MAX_INLINE; k++)
                    a += pv[k] * smw[hh * MAX_INLINE + k];
                a /= sl[hh];
                uint ub = p.u_off + (t * p.H + h0 + hh) * p.rkv + 2u * tid;
                part[ub] = a.x;
                if (2u * tid + 1u < p.rkv)
                    part[ub + 1u] = a.y;
            }
}
