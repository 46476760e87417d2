/* Vulkan compute context (see vk.h). Errors map VkResult into glm_status with the call named. */
#include "backend/vk/vk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glm_spirv.h" /* generated: spv_<kernel>[] from shaders/<kernel>.comp */

#define GLM_VK_MAX_BINDINGS 8
#define GLM_VK_MAX_SETS 4096 /* dispatches per recording */

typedef struct kernel_desc {
    const char *name;
    const uint32_t *spv;
    size_t spv_bytes;
    uint32_t bindings;
    uint32_t push_size;
    bool specialized; /* constant_id 0 selects a variant (the weight type); one pipeline each */
    bool coopmat;     /* needs VK_KHR_cooperative_matrix: built only where the device has it */
} kernel_desc;

#define GLM_VK_MAX_VARIANTS 64

/* Push-constant sizes mirror the structs in backend/vk/ops.h (size-asserted there). */
static const kernel_desc k_kernels[GLM_VK_KERNEL_COUNT] = {
    [GLM_VK_RMS_NORM] = { "rms_norm", spv_rms_norm, sizeof spv_rms_norm, 3, 48 },
    [GLM_VK_MATVEC] = { "matvec", spv_matvec, sizeof spv_matvec, 4, 64, true },
    [GLM_VK_GET_ROWS] = { "get_rows", spv_get_rows, sizeof spv_get_rows, 3, 32 },
    [GLM_VK_ROPE] = { "rope", spv_rope, sizeof spv_rope, 2, 32 },
    [GLM_VK_ELTWISE] = { "eltwise", spv_eltwise, sizeof spv_eltwise, 3, 48 },
    [GLM_VK_MOE_ROUTE] = { "moe_route", spv_moe_route, sizeof spv_moe_route, 4, 80 },
    [GLM_VK_MOE_COMBINE] = { "moe_combine", spv_moe_combine, sizeof spv_moe_combine, 3, 48 },
    [GLM_VK_ARGMAX] = { "argmax", spv_argmax, sizeof spv_argmax, 2, 16 },
    [GLM_VK_MLA_SCORES] = { "mla_scores", spv_mla_scores, sizeof spv_mla_scores, 5, 80 },
    [GLM_VK_SOFTMAX] = { "softmax", spv_softmax, sizeof spv_softmax, 1, 16 },
    [GLM_VK_MLA_MIX] = { "mla_mix", spv_mla_mix, sizeof spv_mla_mix, 3, 48 },
    [GLM_VK_MATMUL] = { "matmul", spv_matmul, sizeof spv_matmul, 4, 64, true },
    [GLM_VK_MOE_GROUP] = { "moe_group", spv_moe_group, sizeof spv_moe_group, 2, 32 },
    [GLM_VK_MATMUL_CM] = { "matmul_cm", spv_matmul_cm, sizeof spv_matmul_cm, 4, 64, true, true },
    [GLM_VK_MLA_SCORES_TILED] = { "mla_scores_tiled", spv_mla_scores_tiled, sizeof spv_mla_scores_tiled, 5, 80 },
    [GLM_VK_MLA_MIX_TILED] = { "mla_mix_tiled", spv_mla_mix_tiled, sizeof spv_mla_mix_tiled, 3, 48 },
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

struct glm_vk {
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    VkPhysicalDevice phys;
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties memprops;
    VkDevice dev;
    VkQueue queue;
    uint32_t queue_family;
    VkCommandPool cmd_pool;
    VkCommandBuffer cmd;
    VkFence fence;
    VkDescriptorPool desc_pool;
    VkDescriptorSetLayout set_layout[GLM_VK_KERNEL_COUNT];
    VkPipelineLayout pipe_layout[GLM_VK_KERNEL_COUNT];
    VkPipeline pipeline[GLM_VK_KERNEL_COUNT][GLM_VK_MAX_VARIANTS];
    VkShaderModule module[GLM_VK_KERNEL_COUNT];
    bool recording;
    /* profiling: a timestamp before the first dispatch and after each one */
    VkQueryPool queries;
    uint32_t n_stamps;                       /* timestamps written in this recording */
    uint8_t stamp_kernel[GLM_VK_MAX_SETS];   /* kernel of the dispatch ending at stamp i+1 */
    uint64_t prof_ns[GLM_VK_KERNEL_COUNT];
    uint64_t prof_count[GLM_VK_KERNEL_COUNT];
    uint32_t validation_messages;
    bool coopmat_ok, coopmat_on; /* see glm_vk_coopmat_available / glm_vk_use_coopmat */
};

static glm_status submit_ended(glm_vk *vk);

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
                              .apiVersion = VK_API_VERSION_1_2 };
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

