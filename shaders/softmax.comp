#version 450
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_shuffle_relative : require
#extension GL_EXT_control_flow_attributes : require
// In-place softmax of each row of s [rows][n] in float32: max, exp-sum, normalize; -inf
// entries become 0. With pack set (a row of at most 256·NPT entries), the row is written
// instead as float16 pairs over the first half of its own storage: uint s_off + r·n + i / 2
// holds entries i and i + 1 (packHalf2x16; past n, 0), for the tensor-core mix.
// One workgroup of 256 per row; an invocation keeps its first NPT entries
// (elements tid, tid + 256, ...) in registers, so a row of up to 256·NPT entries is read and
// written once; the entries past that go through memory three times. Reductions: subgroup
// operations, then one value per subgroup in shared memory.
// With sub set (rows the host knows fit NPT entries a lane), each subgroup takes whole rows
// instead: entries lane, lane + subgroup size, ..., reductions by subgroup operations alone (no
// barrier), rows r = workgroup · subgroups + subgroup, stepping by the grid's subgroups.
// Push constants mirror glm_vk_softmax_push.
layout(local_size_x = 256) in;

layout(std430, binding = 0) buffer S { float s[]; };
layout(std430, binding = 0) buffer SU { uint su[]; };

layout(push_constant) uniform P {
    uint rows, n, s_off, pack, sub;
} p;

#define NPT 24u
shared float red[256]; // one value per subgroup (any subgroup size)

float wg_max(float v)
{
    v = subgroupMax(v);
    if (subgroupElect())
        red[gl_SubgroupID] = v;
    barrier();
    float r = red[0];
    for (uint i = 1u; i < gl_NumSubgroups; i++)
        r = max(r, red[i]);
    barrier();
    return r;
}

float wg_sum(float v)
{
    v = subgroupAdd(v);
    if (subgroupElect())
        red[gl_SubgroupID] = v;
    barrier();
    float r = red[0];
    for (uint i = 1u; i < gl_NumSubgroups; i++)
        r += red[i];
    barrier();
    return r;
}

// The subgroup's row r: the same three passes as main's, at the subgroup's stride.
void sub_row(uint r)
{
    uint lane = gl_SubgroupInvocationID, sgs = gl_SubgroupSize;
    uint b = p.s_off + r * p.n;
    float v[NPT];
    float m = -1.0 / 0.0;
    [[unroll]] for (uint c = 0u; c < NPT; c++) {
        uint i = lane + sgs * c;
        v[c] = i < p.n ? s[b + i] : -1.0 / 0.0;
        m = max(m, v[c]);
    }
    for (uint i = lane + sgs * NPT; i < p.n; i += sgs)
        m = max(m, s[b + i]);
    m = subgroupMax(m);
    float sum = 0.0;
    [[unroll]] for (uint c = 0u; c < NPT; c++) {
        v[c] = exp(v[c] - m);
        sum += v[c];
    }
    for (uint i = lane + sgs * NPT; i < p.n; i += sgs) {
        float e = exp(s[b + i] - m);
        s[b + i] = e;
        sum += e;
    }
    float inv = 1.0 / subgroupAdd(sum);
    if (p.pack != 0u) { // every entry is in registers (host-checked); even lanes hold even entries
        [[unroll]] for (uint c = 0u; c < NPT; c++) {
            uint i = lane + sgs * c;
            float x = v[c] * inv, y = subgroupShuffleDown(x, 1u);
            if (lane % 2u == 0u && i < p.n)
                su[b + i / 2u] = packHalf2x16(vec2(x, i + 1u < p.n ? y : 0.0));
        }
        return;
    }
    [[unroll]] for (uint c = 0u; c < NPT; c++) {
        uint i = lane + sgs * c;
        if (i < p.n)
            s[b + i] = v[c] * inv;
    }
    for (uint i = lane + sgs * NPT; i < p.n; i += sgs)
        s[b + i] *= inv;
}

void main()
{
    if (p.sub != 0u) {
        for (uint r = gl_WorkGroupID.x * gl_NumSubgroups + gl_SubgroupID; r < p.rows;
             r += gl_NumWorkGroups.x * gl_NumSubgroups)
            sub_row(r);
        return;
    }
    uint r = gl_WorkGroupID.x, tid = gl_LocalInvocationID.x;
    if (r >= p.rows)
        return;
    uint b = p.s_off + r * p.n;
    float v[NPT];
    float m = -1.0 / 0.0;
    [[unroll]] for (uint c = 0u; c < NPT; c++) {
        uint i = tid + 256u * c;
        v[c] = i < p.n ? s[b + i] : -1.0 / 0.0;
        m = max(m, v[c]);
    }
    for (uint i = tid + 256u * NPT; i < p.n; i += 256u)
        m = max(m, s[b + i]);
    m = wg_max(m);
    float sum = 0.0;
    [[unroll]] for (uint c = 0u; c < NPT; c++) {
        v[c] = exp(v[c] - m);
        sum += v[c];
    }
    for (uint i = tid + 256u * NPT; i < p.n; i += 256u) {
        float e = exp(s[b + i] - m);
        s[b + i] = e;
        sum += e;
    }
    float inv = 1.0 / wg_sum(sum);
    if (p.pack != 0u) { // every entry is in registers (host-checked): pairs from neighbours
        [[unroll]] for (uint c = 0u; c < NPT; c++) {
            uint i = tid + 256u * c;
            float x = v[c] * inv, y = subgroupShuffleDown(x, 1u); // entries past n are 0
            if (tid % 2u == 0u && i < p.n)
                su[b + i / 2u] = packHalf2x16(vec2(x, i + 1u < p.n ? y : 0.0));
        }
        return;
    }
    [[unroll]] for (uint c = 0u; c < NPT; c++) {
        uint i = tid + 256u * c;
        if (i < p.n)
            s[b + i] = v[c] * inv;
    }
    for (uint i = tid + 256u * NPT; i < p.n; i += 256u)
        s[b + i] *= inv;
}
