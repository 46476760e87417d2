#version 450
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
// Absorbed-MLA scores of an item of few query rows over many keys (decode at depth; model-spec
// §2.5): the same scores, masking, bindings and push constants as mla_scores_tiled.comp
// (s[t·H + h][j] = scale·(qlat·c_j + q_rope·kr_j), −inf past pos0 + t, for j < s_ld), laid
// out for rows·H of a few tens and thousands of keys. A workgroup takes 32 keys and every
// query row: invocation (pair kp = tid / 16, slice tid % 16) holds the vec4s slice, slice + 16,
// ... of keys kp and kp + 16 in registers (sixteen invocations read a key's 256 contiguous
// bytes at a time), loaded once; the query rows go through shared memory QR at a time, each
// query vec4 read serves both keys, and the sixteen parts of a score are added by subgroup
// shuffles (through shared memory too where subgroups are narrower than 16). Query loads (from L2: every workgroup reads the same
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

#define KEYS 32u   // keys per workgroup
#define SLICES 16u // invocations per key: 16 consecutive lanes
#define KI 10u     // vec4s per invocation and key: ceil((Rkv + dr) / 4) <= KI · SLICES (host: Rkv <= 512, dr <= 128)
#define QR 10u     // query rows staged at a time

shared vec4 qs[QR * KI * SLICES]; // qs[r·KI·SLICES + d]: vec4 d of [qlat | q_rope] of query row r0 + r
shared float red[QR * KEYS * 2u];  // subgroups narrower than 16: the two halves of a score

// Element k of [qlat | q_rope] of query row `row` (zero past the rows and the width).
float query_at(uint row, uint k)
{
    if (row >= p.T * p.H || k >= p.rkv + p.dr)
        return 0.0;
    return k < p.rkv ? qlat[p.qlat_off + row * p.rkv + k]
                     : q[p.q_off + (row / p.H) * p.q_ld + (row % p.H) * p.dqk + p.dn + k - p.rkv];
}

// vec4 d of key j's [c | kr] (zero past the row or for a key that is not held)
vec4 key4(uint j, uint n_kv, uint pt, uint d, uint w4, uint r4, bool vec)
{
    uint cj = min(j, n_kv - 1u);
    uint prow = uint(pages[pt + cj / p.page_size]) * p.page_size + cj % p.page_size;
    uint cb = p.c_off + prow * p.c_ld, kb = p.kr_off + prow * p.kr_ld;
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
    return v;
}

void main()
{
    uint tid = gl_LocalInvocationID.x, kp = tid / SLICES, slice = tid % SLICES;
    uint rows = p.T * p.H, pos0 = uint(pos[p.pos_off]), n_kv = pos0 + p.T;
    uint w4 = (p.rkv + p.dr + 3u) / 4u, r4 = p.rkv / 4u;
    // this invocation's keys: ja and jb = ja + KEYS / 2 of the workgroup's KEYS
    uint ja = gl_WorkGroupID.x * KEYS + kp, jb = ja + KEYS / 2u;
    bool vec = ((p.rkv | p.dr | p.c_off | p.c_ld | p.kr_off | p.kr_ld) & 3u) == 0u;
    bool qvec = ((p.rkv | p.dr | p.dqk | p.dn | p.q_off | p.q_ld | p.qlat_off) & 3u) == 0u;
    uint pt = p.pages_off + uint(ptab[p.ptab_off]);
    vec4 ka[KI], kb[KI];
    [[unroll]] for (uint i = 0u; i < KI; i++) {
        ka[i] = key4(ja, n_kv, pt, slice + SLICES * i, w4, r4, vec);
        kb[i] = key4(jb, n_kv, pt, slice + SLICES * i, w4, r4, vec);
    }
    uint rw = min(SLICES, gl_SubgroupSize); // lanes of a score summed by shuffles
    for (uint r0 = 0u; r0 < rows; r0 += QR) {
        // stage query rows r0 .. r0 + QR - 1: vec4 e = tid + 256·i of the stage, all loads
        // issued together
        vec4 qv[(QR * KI * SLICES + 255u) / 256u];
        [[unroll]] for (uint i = 0u; i < (QR * KI * SLICES + 255u) / 256u; i++) {
            uint e = tid + 256u * i, row = r0 + e / (KI * SLICES), d = e % (KI * SLICES);
            qv[i] = vec4(0.0);
            if (e < QR * KI * SLICES) {
                if (qvec) {
                    if (row < rows && d < w4)
                        qv[i] = d < r4 ? qlat4[(p.qlat_off + row * p.rkv) / 4u + d]
                                       : q4[(p.q_off + (row / p.H) * p.q_ld + (row % p.H) * p.dqk + p.dn) / 4u + d - r4];
                } else
                    [[unroll]] for (uint k = 0u; k < 4u; k++)
                        qv[i][k] = query_at(row, 4u * d + k);
            }
        }
        [[unroll]] for (uint i = 0u; i < (QR * KI * SLICES + 255u) / 256u; i++)
            if (tid + 256u * i < QR * KI * SLICES)
                qs[tid + 256u * i] = qv[i];
        barrier();
        // each query vec4 read once for both keys; the 16 slices' parts summed by shuffles
        // (and, where a subgroup is narrower, the two halves through shared memory)
        [[unroll]] for (uint r = 0u; r < QR; r++) {
            float a = 0.0, b = 0.0;
            [[unroll]] for (uint i = 0u; i < KI; i++) {
                vec4 qq = qs[r * KI * SLICES + slice + SLICES * i];
                a += dot(qq, ka[i]);
                b += dot(qq, kb[i]);
            }
            for (uint m = 1u; m < rw; m <<= 1) {
                a += subgroupShuffleXor(a, m);
                b += subgroupShuffleXor(b, m);
            }
            uint row = r0 + r;
            if (rw < SLICES) {
                if (slice % rw == 0u) {
                    red[(r * KEYS + kp) * 2u + slice / rw] = a;
                    red[(r * KEYS + kp + KEYS / 2u) * 2u + slice / rw] = b;
                }
            } else if (slice == 0u && row < rows) {
                if (ja < p.s_ld)
                    s[p.s_off + row * p.s_ld + ja] = ja > pos0 + row / p.H ? -1.0 / 0.0 : a * p.scale;
                if (jb < p.s_ld)
                    s[p.s_off + row * p.s_ld + jb] = jb > pos0 + row / p.H ? -1.0 / 0.0 : b * p.scale;
            }
        }
        if (rw < SLICES) { // subgroups of 8 (16 / rw halves; the host keeps to subgroups of 8 or more)
            barrier();
            for (uint e = tid; e < QR * KEYS; e += 256u) {
                uint r = e / KEYS, jo = gl_WorkGroupID.x * KEYS + e % KEYS, row = r0 + r;
                if (row < rows && jo < p.s_ld) {
                    float a = red[e * 2u] + red[e * 2u + 1u];
                    s[p.s_off + row * p.s_ld + jo] = jo > pos0 + row / p.H ? -1.0 / 0.0 : a * p.scale;
                }
            }
        }
        barrier(); // qs (and red) are rewritten by the next round
    }
}