/* The pipeline of kernel k for one specialization value, built on first use and kept. */
static glm_status pipeline_variant(glm_vk *vk, glm_vk_kernel k, uint32_t variant)
{
    if (variant >= GLM_VK_MAX_VARIANTS)
        return glm_errorf(GLM_ERR_INVALID, "vulkan: %s variant %u out of range", k_kernels[k].name, variant);
    if (vk->pipeline[k][variant])
        return GLM_OK;
    if (k_kernels[k].coopmat && !vk->coopmat_ok)
        return glm_errorf(GLM_ERR_UNSUPPORTED, "vulkan: %s needs cooperative matrices, which %s lacks", k_kernels[k].name,
                          vk->props.deviceName);
    VkSpecializationMapEntry me = { .constantID = 0, .offset = 0, .size = sizeof(uint32_t) };
    VkSpecializationInfo spec = { .mapEntryCount = 1, .pMapEntries = &me, .dataSize = sizeof variant, .pData = &variant };
    VkComputePipelineCreateInfo ci = { .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
                                       .stage = { .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                                                  .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                                                  .module = vk->module[k],
                                                  .pName = "main",
                                                  .pSpecializationInfo = k_kernels[k].specialized ? &spec : NULL },
                                       .layout = vk->pipe_layout[k] };
    VkResult r = vkCreateComputePipelines(vk->dev, VK_NULL_HANDLE, 1, &ci, NULL, &vk->pipeline[k][variant]);
    if (r != VK_SUCCESS)
        return glm_errorf(GLM_ERR_DEVICE, "vulkan: building pipeline %s/%u failed (VkResult %d)", k_kernels[k].name,
                          variant, (int)r);
    return GLM_OK;
}

static glm_status create_pipelines(glm_vk *vk)
{
    for (int k = 0; k < GLM_VK_KERNEL_COUNT; k++) {
        const kernel_desc *d = &k_kernels[k];
        if (d->coopmat && !vk->coopmat_ok)
            continue;
        VkDescriptorSetLayoutBinding b[GLM_VK_MAX_BINDINGS];
        for (uint32_t i = 0; i < d->bindings; i++)
            b[i] = (VkDescriptorSetLayoutBinding){ .binding = i,
                                                   .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                                   .descriptorCount = 1,
                                                   .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT };
        VkDescriptorSetLayoutCreateInfo li = { .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
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

static bool device_has_extension(VkPhysicalDevice p, const char *name)
{
    uint32_t n = 0;
    vkEnumerateDeviceExtensionProperties(p, NULL, &n, NULL);
    VkExtensionProperties *e = calloc(n ? n : 1, sizeof *e);
    if (!e)
        return false;
    vkEnumerateDeviceExtensionProperties(p, NULL, &n, e);
    bool found = false;
    for (uint32_t i = 0; i < n; i++)
        found |= strcmp(e[i].extensionName, name) == 0;
    free(e);
    return found;
}

/* Can GLM_VK_MATMUL_CM run here? Its SPIR-V must have been built (a stub word otherwise), the
 * device must offer the extension, float16 arithmetic, subgroups of 32, 40 KiB of shared
 * memory (the kernel uses 36.3) and the fragment shape 16×16×16 f16·f16+f32 at subgroup scope. */
static bool coopmat_usable(glm_vk *vk)
{
    if (sizeof spv_matmul_cm < 20 || spv_matmul_cm[0] != 0x07230203u || vk->props.apiVersion < VK_API_VERSION_1_2 ||
        !device_has_extension(vk->phys, GLM_VK_KHR_COOPMAT_NAME))
        return false;
    VkPhysicalDeviceSubgroupProperties sg = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES };
    VkPhysicalDeviceProperties2 p2 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &sg };
    vkGetPhysicalDeviceProperties2(vk->phys, &p2);
    glm_vk_coopmat_features cf = { .sType = GLM_VK_STYPE_COOPMAT_FEATURES };
    VkPhysicalDeviceVulkan12Features f12 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES, .pNext = &cf };
    VkPhysicalDeviceFeatures2 f2 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f12 };
    vkGetPhysicalDeviceFeatures2(vk->phys, &f2);
    if (sg.subgroupSize != 32 || !(sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) || !f12.shaderFloat16 ||
        !cf.cooperativeMatrix || vk->props.limits.maxComputeSharedMemorySize < 40 * 1024)
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

