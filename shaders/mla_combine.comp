#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
// Merge of mla_split.comp's or mla_flash.comp's partials [m_s, l_s, 0, 0, u_s[Rkv]] of query
// row r = t·H + h over its splits s (mla_splits.glsl, cut with the push constants' pass and
// split bound; a row of at most max_inline splits was merged by its split kernel itself):
// M = max m_s, w_s = exp(m_s - M), L = Σ l_s w_s, u[k] = Σ u_s[k] w_s / L, u being the
// probability-weighted latent of absorbed MLA (model-spec §2.5). Workgroup (kb, r) writes
// u[128·kb, 128·kb + 128): its 8 groups of 32 invocations take the splits in turn
// (invocation i of a group reads the vec4 k = 128·kb + 4i of each, coalesced, all its loads
// issued together) and the groups' sums are added in group order; M and L come from subgroup
// reductions and the subgroups' results in order. Every order is fixed by the row alone.
// Push constants mirror glm_vk_mla_combine_push in src/backend/vk/ops.h.
#include "mla_splits.glsl"
#define WG 256u
layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer PART { float part[]; }; // [rows*H][split_ld][part_stride]
layout(std430, binding = 0) readonly buffer PART4 { vec4 part4[]; };
layout(std430, binding = 1) readonly buffer POS { int pos[]; };
layout(std430, binding = 2) writeonly buffer U { float u[]; };       // [T*H][Rkv]

layout(push_constant) uniform P {
    uint rows, H, rkv, split_ld;
    uint part_off, u_off, pos_off, pos_ld;
    uint row0, pass, max_split, max_inline; // max_split <= WG
} p;

shared float sw[WG]; // w_s
shared float red[WG], red2[WG]; // per subgroup: max of m_s, sum of l_s w_s
shared vec4 sacc[WG];

void main()
{
    uint tid = gl_LocalInvocationID.x, rl = gl_WorkGroupID.y;
    if (rl >= p.rows * p.H)
        return;
    uint t = p.row0 + rl / p.H, h = rl % p.H;
    uint len = uint(pos[p.pos_off + t * p.pos_ld]) + 1u;
    uint chunk = split_chunk_of(len, p.pass, p.max_split), ns = (len + chunk - 1u) / chunk;
    if (ns <= p.max_inline)
        return; // the split kernel merged the row itself
    uint stride = part_stride(p.rkv), pb = p.part_off + rl * p.split_ld * stride;
    // M and L over the splits (ns <= WG) by subgroup reductions, then the subgroups' results
    // in subgroup order (two barriers instead of a tree's sixteen)
    float mv = tid < ns ? part[pb + tid * stride] : -1.0 / 0.0;
    float sgm = subgroupMax(mv);
    if (subgroupElect())
        red[gl_SubgroupID] = sgm;
    barrier();
    float M = red[0];
    for (uint g = 1u; g < gl_NumSubgroups; g++)
        M = max(M, red[g]);
    float w = tid < ns ? exp(mv - M) : 0.0;
    sw[tid] = w;
    float sgl = subgroupAdd(tid < ns ? part[pb + tid * stride + 1u] * w : 0.0);
    if (subgroupElect())
        red2[gl_SubgroupID] = sgl;
    barrier();
    float L = red2[0];
    for (uint g = 1u; g < gl_NumSubgroups; g++)
        L += red2[g];
    uint lane = tid % 32u, grp = tid / 32u, k4 = 32u * gl_WorkGroupID.x + lane;
    vec4 a = vec4(0.0);
    if (4u * k4 < p.rkv) {
        // this group's splits in order, CL of them in flight together
        const uint CL = 8u, GS = WG / 32u;
        for (uint s0 = grp; s0 < ns; s0 += CL * GS) {
            vec4 pv[CL];
            [[unroll]] for (uint i = 0u; i < CL; i++) {
                uint s = s0 + i * GS;
                pv[i] = s < ns ? part4[(pb + s * stride + 4u) / 4u + k4] : vec4(0.0);
            }
            [[unroll]] for (uint i = 0u; i < CL; i++) {
                uint s = s0 + i * GS;
                a += s < ns ? pv[i] * sw[s] : vec4(0.0);
            }
        }
    }
    sacc[tid] = a;
    barrier();
    if (grp == 0u && 4u * k4 < p.rkv) {
        vec4 sum = sacc[lane];
        for (uint g = 1u; g < WG / 32u; g++)
            sum += sacc[g * 32u + lane];
        uint ub = p.u_off + (t * p.H + h) * p.rkv + 4u * k4;
        sum /= L;
        [[unroll]] for (uint i = 0u; i < 4u; i++)
            if (4u * k4 + i < p.rkv)
                u[ub + i] = sum[i]; // the padding past Rkv (never written by the split) stays out
    }
}
