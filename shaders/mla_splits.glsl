// How mla_split.comp cuts a row's keys 0..len-1 and how mla_combine.comp finds the pieces:
// n0 = min(MAX_SPLIT, ceil(len / PASS)) and chunk = ceil(len / n0) rounded up to whole passes
// of PASS keys, so nsplit = ceil(len / chunk) pieces, none empty: one pass per split up to
// PASS · MAX_SPLIT keys, a few passes beyond. It depends on the row's own length only, so a
// row's result is the same alone or batched. A row of at most MAX_INLINE splits is merged by
// mla_split itself (the combine skips it). Partials are [m, l, 0, 0, u[Rkv]] padded to a
// multiple of 4 floats (part_stride), from a 16-byte aligned part_off: u stays 16-byte
// aligned. The host side is split_count in src/backend/vk/ops.c (GLM_VK_MLA_PASS,
// GLM_VK_MLA_MAX_SPLIT, GLM_VK_MLA_MAX_INLINE in ops.h). mla_flash.comp cuts rows the same
// way with its own pass and split bound (split_chunk_of), which it hands mla_combine.comp.
const uint PASS = 16u;      // keys a split workgroup takes at a time
const uint MAX_SPLIT = 64u; // splits of a row at most
const uint MAX_INLINE = 8u; // splits mla_split merges itself at most (more: mla_combine)

uint part_stride(uint rkv)
{
    return (rkv + 3u) / 4u * 4u + 4u;
}

// The same cut with passes of `pass` keys and at most `maxs` splits (mla_flash.comp's).
uint split_chunk_of(uint len, uint pass, uint maxs)
{
    uint n0 = min(maxs, (len + pass - 1u) / pass);
    return ((len + n0 - 1u) / n0 + pass - 1u) / pass * pass;
}

uint split_chunk(uint len)
{
    return split_chunk_of(len, PASS, MAX_SPLIT);
}

uint split_count(uint len)
{
    return (len + split_chunk(len) - 1u) / split_chunk(len);
}
