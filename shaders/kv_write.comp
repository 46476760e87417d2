#version 450
// KV write into the paged latent cache: src row t goes to pool row
// pages[ptab[t] + pos[t] / page_size] * page_size + pos[t] % page_size (engine/kvcache.h).
// One invocation per (column, row). Push constants mirror glm_vk_kv_write_push (vk/ops.h).
layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer SRC { float src[]; };
layout(std430, binding = 1) readonly buffer POS { int pos[]; };
layout(std430, binding = 2) readonly buffer PT { int ptab[]; };
layout(std430, binding = 3) readonly buffer PG { int pages[]; };
layout(std430, binding = 4) writeonly buffer DST { float dst[]; };

layout(push_constant) uniform P {
    uint rows, cols, src_off, src_ld;
    uint dst_off, dst_ld, pos_off, pos_ld;
    uint ptab_off, ptab_ld, pages_off, page_size;
} p;

void main()
{
    uint i = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y;
    if (i >= p.cols || t >= p.rows)
        return;
    uint ps = uint(pos[p.pos_off + t * p.pos_ld]);
    uint pt = uint(ptab[p.ptab_off + t * p.ptab_ld]);
    uint row = uint(pages[p.pages_off + pt + ps / p.page_size]) * p.page_size + ps % p.page_size;
    dst[p.dst_off + row * p.dst_ld + i] = src[p.src_off + t * p.src_ld + i];
}
