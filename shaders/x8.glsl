// The 8-bit form of x that matvec_q8.comp reads (quant_x8.comp says the layout): X8_WG
// invocations (all of the workgroup, the includer's X8_WG) quantize X8_WG consecutive columns
// of a row (X8_WG / 32 groups), invocation i holding column c0 + i. The includer declares the
// output buffer as words x8w[] and as floats x8f[] (the same binding). Barriers inside: every
// invocation of the workgroup calls it, in uniform control flow.
#ifndef X8_SH
#define X8_SH X8_WG
#endif
shared float x8_amax[X8_SH]; // X8_SH: X8_WG, or 1 where the includer's variant never calls x8_quant
shared int x8_code[X8_SH];

// v: this invocation's value; base: the row's first word; n: the row's columns; c0: the first
// column (a multiple of X8_WG).
void x8_quant(uint i, float v, uint base, uint n, uint c0)
{
    x8_amax[i] = abs(v);
    barrier();
    float m = 0.0;
    for (uint k = 0u; k < 32u; k++)
        m = max(m, x8_amax[(i & ~31u) + k]);
    x8_code[i] = m > 0.0 ? clamp(int(roundEven(v * (127.0 / m))), -127, 127) : 0;
    barrier();
    uint g0 = c0 / 32u; // the first group
    if (i < X8_WG / 4u) {
        // natural word j = 8a + k of superblock S goes to word 64S + 8k + a
        uint G = g0 + (i >> 3), k = i & 7u;
        uint w = (uint(x8_code[4u * i]) & 255u) | ((uint(x8_code[4u * i + 1u]) & 255u) << 8) |
                 ((uint(x8_code[4u * i + 2u]) & 255u) << 16) | (uint(x8_code[4u * i + 3u]) << 24);
        x8w[base + 64u * (G >> 3) + 8u * k + (G & 7u)] = w;
    } else if (i < X8_WG / 4u + X8_WG / 32u) {
        uint gg = i - X8_WG / 4u;
        float mg = 0.0;
        int sum = 0;
        for (uint k = 0u; k < 32u; k++) {
            mg = max(mg, x8_amax[32u * gg + k]);
            sum += x8_code[32u * gg + k];
        }
        float d = mg / 127.0;
        x8f[base + n / 4u + g0 + gg] = d;
        x8f[base + n / 4u + n / 32u + g0 + gg] = d * float(sum);
    }
    barrier();
}