static glm_status create_device(glm_vk *vk)
{
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qi = { .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                   .queueFamilyIndex = vk->queue_family,
                                   .queueCount = 1,
                                   .pQueuePriorities = &prio };
    VkDeviceCreateInfo di = { .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .queueCreateInfoCount = 1, .pQueueCreateInfos = &qi };
    vk->coopmat_ok = coopmat_usable(vk);
    const char *exts[1] = { GLM_VK_KHR_COOPMAT_NAME };
    glm_vk_coopmat_features cf = { .sType = GLM_VK_STYPE_COOPMAT_FEATURES, .cooperativeMatrix = VK_TRUE };
    VkPhysicalDeviceVulkan12Features f12 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
                                             .pNext = &cf,
                                             .shaderFloat16 = VK_TRUE };
    if (vk->coopmat_ok) {
        di.pNext = &f12;
        di.enabledExtensionCount = 1;
        di.ppEnabledExtensionNames = exts;
    }
    const char *off = getenv("GLM_VK_NO_COOPMAT");
    vk->coopmat_on = vk->coopmat_ok && !(off && *off && strcmp(off, "0") != 0);
    VkResult r = vkCreateDevice(vk->phys, &di, NULL, &vk->dev);
    if (r != VK_SUCCESS)
        return vkfail(r, "vkCreateDevice");
    vkGetDeviceQueue(vk->dev, vk->queue_family, 0, &vk->queue);
    VkCommandPoolCreateInfo pi = { .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                   .queueFamilyIndex = vk->queue_family };
    if ((r = vkCreateCommandPool(vk->dev, &pi, NULL, &vk->cmd_pool)) != VK_SUCCESS)
        return vkfail(r, "vkCreateCommandPool");
    VkCommandBufferAllocateInfo ai = { .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                       .commandPool = vk->cmd_pool,
                                       .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                       .commandBufferCount = 1 };
    if ((r = vkAllocateCommandBuffers(vk->dev, &ai, &vk->cmd)) != VK_SUCCESS)
        return vkfail(r, "vkAllocateCommandBuffers");
    VkFenceCreateInfo fi = { .sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO };
    if ((r = vkCreateFence(vk->dev, &fi, NULL, &vk->fence)) != VK_SUCCESS)
        return vkfail(r, "vkCreateFence");
    VkDescriptorPoolSize ps = { VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, GLM_VK_MAX_SETS * GLM_VK_MAX_BINDINGS };
    VkDescriptorPoolCreateInfo dpi = { .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                       .maxSets = GLM_VK_MAX_SETS,
                                       .poolSizeCount = 1,
                                       .pPoolSizes = &ps };
    if ((r = vkCreateDescriptorPool(vk->dev, &dpi, NULL, &vk->desc_pool)) != VK_SUCCESS)
        return vkfail(r, "vkCreateDescriptorPool");
    return create_pipelines(vk);
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
        s = create_device(vk);
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
        for (int k = 0; k < GLM_VK_KERNEL_COUNT; k++) {
            for (int v = 0; v < GLM_VK_MAX_VARIANTS; v++)
                if (vk->pipeline[k][v])
                    vkDestroyPipeline(vk->dev, vk->pipeline[k][v], NULL);
            if (vk->module[k])
                vkDestroyShaderModule(vk->dev, vk->module[k], NULL);
            if (vk->pipe_layout[k])
                vkDestroyPipelineLayout(vk->dev, vk->pipe_layout[k], NULL);
            if (vk->set_layout[k])
                vkDestroyDescriptorSetLayout(vk->dev, vk->set_layout[k], NULL);
        }
        if (vk->desc_pool)
            vkDestroyDescriptorPool(vk->dev, vk->desc_pool, NULL);
        if (vk->queries)
            vkDestroyQueryPool(vk->dev, vk->queries, NULL);
        if (vk->fence)
            vkDestroyFence(vk->dev, vk->fence, NULL);
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
bool glm_vk_use_coopmat(glm_vk *vk, bool on)
{
    vk->coopmat_on = on && vk->coopmat_ok;
    return vk->coopmat_on;
}
bool glm_vk_device_is_cpu(const glm_vk *vk) { return vk->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU; }
uint64_t glm_vk_max_buffer(const glm_vk *vk) { return vk->props.limits.maxStorageBufferRange; }
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

