#pragma once
// Exact scalar codecs for every number format a FLUX.2 checkpoint can hold. These are the reference that the
// nibble/swizzle helpers and every GPU kernel are tested against.
#include <cstdint>

namespace flux2 {

float bf16_to_f32(uint16_t bits);
uint16_t f32_to_bf16(float value);  // round-to-nearest-even; NaN stays NaN
float f16_to_f32(uint16_t bits);
uint16_t f32_to_f16(float value);   // round-to-nearest-even, overflow to inf

float e4m3_to_f32(uint8_t bits);    // OCP FP8 E4M3 (fn): no inf, 0x7F/0xFF are NaN, max 448
uint8_t f32_to_e4m3(float value);   // round-to-nearest-even, saturating to +-448; NaN -> 0x7F
float e5m2_to_f32(uint8_t bits);    // OCP FP8 E5M2 (IEEE-like, has inf)

float e2m1_to_f32(uint8_t code);    // 4-bit code (sign in bit 3): {0, .5, 1, 1.5, 2, 3, 4, 6}
uint8_t f32_to_e2m1(float value);   // round-to-nearest-even, saturating to +-6

}  // namespace flux2
