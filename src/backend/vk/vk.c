/* Vulkan compute context (see vk.h). Errors map VkResult into glm_status with the call named. */
#include "backend/vk/vk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/types.h"
#include "glm_spirv.h" /* generated: spv_<kernel>[] from shaders/<kernel>.comp */

#define GLM_VK_MAX_BINDINGS 10
#define GLM_VK_MAX_SETS 4096 /* dispatches per recording */
/* A recording is cut into command buffers, each submitted as soon as it is full (without
 * waiting) so the device runs while the host records the rest; a ring of GLM_VK_RING command
 * buffers, each with its fence. The first holds GLM_VK_FIRST_CHUNK dispatches, so the device
 * starts early, each next one twice as many, up to GLM_VK_CHUNK. */
#define GLM_VK_FIRST_CHUNK 4 /* tg128 +0.5 to +3.6% over 16 on the H100 (bench/RESULTS.md) */
#define GLM_VK_CHUNK 128
#define GLM_VK_RING 8
/* Downloads up to this size land in a persistent staging buffer (glm_vk_download). */
#define GLM_VK_STAGE_MAX (64u << 20)
/* Buffers tracked since the last barrier (more: a barrier is placed anyway). */
#define GLM_VK_TRACK 32

typedef struct kernel_desc {
    const char *name;
    const uint32_t *spv;
    size_t spv_bytes;
    uint32_t bindings;
    uint32_t push_size;
    bool specialized; /* constant_id 0 selects a variant (the weight type); one pipeline each */
    uint32_t ro; /* bit i: binding i is only read (others count as written, for barriers) */
    bool coopmat; /* needs VK_KHR_cooperative_matrix: built only where the device has it */
    bool cm2;     /* needs VK_NV_cooperative_matrix2 (glm_vk_cm2_available) */
    bool idot;    /* needs the integer dot product (glm_vk_idot_available) */
} kernel_desc;

#define GLM_VK_MAX_VARIANTS 1048576 /* variant v: constant_id 0 = v % 64, constant_id 1 = v / 64 */
#define GLM_VK_PIPE_SLOTS 1024    /* pipelines built, at most (a hash table of kernel and variant) */

/* Push-constant sizes mirror the structs in backend/vk/ops.h (size-asserted there). */
static const kernel_desc k_kernels[GLM_VK_KERNEL_COUNT] = {
    [GLM_VK_RMS_NORM] = { "rms_norm", spv_rms_norm, sizeof spv_rms_norm, 4, 48, false, 0xa },
    [GLM_VK_MATVEC] = { "matvec", spv_matvec, sizeof spv_matvec, 5, 128, true, 0x1b },
    [GLM_VK_GET_ROWS] = { "get_rows", spv_get_rows, sizeof spv_get_rows, 3, 32, false, 0x3 },
    [GLM_VK_ROPE] = { "rope", spv_rope, sizeof spv_rope, 3, 48, false, 0x6 },
    [GLM_VK_ELTWISE] = { "eltwise", spv_eltwise, sizeof spv_eltwise, 3, 48, false, 0x3 },
    [GLM_VK_MOE_ROUTE] = { "moe_route", spv_moe_route, sizeof spv_moe_route, 4, 80, false, 0x3 },
    [GLM_VK_MOE_GATE_ROUTE] = { "moe_gate_route", spv_moe_gate_route, sizeof spv_moe_gate_route, 10, 128, true, 0x72 },
    [GLM_VK_MOE_COMBINE] = { "moe_combine", spv_moe_combine, sizeof spv_moe_combine, 4, 48, false, 0xb },
    [GLM_VK_ARGMAX] = { "argmax", spv_argmax, sizeof spv_argmax, 2, 64, false, 0x1 },
    [GLM_VK_MLA_SPLIT] = { "mla_split", spv_mla_split, sizeof spv_mla_split, 8, 112, false, 0x7e },
    [GLM_VK_MLA_COMBINE] = { "mla_combine", spv_mla_combine, sizeof spv_mla_combine, 3, 48, false, 0x3 },
    [GLM_VK_KV_WRITE] = { "kv_write", spv_kv_write, sizeof spv_kv_write, 8, 96, true, 0x6f },
    [GLM_VK_MATMUL] = { "matmul", spv_matmul, sizeof spv_matmul, 4, 80, true, 0xb },
    [GLM_VK_MOE_GROUP] = { "moe_group", spv_moe_group, sizeof spv_moe_group, 2, 32, false, 0x1 },
    [GLM_VK_MATMUL_CM] = { "matmul_cm", spv_matmul_cm, sizeof spv_matmul_cm, 4, 80, true, 0xb, true },
    [GLM_VK_MLA_SCORES_TILED] = { "mla_scores_tiled", spv_mla_scores_tiled, sizeof spv_mla_scores_tiled, 8, 96, false,
                                  0x7f },
    [GLM_VK_SOFTMAX] = { "softmax", spv_softmax, sizeof spv_softmax, 1, 20, false, 0x0 },
    [GLM_VK_MLA_MIX_TILED] = { "mla_mix_tiled", spv_mla_mix_tiled, sizeof spv_mla_mix_tiled, 6, 80, false, 0x1f },
    [GLM_VK_MLA_SCORES_CM] = { "mla_scores_cm", spv_mla_scores_cm, sizeof spv_mla_scores_cm, 8, 96, true, 0x7f, true },
    [GLM_VK_MLA_MIX_CM] = { "mla_mix_cm", spv_mla_mix_cm, sizeof spv_mla_mix_cm, 6, 80, true, 0x1f, true },
    [GLM_VK_MLA_PACK16] = { "mla_pack16", spv_mla_pack16, sizeof spv_mla_pack16, 7, 96, false, 0x7e },
    [GLM_VK_MATVEC_FAST] = { "matvec_fast", spv_matvec_fast, sizeof spv_matvec_fast, 8, 128, true, 0x7b },
    [GLM_VK_MLA_REDUCE] = { "mla_reduce", spv_mla_reduce, sizeof spv_mla_reduce, 2, 32, false, 0x1 },
    [GLM_VK_MLA_SCORES_ROWS] = { "mla_scores_rows", spv_mla_scores_rows, sizeof spv_mla_scores_rows, 8, 96, false,
                                 0x7f },
    [GLM_VK_MATMUL_CM2] = { "matmul_cm2", spv_matmul_cm2, sizeof spv_matmul_cm2, 4, 80, true, 0xb, true, true },
    [GLM_VK_MLA_FLASH] = { "mla_flash", spv_mla_flash, sizeof spv_mla_flash, 8, 112, true, 0x7e },
    [GLM_VK_QUANT_X8] = { "quant_x8", spv_quant_x8, sizeof spv_quant_x8, 2, 32, false, 0x1 },
    [GLM_VK_MATVEC_Q8] = { "matvec_q8", spv_matvec_q8, sizeof spv_matvec_q8, 8, 128, true, 0x7b, false, false, true },
    [GLM_VK_GRID_PROBE] = { "grid_probe", spv_grid_probe, sizeof spv_grid_probe, 1, 16, false, 0x0 },
    [GLM_VK_MLA_FLASH_CM] = { "mla_flash_cm", spv_mla_flash_cm, sizeof spv_mla_flash_cm, 8, 112, true, 0x7e, true },
    [GLM_VK_MATMUL_GQ] = { "matmul_gq", spv_matmul_gq, sizeof spv_matmul_gq, 4, 80, true, 0xb, true },
    [GLM_VK_MATMUL_GQP] = { "matmul_gqp", spv_matmul_gqp, sizeof spv_matmul_gqp, 4, 80, true, 0xb, true },
    [GLM_VK_MATMUL_GQ_XPROBE] = { "matmul_gq_xprobe", spv_matmul_gq_xprobe, sizeof spv_matmul_gq_xprobe, 4, 80, true,
                                  0xb, true },
    [GLM_VK_CM_LAYOUT] = { "cm_layout", spv_cm_layout, sizeof spv_cm_layout, 1, 0, false, 0x0, true },
};

/* VK_KHR_cooperative_matrix, declared here because Debian 12's Vulkan headers (1.3.239)
 * predate it; values from the Vulkan registry. */
#define GLM_VK_KHR_COOPMAT_NAME "VK_KHR_cooperative_matrix"
#define GLM_VK_STYPE_COOPMAT_FEATURES ((VkStructureType)1000506000)
#define GLM_VK_STYPE_COOPMAT_PROPERTIES ((VkStructureType)1000506001)
#define GLM_VK_COMPONENT_F16 0u
#define GLM_VK_COMPONENT_F32 1u
#define GLM_VK_SCOPE_SUBGROUP 3u
typedef struct glm_vk_coopmat_props {
    VkStructureType sType;
    void *pNext;
    uint32_t MSize, NSize, KSize, AType, BType, CType, ResultType;
    VkBool32 saturatingAccumulation;
    uint32_t scope;
} glm_vk_coopmat_props;
typedef struct glm_vk_coopmat_features {
    VkStructureType sType;
    void *pNext;
    VkBool32 cooperativeMatrix, cooperativeMatrixRobustBufferAccess;
} glm_vk_coopmat_features;
typedef VkResult(VKAPI_PTR *glm_vk_coopmat_query_fn)(VkPhysicalDevice, uint32_t *, glm_vk_coopmat_props *);

