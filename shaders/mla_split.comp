#version 450
// Absorbed-MLA attention core over the paged latent cache, split over the sequence
// (model-spec §2.5; flash-decoding): workgroup (s, g) takes query row t and the 4 heads
// h = 4·hg .. 4·hg+3 (g = t·ceil(H/4) + hg, rows [row0, row0 + rows) of this block) over
// split s of its keys 0..pos[t]. MLA's heads share one latent key/value c_j, so the 4 heads
// read each cached row once. Per head it computes the scores scale·(qlat·c_j + qr·kr_j) in
// tiles of 64 positions and keeps a running max m, sum l = Σ exp(score - m) and accumulator
// u = Σ exp(score - m) c_j, written as the partial [m, l, u[Rkv]] of (t·H + h, s);
// mla_combine.comp merges the partials of a row. How a row's keys split depends only on its
// own length (nsplit below), never on the other rows of the step, so a row's result is the
// same alone or batched. Push constants mirror glm_vk_mla_split_push in src/backend/vk/ops.h.
layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer QL { float qlat[]; }; // [T*H][Rkv]
layout(std430, binding = 1) readonly buffer Q { float q[]; };     // row t, head h at q_off + t*q_ld + h*dqk
layout(std430, binding = 2) readonly buffer C { float c[]; };     // pool rows, c at c_off + row*c_ld
layout(std430, binding = 3) readonly buffer KR { float kr[]; };   // pool rows, kr at kr_off + row*kr_ld
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

const uint MIN_CHUNK = 64u;
const uint MAX_RKV = 512u, MAX_DR = 128u, KPT = MAX_RKV / 64u;
const float NEG_INF = -1.0 / 0.0;

shared vec4 sq[MAX_RKV];  // qlat of the 4 heads
shared vec4 sqr[MAX_DR];  // their rope queries
shared vec4 sc[64];
shared uint srow[64];
shared vec4 red[64];

vec4 reduce(vec4 v, bool is_max)
{
    uint tid = gl_LocalInvocationID.x;
    red[tid] = v;
    barrier();
    for (uint k = 32u; k > 0u; k >>= 1) {
        if (tid < k)
            red[tid] = is_max ? max(red[tid], red[tid + k]) : red[tid] + red[tid + k];
        barrier();
    }
    vec4 r = red[0];
    barrier();
    return r;
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
            for (uint k = tid; k < p.rkv; k += 64u)
                part[pb + 2u + k] = 0.0;
            if (tid == 0u) {
                part[pb] = NEG_INF;
                part[pb + 1u] = 0.0;
            }
        }
        return;
    }
    for (uint k = tid; k < p.rkv; k += 64u) {
        vec4 v = vec4(0.0);
        for (uint hh = 0u; hh < nh; hh++)
            v[hh] = qlat[p.qlat_off + (t * p.H + h0 + hh) * p.rkv + k];
        sq[k] = v;
    }
    for (uint k = tid; k < p.dr; k += 64u) {
        vec4 v = vec4(0.0);
        for (uint hh = 0u; hh < nh; hh++)
            v[hh] = q[p.q_off + t * p.q_ld + (h0 + hh) * p.dqk + p.dn + k];
        sqr[k] = v;
    }
    uint pt = p.pages_off + uint(ptab[p.ptab_off + t * p.ptab_ld]);
    barrier();
    vec4 m = vec4(NEG_INF), l = vec4(0.0);
    vec4 acc[KPT];
    for (uint i = 0u; i < KPT; i++)
        acc[i] = vec4(0.0);
    for (uint jt = j0; jt < j1; jt += 64u) {
        uint j = jt + tid;
        vec4 score = vec4(NEG_INF);
        if (j < j1) {
            uint row = uint(pages[pt + j / p.page_size]) * p.page_size + j % p.page_size;
            vec4 a = vec4(0.0);
            uint cb = p.c_off + row * p.c_ld, kb = p.kr_off + row * p.kr_ld;
            for (uint k = 0u; k < p.rkv; k++)
                a += sq[k] * c[cb + k];
            for (uint k = 0u; k < p.dr; k++)
                a += sqr[k] * kr[kb + k];
            score = a * p.scale;
            srow[tid] = row;
        }
        vec4 mn = max(m, reduce(score, true));
        vec4 alpha = exp(m - mn);
        vec4 e = j < j1 ? exp(score - mn) : vec4(0.0);
        sc[tid] = e;
        l = l * alpha + reduce(e, false); // its barriers also publish sc and srow
        uint n = min(64u, j1 - jt);
        for (uint i = 0u; i < KPT; i++) {
            uint k = tid + 64u * i;
            if (k >= p.rkv)
                break;
            vec4 a = acc[i] * alpha;
            for (uint jj = 0u; jj < n; jj++)
                a += sc[jj] * c[p.c_off + srow[jj] * p.c_ld + k];
            acc[i] = a;
        }
        m = mn;
        barrier();
    }
    for (uint hh = 0u; hh < nh; hh++) {
        uint pb = p.part_off + ((rl0 + hh) * p.split_ld + s) * (p.rkv + 2u);
        for (uint i = 0u; i < KPT; i++) {
            uint k = tid + 64u * i;
            if (k < p.rkv)
                part[pb + 2u + k] = acc[i][hh];
        }
        if (tid == 0u) {
            part[pb] = m[hh];
            part[pb + 1u] = l[hh];
        }
    }
}
