#version 450
// Elementwise ops over 2-D views (rows x cols, row stride ld), one invocation per element:
//   op 0: y = a + b        op 1: y = SiLU(a) * b (SwiGLU)        op 2: y = a (copy)
//   op 3: y = a as float16, two to a 32-bit word (cols and y's offsets count words; a's count
//         floats, two a word)
//   op 4: y = Σ_{z < pad} a moved z·b_off floats on, added in order (split products' parts);
//         with b_ld set, y += that sum (y's old value plus the sum, as op 0 would add them)
// Push constants mirror glm_vk_eltwise_push in src/backend/vk/ops.h.
layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) buffer Y { float y[]; };
layout(std430, binding = 2) buffer YH { uint yh[]; };

layout(push_constant) uniform P {
    uint op, rows, cols, pad;
    uint a_off, a_ld, b_off, b_ld;
    uint y_off, y_ld, pad1, pad2;
} p;

void main()
{
    uint i = gl_GlobalInvocationID.x, r = gl_WorkGroupID.y;
    if (i >= p.cols || r >= p.rows)
        return;
    if (p.op == 3u) {
        uint o = p.a_off + r * p.a_ld + 2u * i;
        yh[p.y_off + r * p.y_ld + i] = packHalf2x16(vec2(a[o], a[o + 1u]));
        return;
    }
    if (p.op == 4u) {
        float sum = 0.0;
        for (uint z = 0u; z < p.pad; z++)
            sum += a[p.a_off + z * p.b_off + r * p.a_ld + i];
        uint o = p.y_off + r * p.y_ld + i;
        y[o] = p.b_ld != 0u ? y[o] + sum : sum;
        return;
    }
    float av = a[p.a_off + r * p.a_ld + i];
    float res;
    if (p.op == 0u)
        res = av + b[p.b_off + r * p.b_ld + i];
    else if (p.op == 1u)
        res = (av / (1.0 + exp(-av))) * b[p.b_off + r * p.b_ld + i];
    else
        res = av;
    y[p.y_off + r * p.y_ld + i] = res;
}
