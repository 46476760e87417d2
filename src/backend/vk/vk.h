/* The Vulkan compute context: instance and device selection (discrete GPU first, then
 * integrated/virtual, then CPU implementations such as Mesa's lavapipe), one compute queue,
 * buffers, pipelines built once from SPIR-V embedded at build time, and a recorder that
 * puts many dispatches into one command buffer with barriers between them.
 * Not here: what the kernels compute (shaders/, mirrored by ref/) or the layer graph. */
#ifndef GLM_VK_H
#define GLM_VK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <vulkan/vulkan.h>

#include "util/status.h"

typedef struct glm_vk glm_vk;

typedef struct glm_vk_options {
    int device_index; /* -1: best device; else the index printed by glm_vk_list_devices */
    bool validation;  /* enable VK_LAYER_KHRONOS_validation when installed */
    bool no_push_descriptors; /* bind through a descriptor pool even where VK_KHR_push_descriptor exists */
    uint32_t matvec_tpr;      /* tests: invocations per matvec row (8..64), 0 = chosen per shape */
} glm_vk_options;

typedef struct glm_vk_buffer {
    VkBuffer buf;
    VkDeviceMemory mem;
    void *map; /* host pointer when the memory is host-visible, else NULL */
    VkDeviceSize size;
} glm_vk_buffer;

/* Kernels, one per shaders/<name>.comp. The table in vk.c gives each its binding count and
 * push-constant size; keep the three in step. */
typedef enum glm_vk_kernel {
    GLM_VK_RMS_NORM = 0,
    GLM_VK_MATVEC,
    GLM_VK_GET_ROWS,
    GLM_VK_ROPE,
    GLM_VK_ELTWISE,
    GLM_VK_MOE_ROUTE,
    GLM_VK_MOE_GATE_ROUTE, /* the router's product and GLM_VK_MOE_ROUTE in one dispatch */
    GLM_VK_MOE_COMBINE,
    GLM_VK_ARGMAX,
    GLM_VK_MLA_SPLIT,
    GLM_VK_MLA_COMBINE,
    GLM_VK_KV_WRITE,
    GLM_VK_MATMUL,    /* tiled, many token rows (prefill) */
    GLM_VK_MOE_GROUP, /* routed pairs grouped by expert for GLM_VK_MATMUL */
    GLM_VK_MATMUL_CM, /* GLM_VK_MATMUL on tensor cores; only where glm_vk_coopmat_available */
    GLM_VK_MLA_SCORES_TILED, /* absorbed MLA of a prefill run: scores, softmax, mix as tiles */
    GLM_VK_SOFTMAX,
    GLM_VK_MLA_MIX_TILED,
    GLM_VK_MLA_SCORES_CM, /* GLM_VK_MLA_SCORES_TILED on tensor cores, as GLM_VK_MATMUL_CM */
    GLM_VK_MLA_MIX_CM,    /* GLM_VK_MLA_MIX_TILED on tensor cores */
    GLM_VK_MLA_PACK16,    /* float16 copies of the tensor-core MLA operands */
    GLM_VK_MATVEC_FAST, /* GLM_VK_MATVEC for the decode hot types, laid out for bandwidth */
    GLM_VK_MLA_REDUCE,  /* the sum of GLM_VK_MLA_MIX_*'s splits over the keys */
    GLM_VK_MLA_SCORES_ROWS, /* GLM_VK_MLA_SCORES_TILED for few query rows over many keys (decode) */
    GLM_VK_MATMUL_CM2, /* GLM_VK_MATMUL on workgroup-scope tensor cores; only where glm_vk_cm2_available */
    GLM_VK_MLA_FLASH,  /* GLM_VK_MLA_SPLIT with every head in a workgroup (decode rows) */
    GLM_VK_QUANT_X8,   /* rows of x quantized to 8 bits for GLM_VK_MATVEC_Q8 */
    GLM_VK_MATVEC_Q8,  /* GLM_VK_MATVEC_FAST of an 8-bit x; only where glm_vk_idot_available */
    GLM_VK_GRID_PROBE, /* a barrier across a whole grid (bench --profile's measurement only) */
    GLM_VK_MLA_FLASH_CM, /* GLM_VK_MLA_FLASH on tensor cores (GLM-4.7-Flash's head shape, splits of 32 keys) */
    GLM_VK_MATMUL_GQ, /* grouped Q4_K products on tensor cores, each subgroup staging its own weight rows */
    GLM_VK_CM_LAYOUT, /* the element map of 16 × 16 cooperative matrices (a test's and a probe's only) */
    GLM_VK_MATMUL_GQP, /* GLM_VK_MATMUL_GQ with producer and consumer subgroups (GLM_VK_GQ_PC=1) */
    GLM_VK_MATMUL_GQ_XPROBE, /* GLM_VK_MATMUL_GQ built with its fragment-load probe switches (bench's only) */
    GLM_VK_KERNEL_COUNT
} glm_vk_kernel;