glm_status glm_vk_buffer_create(glm_vk *vk, glm_vk_buffer *b, VkDeviceSize size, bool host_visible)
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
                                       VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                              .sharingMode = VK_SHARING_MODE_EXCLUSIVE };
    VkResult r = vkCreateBuffer(vk->dev, &bi, NULL, &b->buf);
    if (r != VK_SUCCESS)
        return vkfail(r, "vkCreateBuffer");
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(vk->dev, b->buf, &req);
    int mt = host_visible ? find_memory(vk, req.memoryTypeBits,
                                        VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT)
                          : find_memory(vk, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
    if (mt < 0) {
        vkDestroyBuffer(vk->dev, b->buf, NULL);
        b->buf = VK_NULL_HANDLE;
        return glm_errorf(GLM_ERR_DEVICE, "vulkan: no suitable memory type for a %llu-byte buffer", (unsigned long long)size);
    }
    VkMemoryAllocateInfo ai = { .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size, .memoryTypeIndex = (uint32_t)mt };
    if ((r = vkAllocateMemory(vk->dev, &ai, NULL, &b->mem)) != VK_SUCCESS) {
        vkDestroyBuffer(vk->dev, b->buf, NULL);
        b->buf = VK_NULL_HANDLE;
        return glm_errorf(GLM_ERR_NOMEM, "vulkan: cannot allocate %llu bytes of device memory (VkResult %d)",
                          (unsigned long long)req.size, (int)r);
    }
    vkBindBufferMemory(vk->dev, b->buf, b->mem, 0);
    if (vk->memprops.memoryTypes[mt].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT)
        vkMapMemory(vk->dev, b->mem, 0, VK_WHOLE_SIZE, 0, &b->map);
    b->size = size;
    return GLM_OK;
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
    VkCommandBufferBeginInfo bi = { .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                    .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT };
    vkResetCommandBuffer(vk->cmd, 0);
    vkBeginCommandBuffer(vk->cmd, &bi);
    VkBufferCopy c = { .srcOffset = up ? 0 : offset, .dstOffset = up ? offset : 0, .size = n };
    vkCmdCopyBuffer(vk->cmd, up ? st.buf : devbuf->buf, up ? devbuf->buf : st.buf, 1, &c);
    vkEndCommandBuffer(vk->cmd);
    vk->recording = true;
    vk->n_stamps = 0;
    glm_status s = submit_ended(vk);
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
    if (src->map) {
        memcpy(dst, (const uint8_t *)src->map + offset, n);
        return GLM_OK;
    }
    return staged_copy(vk, src, offset, dst, n, false);
}