/* VK_NV_cooperative_matrix2 (registry values; newer than Debian 12's headers too). */
#define GLM_VK_NV_CM2_NAME "VK_NV_cooperative_matrix2"
#define GLM_VK_STYPE_CM2_FEATURES ((VkStructureType)1000593000)
#define GLM_VK_STYPE_CM2_FLEX_PROPERTIES ((VkStructureType)1000593001)
#define GLM_VK_SCOPE_WORKGROUP 2u
typedef struct glm_vk_cm2_features {
    VkStructureType sType;
    void *pNext;
    VkBool32 workgroupScope, flexibleDimensions, reductions, conversions, perElementOperations, tensorAddressing,
        blockLoads;
} glm_vk_cm2_features;
typedef struct glm_vk_cm2_flex {
    VkStructureType sType;
    void *pNext;
    uint32_t MGranularity, NGranularity, KGranularity, AType, BType, CType, ResultType;
    VkBool32 saturatingAccumulation;
    uint32_t scope, workgroupInvocations;
} glm_vk_cm2_flex;
typedef VkResult(VKAPI_PTR *glm_vk_cm2_query_fn)(VkPhysicalDevice, uint32_t *, glm_vk_cm2_flex *);

struct glm_vk {
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    VkPhysicalDevice phys;
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties memprops;
    uint32_t subgroup_size, matvec_tpr;
    VkDevice dev;
    VkQueue queue;
    uint32_t queue_family;
    VkCommandPool cmd_pool;
    VkCommandBuffer cmd; /* the one being recorded: ring[cur] */
    VkCommandBuffer ring[GLM_VK_RING];
    VkFence fences[GLM_VK_RING];
    bool in_flight[GLM_VK_RING];
    uint32_t cur, in_cmd; /* ring slot being recorded, dispatches recorded into it */
    uint32_t chunk;       /* dispatches the current command buffer takes before it is submitted */
    uint32_t first_chunk; /* the first command buffer's (GLM_VK_FIRST_CHUNK, or the environment's) */
    /* host side of the recordings (glm_vk_host_profile): when this one began, its submits */
    uint64_t rec_t0, rec_submits;
    glm_vk_host_prof host;
    /* where downloads land (glm_vk_download): kept and grown, in cached host memory if any */
    glm_vk_buffer stage;
    VkDescriptorPool desc_pool;
    PFN_vkCmdPushDescriptorSetKHR push_set; /* VK_KHR_push_descriptor, else NULL: sets from the pool */
    /* buffers written / read by dispatches since the last barrier */
    VkBuffer written[GLM_VK_TRACK], read[GLM_VK_TRACK];
    uint32_t n_written, n_read;
    VkDescriptorSetLayout set_layout[GLM_VK_KERNEL_COUNT];
    VkPipelineLayout pipe_layout[GLM_VK_KERNEL_COUNT];
    struct {
        uint32_t key; /* 1 + kernel · GLM_VK_MAX_VARIANTS + variant; 0: free */
        VkPipeline p;
    } pipes[GLM_VK_PIPE_SLOTS];
    VkShaderModule module[GLM_VK_KERNEL_COUNT];
    bool recording;
    /* profiling: a timestamp before the first dispatch and after each one */
    VkQueryPool queries;
    uint32_t n_stamps;                       /* timestamps written in this recording */
    uint8_t stamp_kernel[GLM_VK_MAX_SETS];   /* kernel of the dispatch ending at stamp i+1 */
    uint8_t stamp_shape[GLM_VK_MAX_SETS];    /* its entry in shapes (GLM_VK_PROF_SHAPES: none) */
    glm_vk_prof_shape shapes[GLM_VK_PROF_SHAPES];
    uint32_t n_shapes;
    uint64_t prof_ns[GLM_VK_KERNEL_COUNT];
    uint64_t prof_count[GLM_VK_KERNEL_COUNT];
    uint32_t validation_messages;
    bool coopmat_ok, coopmat_on; /* see glm_vk_coopmat_available / glm_vk_use_coopmat */
    bool cm2_ok, cm2_on;         /* see glm_vk_cm2_available / glm_vk_use_cm2 */
    bool idot_ok;                /* see glm_vk_idot_available */
    bool trace;                  /* GLM_VK_TRACE set: each dispatch named on stderr as recorded */
    uint32_t cm2_grouped_tile;   /* see glm_vk_cm2_set_grouped_tile */
    uint32_t cm_wide_groups;     /* see glm_vk_coopmat_set_wide_groups */
    uint32_t cm_split_max;       /* see glm_vk_coopmat_set_split */
    glm_vk_buffer split_parts[2]; /* the partial products of split plain products, used in turn */
    uint32_t split_next;
    uint32_t cm_grouped_tile, cm_ahead, cm_narrow_groups; /* see glm_vk_coopmat_set_tiling */
    uint32_t mv_stage_groups;    /* see glm_vk_matvec_set_stage_groups */
    bool mv_xc;                  /* see glm_vk_matvec_set_xc */
    uint32_t mv_ks_groups;       /* see glm_vk_matvec_set_ks_groups */
    uint32_t mv_few_groups;      /* see glm_vk_matvec_set_few_groups */
    /* GLM_VK_PIPELINE_STATS set and VK_KHR_pipeline_executable_properties there: each pipeline's
     * compiler statistics (registers, shared memory, ...) go to stderr when it is built */
    PFN_vkGetPipelineExecutableStatisticsKHR pipe_stats;
    uint32_t mla_long_keys;      /* see glm_vk_set_mla_long_keys */
    bool mla_flash;              /* see glm_vk_set_mla_flash */
    uint32_t mla_flash_split, mla_flash_min;
};

static glm_status begin_cmd(glm_vk *vk);
static glm_status submit_current(glm_vk *vk);
static void barrier(glm_vk *vk, bool last);
static glm_status wait_all(glm_vk *vk);
static void collect_profile(glm_vk *vk);

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static glm_status vkfail(VkResult r, const char *what)
{
    return glm_errorf(GLM_ERR_DEVICE, "vulkan: %s failed (VkResult %d)", what, (int)r);
}

static VKAPI_ATTR VkBool32 VKAPI_CALL on_validation(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
                                                    VkDebugUtilsMessageTypeFlagsEXT type,
                                                    const VkDebugUtilsMessengerCallbackDataEXT *data, void *user)
{
    (void)type;
    glm_vk *vk = user;
    if (sev & (VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT)) {
        vk->validation_messages++;
        fprintf(stderr, "vulkan validation: %s\n", data->pMessage);
    }
    return VK_FALSE;
}

static bool layer_available(const char *name)
{
    uint32_t n = 0;
    vkEnumerateInstanceLayerProperties(&n, NULL);
    VkLayerProperties *p = calloc(n ? n : 1, sizeof *p);
    if (!p)
        return false;
    vkEnumerateInstanceLayerProperties(&n, p);
    bool found = false;
    for (uint32_t i = 0; i < n; i++)
        found |= strcmp(p[i].layerName, name) == 0;
    free(p);
    return found;
}

static glm_status create_instance(glm_vk *vk, bool validation)
{
    VkApplicationInfo app = { .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                              .pApplicationName = "glm47",
                              .apiVersion = VK_API_VERSION_1_3 };
    const char *layers[1] = { "VK_LAYER_KHRONOS_validation" };
    const char *exts[1] = { VK_EXT_DEBUG_UTILS_EXTENSION_NAME };
    bool val = validation && layer_available(layers[0]);
    VkInstanceCreateInfo ci = { .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                                .pApplicationInfo = &app,
                                .enabledLayerCount = val ? 1 : 0,
                                .ppEnabledLayerNames = layers,
                                .enabledExtensionCount = val ? 1 : 0,
                                .ppEnabledExtensionNames = exts };
    VkResult r = vkCreateInstance(&ci, NULL, &vk->instance);
    if (r != VK_SUCCESS)
        return glm_errorf(GLM_ERR_DEVICE, "vulkan: no usable Vulkan driver (vkCreateInstance returned %d); "
                                          "install a GPU driver or mesa-vulkan-drivers",
                          (int)r);
    if (val) {
        PFN_vkCreateDebugUtilsMessengerEXT fn =
            (PFN_vkCreateDebugUtilsMessengerEXT)vkGetInstanceProcAddr(vk->instance, "vkCreateDebugUtilsMessengerEXT");
        VkDebugUtilsMessengerCreateInfoEXT mi = {
            .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
            .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
            .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
            .pfnUserCallback = on_validation,
            .pUserData = vk
        };
        if (fn)
            fn(vk->instance, &mi, NULL, &vk->messenger);
    }
    return GLM_OK;
}

static int type_rank(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 1;
    default: return 0;
    }
}

static bool compute_family(VkPhysicalDevice p, uint32_t *fam)
{
    uint32_t n = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(p, &n, NULL);
    VkQueueFamilyProperties q[32];
    if (n > 32)
        n = 32;
    vkGetPhysicalDeviceQueueFamilyProperties(p, &n, q);
    for (uint32_t i = 0; i < n; i++)
        if (q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
            *fam = i;
            return true;
        }
    return false;
}

static glm_status pick_device(glm_vk *vk, int want)
{
    uint32_t n = 0;
    vkEnumeratePhysicalDevices(vk->instance, &n, NULL);
    if (n == 0)
        return glm_errorf(GLM_ERR_DEVICE, "vulkan: no Vulkan device found");
    VkPhysicalDevice devs[16];
    if (n > 16)
        n = 16;
    vkEnumeratePhysicalDevices(vk->instance, &n, devs);
    if (want >= 0) {
        if ((uint32_t)want >= n)
            return glm_errorf(GLM_ERR_INVALID, "vulkan: --device %d out of range (%u devices)", want, n);
        if (!compute_family(devs[want], &vk->queue_family))
            return glm_errorf(GLM_ERR_DEVICE, "vulkan: device %d has no compute queue", want);
        vk->phys = devs[want];
        return GLM_OK;
    }
    int best = -1, best_rank = -1;
    for (uint32_t i = 0; i < n; i++) {
        VkPhysicalDeviceProperties pr;
        uint32_t fam;
        vkGetPhysicalDeviceProperties(devs[i], &pr);
        if (compute_family(devs[i], &fam) && type_rank(pr.deviceType) > best_rank) {
            best = (int)i;
            best_rank = type_rank(pr.deviceType);
        }
    }
    if (best < 0)
        return glm_errorf(GLM_ERR_DEVICE, "vulkan: no device with a compute queue");
    vk->phys = devs[best];
    compute_family(vk->phys, &vk->queue_family);
    return GLM_OK;
}