glm_status glm_vk_create(glm_vk **out, const glm_vk_options *opt);
void glm_vk_destroy(glm_vk *vk);
const char *glm_vk_device_name(const glm_vk *vk);
bool glm_vk_device_is_cpu(const glm_vk *vk);
/* Tensor cores: true when the shaders were built with cooperative-matrix SPIR-V and the device
 * offers VK_KHR_cooperative_matrix with 16×16×16 float16 fragments accumulating in float32 at
 * subgroup scope and a subgroup size of 32 (GLM_VK_MATMUL_CM's layout). */
bool glm_vk_coopmat_available(const glm_vk *vk);
/* Whether GLM_VK_MATMUL_CM is used for tiled products (default: when available; the
 * environment variable GLM_VK_NO_COOPMAT=1 turns it off at creation). Returns the new state. */
bool glm_vk_use_coopmat(glm_vk *vk, bool on);
bool glm_vk_coopmat_enabled(const glm_vk *vk);
/* GLM_VK_MATMUL_CM2 (VK_NV_cooperative_matrix2: the driver stages the tiles and decodes the
 * weight blocks): available where the device offers it as cm2_usable (vk.c) checks; used for
 * the tiled products of the types it decodes (Q4_K, Q6_K, Q5_0, Q8_0) while tensor cores are
 * enabled and it is. Off by default (GLM_VK_CM2=1 turns it on at creation): on the H100 it
 * made pp512 2.1× slower than GLM_VK_MATMUL_CM (bench/RESULTS.md). Returns the new state. */
bool glm_vk_cm2_available(const glm_vk *vk);
bool glm_vk_use_cm2(glm_vk *vk, bool on);
bool glm_vk_cm2_enabled(const glm_vk *vk);
/* GLM_VK_MATMUL_CM2's token rows per tile for grouped experts: 32, 64 or 128 (environment
 * variable GLM_VK_CM2_GROUPED_TILE at creation; default GLM_VK_CM2_GROUPED_TILE). */
#define GLM_VK_CM2_GROUPED_TILE 64u
void glm_vk_cm2_set_grouped_tile(glm_vk *vk, uint32_t rows);
uint32_t glm_vk_cm2_grouped_tile(const glm_vk *vk);
/* GLM_VK_MATMUL_CM takes tiles of 128 token rows for a plain or per-head product whose grid
 * then still has at least `groups` workgroups (default 256: about two per multiprocessor of
 * a large GPU), of 64 otherwise; grouped experts: glm_vk_coopmat_set_tiling. 0: 128 wherever allowed
 * (tests reach both tile shapes at small sizes with it). */
void glm_vk_coopmat_set_wide_groups(glm_vk *vk, uint32_t groups);
uint32_t glm_vk_coopmat_wide_groups(const glm_vk *vk);
/* GLM_VK_MATMUL_CM's token rows per tile for grouped experts, 64 or 32 (environment variable
 * GLM_VK_CM_GROUPED_TILE at creation; default 64); how many 32-column steps ahead it loads,
 * 2 or 1, or 0 for steps of two chunks through one buffer (GLM_VK_CM_AHEAD; default
 * GLM_VK_CM_AHEAD); and below how many workgroups of 64-row
 * tiles a plain or per-head product takes tiles of 32 rows instead (GLM_VK_CM_NARROW_GROUPS;
 * default 0: never). Tests reach every combination with them. */
/* GLM_VK_MATMUL_CM splits a plain product over its columns into up to this many partial
 * products (1, 2 or 4; environment variable GLM_VK_CM_SPLIT at creation): it doubles the
 * parts while the grid stays within 264 workgroups (two a multiprocessor of a large GPU) and
 * the parts are whole multiples of 512 columns; a second dispatch sums the parts in order. */
