#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
// y[r][i] = w[i] * x[r][i] / sqrt(mean_i(x[r]^2) + eps): one workgroup of 256 per row, float32
// sum of squares reduced per subgroup, then over the subgroups in order (every invocation
// sums the same values in the same order); the weight is read in its file type (F32 or
// BF16). With has_add, x[r] += t[r] first (written back: the residual add fused in front).
// Mirrors ref/rms_norm.c. Push constants mirror glm_vk_rms_norm_push (src/backend/vk/ops.h).
layout(local_size_x = 256) in;

layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { uint w[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(std430, binding = 3) readonly buffer T { float t[]; };

layout(push_constant) uniform P {
    uint n, rows;
    float eps;
    uint wtype, w_offset;
    uint x_off, x_ld, y_off, y_ld;
    uint has_add, t_off, t_ld;
} p;

#include "dequant.glsl"

shared float partial[256];

void main()
{
    uint r = gl_WorkGroupID.x;
    uint tid = gl_LocalInvocationID.x;
    if (r >= p.rows)
        return;
    uint xb = p.x_off + r * p.x_ld, yb = p.y_off + r * p.y_ld;
    float acc = 0.0;
    if (p.has_add != 0u) {
        uint tb = p.t_off + r * p.t_ld;
        for (uint i = tid; i < p.n; i += 256u) {
            float v = x[xb + i] + t[tb + i];
            x[xb + i] = v;
            acc += v * v;
        }
    } else {
        for (uint i = tid; i < p.n; i += 256u)
            acc += x[xb + i] * x[xb + i];
    }
    acc = subgroupAdd(acc);
    if (gl_SubgroupInvocationID == 0u)
        partial[gl_SubgroupID] = acc;
    barrier();
    float tot = 0.0;
    for (uint s = 0u; s < gl_NumSubgroups; s++)
        tot += partial[s];
    float scale = 1.0 / sqrt(tot / float(p.n) + p.eps);
    uint bb = blk_bytes(p.wtype);
    for (uint i = tid; i < p.n; i += 256u)
        y[yb + i] = (p.wtype == T_F32 ? uintBitsToFloat(w[(p.w_offset >> 2) + i]) : dequant(p.wtype, p.w_offset + i * bb, 0u)) *
                    (x[xb + i] * scale);
}