glm_status glm_vk_begin(glm_vk *vk)
{
    VkResult r = vkResetDescriptorPool(vk->dev, vk->desc_pool, 0);
    if (r != VK_SUCCESS)
        return vkfail(r, "vkResetDescriptorPool");
    VkCommandBufferBeginInfo bi = { .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                    .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT };
    vkResetCommandBuffer(vk->cmd, 0);
    if ((r = vkBeginCommandBuffer(vk->cmd, &bi)) != VK_SUCCESS)
        return vkfail(r, "vkBeginCommandBuffer");
    vk->recording = true;
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
    VkDescriptorSetAllocateInfo ai = { .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                       .descriptorPool = vk->desc_pool,
                                       .descriptorSetCount = 1,
                                       .pSetLayouts = &vk->set_layout[k] };
    VkDescriptorSet set;
    VkResult r = vkAllocateDescriptorSets(vk->dev, &ai, &set);
    if (r != VK_SUCCESS)
        return vkfail(r, "vkAllocateDescriptorSets (too many dispatches in one recording?)");
    VkDescriptorBufferInfo bi[GLM_VK_MAX_BINDINGS];
    VkWriteDescriptorSet w[GLM_VK_MAX_BINDINGS];
    for (uint32_t i = 0; i < nbufs; i++) {
        bi[i] = (VkDescriptorBufferInfo){ bufs[i]->buf, 0, VK_WHOLE_SIZE };
        w[i] = (VkWriteDescriptorSet){ .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                       .dstSet = set,
                                       .dstBinding = i,
                                       .descriptorCount = 1,
                                       .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                       .pBufferInfo = &bi[i] };
    }
    vkUpdateDescriptorSets(vk->dev, nbufs, w, 0, NULL);
    vkCmdBindPipeline(vk->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, vk->pipeline[k][variant]);
    vkCmdBindDescriptorSets(vk->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, vk->pipe_layout[k], 0, 1, &set, 0, NULL);
    if (push_size)
        vkCmdPushConstants(vk->cmd, vk->pipe_layout[k], VK_SHADER_STAGE_COMPUTE_BIT, 0, push_size, push);
    vkCmdDispatch(vk->cmd, gx, gy, gz);
    VkMemoryBarrier mb = { .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                           .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                           .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT };
    vkCmdPipelineBarrier(vk->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                         VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    if (vk->queries && vk->n_stamps > 0 && vk->n_stamps <= GLM_VK_MAX_SETS) {
        /* the barrier above makes this stamp follow the dispatch's completion */
        vkCmdWriteTimestamp(vk->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, vk->queries, vk->n_stamps);
        vk->stamp_kernel[vk->n_stamps - 1] = (uint8_t)k;
        vk->n_stamps++;
    }
    return GLM_OK;
}

glm_status glm_vk_submit_wait(glm_vk *vk)
{
    GLM_ASSERT(vk->recording);
    VkResult r = vkEndCommandBuffer(vk->cmd);
    if (r != VK_SUCCESS) {
        vk->recording = false;
        return vkfail(r, "vkEndCommandBuffer");
    }
    return submit_ended(vk);
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

void glm_vk_profile_reset(glm_vk *vk)
{
    memset(vk->prof_ns, 0, sizeof vk->prof_ns);
    memset(vk->prof_count, 0, sizeof vk->prof_count);
}

const char *glm_vk_kernel_name(glm_vk_kernel k) { return k < GLM_VK_KERNEL_COUNT ? k_kernels[k].name : "?"; }

static glm_status submit_ended(glm_vk *vk)
{
    vk->recording = false;
    VkResult r;
    VkSubmitInfo si = { .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &vk->cmd };
    vkResetFences(vk->dev, 1, &vk->fence);
    if ((r = vkQueueSubmit(vk->queue, 1, &si, vk->fence)) != VK_SUCCESS)
        return vkfail(r, "vkQueueSubmit");
    if ((r = vkWaitForFences(vk->dev, 1, &vk->fence, VK_TRUE, UINT64_MAX)) != VK_SUCCESS)
        return glm_errorf(GLM_ERR_DEVICE, "vulkan: device lost or wait failed (VkResult %d)", (int)r);
    collect_profile(vk);
    return GLM_OK;
}