#define GLM_VK_CM_SPLIT 4u
void glm_vk_coopmat_set_split(glm_vk *vk, uint32_t max_splits);
uint32_t glm_vk_coopmat_split(const glm_vk *vk);
/* The scratch of those partial products: one of two buffers of GLM_VK_SPLIT_BYTES, in turn (so
 * two split products in a row need no barrier between them); an error past its size. */
#define GLM_VK_SPLIT_BYTES (32u << 20)
glm_status glm_vk_split_parts(glm_vk *vk, uint64_t bytes, const glm_vk_buffer **buf);
#define GLM_VK_CM_AHEAD 0u /* steps of two chunks: +2.6% pp512 over one step ahead on the H100 (bench/RESULTS.md) */
void glm_vk_coopmat_set_tiling(glm_vk *vk, uint32_t grouped_tile, uint32_t ahead, uint32_t narrow_groups);
uint32_t glm_vk_coopmat_grouped_tile(const glm_vk *vk);
uint32_t glm_vk_coopmat_ahead(const glm_vk *vk);
uint32_t glm_vk_coopmat_narrow_groups(const glm_vk *vk);
/* GLM_VK_MATVEC_FAST stages x in shared memory for products of at most `groups` workgroups
 * (default GLM_VK_MATVEC_FAST_STAGE_WG, or the environment variable GLM_VK_MATVEC_STAGE at
 * creation; 0: never, UINT32_MAX: wherever the row fits; tests reach both paths with it). */
#define GLM_VK_MATVEC_FAST_STAGE_WG 256 /* measured faster up to there, slower above (bench/RESULTS.md) */
void glm_vk_matvec_set_stage_groups(glm_vk *vk, uint32_t groups);
uint32_t glm_vk_matvec_stage_groups(const glm_vk *vk);
/* GLM_VK_MATVEC_FAST lays Q4_K/Q5_K tasks out as columns of 4 code bytes (XC in the shader: a
 * quarter subgroup reads x in whole lines) when on (default GLM_VK_MATVEC_XC, or the
 * environment variable GLM_VK_MATVEC_XC at creation), as runs of 16 bytes when off. */
#define GLM_VK_MATVEC_XC 1
void glm_vk_matvec_set_xc(glm_vk *vk, bool on);
bool glm_vk_matvec_xc(const glm_vk *vk);
/* The device runs 4 × int8 dot products (Vulkan 1.3's shaderIntegerDotProduct, enabled at
 * creation): GLM_VK_MATVEC_Q8 can be built there. */
bool glm_vk_idot_available(const glm_vk *vk);
/* GLM_VK_MATVEC_FAST splits each row's rounds of tasks over two slices of a workgroup (KS2 in the
 * shader) where each slice gets one and the doubled grid has at most `groups` workgroups
 * (default GLM_VK_MATVEC_KS_WG, or the environment variable GLM_VK_MATVEC_KS at creation; 0:
 * never). */
#define GLM_VK_MATVEC_KS_WG 1024 /* measured +3.3 to +3.8% decode over none, ahead of 512, 2048, 8192 on the H100 (bench/RESULTS.md) */
void glm_vk_matvec_set_ks_groups(glm_vk *vk, uint32_t groups);
uint32_t glm_vk_matvec_ks_groups(const glm_vk *vk);
/* Absorbed MLA runs an item of few rows (decode) whose key bound is at least `keys` through the
 * tiled core (glm_vk_mla_attention in ops.h; default GLM_VK_MLA_LONG_KEYS, or the environment
 * variable GLM_VK_MLA_LONG at creation; 0: never). The default: on the H100 mla_split was
 * faster at 1,536 keys and the tiled core at 2,560 and ~4,100 (bench/RESULTS.md). */
#define GLM_VK_MLA_LONG_KEYS 2048u
void glm_vk_set_mla_long_keys(glm_vk *vk, uint32_t keys);
uint32_t glm_vk_mla_long_keys(const glm_vk *vk);
/* The per-row MLA core (decode rows below the long-key threshold) takes mla_flash.comp (every
 * head in a workgroup, at most `max_split` splits a row, 1..256; 0: the default
 * GLM_VK_MLA_FLASH_SPLIT) where `on`, the device's subgroups have at least 8 invocations and
 * the shape fits it, else mla_split.comp. Default: on, or the environment variable
 * GLM_VK_MLA_FLASH at creation (0: off, N > 1: on with N splits at most). Returns whether it is
 * on. */
