/* Host emulation of the tensor-core kernels' float16 decodings of Q4_K weights: for every Q4_K
 * tensor of a GGUF, the NMSE of the staged float16 weights against d·q − m in double, for
 *   f32      d·q − m in float32, rounded to float16 once (matmul_cm's stash, matmul_gq's stash_w);
 *   pairs    q·D − M in float16 with D, M = d, m rounded to float16 (matmul_gq's stash_w_h2 on main);
 *   centred  (q − 8)·D − C with C = m − 8·d rounded to float16 (branch gq-c8);
 *   exact7   (q·Dh − Mh) + (q·Dl − Ml), Dh = d to 7 significant bits (measured slower, session 29).
 * Every float16 product and sum is rounded on its own (Vulkan does not promise a fused float16
 * multiply-add), to nearest even, or toward zero with --rtz.
 *
 *   cc -O2 -Isrc -o /tmp/f16-decode-emu tools/f16-decode-emu.c build/libglm47.a -lm
 *   /tmp/f16-decode-emu golden/dev/dev-Q4_K_M.gguf [--rtz]
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "model/gguf.h"

static bool g_rtz;

/* x rounded to float16 (to nearest even; toward zero under --rtz for arithmetic results) */
static float h16(float x) { return (float)(_Float16)x; }
static float op16(float x)
{
    _Float16 h = (_Float16)x;
    if (g_rtz && fabsf((float)h) > fabsf(x)) {
        uint16_t u;
        memcpy(&u, &h, 2);
        u--; /* one step toward zero (same sign) */
        memcpy(&h, &u, 2);
    }
    return (float)h;
}

static float bits7(float d)
{
    uint32_t u;
    memcpy(&u, &d, 4);
    u = (u + (1u << 16)) & ~((1u << 17) - 1u);
    memcpy(&d, &u, 4);
    return h16(d);
}

/* Q4_K sub-block j's 6-bit scale and min from the 12 scale bytes */
static void scale_min(int j, const uint8_t *q, int *sc, int *mn)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [--rtz]\n", argv[0]);
        return 2;
    }
    g_rtz = argc > 2 && strcmp(argv[2], "--rtz") == 0;
    glm_gguf *g;
    if (glm_gguf_open(&g, argv[1]) != GLM_OK) {
        fprintf(stderr, "%s: cannot open\n", argv[1]);
        return 1;
    }
    printf("%-36s %10s %10s %10s %10s\n", "tensor", "f32", "pairs", "centred", "exact7");
    for (uint64_t i = 0; i < glm_gguf_tensor_count(g); i++) {
        const glm_gguf_tensor *t = glm_gguf_tensor_at(g, i);
        if (t->type != GLM_TYPE_Q4_K)
            continue;
        double e[4] = { 0, 0, 0, 0 }, s = 0;
        for (uint64_t b = 0; b < t->nbytes / 144; b++) {
            const uint8_t *p = t->data + 144 * b;
            _Float16 hd, hm;
            memcpy(&hd, p, 2);
            memcpy(&hm, p + 2, 2);
            for (int j = 0; j < 8; j++) {
                int sc, mn;
                scale_min(j, p + 4, &sc, &mn);
                float d = (float)hd * (float)sc, m = (float)hm * (float)mn;
                float D = h16(d), M = h16(m), C = h16(m - 8.0f * d);
                float dh = bits7(d), mh = h16(m), dl = h16(d - dh), ml = h16(m - mh);
                for (int k = 0; k < 32; k++) {
                    int q = (p[16 + 32 * (j / 2) + k] >> (4 * (j % 2))) & 15;
                    double want = (double)d * q - (double)m;
                    float w[4] = {
                        h16(d * (float)q - m),
                        op16(op16((float)q * D) - M),
                        op16(op16((float)(q - 8) * D) - C),
                        op16(op16(op16((float)q * dh) - mh) + op16(op16((float)q * dl) - ml)),
                    };
                    for (int v = 0; v < 4; v++)
                        e[v] += ((double)w[v] - want) * ((double)w[v] - want);
                    s += want * want;
                }
            }
        }
        printf("%-36s %10.3g %10.3g %10.3g %10.3g\n", t->name, e[0] / s, e[1] / s, e[2] / s, e[3] / s);
    }
    glm_gguf_close(g);
    return 0;
}
