#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
// Absorbed-MLA attention core over the paged latent cache, split over the sequence
// (model-spec §2.5; flash-decoding). MLA's heads share one latent key/value row [c_j | kr_j],
// so a workgroup takes query row t, split s of its keys (mla_splits.glsl) and a group of up to
// MAX_HG heads (the H heads cut into ceil(H / MAX_HG) equal groups, gl_WorkGroupID.y =
// local row · groups + group): each cached row of the split is read once for all heads of the
// group. Keys go in tiles of J positions:
//   1. scores: invocation (kp, h) holds head h's query [qlat_h | qr_h] for one slice kp of
//      the row's ceil((Rkv + dr) / 4) vec4s in registers and forms its part of c_j·qlat_h + kr_j·qr_h
//      for every key of the tile; the parts are summed per (head, key) through shared memory
//      in slice order and scaled.
//   2. online softmax per head (one invocation each): running max m, sum l = Σ exp(score - m),
//      the tile's weights exp(score - m) and the factor alpha = exp(m_old - m).
//   3. mix: invocation i holds u[h][2i, 2i+1] = Σ exp(score - m) c_j for every head of the
//      group and adds the tile's weighted c rows (read coalesced, the same rows as step 1).
// Output: partial [m, l, 0, 0, u[Rkv]] of (local row · H + h, s); mla_combine.comp merges them.
// Where Rkv, dr and the cache offsets and strides are multiples of 4 (vec4_rows), keys are read
// as vec4 / vec2, else element by element.
// Push constants mirror glm_vk_mla_split_push in src/backend/vk/ops.h.
#include "mla_splits.glsl"
#define WG 256u
layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer QL { float qlat[]; }; // [T*H][Rkv]
layout(std430, binding = 1) readonly buffer Q { float q[]; };     // row t, head h at q_off + t*q_ld + h*dqk
layout(std430, binding = 2) readonly buffer C { float c[]; };     // pool rows, c at c_off + row*c_ld
layout(std430, binding = 2) readonly buffer C4 { vec4 c4[]; };
layout(std430, binding = 2) readonly buffer C2 { vec2 c2[]; };
layout(std430, binding = 3) readonly buffer KR { float kr[]; };   // pool rows, kr at kr_off + row*kr_ld
layout(std430, binding = 3) readonly buffer KR4 { vec4 kr4[]; };
layout(std430, binding = 4) readonly buffer POS { int pos[]; };
layout(std430, binding = 5) readonly buffer PT { int ptab[]; };
layout(std430, binding = 6) readonly buffer PG { int pages[]; };
layout(std430, binding = 7) writeonly buffer PART { float part[]; }; // [rows*H][split_ld][part_stride]

layout(push_constant) uniform P {
    uint rows, H, rkv, dr;
    uint dqk, dn, q_off, q_ld;
    uint c_off, c_ld, kr_off, kr_ld;
    uint qlat_off, part_off, pos_off, pos_ld;
    uint ptab_off, ptab_ld, pages_off, page_size;
    uint max_split, split_ld, row0;
    float scale;
    uint vec4_rows, pad0, pad1, pad2;
} p;

const uint MAX_HG = 10u; // heads per workgroup
const uint J = 16u;      // keys per tile (shared memory: 4·J·(WG + 2·MAX_HG) + 8·J bytes)
const uint MAX_SL = 6u;  // vec4s per slice: ceil((Rkv + dr) / 4) <= 6·floor(WG / MAX_HG) (host-checked)
const uint KB = 2u;      // keys whose loads step 1 issues together
const float NEG_INF = -1.0 / 0.0;

