#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : require
// MoE routing of router logits, one token per workgroup (shaders/moe_route.glsl).
// Push constants mirror glm_vk_moe_route_push in src/backend/vk/ops.h.
#define ROUTE_WG 64u
layout(local_size_x = ROUTE_WG) in;

layout(std430, binding = 0) readonly buffer L { float logits[]; };
layout(std430, binding = 1) readonly buffer W { uint w[]; }; // bias in its file type
layout(std430, binding = 2) writeonly buffer I { int ids[]; };
layout(std430, binding = 3) writeonly buffer G { float wts[]; };

layout(push_constant) uniform P {
    uint n_exp, k, n_group, topk_group;
    uint sigmoid_gate, norm_topk, has_bias, bias_type;
    uint bias_offset, l_off, l_ld, rows;
    uint ids_off, ids_ld, w_off, w_ld;
    float scale;
    uint pad0, extra, pad2;
} p;

#include "dequant.glsl"
#include "moe_route.glsl"

void main()
{
    if (gl_WorkGroupID.x >= p.rows)
        return;
    route_bias(gl_LocalInvocationID.x);
    route(gl_WorkGroupID.x, gl_LocalInvocationID.x);
}