/* The slot of kernel k's variant (its own, or the free one where it would go; NULL when the
 * table is full). */
static VkPipeline *pipe_slot(glm_vk *vk, glm_vk_kernel k, uint32_t variant)
{
    uint32_t key = 1u + (uint32_t)k * GLM_VK_MAX_VARIANTS + variant;
    for (uint32_t n = 0, i = (key * 2654435761u) >> 22; n < GLM_VK_PIPE_SLOTS; n++, i = (i + 1) % GLM_VK_PIPE_SLOTS)
        if (vk->pipes[i].key == key || vk->pipes[i].key == 0) {
            vk->pipes[i].key = key;
            return &vk->pipes[i].p;
        }
    return NULL;
}

/* One line on stderr with the compiler's statistics of a pipeline just built (the first
 * executable's: a compute pipeline has one). */
static void print_pipeline_stats(glm_vk *vk, glm_vk_kernel k, uint32_t variant)
{
    VkPipelineExecutableInfoKHR ei = { .sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR,
                                       .pipeline = *pipe_slot(vk, k, variant),
                                       .executableIndex = 0 };
    VkPipelineExecutableStatisticKHR st[16];
    uint32_t n = 16;
    for (uint32_t i = 0; i < n; i++)
        st[i] = (VkPipelineExecutableStatisticKHR){ .sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR };
    VkResult r = vk->pipe_stats(vk->dev, &ei, &n, st);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE)
        return;
    fprintf(stderr, "vulkan pipeline %s/%u:", k_kernels[k].name, variant);
    for (uint32_t i = 0; i < n; i++) {
        fprintf(stderr, " %s ", st[i].name);
        switch (st[i].format) {
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR: fprintf(stderr, "%u", (unsigned)st[i].value.b32); break;
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR: fprintf(stderr, "%lld", (long long)st[i].value.i64); break;
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR:
            fprintf(stderr, "%llu", (unsigned long long)st[i].value.u64);
            break;
        default: fprintf(stderr, "%g", st[i].value.f64); break;
        }
        fprintf(stderr, i + 1 < n ? ";" : "\n");
    }
    if (!n)
        fprintf(stderr, " no statistics\n");
}

/* The pipeline of kernel k for one specialization value, built on first use and kept. */
static glm_status pipeline_variant(glm_vk *vk, glm_vk_kernel k, uint32_t variant)
{
    if (variant >= GLM_VK_MAX_VARIANTS)
        return glm_errorf(GLM_ERR_INVALID, "vulkan: %s variant %u out of range", k_kernels[k].name, variant);
    VkPipeline *slot = pipe_slot(vk, k, variant);
    if (!slot)
        return glm_errorf(GLM_ERR_UNSUPPORTED, "vulkan: more than %d pipelines", GLM_VK_PIPE_SLOTS);
    if (*slot)
        return GLM_OK;
    if ((k_kernels[k].coopmat && !vk->coopmat_ok) || (k_kernels[k].cm2 && !vk->cm2_ok))
        return glm_errorf(GLM_ERR_UNSUPPORTED, "vulkan: %s needs cooperative matrices, which %s lacks", k_kernels[k].name,
                          vk->props.deviceName);
    if (k_kernels[k].idot && !vk->idot_ok)
        return glm_errorf(GLM_ERR_UNSUPPORTED, "vulkan: %s needs the integer dot product, which %s lacks",
                          k_kernels[k].name, vk->props.deviceName);
    uint32_t vals[2] = { variant % 64, variant / 64 };
    VkSpecializationMapEntry me[2] = { { .constantID = 0, .offset = 0, .size = sizeof(uint32_t) },
                                       { .constantID = 1, .offset = sizeof(uint32_t), .size = sizeof(uint32_t) } };
    VkSpecializationInfo spec = { .mapEntryCount = 2, .pMapEntries = me, .dataSize = sizeof vals, .pData = vals };
    VkComputePipelineCreateInfo ci = { .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
                                       .stage = { .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                                                  .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                                                  .module = vk->module[k],
                                                  .pName = "main",
                                                  .pSpecializationInfo = k_kernels[k].specialized ? &spec : NULL },
                                       .layout = vk->pipe_layout[k] };
    if (vk->pipe_stats)
        ci.flags |= VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR;
    VkResult r = vkCreateComputePipelines(vk->dev, VK_NULL_HANDLE, 1, &ci, NULL, slot);
    if (r != VK_SUCCESS)
        return glm_errorf(GLM_ERR_DEVICE, "vulkan: building pipeline %s/%u failed (VkResult %d)", k_kernels[k].name,
                          variant, (int)r);
    if (vk->pipe_stats)
        print_pipeline_stats(vk, k, variant);
    return GLM_OK;
}

static glm_status create_pipelines(glm_vk *vk)
{
    for (int k = 0; k < GLM_VK_KERNEL_COUNT; k++) {
        const kernel_desc *d = &k_kernels[k];
        if ((d->coopmat && !vk->coopmat_ok) || (d->cm2 && !vk->cm2_ok) || (d->idot && !vk->idot_ok))
            continue;
        VkDescriptorSetLayoutBinding b[GLM_VK_MAX_BINDINGS];
        for (uint32_t i = 0; i < d->bindings; i++)
            b[i] = (VkDescriptorSetLayoutBinding){ .binding = i,
                                                   .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                                   .descriptorCount = 1,
                                                   .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT };
        VkDescriptorSetLayoutCreateInfo li = { .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                               .flags = vk->push_set ? VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR : 0,
                                               .bindingCount = d->bindings,
                                               .pBindings = b };
        VkResult r = vkCreateDescriptorSetLayout(vk->dev, &li, NULL, &vk->set_layout[k]);
        if (r != VK_SUCCESS)
            return vkfail(r, "vkCreateDescriptorSetLayout");
        VkPushConstantRange pc = { .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .size = d->push_size };
        VkPipelineLayoutCreateInfo pli = { .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                           .setLayoutCount = 1,
                                           .pSetLayouts = &vk->set_layout[k],
                                           .pushConstantRangeCount = d->push_size ? 1 : 0,
                                           .pPushConstantRanges = &pc };
        if ((r = vkCreatePipelineLayout(vk->dev, &pli, NULL, &vk->pipe_layout[k])) != VK_SUCCESS)
            return vkfail(r, "vkCreatePipelineLayout");
        VkShaderModuleCreateInfo si = { .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                        .codeSize = d->spv_bytes,
                                        .pCode = d->spv };
        if ((r = vkCreateShaderModule(vk->dev, &si, NULL, &vk->module[k])) != VK_SUCCESS)
            return vkfail(r, d->name);
        if (!d->specialized)
            GLM_TRY(pipeline_variant(vk, (glm_vk_kernel)k, 0));
    }
    return GLM_OK;
}

static bool device_extension(VkPhysicalDevice phys, const char *name)
{
    uint32_t n = 0;
    vkEnumerateDeviceExtensionProperties(phys, NULL, &n, NULL);
    VkExtensionProperties *e = calloc(n ? n : 1, sizeof *e);
    if (!e)
        return false;
    vkEnumerateDeviceExtensionProperties(phys, NULL, &n, e);
    bool found = false;
    for (uint32_t i = 0; i < n; i++)
        found |= strcmp(e[i].extensionName, name) == 0;
    free(e);
    return found;
}

/* Can GLM_VK_MATMUL_CM run here? Its SPIR-V must have been built (a stub word otherwise), the
 * device must offer the extension, float16 arithmetic, subgroups of 32, 48 KiB of shared
 * memory (the kernel's 128-token tiles use all of it) and the fragment shape 16×16×16
 * f16·f16+f32 at subgroup scope. */
static bool coopmat_usable(glm_vk *vk)
{
    if (sizeof spv_matmul_cm < 20 || spv_matmul_cm[0] != 0x07230203u || vk->props.apiVersion < VK_API_VERSION_1_2 ||
        !device_extension(vk->phys, GLM_VK_KHR_COOPMAT_NAME))
        return false;
    VkPhysicalDeviceSubgroupProperties sg = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES };
    VkPhysicalDeviceProperties2 p2 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &sg };
    vkGetPhysicalDeviceProperties2(vk->phys, &p2);
    glm_vk_coopmat_features cf = { .sType = GLM_VK_STYPE_COOPMAT_FEATURES };
    VkPhysicalDeviceVulkan12Features f12 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES, .pNext = &cf };
    VkPhysicalDeviceFeatures2 f2 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f12 };
    vkGetPhysicalDeviceFeatures2(vk->phys, &f2);
    if (sg.subgroupSize != 32 || !(sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) || !f12.shaderFloat16 ||
        !cf.cooperativeMatrix || vk->props.limits.maxComputeSharedMemorySize < 48 * 1024)
        return false;
    glm_vk_coopmat_query_fn query =
        (glm_vk_coopmat_query_fn)vkGetInstanceProcAddr(vk->instance, "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR");
    uint32_t n = 0;
    if (!query || query(vk->phys, &n, NULL) != VK_SUCCESS || n == 0)
        return false;
    glm_vk_coopmat_props *cp = calloc(n, sizeof *cp);
    if (!cp)
        return false;
    for (uint32_t i = 0; i < n; i++)
        cp[i].sType = GLM_VK_STYPE_COOPMAT_PROPERTIES;
    bool found = false;
    if (query(vk->phys, &n, cp) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++)
            found |= cp[i].MSize == 16 && cp[i].NSize == 16 && cp[i].KSize == 16 && cp[i].AType == GLM_VK_COMPONENT_F16 &&
                     cp[i].BType == GLM_VK_COMPONENT_F16 && cp[i].CType == GLM_VK_COMPONENT_F32 &&
                     cp[i].ResultType == GLM_VK_COMPONENT_F32 && cp[i].scope == GLM_VK_SCOPE_SUBGROUP;
    free(cp);
    return found;
}

