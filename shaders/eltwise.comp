#version 450
// Elementwise ops over 2-D views (rows x cols, row stride ld), one invocation per element:
//   op 0: y = a + b        op 1: y = SiLU(a) * b (SwiGLU)        op 2: y = a (copy)
//   op 3: y = a as float16, two to a 32-bit word (cols and y's offsets count words; a's count
//         floats, two a word)
//   op 4: y = Σ_{z < pad} a moved z·b_off floats on, added in order (split products' parts);
//         with b_ld set, y += that sum (y's old value plus the sum, as op 0 would add them)
// With p.vec (pad1) set, an invocation takes 4 consecutive elements with 16-byte loads and
// stores (op 3: 4 floats of a, 2 words of y): the host sets it where cols and every offset
// and row stride are multiples of 4 (op 3: y's of 2, cols counting y's words).
// Push constants mirror glm_vk_eltwise_push in src/backend/vk/ops.h.
layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) buffer Y { float y[]; };
layout(std430, binding = 2) buffer YH { uint yh[]; };
layout(std430, binding = 0) readonly buffer A4 { vec4 a4[]; };
layout(std430, binding = 1) readonly buffer B4 { vec4 b4[]; };
layout(std430, binding = 2) buffer Y4 { vec4 y4[]; };
layout(std430, binding = 2) buffer YH2 { uvec2 yh2[]; };

layout(push_constant) uniform P {
    uint op, rows, cols, pad;
    uint a_off, a_ld, b_off, b_ld;
    uint y_off, y_ld, vec, pad2;
} p;

// op on 4 elements: element i .. i + 3 of row r (i a multiple of 4)
void main_vec(uint i, uint r)
{
    uint ao = (p.a_off + r * p.a_ld + i) / 4u;
    if (p.op == 3u) { // y's words i / 2, i / 2 + 1 from a's floats i .. i + 3
        vec4 v = a4[ao];
        yh2[(p.y_off + r * p.y_ld) / 2u + i / 4u] = uvec2(packHalf2x16(v.xy), packHalf2x16(v.zw));
        return;
    }
    uint yo = (p.y_off + r * p.y_ld + i) / 4u;
    if (p.op == 4u) {
        vec4 sum = vec4(0.0);
        for (uint z = 0u; z < p.pad; z++)
            sum += a4[ao + z * (p.b_off / 4u)];
        y4[yo] = p.b_ld != 0u ? y4[yo] + sum : sum;
        return;
    }
    vec4 av = a4[ao], res;
    if (p.op == 0u)
        res = av + b4[(p.b_off + r * p.b_ld + i) / 4u];
    else if (p.op == 1u)
        res = (av / (1.0 + exp(-av))) * b4[(p.b_off + r * p.b_ld + i) / 4u];
    else
        res = av;
    y4[yo] = res;
}

void main()
{
    uint i = gl_GlobalInvocationID.x, r = gl_WorkGroupID.y;
    if (p.vec != 0u) { // cols: a's floats / 2 for op 3 (y's words)
        uint n = p.op == 3u ? 2u * p.cols : p.cols;
        if (4u * i < n && r < p.rows)
            main_vec(4u * i, r);
        return;
    }
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