#define GLM_VK_MLA_FLASH_SPLIT 128u
#define GLM_VK_MLA_FLASH_SHARED16 38912u /* mla_flash's shared memory with 16-key passes */
bool glm_vk_set_mla_flash(glm_vk *vk, bool on, uint32_t max_split);
bool glm_vk_mla_flash(const glm_vk *vk);
uint32_t glm_vk_mla_flash_split(const glm_vk *vk);
/* Steps whose longest row has fewer keys keep mla_split (GLM_VK_MLA_FLASH_MIN, or the
 * environment variable of that name at creation). */
#define GLM_VK_MLA_FLASH_MIN 0u
uint32_t glm_vk_mla_flash_min(const glm_vk *vk);
/* mla_flash's keys a pass: 8, or 16 with GLM_VK_MLA_FLASH_PASS=16 where a workgroup has
 * GLM_VK_MLA_FLASH_SHARED16 bytes of shared memory. */
uint32_t glm_vk_mla_flash_pass(const glm_vk *vk);
/* mla_flash's lanes a head at most: 32, 16 or 8, no more than the subgroup size (or
 * GLM_VK_MLA_FLASH_LANES=8|16); fewer where the heads do not fit its 640 invocations. */
uint32_t glm_vk_mla_flash_lanes(const glm_vk *vk);
/* GLM_VK_MATVEC_FAST computes 1 row per slice where 2 would give fewer than `groups` workgroups
 * (default GLM_VK_MATVEC_FAST_FEW, or the environment variable GLM_VK_MATVEC_FEW at creation;
 * 0: 2 rows per slice everywhere). Every decode product but the lm_head (19,360 workgroups of
 * 2 rows) measured faster with 1 row on the H100, the lm_head slower (bench/RESULTS.md). */
#define GLM_VK_MATVEC_FAST_FEW 4096
void glm_vk_matvec_set_few_groups(glm_vk *vk, uint32_t groups);
uint32_t glm_vk_matvec_few_groups(const glm_vk *vk);
/* The largest storage buffer the device binds (maxStorageBufferRange). */
uint64_t glm_vk_max_buffer(const glm_vk *vk);
/* The compute queue's subgroup size (gl_SubgroupSize), 1 when unknown. */
uint32_t glm_vk_subgroup_size(const glm_vk *vk);
uint32_t glm_vk_matvec_tpr_forced(const glm_vk *vk); /* glm_vk_options.matvec_tpr */
/* The selected physical device, for callers that query more properties (driver version). */
VkPhysicalDevice glm_vk_physical_device(const glm_vk *vk);
uint32_t glm_vk_validation_messages(const glm_vk *vk); /* count of validation reports so far */
bool glm_vk_validation_enabled(const glm_vk *vk);
/* Is there a Vulkan device that is not a CPU implementation? (false when no driver loads) */
bool glm_vk_gpu_present(void);
/* Print every physical device with its index; returns how many. */
glm_status glm_vk_list_devices(int *count, bool print);

/* Storage buffers. Host-visible buffers are mapped for their lifetime; device-local ones are
 * filled through glm_vk_upload (a staging copy). Sizes beyond maxStorageBufferRange fail with
 * a message naming the limit. */
glm_status glm_vk_buffer_create(glm_vk *vk, glm_vk_buffer *b, VkDeviceSize size, bool host_visible);
/* A mapped buffer that the host writes and the device reads, in device memory the host can
 * map where the device has it (kernels then read it at device speed, not across the bus),
 * else in host memory. Host reads of it may be slow: results to read back take
 * glm_vk_buffer_create(…, true). */
glm_status glm_vk_buffer_create_upload(glm_vk *vk, glm_vk_buffer *b, VkDeviceSize size);
void glm_vk_buffer_destroy(glm_vk *vk, glm_vk_buffer *b);
glm_status glm_vk_upload(glm_vk *vk, glm_vk_buffer *dst, VkDeviceSize offset, const void *src, VkDeviceSize n);
/* Download: during a recording, the copy is appended to it and the recording is submitted
 * and waited for (one wait for the work and the copy); up to 64 MiB go through a staging
 * buffer the context keeps (grown when too small, never per call). */
glm_status glm_vk_download(glm_vk *vk, void *dst, glm_vk_buffer *src, VkDeviceSize offset, VkDeviceSize n);

/* Recording: begin, any number of dispatches, then submit and wait. Buffers are bound in order
 * to bindings 0..n-1. A barrier is placed before a dispatch only when it touches a buffer that
 * a dispatch since the last barrier wrote (or writes one they read), so independent dispatches
 * may overlap; with profiling on, every dispatch is followed by one. Full command buffers are
 * submitted while recording goes on; submit_wait submits the rest and waits for all. */
