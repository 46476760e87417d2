#version 450
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_EXT_control_flow_attributes : require
// Absorbed-MLA attention core over the paged latent cache, split over the sequence
// (model-spec §2.5; flash-decoding): workgroup (s, g) takes query row t and the 4 heads
// h = 4·hg .. 4·hg+3 (g = t·ceil(H/4) + hg, rows [row0, row0 + rows) of this block) over
// split s of its keys 0..pos[t]. MLA's heads share one latent key/value c_j, so the 4 heads
// read each cached row once. Per head it computes the scores scale·(qlat·c_j + qr·kr_j) in
// tiles of 64 positions and keeps a running max m, sum l = Σ exp(score - m) and accumulator
// u = Σ exp(score - m) c_j, written as the partial [m, l, u[Rkv]] of (t·H + h, s).
// 256 invocations: for the scores 4 adjacent invocations share a position (each a quarter of
// its latent, with loads independent of one another so that they are in flight together,
// summed by shuffles); for u each invocation owns latent columns tid and tid + 256;
// mla_combine.comp merges the partials of a row. How a row's keys split depends only on its
// own length (nsplit below), never on the other rows of the step, so a row's result is the
// same alone or batched. Push constants mirror glm_vk_mla_split_push in src/backend/vk/ops.h.
layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer QL { float qlat[]; }; // [T*H][Rkv]
layout(std430, binding = 1) readonly buffer Q { float q[]; };     // row t, head h at q_off + t*q_ld + h*dqk
layout(std430, binding = 2) readonly buffer C { float c[]; };     // pool rows, c at c_off + row*c_ld
layout(std430, binding = 2) readonly buffer C4 { vec4 c4[]; };
layout(std430, binding = 3) readonly buffer KR { float kr[]; };   // pool rows, kr at kr_off + row*kr_ld
layout(std430, binding = 3) readonly buffer KR4 { vec4 kr4[]; };
layout(std430, binding = 4) readonly buffer POS { int pos[]; };
layout(std430, binding = 5) readonly buffer PT { int ptab[]; };
layout(std430, binding = 6) readonly buffer PG { int pages[]; };
layout(std430, binding = 7) writeonly buffer PART { float part[]; }; // [rows*H][split_ld][Rkv + 2]

layout(push_constant) uniform P {
    uint rows, H, rkv, dr;
    uint dqk, dn, q_off, q_ld;
    uint c_off, c_ld, kr_off, kr_ld;
    uint qlat_off, part_off, pos_off, pos_ld;
    uint ptab_off, ptab_ld, pages_off, page_size;
    uint max_split, split_ld, row0;
    float scale;
} p;

const uint MIN_CHUNK = 64u, WG = 256u;
const uint MAX_RKV = 512u, MAX_DR = 128u, KPT = MAX_RKV / WG;
const float NEG_INF = -1.0 / 0.0;

shared vec4 sq[MAX_RKV]; // qlat of the 4 heads
shared vec4 sqr[MAX_DR]; // their rope queries
shared vec4 sc[64];      // the tile's scores, then their exponentials
shared uint srow[64];    // the tile's pool rows

// this invocation's quarter of qlat·c + qr·kr for pool row `row` (4 heads)
vec4 score_part(uint row, uint q4)
{
    vec4 a = vec4(0.0);
    uint cb = p.c_off + row * p.c_ld, kb = p.kr_off + row * p.kr_ld;
    if (((p.c_off | p.c_ld | p.kr_off | p.kr_ld | p.rkv | p.dr) & 3u) == 0u) {
        uint n4 = p.rkv / 4u, d4 = p.dr / 4u;
        [[unroll]] for (uint i = 0u; i < MAX_RKV / 16u; i++) {
            uint k4 = q4 + 4u * i;
            if (k4 < n4) {
                vec4 cv = c4[cb / 4u + k4];
                a += sq[4u * k4] * cv.x + sq[4u * k4 + 1u] * cv.y + sq[4u * k4 + 2u] * cv.z + sq[4u * k4 + 3u] * cv.w;
            }
        }
        [[unroll]] for (uint i = 0u; i < MAX_DR / 16u; i++) {
            uint k4 = q4 + 4u * i;
            if (k4 < d4) {
                vec4 kv = kr4[kb / 4u + k4];
                a += sqr[4u * k4] * kv.x + sqr[4u * k4 + 1u] * kv.y + sqr[4u * k4 + 2u] * kv.z + sqr[4u * k4 + 3u] * kv.w;
            }
        }
    } else {
        for (uint k = q4; k < p.rkv; k += 4u)
            a += sq[k] * c[cb + k];
        for (uint k = q4; k < p.dr; k += 4u)
            a += sqr[k] * kr[kb + k];
    }
    return a;
}