/* Can GLM_VK_MATMUL_CM2 run here? On top of coopmat_usable: its SPIR-V built (SPIR-V 1.6,
 * so a Vulkan 1.3 device), VK_NV_cooperative_matrix2 with workgroup scope, flexible
 * dimensions, tensor addressing, block loads and per-element operations, the storage and
 * arithmetic types its decoders use (8- and 16-bit storage, int8), buffer device addresses
 * (the decoders' block pointers), and a flexible shape f16·f16+f32 at workgroup scope for 256
 * invocations whose granularity divides the kernel's tiles (32/64/128 × 32 × 128). */
static bool cm2_usable(glm_vk *vk, bool verbose)
{
    if (!vk->coopmat_ok || sizeof spv_matmul_cm2 < 20 || spv_matmul_cm2[0] != 0x07230203u ||
        vk->props.apiVersion < VK_API_VERSION_1_3 || !device_extension(vk->phys, GLM_VK_NV_CM2_NAME))
        return false;
    glm_vk_cm2_features c2 = { .sType = GLM_VK_STYPE_CM2_FEATURES };
    VkPhysicalDeviceVulkan11Features f11 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES, .pNext = &c2 };
    VkPhysicalDeviceVulkan12Features f12 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES, .pNext = &f11 };
    VkPhysicalDeviceFeatures2 f2 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f12 };
    vkGetPhysicalDeviceFeatures2(vk->phys, &f2);
    if (!c2.workgroupScope || !c2.flexibleDimensions || !c2.tensorAddressing || !c2.blockLoads ||
        !c2.perElementOperations || !f12.bufferDeviceAddress || !f12.storageBuffer8BitAccess || !f12.shaderInt8 ||
        !f12.shaderFloat16 || !f11.storageBuffer16BitAccess)
        return false;
    glm_vk_cm2_query_fn query = (glm_vk_cm2_query_fn)vkGetInstanceProcAddr(
        vk->instance, "vkGetPhysicalDeviceCooperativeMatrixFlexibleDimensionsPropertiesNV");
    uint32_t n = 0;
    if (!query || query(vk->phys, &n, NULL) != VK_SUCCESS || n == 0)
        return false;
    glm_vk_cm2_flex *fp = calloc(n, sizeof *fp);
    if (!fp)
        return false;
    for (uint32_t i = 0; i < n; i++)
        fp[i].sType = GLM_VK_STYPE_CM2_FLEX_PROPERTIES;
    bool found = false;
    if (query(vk->phys, &n, fp) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++) {
            const glm_vk_cm2_flex *f = &fp[i];
            if (verbose)
                fprintf(stderr, "vulkan cm2 flexible shape %u: granularity %ux%ux%u types %u,%u,%u,%u scope %u invocations %u\n",
                        i, f->MGranularity, f->NGranularity, f->KGranularity, f->AType, f->BType, f->CType,
                        f->ResultType, f->scope, f->workgroupInvocations);
            found |= f->AType == GLM_VK_COMPONENT_F16 && f->BType == GLM_VK_COMPONENT_F16 &&
                     f->CType == GLM_VK_COMPONENT_F32 && f->ResultType == GLM_VK_COMPONENT_F32 &&
                     f->scope == GLM_VK_SCOPE_WORKGROUP && f->workgroupInvocations == 256 && f->MGranularity &&
                     f->NGranularity && f->KGranularity && 32 % f->MGranularity == 0 && 128 % f->NGranularity == 0 &&
                     32 % f->KGranularity == 0;
        }
    free(fp);
    return found;
}

static glm_status create_device(glm_vk *vk, bool allow_push)
{
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qi = { .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                   .queueFamilyIndex = vk->queue_family,
                                   .queueCount = 1,
                                   .pQueuePriorities = &prio };
    const char *ext[4];
    uint32_t n_ext = 0;
    bool push = allow_push && device_extension(vk->phys, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME);
    vk->coopmat_ok = coopmat_usable(vk);
    const char *want_stats = getenv("GLM_VK_PIPELINE_STATS");
    bool verbose = want_stats && *want_stats && strcmp(want_stats, "0") != 0;
    bool stats = verbose && device_extension(vk->phys, VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME);
    vk->cm2_ok = cm2_usable(vk, verbose);
    if (push)
        ext[n_ext++] = VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME;
    if (vk->coopmat_ok)
        ext[n_ext++] = GLM_VK_KHR_COOPMAT_NAME;
    if (vk->cm2_ok)
        ext[n_ext++] = GLM_VK_NV_CM2_NAME;
    if (stats)
        ext[n_ext++] = VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME;
    glm_vk_cm2_features c2 = { .sType = GLM_VK_STYPE_CM2_FEATURES,
                               .workgroupScope = VK_TRUE,
                               .flexibleDimensions = VK_TRUE,
                               .perElementOperations = VK_TRUE,
                               .tensorAddressing = VK_TRUE,
                               .blockLoads = VK_TRUE };
    VkPhysicalDeviceVulkan11Features f11 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
                                             .pNext = &c2,
                                             .storageBuffer16BitAccess = VK_TRUE };
    glm_vk_coopmat_features cf = { .sType = GLM_VK_STYPE_COOPMAT_FEATURES,
                                   .pNext = vk->cm2_ok ? &f11 : NULL,
                                   .cooperativeMatrix = VK_TRUE };
    VkPhysicalDeviceVulkan12Features f12 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
                                             .pNext = &cf,
                                             .shaderFloat16 = VK_TRUE,
                                             .storageBuffer8BitAccess = vk->cm2_ok,
                                             .shaderInt8 = vk->cm2_ok,
                                             .bufferDeviceAddress = vk->cm2_ok };
    VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR pf = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR,
        .pNext = vk->coopmat_ok ? &f12 : NULL,
        .pipelineExecutableInfo = VK_TRUE
    };
    /* the integer dot product (GLM_VK_MATVEC_Q8): a Vulkan 1.3 feature */
    VkPhysicalDeviceVulkan13Features q13 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES };
    if (vk->props.apiVersion >= VK_API_VERSION_1_3) {
        VkPhysicalDeviceFeatures2 q2 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &q13 };
        vkGetPhysicalDeviceFeatures2(vk->phys, &q2);
    }
    const char *no_idot = getenv("GLM_VK_NO_IDOT");
    vk->idot_ok = q13.shaderIntegerDotProduct && !(no_idot && *no_idot && strcmp(no_idot, "0") != 0);
    VkPhysicalDeviceVulkan13Features f13 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES,
                                             .pNext = stats ? (void *)&pf : vk->coopmat_ok ? (void *)&f12 : NULL,
                                             .shaderIntegerDotProduct = VK_TRUE };
    VkDeviceCreateInfo di = { .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                              .pNext = vk->idot_ok ? (void *)&f13 : f13.pNext,
                              .queueCreateInfoCount = 1,
                              .pQueueCreateInfos = &qi,
                              .enabledExtensionCount = n_ext,
                              .ppEnabledExtensionNames = ext };
    const char *off = getenv("GLM_VK_NO_COOPMAT");
    vk->coopmat_on = vk->coopmat_ok && !(off && *off && strcmp(off, "0") != 0);
    const char *tr = getenv("GLM_VK_TRACE");
    vk->trace = tr && *tr && strcmp(tr, "0") != 0;
    const char *on2 = getenv("GLM_VK_CM2");
    vk->cm2_on = vk->cm2_ok && on2 && *on2 && strcmp(on2, "0") != 0;
    const char *gt2 = getenv("GLM_VK_CM2_GROUPED_TILE");
    glm_vk_cm2_set_grouped_tile(vk, gt2 && *gt2 ? (uint32_t)strtoul(gt2, NULL, 10) : GLM_VK_CM2_GROUPED_TILE);
    vk->cm_wide_groups = 256;
    const char *sp = getenv("GLM_VK_CM_SPLIT");
    vk->cm_split_max = sp && *sp ? (uint32_t)strtoul(sp, NULL, 10) : GLM_VK_CM_SPLIT;
    const char *fc = getenv("GLM_VK_FIRST_CHUNK"); /* a measurement switch: 1 .. GLM_VK_CHUNK */
    unsigned long fcv = fc && *fc ? strtoul(fc, NULL, 10) : GLM_VK_FIRST_CHUNK;
    vk->first_chunk = fcv >= 1 && fcv <= GLM_VK_CHUNK ? (uint32_t)fcv : GLM_VK_FIRST_CHUNK;
    const char *gt = getenv("GLM_VK_CM_GROUPED_TILE"), *ah = getenv("GLM_VK_CM_AHEAD");
    const char *ng = getenv("GLM_VK_CM_NARROW_GROUPS");
    glm_vk_coopmat_set_tiling(vk, gt && *gt ? (uint32_t)strtoul(gt, NULL, 10) : 64,
                              ah && *ah ? (uint32_t)strtoul(ah, NULL, 10) : GLM_VK_CM_AHEAD, ng && *ng ? (uint32_t)strtoul(ng, NULL, 10) : 0);
    const char *stage = getenv("GLM_VK_MATVEC_STAGE");
    vk->mv_stage_groups = stage && *stage ? (uint32_t)strtoul(stage, NULL, 10) : GLM_VK_MATVEC_FAST_STAGE_WG;
    const char *xc = getenv("GLM_VK_MATVEC_XC");
    vk->mv_xc = xc && *xc ? strtoul(xc, NULL, 10) != 0 : GLM_VK_MATVEC_XC;
    const char *ks = getenv("GLM_VK_MATVEC_KS");
    vk->mv_ks_groups = ks && *ks ? (uint32_t)strtoul(ks, NULL, 10) : GLM_VK_MATVEC_KS_WG;
    const char *few = getenv("GLM_VK_MATVEC_FEW");
    vk->mv_few_groups = few && *few ? (uint32_t)strtoul(few, NULL, 10) : GLM_VK_MATVEC_FAST_FEW;
    const char *mla_long = getenv("GLM_VK_MLA_LONG");
    vk->mla_long_keys = mla_long && *mla_long ? (uint32_t)strtoul(mla_long, NULL, 10) : GLM_VK_MLA_LONG_KEYS;
    const char *flash = getenv("GLM_VK_MLA_FLASH"), *fmin = getenv("GLM_VK_MLA_FLASH_MIN");
    uint32_t fl = flash && *flash ? (uint32_t)strtoul(flash, NULL, 10) : 1;
    glm_vk_set_mla_flash(vk, fl != 0, fl > 1 ? fl : 0);
    vk->mla_flash_min = fmin && *fmin ? (uint32_t)strtoul(fmin, NULL, 10) : GLM_VK_MLA_FLASH_MIN;
    if (vk->mla_flash && !(mla_long && *mla_long))
        vk->mla_long_keys = 0; /* mla_flash takes the long decode rows too */
    VkResult r = vkCreateDevice(vk->phys, &di, NULL, &vk->dev);
    if (r != VK_SUCCESS)
        return vkfail(r, "vkCreateDevice");
    if (push)
        vk->push_set = (PFN_vkCmdPushDescriptorSetKHR)vkGetDeviceProcAddr(vk->dev, "vkCmdPushDescriptorSetKHR");
    if (stats)
        vk->pipe_stats =
            (PFN_vkGetPipelineExecutableStatisticsKHR)vkGetDeviceProcAddr(vk->dev, "vkGetPipelineExecutableStatisticsKHR");
    vkGetDeviceQueue(vk->dev, vk->queue_family, 0, &vk->queue);
    VkCommandPoolCreateInfo pi = { .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                   .queueFamilyIndex = vk->queue_family };
    if ((r = vkCreateCommandPool(vk->dev, &pi, NULL, &vk->cmd_pool)) != VK_SUCCESS)
        return vkfail(r, "vkCreateCommandPool");
    VkCommandBufferAllocateInfo ai = { .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                       .commandPool = vk->cmd_pool,
                                       .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                       .commandBufferCount = GLM_VK_RING };
    if ((r = vkAllocateCommandBuffers(vk->dev, &ai, vk->ring)) != VK_SUCCESS)
        return vkfail(r, "vkAllocateCommandBuffers");
    vk->cmd = vk->ring[0];
    VkFenceCreateInfo fi = { .sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO };
    for (int i = 0; i < GLM_VK_RING; i++)
        if ((r = vkCreateFence(vk->dev, &fi, NULL, &vk->fences[i])) != VK_SUCCESS)
            return vkfail(r, "vkCreateFence");
    VkDescriptorPoolSize ps = { VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, GLM_VK_MAX_SETS * GLM_VK_MAX_BINDINGS };
    VkDescriptorPoolCreateInfo dpi = { .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                       .maxSets = GLM_VK_MAX_SETS,
                                       .poolSizeCount = 1,
                                       .pPoolSizes = &ps };
    if ((r = vkCreateDescriptorPool(vk->dev, &dpi, NULL, &vk->desc_pool)) != VK_SUCCESS)
        return vkfail(r, "vkCreateDescriptorPool");
    GLM_TRY(create_pipelines(vk));
    /* the driver may still refuse the workgroup-scope kernel (its staging's shared memory, a
     * shape): build one variant now, and keep matmul_cm where that fails */
    if (vk->cm2_on && pipeline_variant(vk, GLM_VK_MATMUL_CM2, GLM_TYPE_Q4_K) != GLM_OK) {
        if (verbose)
            fprintf(stderr, "vulkan: matmul_cm2 not built (%s); matmul_cm stays\n", glm_last_error());
        vk->cm2_ok = vk->cm2_on = false;
    }
    return GLM_OK;
}

