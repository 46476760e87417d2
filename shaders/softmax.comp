#version 450
// In-place softmax of each row of s [rows][n] in float32: max, exp-sum, normalize; -inf
// entries become 0. One workgroup per row. Push constants mirror glm_vk_softmax_push.
layout(local_size_x = 64) in;

layout(std430, binding = 0) buffer S { float s[]; };

layout(push_constant) uniform P {
    uint rows, n, s_off, pad1;
} p;

shared float red[64];

void main()
{
    uint r = gl_WorkGroupID.x, tid = gl_LocalInvocationID.x;
    if (r >= p.rows)
        return;
    uint b = p.s_off + r * p.n;
    float m = -1.0 / 0.0;
    for (uint i = tid; i < p.n; i += 64u)
        m = max(m, s[b + i]);
    red[tid] = m;
    barrier();
    for (uint k = 32u; k > 0u; k >>= 1) {
        if (tid < k)
            red[tid] = max(red[tid], red[tid + k]);
        barrier();
    }
    m = red[0];
    barrier();
    float sum = 0.0;
    for (uint i = tid; i < p.n; i += 64u) {
        float e = exp(s[b + i] - m);
        s[b + i] = e;
        sum += e;
    }
    red[tid] = sum;
    barrier();
    for (uint k = 32u; k > 0u; k >>= 1) {
        if (tid < k)
            red[tid] += red[tid + k];
        barrier();
    }
    float inv = 1.0 / red[0];
    for (uint i = tid; i < p.n; i += 64u)
        s[b + i] *= inv;
}
