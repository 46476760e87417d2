#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
// KV write into the paged latent cache: src row t goes to pool row
// pages[ptab[t] + pos[t] / page_size] * page_size + pos[t] % page_size (engine/kvcache.h).
// One invocation per (column, row). With p.n_norm, the first n_norm columns are written as
// RMSNorm(src[t][0, n_norm); g, eps) (rms_norm.comp's arithmetic; the latent norm folded in,
// src is left as it was): every workgroup sums the squares of its row itself (float32, per
// subgroup, then over the subgroups in order), so the norm needs no dispatch of its own; g is
// a row of n_norm plain elements (F32/F16/BF16) at byte p.g_offset.
// With p.rope_dim, columns [p.kr_col, + rope_dim) are also rotated at pos[t] on their way into
// the cache (rope.comp's arithmetic and table; src again left as it was), and the workgroups
// past the cache row's (x >= ceil(cols / 64)) rotate the query rows in place: q row t, head h,
// channels [h·q_head_dim + q_rope_off, + rope_dim) (the rope of q folded into the same
// dispatch). A position past the table leaves both unrotated, as rope.comp does.
// Push constants mirror glm_vk_kv_write_push (vk/ops.h).
layout(local_size_x = 64) in;
// constant_id 0: the norm gain's type (0 F32, 1 F16, 2 BF16: the host's gain_ok), so that the
// pipeline holds one read of it (a small binary: bench/RESULTS.md)
layout(constant_id = 0) const uint GCLASS = 0;

layout(std430, binding = 0) readonly buffer SRC { float src[]; };
layout(std430, binding = 1) readonly buffer POS { int pos[]; };
layout(std430, binding = 2) readonly buffer PT { int ptab[]; };
layout(std430, binding = 3) readonly buffer PG { int pages[]; };
layout(std430, binding = 4) writeonly buffer DST { float dst[]; };
layout(std430, binding = 5) readonly buffer W { uint w[]; }; // the norm gain
layout(std430, binding = 6) readonly buffer CS { float cs[]; }; // [pos][dim/2][2] = cos, sin
layout(std430, binding = 7) buffer Q { float q[]; };

layout(push_constant) uniform P {
    uint rows, cols, src_off, src_ld;
    uint dst_off, dst_ld, pos_off, pos_ld;
    uint ptab_off, ptab_ld, pages_off, page_size;
    uint n_norm, g_offset, g_type;
    float eps;
    uint rope_dim, kr_col, table_positions, q_off;
    uint q_ld, q_heads, q_head_dim, q_rope_off;
} p;

#include "dequant.glsl"

shared float partial[64];

// (cos, sin) of pair j at the row's position.
float gain(uint i)
{
    if (GCLASS == 0u)
        return uintBitsToFloat(w[(p.g_offset >> 2) + i]);
    uint b = p.g_offset + 2u * i, word = w[b >> 2], h = (b & 2u) != 0u ? word >> 16 : word & 0xFFFFu;
    return GCLASS == 2u ? uintBitsToFloat(h << 16) : unpackHalf2x16(h).x;
}

vec2 angle(uint ps, uint j)
{
    uint c = (ps * (p.rope_dim / 2u) + j) * 2u;
    return vec2(cs[c], cs[c + 1u]);
}

void main()
{
    uint i = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y;
    if (t >= p.rows)
        return;
    uint kv_groups = (p.cols + 63u) / 64u;
    if (gl_WorkGroupID.x >= kv_groups) {
        // the query's rope: one invocation per (head, pair)
        uint half_dim = p.rope_dim / 2u, g = (gl_WorkGroupID.x - kv_groups) * 64u + gl_LocalInvocationID.x;
        int ps = pos[p.pos_off + t * p.pos_ld];
        if (g >= half_dim * p.q_heads || ps < 0 || uint(ps) >= p.table_positions)
            return;
        uint b = p.q_off + t * p.q_ld + (g / half_dim) * p.q_head_dim + p.q_rope_off + 2u * (g % half_dim);
        vec2 a = angle(uint(ps), g % half_dim);
        float x0 = q[b], x1 = q[b + 1u];
        q[b] = x0 * a.x - x1 * a.y;
        q[b + 1u] = x1 * a.x + x0 * a.y;
        return;
    }
    uint sb = p.src_off + t * p.src_ld;
    float scale = 1.0;
    if (p.n_norm != 0u) {
        float acc = 0.0;
        for (uint k = gl_LocalInvocationID.x; k < p.n_norm; k += 64u)
            acc += src[sb + k] * src[sb + k];
        acc = subgroupAdd(acc);
        if (gl_SubgroupInvocationID == 0u)
            partial[gl_SubgroupID] = acc;
        barrier();
        float tot = 0.0;
        for (uint s = 0u; s < gl_NumSubgroups; s++)
            tot += partial[s];
        scale = 1.0 / sqrt(tot / float(p.n_norm) + p.eps);
    }
    if (i >= p.cols)
        return;
    uint ps = uint(pos[p.pos_off + t * p.pos_ld]);
    uint pt = uint(ptab[p.ptab_off + t * p.ptab_ld]);
    uint row = uint(pages[p.pages_off + pt + ps / p.page_size]) * p.page_size + ps % p.page_size;
    float v = src[sb + i];
    if (i < p.n_norm)
        v = gain(i) * (v * scale);
    if (p.rope_dim != 0u && i >= p.kr_col && i < p.kr_col + p.rope_dim && ps < p.table_positions) {
        uint j = i - p.kr_col, e = sb + p.kr_col + (j & ~1u);
        vec2 a = angle(ps, j >> 1);
        float x0 = src[e], x1 = src[e + 1u];
        v = (j & 1u) == 0u ? x0 * a.x - x1 * a.y : x1 * a.x + x0 * a.y;
    }
    dst[p.dst_off + row * p.dst_ld + i] = v;
}