glm_status glm_vk_begin(glm_vk *vk);
glm_status glm_vk_dispatch(glm_vk *vk, glm_vk_kernel k, const glm_vk_buffer *const *bufs, uint32_t nbufs,
                           const void *push, uint32_t push_size, uint32_t gx, uint32_t gy, uint32_t gz);
glm_status glm_vk_submit_wait(glm_vk *vk);

/* Per-dispatch timing with timestamp queries (for `bench --profile` and `parity`): when on,
 * every recorded dispatch is timed on the device and its time credited to its kernel;
 * the totals accumulate until glm_vk_profile_reset. Fails on devices without timestamps. */
glm_status glm_vk_set_profiling(glm_vk *vk, bool on);
void glm_vk_profile(const glm_vk *vk, glm_vk_kernel k, uint64_t *ns, uint64_t *count);
void glm_vk_profile_reset(glm_vk *vk);
/* The same split by dispatch shape (kernel, variant, grid), for the first GLM_VK_PROF_SHAPES
 * shapes met since the last reset: i < the returned count. */
#define GLM_VK_PROF_SHAPES 128
typedef struct glm_vk_prof_shape {
    glm_vk_kernel kernel;
    uint32_t variant, gx, gy, gz;
    uint64_t ns, count;
} glm_vk_prof_shape;
uint32_t glm_vk_profile_shapes(const glm_vk *vk, const glm_vk_prof_shape **shapes);
/* The host side of the recordings since glm_vk_profile_reset (kept with profiling off too):
 * how many, the host time from begin to the last submit (recording) and to the first submit
 * (the device idles until then), the time blocked in submit_wait, and command buffers submitted. */
typedef struct glm_vk_host_prof {
    uint64_t recordings, record_ns, first_submit_ns, wait_ns, submits;
} glm_vk_host_prof;
void glm_vk_host_profile(const glm_vk *vk, glm_vk_host_prof *out);
/* The wall time per dispatch of n empty 1-workgroup dispatches, each after a barrier
 * (chained) or in runs of 8 independent ones between barriers (grouped); best of 3 (floor.c). */
glm_status glm_vk_dispatch_floor(glm_vk *vk, uint32_t n, double *chained_us, double *grouped_us);
/* The grid-barrier probe (shaders/grid_probe.comp): one dispatch of `groups` workgroups of 64
 * invocations crossing `rounds` barriers of the whole grid, each waiting at most `limit` polls.
 * *resident: every workgroup finished every round (none waited past its limit); *us: the wall
 * time of that dispatch less that of the same with no rounds, per round (best of 3). */
/* The element map of the tensor-core kernels' 16 × 16 cooperative matrices (cm_layout.comp):
 * out[(m·32 + l)·16 + e] = 16r + c of element e of invocation l of matrix m (0: A row-major,
 * 1: B loaded column-major, 2: float accumulator; -1 past its length); out[96·16 + m] = the
 * lengths. out holds 97·16 floats. Needs VK_KHR_cooperative_matrix and subgroups of 32. */
glm_status glm_vk_cm_layout(glm_vk *vk, float *out);
glm_status glm_vk_grid_probe(glm_vk *vk, uint32_t groups, uint32_t rounds, uint32_t limit, bool *resident, double *us);
/* One run of it (dispatched workgroups, possibly fewer than `groups`): the counters after it,
 * arrivals, the timed-out flag and the workgroups done (tests). */
glm_status glm_vk_grid_probe_run(glm_vk *vk, uint32_t groups, uint32_t dispatched, uint32_t rounds, uint32_t limit,
                                 uint32_t out[3]);
const char *glm_vk_kernel_name(glm_vk_kernel k);
/* The same for a kernel specialized by constant_id 0 = `variant` % 64 and constant_id 1 =
 * `variant` / 64 (matvec: the weight type, fused SwiGLU; matvec_fast: bit 0 SwiGLU, bit 1 one
 * row per slice, bit 2 RMSNorm in front, bit 3 x staged in shared memory); each variant's pipeline is built on its first use and kept. */
glm_status glm_vk_dispatch_variant(glm_vk *vk, glm_vk_kernel k, uint32_t variant, const glm_vk_buffer *const *bufs,
                                   uint32_t nbufs, const void *push, uint32_t push_size, uint32_t gx, uint32_t gy,
                                   uint32_t gz);

#endif
