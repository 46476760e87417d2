#version 450
// Absorbed-MLA attention core over the paged latent cache, split over the sequence
// (model-spec §2.5; flash-decoding): workgroup (s, r) takes query row r = t·H + h (of the
// rows [row0, row0 + rows) of this block) and split s of its keys 0..pos[t]. It computes the
// scores scale·(qlat·c_j + qr·kr_j) of its positions in tiles of 64 and keeps a running
// max m, sum l = Σ exp(score - m) and accumulator u = Σ exp(score - m) c_j, written as the
// partial [m, l, u[Rkv]] of (r, s); mla_combine.comp merges the partials of a row.
// How a row's keys split depends only on its own length (nsplit below), never on the other
// rows of the step, so a row's result is the same alone or batched.
// Push constants mirror glm_vk_mla_split_push in src/backend/vk/ops.h.
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
const uint MAX_RKV = 1024u, MAX_DR = 256u, KPT = MAX_RKV / 64u;

shared float sq[MAX_RKV];
shared float sqr[MAX_DR];
shared float sc[64];
shared uint srow[64];
shared float red[64];

float reduce(float v, bool is_max)
{
    uint tid = gl_LocalInvocationID.x;
    red[tid] = v;
    barrier();
    for (uint k = 32u; k > 0u; k >>= 1) {
        if (tid < k)
            red[tid] = is_max ? max(red[tid], red[tid + k]) : red[tid] + red[tid + k];
        barrier();
    }
    float r = red[0];
    barrier();
    return r;
}

void main()
{
    uint tid = gl_LocalInvocationID.x, s = gl_WorkGroupID.x, rl = gl_WorkGroupID.y;
    if (rl >= p.rows * p.H)
        return;
    uint t = p.row0 + rl / p.H, h = rl % p.H;
    uint len = uint(pos[p.pos_off + t * p.pos_ld]) + 1u;
    uint nsplit = min(p.max_split, (len + MIN_CHUNK - 1u) / MIN_CHUNK);
    uint chunk = (len + nsplit - 1u) / nsplit;
    uint j0 = s * chunk, j1 = min(len, j0 + chunk);
    uint pb = p.part_off + (rl * p.split_ld + s) * (p.rkv + 2u);
    if (s >= nsplit || j0 >= j1) {
        for (uint k = tid; k < p.rkv; k += 64u)
            part[pb + 2u + k] = 0.0;
        if (tid == 0u) {
            part[pb] = -1.0 / 0.0;
            part[pb + 1u] = 0.0;
        }
        return;
    }
    uint gr = t * p.H + h;
    for (uint k = tid; k < p.rkv; k += 64u)
        sq[k] = qlat[p.qlat_off + gr * p.rkv + k];
    for (uint k = tid; k < p.dr; k += 64u)
        sqr[k] = q[p.q_off + t * p.q_ld + h * p.dqk + p.dn + k];
    uint pt = p.pages_off + uint(ptab[p.ptab_off + t * p.ptab_ld]);
    barrier();
    float m = -1.0 / 0.0, l = 0.0;
    float acc[KPT];
    for (uint i = 0u; i < KPT; i++)
        acc[i] = 0.0;
    for (uint jt = j0; jt < j1; jt += 64u) {
        uint j = jt + tid;
        float score = -1.0 / 0.0;
        if (j < j1) {
            uint row = uint(pages[pt + j / p.page_size]) * p.page_size + j % p.page_size;
            float a = 0.0;
            uint cb = p.c_off + row * p.c_ld, kb = p.kr_off + row * p.kr_ld;
            for (uint k = 0u; k < p.rkv; k++)
                a += sq[k] * c[cb + k];
            for (uint k = 0u; k < p.dr; k++)
                a += sqr[k] * kr[kb + k];
            score = a * p.scale;
            srow[tid] = row;
        }
        float mt = reduce(score, true);
        float mn = max(m, mt);
        float alpha = exp(m - mn);
        float e = j < j1 ? exp(score - mn) : 0.0;
        sc[tid] = e;
        float st = reduce(e, false); // its barriers also publish sc and srow
        l = l * alpha + st;
        uint n = min(64u, j1 - jt);
        for (uint i = 0u; i < KPT; i++) {
            uint k = tid + 64u * i;
            if (k >= p.rkv)
                break;
            float a = acc[i] * alpha;
            for (uint jj = 0u; jj < n; jj++)
                a += sc[jj] * c[p.c_off + srow[jj] * p.c_ld + k];
            acc[i] = a;
        }
        m = mn;
        barrier();
    }
    for (uint i = 0u; i < KPT; i++) {
        uint k = tid + 64u * i;
        if (k < p.rkv)
            part[pb + 2u + k] = acc[i];
    }
    if (tid == 0u) {
        part[pb] = m;
        part[pb + 1u] = l;
    }
}