shared float sp[J * WG];        // step 1 parts [key][kp·nh + h]
shared float ss[J * MAX_HG];    // scaled scores [key][h]
shared float sw[J * MAX_HG];    // weights exp(score - m) [key][h]
shared float salpha[MAX_HG];
shared uint srow[2u * J];       // pool rows of the tile, double-buffered

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
    uint groups = (p.H + MAX_HG - 1u) / MAX_HG, hpg = (p.H + groups - 1u) / groups;
    if (gl_WorkGroupID.y >= p.rows * groups)
        return;
    uint t = p.row0 + gl_WorkGroupID.y / groups, h0 = hpg * (gl_WorkGroupID.y % groups);
    uint nh = min(hpg, p.H - h0);
    uint len = uint(pos[p.pos_off + t * p.pos_ld]) + 1u;
    uint chunk = split_chunk(len, p.max_split);
    uint j0 = s * chunk, j1 = min(len, j0 + chunk);
    if (j0 >= j1)
        return; // past the row's last split: no partial (the combine stops before it)

    // step 1 layout: invocation tid = kp·nh + hl takes vec4s [kp·sl, kp·sl + sl) of head hl
    uint r4 = p.rkv / 4u, d4 = (p.rkv + p.dr + 3u) / 4u, nkp = WG / nh, sl = (d4 + nkp - 1u) / nkp;
    uint hl = tid % nh, kp = tid / nh, nkp_used = (d4 + sl - 1u) / sl;
    bool scorer = kp < nkp_used;
    vec4 qv[MAX_SL];
    [[unroll]] for (uint i = 0u; i < MAX_SL; i++) {
        uint d = kp * sl + i;
        qv[i] = vec4(0.0);
        if (scorer && i < sl && d < d4) {
            uint qb = p.qlat_off + (t * p.H + h0 + hl) * p.rkv, rb = p.q_off + t * p.q_ld + (h0 + hl) * p.dqk + p.dn;
            [[unroll]] for (uint i4 = 0u; i4 < 4u; i4++) {
                uint e = 4u * d + i4; // element of [qlat | qr], as key4 reads [c | kr]
                qv[i][i4] = e < p.rkv ? qlat[qb + e] : (e - p.rkv < p.dr ? q[rb + e - p.rkv] : 0.0);
            }
        }
    }
    uint pt = p.pages_off + uint(ptab[p.ptab_off + t * p.ptab_ld]);
    bool mixer = 2u * tid < p.rkv;
    vec2 acc[MAX_HG];
    [[unroll]] for (uint hh = 0u; hh < MAX_HG; hh++)
        acc[hh] = vec2(0.0);
    float m = NEG_INF, l = 0.0; // invocation tid < nh: head tid's running max and sum

    for (uint jt = j0, buf = 0u; jt < j1; jt += J, buf ^= J) {
        uint n = min(J, j1 - jt);
        if (tid < J)
            srow[buf + tid] = pool_row(pt, min(jt + tid, j1 - 1u)); // a short tile repeats its last row
        barrier();
        if (scorer) {
            // KB keys at a time, every load of the batch issued before the first is used; slots
            // past the query's slice (or past the row) load a valid vec4 against a zero query
            for (uint jb = 0u; jb < J; jb += KB) {
                vec4 kv[KB][MAX_SL];
                [[unroll]] for (uint u = 0u; u < KB; u++) {
                    uint row = srow[buf + jb + u];
                    [[unroll]] for (uint i = 0u; i < MAX_SL; i++)
                        kv[u][i] = key4(row, min(kp * sl + i, d4 - 1u), r4);
                }
                [[unroll]] for (uint u = 0u; u < KB; u++) {
                    float a = 0.0;
                    [[unroll]] for (uint i = 0u; i < MAX_SL; i++)
                        a += dot(qv[i], kv[u][i]);
                    sp[(jb + u) * WG + tid] = a;
                }
            }
        }
        barrier();
        for (uint r = tid; r < n * nh; r += WG) {
            uint jj = r / nh, h = r % nh;
            float a = 0.0;
            for (uint k = 0u; k < nkp_used; k++)
                a += sp[jj * WG + k * nh + h];
            ss[jj * MAX_HG + h] = a * p.scale;
        }
        barrier();
        if (tid < nh) {
            float mn = m;
            for (uint jj = 0u; jj < n; jj++)
                mn = max(mn, ss[jj * MAX_HG + tid]);
            float sum = 0.0;
            for (uint jj = 0u; jj < J; jj++) {
                float e = jj < n ? exp(ss[jj * MAX_HG + tid] - mn) : 0.0;
                sw[jj * MAX_HG + tid] = e;
                sum += e;
            }
            float alpha = exp(m - mn);
            l = l * alpha + sum;
            m = mn;
            salpha[tid] = alpha;
        }
        barrier();
        if (mixer) {
            [[unroll]] for (uint hh = 0u; hh < MAX_HG; hh++)
                if (hh < nh)
                    acc[hh] *= salpha[hh];
            vec2 cv[J]; // the whole tile's loads in flight together (weight 0 past the row)
            [[unroll]] for (uint jj = 0u; jj < J; jj++)
                cv[jj] = p.vec4_rows != 0u ? c2[(p.c_off + srow[buf + jj] * p.c_ld) / 2u + tid]
                                           : vec2(c[p.c_off + srow[buf + jj] * p.c_ld + 2u * tid],
                                                  2u * tid + 1u < p.rkv ? c[p.c_off + srow[buf + jj] * p.c_ld + 2u * tid + 1u]
                                                                        : 0.0);
            [[unroll]] for (uint jj = 0u; jj < J; jj++)
                [[unroll]] for (uint hh = 0u; hh < MAX_HG; hh++)
                    if (hh < nh)
                        acc[hh] += sw[jj * MAX_HG + hh] * cv[jj];
        }
        // no barrier: the next tile writes srow[other half] before, and sp / ss / sw / salpha
        // only after, a barrier that every invocation reaches after this mix
    }
    uint stride = part_stride(p.rkv), rl0 = (t - p.row0) * p.H + h0;
    if (tid < nh) {
        uint pb = p.part_off + ((rl0 + tid) * p.split_ld + s) * stride;
        part[pb] = m;
        part[pb + 1u] = l;
        part[pb + 2u] = 0.0;
        part[pb + 3u] = 0.0;
    }
    if (mixer)
        [[unroll]] for (uint hh = 0u; hh < MAX_HG; hh++)
            if (hh < nh) {
                uint pb = p.part_off + ((rl0 + hh) * p.split_ld + s) * stride + 4u + 2u * tid;
                part[pb] = acc[hh].x;
                if (2u * tid + 1u < p.rkv)
                    part[pb + 1u] = acc[hh].y;
            }
}
