// The 8-bit form of x that matvec_q8.comp reads (ref/matmul.h, glm_ref_quant_x8, says the
// layout): a row of n columns is n / 4 words of 4 codes, then n / 4 scales in the same order,
// where the 64 words of each 256 columns are the natural order's 8 × 8 words transposed. The
// includer declares the output buffer as words x8w[] and as floats x8f[] (one binding).

// Word i (natural order) of a row at word base: where its codes go (its scale: n / 4 further).
uint x8_at(uint i) { return (i & ~63u) + 8u * (i & 7u) + ((i >> 3) & 7u); }

// The word of columns 4i .. 4i + 3 from their values a (a multiple of 4 columns: one word).
void x8_word(vec4 a, uint i, uint base, uint n)
{
    float m = max(max(abs(a.x), abs(a.y)), max(abs(a.z), abs(a.w)));
    ivec4 c = m > 0.0 ? clamp(ivec4(roundEven(a * (127.0 / m))), ivec4(-127), ivec4(127)) : ivec4(0);
    uvec4 u = uvec4(c) & 255u;
    x8w[base + x8_at(i)] = u.x | (u.y << 8) | (u.z << 16) | (u.w << 24);
    x8f[base + n / 4u + x8_at(i)] = m / 127.0;
}

#ifdef X8_WG
#ifndef X8_SH
#define X8_SH X8_WG
#endif
shared float x8_v[X8_SH]; // X8_SH: X8_WG, or 1 where the includer's variant never calls x8_quant
// X8_WG invocations (the whole workgroup, in uniform control flow: barriers inside) write the
// X8_WG columns c0 .. c0 + X8_WG - 1 of a row (c0 a multiple of 4), invocation i holding column
// c0 + i in v.
void x8_quant(uint i, float v, uint base, uint n, uint c0)
{
    x8_v[i] = v;
    barrier();
    if (i < X8_WG / 4u)
        x8_word(vec4(x8_v[4u * i], x8_v[4u * i + 1u], x8_v[4u * i + 2u], x8_v[4u * i + 3u]), c0 / 4u + i, base, n);
    barrier();
}
#endif
