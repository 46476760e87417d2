// How mla_split.comp cuts a row's keys 0..len-1 and how mla_combine.comp finds the pieces:
// nsplit = min(max_split, ceil(len / MIN_CHUNK)) pieces of chunk = ceil(len / nsplit) keys,
// of which the first ceil(len / chunk) are not empty. It depends on the row's own length
// only, so a row's result is the same alone or batched. Partials are [m, l, 0, 0, u[Rkv]]
// padded to a multiple of 4 floats (part_stride), from a 16-byte aligned part_off: u stays
// 16-byte aligned. The host side is split_count in
// src/backend/vk/ops.c (GLM_VK_MLA_MIN_CHUNK, GLM_VK_MLA_MAX_SPLIT in ops.h).
const uint MIN_CHUNK = 32u;

uint part_stride(uint rkv)
{
    return (rkv + 3u) / 4u * 4u + 4u;
}

uint split_chunk(uint len, uint max_split)
{
    uint nsplit = min(max_split, (len + MIN_CHUNK - 1u) / MIN_CHUNK);
    return (len + nsplit - 1u) / nsplit;
}
