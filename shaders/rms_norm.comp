#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : require
// y[r][i] = w[i] * x[r][i] / sqrt(mean_i(x[r]^2) + eps): one workgroup of 256 per row, float32
// sum of squares reduced per subgroup, then over the subgroups in order (every invocation
// sums the same values in the same order); the weight is read in its file type (F32 or
// BF16). With has_add bit 0, x[r] += t[r] first (written back: the residual add fused in front).
// With has_add bit 1 (VEC: the host sets it where n is a multiple of 4 up to 4096, x's, y's and
// t's offsets and strides are multiples of 4 and the gain is F32 on 16 bytes or F16/BF16 on 8),
// an invocation takes vec4 i = tid, tid + 256, ... of the row with 16-byte loads, keeps them in
// registers between the sum of squares and the output, and reads the gain 4 at a time; its loads
// are clamped, not branched on, so that they all go out together.
// Mirrors ref/rms_norm.c. Push constants mirror glm_vk_rms_norm_push (src/backend/vk/ops.h).
layout(local_size_x = 256) in;

layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { uint w[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(std430, binding = 3) readonly buffer T { float t[]; };
layout(std430, binding = 0) buffer X4 { vec4 x4[]; };
layout(std430, binding = 1) readonly buffer W4 { uvec4 w4[]; };
layout(std430, binding = 1) readonly buffer W2 { uvec2 w2[]; };
layout(std430, binding = 2) writeonly buffer Y4 { vec4 y4[]; };
layout(std430, binding = 3) readonly buffer T4 { vec4 t4[]; };

layout(push_constant) uniform P {
    uint n, rows;
    float eps;
    uint wtype, w_offset;
    uint x_off, x_ld, y_off, y_ld;
    uint has_add, t_off, t_ld;
} p;

#include "dequant.glsl"

shared float partial[256];

// the sum of the workgroup's acc, in subgroup order (every invocation gets the same value)
float wg_sum(float acc)
{
    acc = subgroupAdd(acc);
    if (gl_SubgroupInvocationID == 0u)
        partial[gl_SubgroupID] = acc;
    barrier();
    float tot = 0.0;
    for (uint s = 0u; s < gl_NumSubgroups; s++)
        tot += partial[s];
    return tot;
}

// gain elements 4i .. 4i + 3 (VEC)
vec4 gain4(uint i)
{
    if (p.wtype == T_F32)
        return uintBitsToFloat(w4[p.w_offset / 16u + i]);
    uvec2 h = w2[p.w_offset / 8u + i];
    if (p.wtype == T_F16)
        return vec4(unpackHalf2x16(h.x), unpackHalf2x16(h.y));
    return uintBitsToFloat(uvec4(h.x << 16, h.x & 0xffff0000u, h.y << 16, h.y & 0xffff0000u));
}

void main_vec(uint r, uint tid)
{
    uint nv = p.n / 4u, xb = (p.x_off + r * p.x_ld) / 4u, yb = (p.y_off + r * p.y_ld) / 4u;
    uint tb = (p.t_off + r * p.t_ld) / 4u;
    bool add = (p.has_add & 1u) != 0u;
    vec4 v[4];
    [[unroll]] for (uint k = 0u; k < 4u; k++) {
        uint i = min(tid + 256u * k, nv - 1u);
        v[k] = x4[xb + i];
        if (add)
            v[k] += t4[tb + i];
    }
    float acc = 0.0;
    [[unroll]] for (uint k = 0u; k < 4u; k++) {
        if (tid + 256u * k < nv) {
            acc += v[k].x * v[k].x + v[k].y * v[k].y + v[k].z * v[k].z + v[k].w * v[k].w;
            if (add)
                x4[xb + tid + 256u * k] = v[k];
        }
    }
    float scale = 1.0 / sqrt(wg_sum(acc) / float(p.n) + p.eps);
    [[unroll]] for (uint k = 0u; k < 4u; k++) {
        uint i = tid + 256u * k;
        vec4 g = gain4(min(i, nv - 1u));
        if (i < nv)
            y4[yb + i] = g * (v[k] * scale);
    }
}

void main()
{
    uint r = gl_WorkGroupID.x;
    uint tid = gl_LocalInvocationID.x;
    if (r >= p.rows)
        return;
    if ((p.has_add & 2u) != 0u) {
        main_vec(r, tid);
        return;
    }
    uint xb = p.x_off + r * p.x_ld, yb = p.y_off + r * p.y_ld;
    float acc = 0.0;
    if ((p.has_add & 1u) != 0u) {
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
    float scale = 1.0 / sqrt(wg_sum(acc) / float(p.n) + p.eps);
    uint bb = blk_bytes(p.wtype);
    for (uint i = tid; i < p.n; i += 256u)
        y[yb + i] = (p.wtype == T_F32 ? uintBitsToFloat(w[(p.w_offset >> 2) + i]) : dequant(p.wtype, p.w_offset + i * bb, 0u)) *
                    (x[xb + i] * scale);
}
