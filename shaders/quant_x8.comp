#version 450
#extension GL_GOOGLE_include_directive : require
// x8[t] = x[t] in 8 bits, the form matvec_q8.comp reads (x8.glsl, glm_ref_quant_x8): each word
// of 4 columns with its scale d = max|x| / 127 and codes q = roundEven(x · 127 / max|x|) (0 where
// the 4 are 0). A row of n columns (a multiple of 256) takes n / 2 words at word y_off + t · y_ld.
// Workgroup (s, t) does columns 256s .. 256s + 255 of row t. Push constants mirror
// glm_vk_quant_x8_push in src/backend/vk/ops.h.
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
