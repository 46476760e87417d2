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
// Push constants mirror glm_vk_kv_write_push (vk/ops.h).
layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer SRC { float src[]; };
layout(std430, binding = 1) readonly buffer POS { int pos[]; };
layout(std430, binding = 2) readonly buffer PT { int ptab[]; };
layout(std430, binding = 3) readonly buffer PG { int pages[]; };
layout(std430, binding = 4) writeonly buffer DST { float dst[]; };
layout(std430, binding = 5) readonly buffer W { uint w[]; }; // the norm gain

layout(push_constant) uniform P {
    uint rows, cols, src_off, src_ld;
    uint dst_off, dst_ld, pos_off, pos_ld;
    uint ptab_off, ptab_ld, pages_off, page_size;
    uint n_norm, g_offset, g_type;
    float eps;
} p;

#include "dequant.glsl"

shared float partial[64];

void main()
{
    uint i = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y;
    if (t >= p.rows)
        return;
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
        v = (p.g_type == T_F32 ? uintBitsToFloat(w[(p.g_offset >> 2) + i])
                               : dequant(p.g_type, p.g_offset + i * blk_bytes(p.g_type), 0u)) *
            (v * scale);
    dst[p.dst_off + row * p.dst_ld + i] = v;
}
