#version 450
// x8[t] = x[t] quantized to 8 bits in groups of 32 columns, the form matvec_q8.comp reads:
// each group's scale d = max|x| / 127 and codes q = roundEven(x · 127 / max|x|) (0 where the
// group is all 0), and the group's sum d · Σq. A row of n columns (a multiple of 256) takes
// n / 4 + n / 16 words at word y_off + t · y_ld: first the codes, four to a word, where the 64
// words of each 256 columns are the 8 × 8 words of the natural order transposed (word 8c + g
// holds columns 32g + 4c .. 32g + 4c + 3 of those 256, so that a Q4_K task of matvec_q8.comp reads
// its 8 words at once); then the n / 32 scales; then the n / 32 sums. Workgroup (s, t) does
// columns 256s .. 256s + 255 of row t. The scalar reference is glm_ref_quant_x8 (backend/ref.c).
// Push constants mirror glm_vk_quant_x8_push in src/backend/vk/ops.h.
layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Q { uint q[]; };
layout(std430, binding = 1) writeonly buffer QF { float qf[]; };

layout(push_constant) uniform P {
    uint rows, cols, x_off, x_ld;
    uint y_off, y_ld, pad0, pad1;
} p;

shared float amax[256];
shared int code[256];

void main()
{
    uint i = gl_LocalInvocationID.x, s = gl_WorkGroupID.x, t = gl_WorkGroupID.y;
    uint g = i >> 5, n = p.cols, base = p.y_off + t * p.y_ld;
    float v = x[p.x_off + t * p.x_ld + 256u * s + i];
    amax[i] = abs(v);
    barrier();
    float m = 0.0;
    for (uint k = 0u; k < 32u; k++)
        m = max(m, amax[32u * g + k]);
    int c = m > 0.0 ? clamp(int(roundEven(v * (127.0 / m))), -127, 127) : 0;
    code[i] = c;
    barrier();
    if (i < 64u) {
        // natural word i = 8a + b (group a, columns 4b..) goes to word 8b + a
        uint a = i >> 3, b = i & 7u;
        uint w = (uint(code[4u * i]) & 255u) | ((uint(code[4u * i + 1u]) & 255u) << 8) |
                 ((uint(code[4u * i + 2u]) & 255u) << 16) | (uint(code[4u * i + 3u]) << 24);
        q[base + 64u * s + 8u * b + a] = w;
    } else if (i < 72u) {
        uint gg = i - 64u;
        float mg = 0.0;
        int sum = 0;
        for (uint k = 0u; k < 32u; k++) {
            mg = max(mg, amax[32u * gg + k]);
            sum += code[32u * gg + k];
        }
        float d = mg / 127.0;
        qf[base + n / 4u + 8u * s + gg] = d;
        qf[base + n / 4u + n / 32u + 8u * s + gg] = d * float(sum);
    }
}
