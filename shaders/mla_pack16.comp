#version 450
// Float16 copies of the tiled MLA core's operands, for the tensor-core kernels
// (shaders/coopmat/mla_scores_cm.comp, mla_mix_cm.comp): they then read half the bytes of
// the float32 originals and no page table.
//   keys: row j < L of K16 = [c_j | kr_j] of cache position j (through the item's page table),
//         zero at positions j >= n_kv = pos0 + T (past the block's last causal position);
//   queries: row r < T·H of Q16 = [qlat_r | q_rope(t = r / H, h = r % H)].
// Each row is ld16 uints (two float16 a uint, the lower half first: packHalf2x16), zero past
// rkv + dr. One invocation writes one uint; gl_GlobalInvocationID.x + 65535·256·y counts the
// uints of the key rows, then of the query rows.
// Push constants mirror glm_vk_mla_pack16_push in src/backend/vk/ops.h.
layout(local_size_x = 256) in;

layout(std430, binding = 0) buffer SC { float sc[]; };        // scratch: qlat at qlat_off (read)
layout(std430, binding = 0) buffer SCU { uint scu[]; };       // K16 at k16_off, Q16 at q16_off (written)
layout(std430, binding = 1) readonly buffer Q { float q[]; }; // row t, head h at q_off + t*q_ld + h*dqk
layout(std430, binding = 2) readonly buffer C { float c[]; }; // pool rows, c at c_off + row*c_ld
layout(std430, binding = 3) readonly buffer KR { float kr[]; };
layout(std430, binding = 4) readonly buffer POS { int pos[]; };
layout(std430, binding = 5) readonly buffer PT { int ptab[]; };
layout(std430, binding = 6) readonly buffer PG { int pages[]; };

layout(push_constant) uniform P {
    uint T, H, rkv, dr;
    uint dqk, dn, q_off, q_ld;
    uint c_off, c_ld, kr_off, kr_ld;
    uint qlat_off, pos_off, ptab_off, pages_off;
    uint page_size, L, k16_off, q16_off;
    uint ld16, pad0, pad1, pad2;
} p;

float key_at(uint prow, uint k)
{
    if (k < p.rkv)
        return c[p.c_off + prow * p.c_ld + k];
    return k - p.rkv < p.dr ? kr[p.kr_off + prow * p.kr_ld + k - p.rkv] : 0.0;
}

float query_at(uint r, uint k)
{
    if (k < p.rkv)
        return sc[p.qlat_off + r * p.rkv + k];
    uint t = r / p.H, h = r % p.H;
    return k - p.rkv < p.dr ? q[p.q_off + t * p.q_ld + h * p.dqk + p.dn + k - p.rkv] : 0.0;
}

void main()
{
    uint i = gl_GlobalInvocationID.x + gl_NumWorkGroups.x * 256u * gl_GlobalInvocationID.y;
    uint nk = p.L * p.ld16, nq = p.T * p.H * p.ld16;
    if (i >= nk + nq)
        return;
    bool key = i < nk;
    uint e = key ? i : i - nk, row = e / p.ld16, k = 2u * (e % p.ld16);
    vec2 v = vec2(0.0);
    if (key) {
        uint n_kv = uint(pos[p.pos_off]) + p.T;
        if (row < n_kv) {
            uint pt = p.pages_off + uint(ptab[p.ptab_off]);
            uint prow = uint(pages[pt + row / p.page_size]) * p.page_size + row % p.page_size;
            v = vec2(key_at(prow, k), key_at(prow, k + 1u));
        }
        scu[p.k16_off + e] = packHalf2x16(v);
    } else {
        v = vec2(query_at(row, k), query_at(row, k + 1u));
        scu[p.q16_off + e] = packHalf2x16(v);
    }
}
