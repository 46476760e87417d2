#version 450
#extension GL_EXT_control_flow_attributes : require
// Sum of the position splits of the tiled MLA mix (mla_mix_tiled.comp, mla_mix_cm.comp):
// u[u_off + i] = Σ_z part[part_off + z·part_ld + i] over the splits z < ks, in split order, for
// the n = rows·Rkv entries of a row block. One invocation per entry, every split's load issued
// together. Push constants mirror glm_vk_mla_reduce_push (vk/ops.h).
layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer PART { float part[]; }; // [ks][part_ld]
layout(std430, binding = 1) writeonly buffer U { float u[]; };      // [n]

layout(push_constant) uniform P {
    uint n, ks, part_off, part_ld;
    uint u_off, pad0, pad1, pad2;
} p;

const uint MAX_KS = 32u; // GLM_VK_MLA_MIX_MAX_SPLIT

void main()
{
    uint i = gl_GlobalInvocationID.x;
    if (i >= p.n)
        return;
    float v[MAX_KS];
    [[unroll]] for (uint z = 0u; z < MAX_KS; z++)
        v[z] = z < p.ks ? part[p.part_off + z * p.part_ld + i] : 0.0;
    float a = 0.0;
    [[unroll]] for (uint z = 0u; z < MAX_KS; z++)
        a += v[z];
    u[p.u_off + i] = a;
}