void main()
{
    uint tid = gl_LocalInvocationID.x, s = gl_WorkGroupID.x, hgs = (p.H + 3u) / 4u;
    if (gl_WorkGroupID.y >= p.rows * hgs)
        return;
    uint t = p.row0 + gl_WorkGroupID.y / hgs, h0 = 4u * (gl_WorkGroupID.y % hgs);
    uint nh = min(4u, p.H - h0);
    uint len = uint(pos[p.pos_off + t * p.pos_ld]) + 1u;
    uint nsplit = min(p.max_split, (len + MIN_CHUNK - 1u) / MIN_CHUNK);
    uint chunk = (len + nsplit - 1u) / nsplit;
    uint j0 = s * chunk, j1 = min(len, j0 + chunk);
    uint rl0 = (t - p.row0) * p.H + h0; // local row of head h0
    if (s >= nsplit || j0 >= j1) {
        for (uint hh = 0u; hh < nh; hh++) {
            uint pb = p.part_off + ((rl0 + hh) * p.split_ld + s) * (p.rkv + 2u);
            for (uint k = tid; k < p.rkv; k += WG)
                part[pb + 2u + k] = 0.0;
            if (tid == 0u) {
                part[pb] = NEG_INF;
                part[pb + 1u] = 0.0;
            }
        }
        return;
    }
    for (uint k = tid; k < p.rkv; k += WG) {
        vec4 v = vec4(0.0);
        for (uint hh = 0u; hh < nh; hh++)
            v[hh] = qlat[p.qlat_off + (t * p.H + h0 + hh) * p.rkv + k];
        sq[k] = v;
    }
    for (uint k = tid; k < p.dr; k += WG) {
        vec4 v = vec4(0.0);
        for (uint hh = 0u; hh < nh; hh++)
            v[hh] = q[p.q_off + t * p.q_ld + (h0 + hh) * p.dqk + p.dn + k];
        sqr[k] = v;
    }
    uint pt = p.pages_off + uint(ptab[p.ptab_off + t * p.ptab_ld]);
    barrier();
    vec4 m = vec4(NEG_INF), l = vec4(0.0);
    vec4 acc[KPT];
    [[unroll]] for (uint i = 0u; i < KPT; i++)
        acc[i] = vec4(0.0);
    uint jl = tid >> 2, q4 = tid & 3u;
    for (uint jt = j0; jt < j1; jt += 64u) {
        uint n = min(64u, j1 - jt), j = jt + jl;
        vec4 a = vec4(0.0);
        if (jl < n) {
            uint row = uint(pages[pt + j / p.page_size]) * p.page_size + j % p.page_size;
            a = score_part(row, q4);
            if (q4 == 0u)
                srow[jl] = row;
        }
        // the 4 invocations of a position are adjacent lanes of one subgroup
        a += subgroupShuffleXor(a, 1u);
        a += subgroupShuffleXor(a, 2u);
        vec4 score = a * p.scale;
        if (q4 == 0u && jl < n)
            sc[jl] = score;
        barrier();
        vec4 tm = vec4(NEG_INF);
        for (uint jj = 0u; jj < n; jj++)
            tm = max(tm, sc[jj]);
        vec4 mn = max(m, tm);
        vec4 alpha = exp(m - mn);
        barrier();
        if (q4 == 0u && jl < n)
            sc[jl] = exp(score - mn);
        barrier();
        vec4 ts = vec4(0.0);
        for (uint jj = 0u; jj < n; jj++)
            ts += sc[jj];
        l = l * alpha + ts;
        [[unroll]] for (uint i = 0u; i < KPT; i++) {
            uint k = tid + WG * i;
            if (k < p.rkv) {
                vec4 u = acc[i] * alpha;
                [[unroll]] for (uint jj = 0u; jj < 64u; jj++)
                    if (jj < n)
                        u += sc[jj] * c[p.c_off + srow[jj] * p.c_ld + k];
                acc[i] = u;
            }
        }
        m = mn;
        barrier();
    }
    for (uint hh = 0u; hh < nh; hh++) {
        uint pb = p.part_off + ((rl0 + hh) * p.split_ld + s) * (p.rkv + 2u);
        [[unroll]] for (uint i = 0u; i < KPT; i++) {
            uint k = tid + WG * i;
            if (k < p.rkv)
                part[pb + 2u + k] = acc[i][hh];
        }
        if (tid == 0u) {
            part[pb] = m[hh];
            part[pb + 1u] = l[hh];
        }
    }
}
