#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_EXT_spirv_intrinsics : require
// Decode matrix-vector products of Q4_K, Q5_K and Q6_K weights with x quantized to 8 bits
// (quant_x8.comp's rows): matvec_fast.glsl with MATVEC_Q8. Its own module, since it needs the
// integer dot product (SPV_KHR_integer_dot_product, a Vulkan 1.3 feature), which only devices
// that have it may see.
#define MATVEC_Q8 1
// OpSDot of two packed 4 × int8 words (PackedVectorFormat4x8Bit = 0): Debian 12's glslang
// lacks GL_EXT_integer_dot_product, so the instruction is named through spirv_intrinsics
// (capabilities DotProduct, DotProductInput4x8BitPacked).
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int sdot4(int a, int b, spirv_literal int fmt);
#include "matvec_fast.glsl"
