// The routing of one token by one workgroup of 64 invocations (model-spec §3.2), mirroring
// ref/moe.c: scores s = sigmoid(z) (or softmax over E), selection on s + bias (bias only
// chooses), group limit (groups outside the topk_group best, scored by the sum of their two
// largest selection scores, are dropped), top-k with ties to the lower index, weights from the
// unbiased s, normalized over the k (+1e-20) when norm_topk_prob, then x scaling. ids are
// written ascending with their weights in the same order. E <= 256, k <= 8.
// Scores, group scores and each of the k arg-max rounds run across the 64 invocations
// (subgroup max/min, then the subgroups' winners in order); the softmax sums and the final
// sort of the k ids stay sequential.
// Requires, declared before including this file: `float logits[]`, `uint w[]` (the bias, with
// dequant.glsl), `int ids[]`, `float wts[]`, and push constants p with the fields of
// glm_vk_moe_route_push (src/backend/vk/ops.h) first.

shared float s[256];
shared float sel[256];
shared float gscore[32];
shared uint keep; // bitmask of kept groups (n_group <= 32)
shared float rv[8][64]; // per round, per subgroup: the best score and its expert
shared uint ri[8][64];
shared uint chosen[8];

void route(uint t, uint tid)
{
    uint lb = p.l_off + t * p.l_ld;
    uint bb = blk_bytes(p.bias_type);
    if (p.sigmoid_gate != 0u) {
        for (uint e = tid; e < p.n_exp; e += 64u)
            s[e] = 1.0 / (1.0 + exp(-logits[lb + e]));
    } else if (tid == 0u) {
        float mx = logits[lb];
        for (uint e = 1u; e < p.n_exp; e++)
            mx = max(mx, logits[lb + e]);
        float sum = 0.0;
        for (uint e = 0u; e < p.n_exp; e++) {
            s[e] = exp(logits[lb + e] - mx);
            sum += s[e];
        }
        for (uint e = 0u; e < p.n_exp; e++)
            s[e] /= sum;
    }
    barrier();
    for (uint e = tid; e < p.n_exp; e += 64u) {
        sel[e] = s[e] + (p.has_bias != 0u ? dequant(p.bias_type, p.bias_offset + e * bb, 0u) : 0.0);
    }
    barrier();
    // group limit
    if (p.n_group > 1u) {
        uint gs = p.n_exp / p.n_group;
        if (tid < p.n_group) {
            float m1 = -1.0 / 0.0, m2 = -1.0 / 0.0;
            for (uint e = tid * gs; e < (tid + 1u) * gs; e++) {
                float v = sel[e];
                if (v > m1) { m2 = m1; m1 = v; } else if (v > m2) { m2 = v; }
            }
            gscore[tid] = gs >= 2u ? m1 + m2 : m1;
        }
        barrier();
        if (tid == 0u) {
            uint kp = 0u;
            for (uint n = 0u; n < p.topk_group; n++) {
                int best = -1;
                for (uint g = 0u; g < p.n_group; g++)
                    if ((kp & (1u << g)) == 0u && (best < 0 || gscore[g] > gscore[uint(best)]))
                        best = int(g);
                kp |= 1u << uint(best);
            }
            keep = kp;
        }
        barrier();
        for (uint e = tid; e < p.n_exp; e += 64u)
            if ((keep & (1u << (e / gs))) == 0u)
                sel[e] = -1.0 / 0.0;
        barrier();
    }
    // top-k, ties to the lower index: k arg-max rounds over the experts not taken yet. Each
    // invocation keeps its experts (tid, tid + 64, ..) in registers; a round takes the best of
    // them, then the best over the subgroup (max score, then lowest index among those holding
    // it), then over the subgroups through one shared slot per (round, subgroup): one barrier
    // a round. "Best" is (not taken, higher score, lower index) in that order, so experts at
    // -inf (dropped groups) are still chosen after all the others, lowest index first.
    float mine[4];
    bool free_[4];
    [[unroll]] for (uint j = 0u; j < 4u; j++) {
        uint e = tid + 64u * j;
        free_[j] = e < p.n_exp;
        mine[j] = free_[j] ? sel[e] : 0.0;
    }
    for (uint n = 0u; n < p.k; n++) {
        bool have = false;
        float v = -1.0 / 0.0;
        uint idx = 0xFFFFFFFFu;
        [[unroll]] for (uint j = 0u; j < 4u; j++)
            if (free_[j] && (!have || mine[j] > v)) {
                have = true;
                v = mine[j];
                idx = tid + 64u * j;
            }
        float m = subgroupMax(have ? v : -1.0 / 0.0);
        uint best = subgroupMin(have && v == m ? idx : 0xFFFFFFFFu);
        if (subgroupElect()) {
            rv[n][gl_SubgroupID] = m;
            ri[n][gl_SubgroupID] = best;
        }
        barrier();
        float bvv = 0.0;
        uint bix = 0xFFFFFFFFu;
        for (uint sg = 0u; sg < gl_NumSubgroups; sg++) {
            float v2 = rv[n][sg];
            uint i2 = ri[n][sg];
            if (i2 != 0xFFFFFFFFu && (bix == 0xFFFFFFFFu || v2 > bvv || (v2 == bvv && i2 < bix))) {
                bvv = v2;
                bix = i2;
            }
        }
        if (tid == 0u)
            chosen[n] = bix;
        [[unroll]] for (uint j = 0u; j < 4u; j++)
            if (tid + 64u * j == bix)
                free_[j] = false;
    }
    barrier();
    if (tid == 0u) {
        // ascending order of ids
        for (uint a = 1u; a < p.k; a++) {
            uint v = chosen[a];
            int b = int(a) - 1;
            while (b >= 0 && chosen[uint(b)] > v) {
                chosen[uint(b) + 1u] = chosen[uint(b)];
                b--;
            }
            chosen[uint(b + 1)] = v;
        }
        float denom = 0.0;
        for (uint n = 0u; n < p.k; n++)
            denom += s[chosen[n]];
        denom += 1e-20;
        for (uint n = 0u; n < p.k; n++) {
            float wv = s[chosen[n]];
            if (p.norm_topk != 0u)
                wv /= denom;
            ids[p.ids_off + t * p.ids_ld + n] = int(chosen[n]);
            wts[p.w_off + t * p.w_ld + n] = wv * p.scale;
        }
    }
}
