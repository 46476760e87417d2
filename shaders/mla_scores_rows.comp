#version 450
#extension GL_EXT_control_flow_attributes : require
// Absorbed-MLA scores of an item of few query rows over many keys (decode at depth; model-spec
// §2.5): the same scores, masking, bindings and push constants as mla_scores_tiled.comp
// (s[t·H + h][j] = scale·(qlat·c_j + q_rope·kr_j), −inf past pos0 + t, for j < s_ld), laid
// out for rows·H of a few tens and thousands of keys. A workgroup takes 32 keys and every
// query row: invocation (key tid / 8, slice tid % 8) holds the vec4s slice, slice + 8, ... of
// its key's [c | kr] in registers (eight invocations read a key's 128 contiguous bytes at a
// time), loaded once; the query rows go through shared memory QR at a time, each invocation
// forms its slice's parts of the dot products, and the eight parts of a score are added in
// slice order through shared memory. Query loads (from L2: every workgroup reads the same
// rows) are issued together, as vec4s where the query layout allows. Every load of the keys is issued before the first use.
// Where Rkv, dr and the cache offsets and strides are multiples of 4 floats (the model's
// layout), keys are read as vec4s, else element by element.
// Push constants mirror glm_vk_mla_scores_push (vk/ops.h).
layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer QL { float qlat[]; }; // [T*H][Rkv]
layout(std430, binding = 0) readonly buffer QL4 { vec4 qlat4[]; };
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
    uint pad0, pad1, pad2, pad3;
} p;

#define KEYS 32u  // keys per workgroup
#define SLICES 8u // invocations per key
#define KI 20u    // vec4s per invocation: ceil((Rkv + dr) / 4) <= KI · SLICES (host: Rkv <= 512, dr <= 128)
#define QR 8u     // query rows staged at a time

shared vec4 qs[QR * KI * SLICES];     // qs[r·KI·SLICES + d]: vec4 d of [qlat | q_rope] of query row r0 + r
shared float red[QR * KEYS * (SLICES + 1u)]; // red[(r·KEYS + key)·(SLICES + 1) + slice]: a slice's part of a score

// Element k of [qlat | q_rope] of query row `row` (zero past the rows and the width).
float query_at(uint row, uint k)
{
    if (row >= p.T * p.H || k >= p.rkv + p.dr)
        return 0.0;
    return k < p.rkv ? qlat[p.qlat_off + row * p.rkv + k]
                     : q[p.q_off + (row / p.H) * p.q_ld + (row % p.H) * p.dqk + p.dn + k - p.rkv];
}

void main()
{
    uint tid = gl_LocalInvocationID.x, key = tid / SLICES, slice = tid % SLICES;
    uint rows = p.T * p.H, pos0 = uint(pos[p.pos_off]), n_kv = pos0 + p.T;
    uint w4 = (p.rkv + p.dr + 3u) / 4u, r4 = p.rkv / 4u;
    uint j = gl_WorkGroupID.x * KEYS + key;
    bool vec = ((p.rkv | p.dr | p.c_off | p.c_ld | p.kr_off | p.kr_ld) & 3u) == 0u;
    bool qvec = ((p.rkv | p.dr | p.dqk | p.dn | p.q_off | p.q_ld | p.qlat_off) & 3u) == 0u;
    // this invocation's vec4s of key j (zero past the row, or for a key that is not held)
    vec4 kv[KI];
    uint pt = p.pages_off + uint(ptab[p.ptab_off]), cj = min(j, n_kv - 1u);
    uint prow = uint(pages[pt + cj / p.page_size]) * p.page_size + cj % p.page_size;
    uint cb = p.c_off + prow * p.c_ld, kb = p.kr_off + prow * p.kr_ld;
    [[unroll]] for (uint i = 0u; i < KI; i++) {
        uint d = slice + SLICES * i;
        vec4 v = vec4(0.0);
        if (j < n_kv && d < w4) {
            if (vec)
                v = d < r4 ? c4[cb / 4u + d] : kr4[kb / 4u + d - r4];
            else
                [[unroll]] for (uint e = 0u; e < 4u; e++) {
                    uint k = 4u * d + e;
                    v[e] = k < p.rkv ? c[cb + k] : (k - p.rkv < p.dr ? kr[kb + k - p.rkv] : 0.0);
                }
        }
        kv[i] = v;
    }
    for (uint r0 = 0u; r0 < rows; r0 += QR) {
        // stage query rows r0 .. r0 + QR - 1: vec4 e = tid + 256·i of the stage, all loads
        // issued together
        vec4 qv[QR * KI * SLICES / 256u];
        [[unroll]] for (uint i = 0u; i < QR * KI * SLICES / 256u; i++) {
            uint e = tid + 256u * i, row = r0 + e / (KI * SLICES), d = e % (KI * SLICES);
            if (qvec) {
                qv[i] = vec4(0.0);
                if (row < rows && d < w4)
                    qv[i] = d < r4 ? qlat4[(p.qlat_off + row * p.rkv) / 4u + d]
                                   : q4[(p.q_off + (row / p.H) * p.q_ld + (row % p.H) * p.dqk + p.dn) / 4u + d - r4];
            } else
                [[unroll]] for (uint k = 0u; k < 4u; k++)
                    qv[i][k] = query_at(row, 4u * d + k);
        }
        [[unroll]] for (uint i = 0u; i < QR * KI * SLICES / 256u; i++)
            qs[tid + 256u * i] = qv[i];
        barrier();
        [[unroll]] for (uint r = 0u; r < QR; r++) {
            float a = 0.0;
            [[unroll]] for (uint i = 0u; i < KI; i++)
                a += dot(qs[r * KI * SLICES + slice + SLICES * i], kv[i]);
            red[(r * KEYS + key) * (SLICES + 1u) + slice] = a;
        }
        barrier();
        // invocation (row r0 + tid / KEYS, key tid % KEYS) adds up its score's slices
        uint r = tid / KEYS, jo = gl_WorkGroupID.x * KEYS + tid % KEYS, row = r0 + r;
        if (r < QR && row < rows && jo < p.s_ld) {
            float a = 0.0;
            [[unroll]] for (uint sl = 0u; sl < SLICES; sl++)
                a += red[(r * KEYS + tid % KEYS) * (SLICES + 1u) + sl];
            s[p.s_off + row * p.s_ld + jo] = jo > pos0 + row / p.H ? -1.0 / 0.0 : a * p.scale;
        }
    }
}
