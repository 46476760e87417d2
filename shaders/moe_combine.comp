#version 450
// y[t][i] = sum_j w[t][j] * x[t*k + j][i] (+ a[t][i] when has_add): the routed experts'
// weighted mixture, summed in j order like ref, then the addend (the shared expert) as the
// add op would. Push constants mirror glm_vk_moe_combine_push in src/backend/vk/ops.h.
layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer G { float wts[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(std430, binding = 3) readonly buffer A { float a[]; };

layout(push_constant) uniform P {
    uint rows, cols, k, has_add;
    uint x_off, x_ld, w_off, w_ld;
    uint y_off, y_ld, a_off, a_ld;
} p;

void main()
{
    uint i = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y;
    if (i >= p.cols || t >= p.rows)
        return;
    float acc = 0.0;
    for (uint j = 0u; j < p.k; j++)
        acc += wts[p.w_off + t * p.w_ld + j] * x[p.x_off + (t * p.k + j) * p.x_ld + i];
    if (p.has_add != 0u)
        acc = acc + a[p.a_off + t * p.a_ld + i];
    y[p.y_off + t * p.y_ld + i] = acc;
}