glm_status glm_vk_create(glm_vk **out, const glm_vk_options *opt)
{
    *out = NULL;
    glm_vk *vk = calloc(1, sizeof *vk);
    if (!vk)
        return glm_errorf(GLM_ERR_NOMEM, "vulkan: out of memory");
    glm_status s = create_instance(vk, opt && opt->validation);
    if (s == GLM_OK)
        s = pick_device(vk, opt ? opt->device_index : -1);
    if (s == GLM_OK) {
        vkGetPhysicalDeviceProperties(vk->phys, &vk->props);
        vkGetPhysicalDeviceMemoryProperties(vk->phys, &vk->memprops);
        VkPhysicalDeviceSubgroupProperties sg = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES };
        VkPhysicalDeviceProperties2 p2 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &sg };
        vkGetPhysicalDeviceProperties2(vk->phys, &p2);
        vk->subgroup_size = sg.subgroupSize ? sg.subgroupSize : 1;
        uint32_t t = opt ? opt->matvec_tpr : 0;
        vk->matvec_tpr = t == 8 || t == 16 || t == 32 || t == 64 ? t : 0;
        s = create_device(vk, !(opt && opt->no_push_descriptors));
    }
    if (s != GLM_OK) {
        glm_vk_destroy(vk);
        return s;
    }
    *out = vk;
    return GLM_OK;
}

