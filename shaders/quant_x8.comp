#version 450
#extension GL_GOOGLE_include_directive : require
// x8[t] = x[t] quantized to 8 bits in groups of 32 columns, the form matvec_q8.comp reads:
// each group's scale d = max|x| / 127 and codes q = roundEven(x · 127 / max|x|) (0 where the
// group is all 0), and the group's sum d · Σq. A row of n columns (a multiple of 256) takes
// n / 4 + n / 16 words at word y_off + t · y_ld: first the codes, four to a word, where the 64
// words of each 256 columns are the 8 × 8 words of the natural order transposed (word 8c + g
// holds columns 32g + 4c .. 32g + 4c + 3 of those 256, so that a Q4_K task of matvec_q8.comp reads
// its 8 words at once); then the n / 32 scales; then the n / 32 sums. Workgroup (s, t) does
// columns 256s .. 256s + 255 of row t (x8.glsl). The scalar reference is glm_ref_quant_x8
// (ref/matmul.c). Push constants mirror glm_vk_quant_x8_push in src/backend/vk/ops.h.
#define X8_WG 256u
layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Q { uint x8w[]; };
layout(std430, binding = 1) writeonly buffer QF { float x8f[]; };

layout(push_constant) uniform P {
    uint rows, cols, x_off, x_ld;
    uint y_off, y_ld, pad0, pad1;
} p;

#include "x8.glsl"

void main()
{
    uint i = gl_LocalInvocationID.x, s = gl_WorkGroupID.x, t = gl_WorkGroupID.y;
    x8_quant(i, x[p.x_off + t * p.x_ld + 256u * s + i], p.y_off + t * p.y_ld, p.cols, 256u * s);
}
