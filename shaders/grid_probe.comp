#version 450
// Grid-barrier probe (bench --profile; a measurement, no model op uses it): can p.groups
// workgroups of this kernel all run at once, and what does a barrier across all of them cost?
// Invocation 0 of each workgroup, p.rounds times: memory barrier, arrive (cnt[0] += 1), then spin
// until cnt[0] reaches groups · round. A spin of more than p.limit polls sets cnt[1] (not every
// workgroup was running: they cannot all be waited for) and every workgroup then stops at its
// next poll or round, so nothing waits forever. cnt[2] counts the workgroups that finished every
// round. The host zeroes cnt before the dispatch.
layout(local_size_x = 64) in;

layout(std430, binding = 0) coherent buffer C { uint cnt[]; };

layout(push_constant) uniform P {
    uint groups, rounds, limit, pad;
} p;

shared uint stop;

void main()
{
    uint tid = gl_LocalInvocationID.x;
    for (uint r = 1u; r <= p.rounds; r++) {
        if (tid == 0u) {
            memoryBarrierBuffer();
            atomicAdd(cnt[0], 1u);
            uint it = 0u;
            while (atomicAdd(cnt[0], 0u) < p.groups * r && atomicAdd(cnt[1], 0u) == 0u && it < p.limit)
                it++;
            if (it >= p.limit)
                atomicExchange(cnt[1], 1u);
            stop = atomicAdd(cnt[1], 0u);
        }
        barrier();
        bool quit = stop != 0u;
        barrier(); // every invocation has read stop before invocation 0 writes the next round's
        if (quit)
            return;
    }
    if (tid == 0u)
        atomicAdd(cnt[2], 1u);
}