void glm_vk_destroy(glm_vk *vk)
{
    if (!vk)
        return;
    if (vk->dev) {
        vkDeviceWaitIdle(vk->dev);
        for (int i = 0; i < 2; i++)
            glm_vk_buffer_destroy(vk, &vk->split_parts[i]);
        for (int i = 0; i < GLM_VK_PIPE_SLOTS; i++)
            if (vk->pipes[i].p)
                vkDestroyPipeline(vk->dev, vk->pipes[i].p, NULL);
        for (int k = 0; k < GLM_VK_KERNEL_COUNT; k++) {
            if (vk->module[k])
                vkDestroyShaderModule(vk->dev, vk->module[k], NULL);
            if (vk->pipe_layout[k])
                vkDestroyPipelineLayout(vk->dev, vk->pipe_layout[k], NULL);
            if (vk->set_layout[k])
                vkDestroyDescriptorSetLayout(vk->dev, vk->set_layout[k], NULL);
        }
        glm_vk_buffer_destroy(vk, &vk->stage);
        if (vk->desc_pool)
            vkDestroyDescriptorPool(vk->dev, vk->desc_pool, NULL);
        if (vk->queries)
            vkDestroyQueryPool(vk->dev, vk->queries, NULL);
        for (int i = 0; i < GLM_VK_RING; i++)
            if (vk->fences[i])
                vkDestroyFence(vk->dev, vk->fences[i], NULL);
        if (vk->cmd_pool)
            vkDestroyCommandPool(vk->dev, vk->cmd_pool, NULL);
        vkDestroyDevice(vk->dev, NULL);
    }
    if (vk->messenger) {
        PFN_vkDestroyDebugUtilsMessengerEXT fn =
            (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(vk->instance, "vkDestroyDebugUtilsMessengerEXT");
        if (fn)
            fn(vk->instance, vk->messenger, NULL);
    }
    if (vk->instance)
        vkDestroyInstance(vk->instance, NULL);
    free(vk);
}

const char *glm_vk_device_name(const glm_vk *vk) { return vk->props.deviceName; }
bool glm_vk_coopmat_available(const glm_vk *vk) { return vk->coopmat_ok; }
bool glm_vk_coopmat_enabled(const glm_vk *vk) { return vk->coopmat_on; }
bool glm_vk_cm2_available(const glm_vk *vk) { return vk->cm2_ok; }
bool glm_vk_idot_available(const glm_vk *vk) { return vk->idot_ok; }
bool glm_vk_cm2_enabled(const glm_vk *vk) { return vk->coopmat_on && vk->cm2_on; }
bool glm_vk_use_cm2(glm_vk *vk, bool on)
{
    vk->cm2_on = on && vk->cm2_ok;
    return vk->cm2_on;
}
void glm_vk_cm2_set_grouped_tile(glm_vk *vk, uint32_t rows)
{
    vk->cm2_grouped_tile = rows == 32 || rows == 128 ? rows : 64;
}
uint32_t glm_vk_cm2_grouped_tile(const glm_vk *vk) { return vk->cm2_grouped_tile; }
void glm_vk_coopmat_set_split(glm_vk *vk, uint32_t max_splits) { vk->cm_split_max = max_splits; }
uint32_t glm_vk_coopmat_split(const glm_vk *vk) { return vk->cm_split_max; }
glm_status glm_vk_split_parts(glm_vk *vk, uint64_t bytes, const glm_vk_buffer **buf)
{
    if (bytes > GLM_VK_SPLIT_BYTES)
        return glm_errorf(GLM_ERR_INVALID, "vulkan: %llu bytes of partial products exceed the %u-byte scratch",
                          (unsigned long long)bytes, GLM_VK_SPLIT_BYTES);
    glm_vk_buffer *b = &vk->split_parts[vk->split_next];
    if (!b->buf)
        GLM_TRY(glm_vk_buffer_create(vk, b, GLM_VK_SPLIT_BYTES, false));
    vk->split_next ^= 1u;
    *buf = b;
    return GLM_OK;
}
void glm_vk_coopmat_set_wide_groups(glm_vk *vk, uint32_t groups) { vk->cm_wide_groups = groups; }
uint32_t glm_vk_coopmat_wide_groups(const glm_vk *vk) { return vk->cm_wide_groups; }
void glm_vk_coopmat_set_tiling(glm_vk *vk, uint32_t grouped_tile, uint32_t ahead, uint32_t narrow_groups)
{
    vk->cm_grouped_tile = grouped_tile == 32 ? 32 : 64;
    vk->cm_ahead = ahead <= 1 ? ahead : 2;
    vk->cm_narrow_groups = narrow_groups;
}
uint32_t glm_vk_coopmat_grouped_tile(const glm_vk *vk) { return vk->cm_grouped_tile; }
uint32_t glm_vk_coopmat_ahead(const glm_vk *vk) { return vk->cm_ahead; }
uint32_t glm_vk_coopmat_narrow_groups(const glm_vk *vk) { return vk->cm_narrow_groups; }
void glm_vk_matvec_set_stage_groups(glm_vk *vk, uint32_t groups) { vk->mv_stage_groups = groups; }
uint32_t glm_vk_matvec_stage_groups(const glm_vk *vk) { return vk->mv_stage_groups; }
void glm_vk_matvec_set_xc(glm_vk *vk, bool on) { vk->mv_xc = on; }
bool glm_vk_matvec_xc(const glm_vk *vk) { return vk->mv_xc; }
void glm_vk_matvec_set_ks_groups(glm_vk *vk, uint32_t groups) { vk->mv_ks_groups = groups; }
uint32_t glm_vk_matvec_ks_groups(const glm_vk *vk) { return vk->mv_ks_groups; }
void glm_vk_matvec_set_few_groups(glm_vk *vk, uint32_t groups) { vk->mv_few_groups = groups; }
uint32_t glm_vk_matvec_few_groups(const glm_vk *vk) { return vk->mv_few_groups; }
void glm_vk_set_mla_long_keys(glm_vk *vk, uint32_t keys) { vk->mla_long_keys = keys; }
uint32_t glm_vk_mla_long_keys(const glm_vk *vk) { return vk->mla_long_keys; }
bool glm_vk_set_mla_flash(glm_vk *vk, bool on, uint32_t max_split)
{
    vk->mla_flash = on && vk->subgroup_size >= 8;
    vk->mla_flash_split = max_split ? (max_split < 256 ? max_split : 256) : GLM_VK_MLA_FLASH_SPLIT;
    return vk->mla_flash;
}
bool glm_vk_mla_flash(const glm_vk *vk) { return vk->mla_flash; }
uint32_t glm_vk_mla_flash_split(const glm_vk *vk) { return vk->mla_flash_split; }
uint32_t glm_vk_mla_flash_min(const glm_vk *vk) { return vk->mla_flash_min; }
uint32_t glm_vk_mla_flash_lanes(const glm_vk *vk)
{
    const char *e = getenv("GLM_VK_MLA_FLASH_LANES");
    uint32_t most = e && (atoi(e) == 8 || atoi(e) == 16) ? (uint32_t)atoi(e) : 32;
    while (most > 8 && most > vk->subgroup_size)
        most /= 2;
    return most;
}
uint32_t glm_vk_mla_flash_pass(const glm_vk *vk)
{
    const char *e = getenv("GLM_VK_MLA_FLASH_PASS");
    if (e && atoi(e) == 16 && vk->props.limits.maxComputeSharedMemorySize >= GLM_VK_MLA_FLASH_SHARED16)
        return 16;
    return 8;
}
bool glm_vk_use_coopmat(glm_vk *vk, bool on)
{
    vk->coopmat_on = on && vk->coopmat_ok;
    return vk->coopmat_on;
}
bool glm_vk_device_is_cpu(const glm_vk *vk) { return vk->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU; }
uint64_t glm_vk_max_buffer(const glm_vk *vk) { return vk->props.limits.maxStorageBufferRange; }
uint32_t glm_vk_subgroup_size(const glm_vk *vk) { return vk->subgroup_size; }
uint32_t glm_vk_matvec_tpr_forced(const glm_vk *vk) { return vk->matvec_tpr; }
VkPhysicalDevice glm_vk_physical_device(const glm_vk *vk) { return vk->phys; }
uint32_t glm_vk_validation_messages(const glm_vk *vk) { return vk->validation_messages; }
bool glm_vk_validation_enabled(const glm_vk *vk) { return vk->messenger != VK_NULL_HANDLE; }

bool glm_vk_gpu_present(void)
{
    glm_vk tmp = { 0 };
    if (create_instance(&tmp, false) != GLM_OK) {
        glm_error_clear();
        return false;
    }
    uint32_t n = 0;
    VkPhysicalDevice devs[16];
    vkEnumeratePhysicalDevices(tmp.instance, &n, NULL);
    if (n > 16)
        n = 16;
    vkEnumeratePhysicalDevices(tmp.instance, &n, devs);
    bool gpu = false;
    for (uint32_t i = 0; i < n; i++) {
        VkPhysicalDeviceProperties pr;
        uint32_t fam;
        vkGetPhysicalDeviceProperties(devs[i], &pr);
        gpu |= pr.deviceType != VK_PHYSICAL_DEVICE_TYPE_CPU && compute_family(devs[i], &fam);
    }
    vkDestroyInstance(tmp.instance, NULL);
    return gpu;
}

glm_status glm_vk_list_devices(int *count, bool print)
{
    glm_vk tmp = { 0 };
    GLM_TRY(create_instance(&tmp, false));
    uint32_t n = 0;
    vkEnumeratePhysicalDevices(tmp.instance, &n, NULL);
    VkPhysicalDevice devs[16];
    if (n > 16)
        n = 16;
    vkEnumeratePhysicalDevices(tmp.instance, &n, devs);
    for (uint32_t i = 0; i < n && print; i++) {
        VkPhysicalDeviceProperties pr;
        vkGetPhysicalDeviceProperties(devs[i], &pr);
        printf("%u: %s (type %d, Vulkan %u.%u)\n", i, pr.deviceName, (int)pr.deviceType, VK_API_VERSION_MAJOR(pr.apiVersion),
               VK_API_VERSION_MINOR(pr.apiVersion));
    }
    vkDestroyInstance(tmp.instance, NULL);
    *count = (int)n;
    return GLM_OK;
}

static int find_memory(const glm_vk *vk, uint32_t bits, VkMemoryPropertyFlags want)
{
    for (uint32_t i = 0; i < vk->memprops.memoryTypeCount; i++)
        if ((bits & (1u << i)) && (vk->memprops.memoryTypes[i].propertyFlags & want) == want)
            return (int)i;
    return -1;
}

/* A buffer in the first memory type that has every flag of want[0], else of want[1], ...
 * (the next is tried also when allocating in one fails). */
static glm_status buffer_create(glm_vk *vk, glm_vk_buffer *b, VkDeviceSize size, const VkMemoryPropertyFlags *want,
                                uint32_t n_want)
{
    memset(b, 0, sizeof *b);
    if (size == 0)
        size = 4;
    if (size > vk->props.limits.maxStorageBufferRange)
        return glm_errorf(GLM_ERR_UNSUPPORTED, "vulkan: buffer of %llu bytes exceeds the device's maxStorageBufferRange (%u)",
                          (unsigned long long)size, vk->props.limits.maxStorageBufferRange);
    VkBufferCreateInfo bi = { .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                              .size = size,
                              .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                       VK_BUFFER_USAGE_TRANSFER_DST_BIT |
                                       (vk->cm2_ok ? VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT : 0),
                              .sharingMode = VK_SHARING_MODE_EXCLUSIVE };
    VkResult r = vkCreateBuffer(vk->dev, &bi, NULL, &b->buf);
    if (r != VK_SUCCESS)
        return vkfail(r, "vkCreateBuffer");
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(vk->dev, b->buf, &req);
    int mt = -1;
    bool found = false;
    r = VK_ERROR_OUT_OF_DEVICE_MEMORY;
    for (uint32_t i = 0; i < n_want && r != VK_SUCCESS; i++) {
        if ((mt = find_memory(vk, req.memoryTypeBits, want[i])) < 0)
            continue;
        found = true;
        /* matmul_cm2's decoders reach buffers through device addresses */
        VkMemoryAllocateFlagsInfo af = { .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_FLAGS_INFO,
                                         .flags = VK_MEMORY_ALLOCATE_DEVICE_ADDRESS_BIT };
        VkMemoryAllocateInfo ai = { .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                                    .pNext = vk->cm2_ok ? &af : NULL,
                                    .allocationSize = req.size,
                                    .memoryTypeIndex = (uint32_t)mt };
        r = vkAllocateMemory(vk->dev, &ai, NULL, &b->mem);
    }
    if (r != VK_SUCCESS) {
        vkDestroyBuffer(vk->dev, b->buf, NULL);
        b->buf = VK_NULL_HANDLE;
        if (!found)
            return glm_errorf(GLM_ERR_DEVICE, "vulkan: no suitable memory type for a %llu-byte buffer",
                              (unsigned long long)size);
        return glm_errorf(GLM_ERR_NOMEM, "vulkan: cannot allocate %llu bytes of device memory (VkResult %d)",
                          (unsigned long long)req.size, (int)r);
    }
    vkBindBufferMemory(vk->dev, b->buf, b->mem, 0);
    if (vk->memprops.memoryTypes[mt].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT)
        vkMapMemory(vk->dev, b->mem, 0, VK_WHOLE_SIZE, 0, &b->map);
    b->size = size;
    return GLM_OK;
}

#define HOST_MEM (VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT)

glm_status glm_vk_buffer_create(glm_vk *vk, glm_vk_buffer *b, VkDeviceSize size, bool host_visible)
{
    VkMemoryPropertyFlags want = host_visible ? HOST_MEM : VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
    return buffer_create(vk, b, size, &want, 1);
}

glm_status glm_vk_buffer_create_upload(glm_vk *vk, glm_vk_buffer *b, VkDeviceSize size)
{
    const VkMemoryPropertyFlags want[2] = { HOST_MEM | VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, HOST_MEM };
    /* GLM_VK_UPLOAD_HOST=1 (a measurement switch): host memory, as before this choice existed */
    const char *e = getenv("GLM_VK_UPLOAD_HOST");
    bool host_only = e && !strcmp(e, "1");
    return buffer_create(vk, b, size, want + host_only, 2 - host_only);
}

void glm_vk_buffer_destroy(glm_vk *vk, glm_vk_buffer *b)
{
    if (!vk || !b || !b->buf)
        return;
    if (b->map)
        vkUnmapMemory(vk->dev, b->mem);
    vkDestroyBuffer(vk->dev, b->buf, NULL);
    vkFreeMemory(vk->dev, b->mem, NULL);
    memset(b, 0, sizeof *b);
}

/* One-shot copy between a buffer and a temporary host-visible staging buffer. */
static glm_status staged_copy(glm_vk *vk, glm_vk_buffer *devbuf, VkDeviceSize offset, void *host, VkDeviceSize n, bool up)
{
    glm_vk_buffer st;
    GLM_TRY(glm_vk_buffer_create(vk, &st, n, true));
    if (up)
        memcpy(st.map, host, n);
    glm_status s = begin_cmd(vk);
    if (s == GLM_OK) {
        VkBufferCopy c = { .srcOffset = up ? 0 : offset, .dstOffset = up ? offset : 0, .size = n };
        vkCmdCopyBuffer(vk->cmd, up ? st.buf : devbuf->buf, up ? devbuf->buf : st.buf, 1, &c);
        s = submit_current(vk);
    }
    glm_status ws = wait_all(vk);
    if (s == GLM_OK)
        s = ws;
    if (s == GLM_OK && !up)
        memcpy(host, st.map, n);
    glm_vk_buffer_destroy(vk, &st);
    return s;
}

glm_status glm_vk_upload(glm_vk *vk, glm_vk_buffer *dst, VkDeviceSize offset, const void *src, VkDeviceSize n)
{
    if (offset + n > dst->size)
        return glm_errorf(GLM_ERR_INVALID, "vulkan: upload of %llu bytes at %llu overruns a %llu-byte buffer",
                          (unsigned long long)n, (unsigned long long)offset, (unsigned long long)dst->size);
    if (dst->map) {
        memcpy((uint8_t *)dst->map + offset, src, n);
        return GLM_OK;
    }
    return staged_copy(vk, dst, offset, (void *)src, n, true);
}

glm_status glm_vk_download(glm_vk *vk, void *dst, glm_vk_buffer *src, VkDeviceSize offset, VkDeviceSize n)
{
    if (offset + n > src->size)
        return glm_errorf(GLM_ERR_INVALID, "vulkan: download of %llu bytes at %llu overruns a %llu-byte buffer",
                          (unsigned long long)n, (unsigned long long)offset, (unsigned long long)src->size);
    if (vk->recording && src->map) /* the recorded work may write it */
        GLM_TRY(glm_vk_submit_wait(vk));
    if (src->map) {
        memcpy(dst, (const uint8_t *)src->map + offset, n);
        return GLM_OK;
    }
    if (n > GLM_VK_STAGE_MAX) { /* big ones (all the logits of a prefill) through a buffer of their own */
        if (vk->recording)
            GLM_TRY(glm_vk_submit_wait(vk));
        return staged_copy(vk, src, offset, dst, n, false);
    }
    if (vk->stage.size < n) { /* grown, never shrunk: a decode step's download allocates nothing */
        VkDeviceSize size = vk->stage.size ? vk->stage.size : 4096;
        while (size < n)
            size *= 2;
        glm_status s = GLM_OK;
        if (vk->recording) /* a recording must end in a submit; its results are not wanted */
            s = glm_vk_submit_wait(vk);
        glm_vk_buffer_destroy(vk, &vk->stage);
        const VkMemoryPropertyFlags want[2] = { HOST_MEM | VK_MEMORY_PROPERTY_HOST_CACHED_BIT, HOST_MEM };
        GLM_TRY(buffer_create(vk, &vk->stage, size, want, 2));
        GLM_TRY(s);
    }
    if (!vk->recording)
        GLM_TRY(glm_vk_begin(vk));
    /* after the recorded dispatches, in the same submission: one wait for both */
    barrier(vk, true);
    VkBufferCopy c = { .srcOffset = offset, .dstOffset = 0, .size = n };
    vkCmdCopyBuffer(vk->cmd, src->buf, vk->stage.buf, 1, &c);
    VkMemoryBarrier mb = { .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                           .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                           .dstAccessMask = VK_ACCESS_HOST_READ_BIT };
    vkCmdPipelineBarrier(vk->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0,
                         NULL);
    GLM_TRY(glm_vk_submit_wait(vk));
    memcpy(dst, vk->stage.map, n);
    return GLM_OK;
}

/* ---- recording ------------------------------------------------------------------------- */

static glm_status wait_slot(glm_vk *vk, uint32_t i)
{
    if (!vk->in_flight[i])
        return GLM_OK;
    vk->in_flight[i] = false;
    VkResult r = vkWaitForFences(vk->dev, 1, &vk->fences[i], VK_TRUE, UINT64_MAX);
    if (r != VK_SUCCESS)
        return glm_errorf(GLM_ERR_DEVICE, "vulkan: device lost or wait failed (VkResult %d)", (int)r);
    return GLM_OK;
}

static glm_status wait_all(glm_vk *vk)
{
    glm_status s = GLM_OK;
    for (uint32_t i = 0; i < GLM_VK_RING; i++) {
        glm_status t = wait_slot(vk, (vk->cur + i) % GLM_VK_RING);
        if (s == GLM_OK)
            s = t;
    }
    return s;
}

/* Start recording into the current ring slot, once the device is done with its last use. */
static glm_status begin_cmd(glm_vk *vk)
{
    GLM_TRY(wait_slot(vk, vk->cur));
    VkCommandBufferBeginInfo bi = { .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                    .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT };
    vkResetCommandBuffer(vk->cmd, 0);
    VkResult r = vkBeginCommandBuffer(vk->cmd, &bi);
    if (r != VK_SUCCESS)
        return vkfail(r, "vkBeginCommandBuffer");
    vk->in_cmd = 0;
    return GLM_OK;
}

/* End and submit the current command buffer without waiting; the next slot becomes current. */
static glm_status submit_current(glm_vk *vk)
{
    VkResult r = vkEndCommandBuffer(vk->cmd);
    if (r != VK_SUCCESS)
        return vkfail(r, "vkEndCommandBuffer");
    VkSubmitInfo si = { .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &vk->cmd };
    vkResetFences(vk->dev, 1, &vk->fences[vk->cur]);
    if ((r = vkQueueSubmit(vk->queue, 1, &si, vk->fences[vk->cur])) != VK_SUCCESS)
        return vkfail(r, "vkQueueSubmit");
    vk->in_flight[vk->cur] = true;
    if (vk->recording && vk->rec_submits++ == 0)
        vk->host.first_submit_ns += now_ns() - vk->rec_t0;
    vk->host.submits++;
    vk->cur = (vk->cur + 1) % GLM_VK_RING;
    vk->cmd = vk->ring[vk->cur];
    return GLM_OK;
}

/* A compute → compute barrier (last: → compute, copies and the host too); forgets what
 * earlier dispatches touched. */
static void barrier(glm_vk *vk, bool last)
{
    VkMemoryBarrier mb = { .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                           .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                           .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                                            (last ? VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_HOST_READ_BIT : 0) };
    vkCmdPipelineBarrier(vk->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                         VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT |
                             (last ? VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_HOST_BIT : 0),
                         0, 1, &mb, 0, NULL, 0, NULL);
    vk->n_written = vk->n_read = 0;
}

static bool tracked(const VkBuffer *set, uint32_t n, VkBuffer b)
{
    for (uint32_t i = 0; i < n; i++)
        if (set[i] == b)
            return true;
    return false;
}

/* Does a dispatch of kernel d over bufs depend on (or overwrite the inputs of) a dispatch
 * recorded since the last barrier? Records its buffers when it does not. */
static bool hazard(glm_vk *vk, const kernel_desc *d, const glm_vk_buffer *const *bufs, uint32_t nbufs)
{
    for (uint32_t i = 0; i < nbufs; i++) {
        bool wr = !(d->ro & (1u << i));
        if (tracked(vk->written, vk->n_written, bufs[i]->buf) || (wr && tracked(vk->read, vk->n_read, bufs[i]->buf)))
            return true;
    }
    for (uint32_t i = 0; i < nbufs; i++) {
        bool wr = !(d->ro & (1u << i));
        VkBuffer *set = wr ? vk->written : vk->read;
        uint32_t *n = wr ? &vk->n_written : &vk->n_read;
        if (tracked(set, *n, bufs[i]->buf))
            continue;
        if (*n == GLM_VK_TRACK)
            return true; /* too many to track: a barrier resets the sets */
        set[(*n)++] = bufs[i]->buf;
    }
    return false;
}

glm_status glm_vk_begin(glm_vk *vk)
{
    GLM_TRY(wait_all(vk));
    if (!vk->push_set) {
        VkResult r = vkResetDescriptorPool(vk->dev, vk->desc_pool, 0);
        if (r != VK_SUCCESS)
            return vkfail(r, "vkResetDescriptorPool");
    }
    GLM_TRY(begin_cmd(vk));
    vk->recording = true;
    vk->chunk = vk->first_chunk;
    vk->rec_t0 = now_ns();
    vk->rec_submits = 0;
    vk->n_stamps = 0;
    if (vk->queries) {
        vkCmdResetQueryPool(vk->cmd, vk->queries, 0, GLM_VK_MAX_SETS + 1);
        vkCmdWriteTimestamp(vk->cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, vk->queries, 0);
        vk->n_stamps = 1;
    }
    return GLM_OK;
}

glm_status glm_vk_dispatch(glm_vk *vk, glm_vk_kernel k, const glm_vk_buffer *const *bufs, uint32_t nbufs,
                           const void *push, uint32_t push_size, uint32_t gx, uint32_t gy, uint32_t gz)
{
    return glm_vk_dispatch_variant(vk, k, 0, bufs, nbufs, push, push_size, gx, gy, gz);
}

glm_status glm_vk_dispatch_variant(glm_vk *vk, glm_vk_kernel k, uint32_t variant, const glm_vk_buffer *const *bufs,
                                   uint32_t nbufs, const void *push, uint32_t push_size, uint32_t gx, uint32_t gy,
                                   uint32_t gz)
{
    GLM_ASSERT(vk->recording);
    GLM_ASSERT(k < GLM_VK_KERNEL_COUNT);
    GLM_TRY(pipeline_variant(vk, k, variant));
    const kernel_desc *d = &k_kernels[k];
    if (nbufs != d->bindings || push_size != d->push_size)
        return glm_errorf(GLM_ERR_INVALID, "vulkan: %s takes %u buffers and %u push bytes, got %u and %u", d->name,
                          d->bindings, d->push_size, nbufs, push_size);
    if (vk->in_cmd >= vk->chunk) {
        /* hand the full command buffer to the device and go on in the next one */
        GLM_TRY(submit_current(vk));
        GLM_TRY(begin_cmd(vk));
        vk->chunk = vk->chunk * 2 > GLM_VK_CHUNK ? GLM_VK_CHUNK : vk->chunk * 2;
    }
    VkDescriptorBufferInfo bi[GLM_VK_MAX_BINDINGS];
    VkWriteDescriptorSet w[GLM_VK_MAX_BINDINGS];
    VkDescriptorSet set = VK_NULL_HANDLE;
    if (!vk->push_set) {
        VkDescriptorSetAllocateInfo ai = { .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                           .descriptorPool = vk->desc_pool,
                                           .descriptorSetCount = 1,
                                           .pSetLayouts = &vk->set_layout[k] };
        VkResult r = vkAllocateDescriptorSets(vk->dev, &ai, &set);
        if (r != VK_SUCCESS)
            return vkfail(r, "vkAllocateDescriptorSets (too many dispatches in one recording?)");
    }
    for (uint32_t i = 0; i < nbufs; i++) {
        bi[i] = (VkDescriptorBufferInfo){ bufs[i]->buf, 0, VK_WHOLE_SIZE };
        w[i] = (VkWriteDescriptorSet){ .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                       .dstSet = set,
                                       .dstBinding = i,
                                       .descriptorCount = 1,
                                       .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                       .pBufferInfo = &bi[i] };
    }
    bool level = hazard(vk, d, bufs, nbufs);
    if (level) {
        barrier(vk, false);
        hazard(vk, d, bufs, nbufs); /* records this dispatch's buffers after the barrier */
    }
    if (vk->trace) /* GLM_VK_TRACE=1: the recorded dispatches, "|" where a barrier starts a level */
        fprintf(stderr, "%s%s/%u(%u,%u,%u) ", level ? "| " : "", d->name, variant, gx, gy, gz);
    vkCmdBindPipeline(vk->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, *pipe_slot(vk, k, variant));
    if (vk->push_set) {
        vk->push_set(vk->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, vk->pipe_layout[k], 0, nbufs, w);
    } else {
        vkUpdateDescriptorSets(vk->dev, nbufs, w, 0, NULL);
        vkCmdBindDescriptorSets(vk->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, vk->pipe_layout[k], 0, 1, &set, 0, NULL);
    }
    if (push_size)
        vkCmdPushConstants(vk->cmd, vk->pipe_layout[k], VK_SHADER_STAGE_COMPUTE_BIT, 0, push_size, push);
    vkCmdDispatch(vk->cmd, gx, gy, gz);
    vk->in_cmd++;
    if (vk->queries && vk->n_stamps > 0 && vk->n_stamps <= GLM_VK_MAX_SETS) {
        /* a barrier makes this stamp follow the dispatch's completion */
        barrier(vk, false);
        vkCmdWriteTimestamp(vk->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, vk->queries, vk->n_stamps);
        vk->stamp_kernel[vk->n_stamps - 1] = (uint8_t)k;
        uint32_t sh = 0;
        while (sh < vk->n_shapes && !(vk->shapes[sh].kernel == k && vk->shapes[sh].variant == variant &&
                                      vk->shapes[sh].gx == gx && vk->shapes[sh].gy == gy && vk->shapes[sh].gz == gz))
            sh++;
        if (sh == vk->n_shapes && sh < GLM_VK_PROF_SHAPES)
            vk->shapes[vk->n_shapes++] = (glm_vk_prof_shape){ k, variant, gx, gy, gz, 0, 0 };
        vk->stamp_shape[vk->n_stamps - 1] = (uint8_t)sh;
        vk->n_stamps++;
    }
    return GLM_OK;
}

glm_status glm_vk_submit_wait(glm_vk *vk)
{
    GLM_ASSERT(vk->recording);
    barrier(vk, true); /* results visible to the next recording, copies and the host */
    if (vk->trace)
        fprintf(stderr, "|| submit and wait\n");
    glm_status s = submit_current(vk);
    vk->recording = false;
    uint64_t t = now_ns();
    vk->host.record_ns += t - vk->rec_t0;
    vk->host.recordings++;
    glm_status ws = wait_all(vk);
    vk->host.wait_ns += now_ns() - t;
    if (s == GLM_OK)
        s = ws;
    if (s == GLM_OK)
        collect_profile(vk);
    return s;
}

/* Timestamp differences between consecutive stamps, credited to the dispatch they close. */
static void collect_profile(glm_vk *vk)
{
    if (!vk->queries || vk->n_stamps < 2)
        return;
    uint64_t ts[GLM_VK_MAX_SETS + 1];
    if (vkGetQueryPoolResults(vk->dev, vk->queries, 0, vk->n_stamps, sizeof ts, ts, sizeof ts[0],
                              VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT) != VK_SUCCESS)
        return;
    double period = vk->props.limits.timestampPeriod;
    for (uint32_t i = 1; i < vk->n_stamps; i++) {
        uint64_t d = ts[i] >= ts[i - 1] ? ts[i] - ts[i - 1] : 0;
        vk->prof_ns[vk->stamp_kernel[i - 1]] += (uint64_t)((double)d * period);
        vk->prof_count[vk->stamp_kernel[i - 1]]++;
        if (vk->stamp_shape[i - 1] < GLM_VK_PROF_SHAPES) {
            vk->shapes[vk->stamp_shape[i - 1]].ns += (uint64_t)((double)d * period);
            vk->shapes[vk->stamp_shape[i - 1]].count++;
        }
    }
}

glm_status glm_vk_set_profiling(glm_vk *vk, bool on)
{
    GLM_ASSERT(!vk->recording);
    if (!on) {
        if (vk->queries)
            vkDestroyQueryPool(vk->dev, vk->queries, NULL);
        vk->queries = VK_NULL_HANDLE;
        return GLM_OK;
    }
    if (vk->queries)
        return GLM_OK;
    uint32_t n = 0;
    VkQueueFamilyProperties q[32];
    vkGetPhysicalDeviceQueueFamilyProperties(vk->phys, &n, NULL);
    n = n > 32 ? 32 : n;
    vkGetPhysicalDeviceQueueFamilyProperties(vk->phys, &n, q);
    if (vk->queue_family >= n || q[vk->queue_family].timestampValidBits == 0 || vk->props.limits.timestampPeriod <= 0)
        return glm_errorf(GLM_ERR_UNSUPPORTED, "vulkan: %s has no timestamp queries on its compute queue",
                          vk->props.deviceName);
    VkQueryPoolCreateInfo qi = { .sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                 .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                 .queryCount = GLM_VK_MAX_SETS + 1 };
    VkResult r = vkCreateQueryPool(vk->dev, &qi, NULL, &vk->queries);
    return r == VK_SUCCESS ? GLM_OK : vkfail(r, "vkCreateQueryPool");
}

void glm_vk_profile(const glm_vk *vk, glm_vk_kernel k, uint64_t *ns, uint64_t *count)
{
    GLM_ASSERT(k < GLM_VK_KERNEL_COUNT);
    *ns = vk->prof_ns[k];
    *count = vk->prof_count[k];
}

uint32_t glm_vk_profile_shapes(const glm_vk *vk, const glm_vk_prof_shape **shapes)
{
    *shapes = vk->shapes;
    return vk->n_shapes;
}

void glm_vk_host_profile(const glm_vk *vk, glm_vk_host_prof *out) { *out = vk->host; }

void glm_vk_profile_reset(glm_vk *vk)
{
    memset(&vk->host, 0, sizeof vk->host);
    memset(vk->prof_ns, 0, sizeof vk->prof_ns);
    memset(vk->prof_count, 0, sizeof vk->prof_count);
    vk->n_shapes = 0;
}

const char *glm_vk_kernel_name(glm_vk_kernel k) { return k < GLM_VK_KERNEL_COUNT ? k_kernels[k].name : "?"; }
