#include "quant/float_codecs.h"

#include <bit>
#include <cmath>
#include <limits>

namespace flux2 {

namespace {

// A small binary float format: `mbits` stored mantissa bits, smallest normal exponent `emin` (unbiased).
// Codes are the magnitude bits only (no sign); subnormals and normals are encoded uniformly below.
struct MiniFormat {
    int mbits;
    int emin;
};

constexpr MiniFormat kF16{10, -14};
constexpr MiniFormat kE4m3{3, -6};
constexpr MiniFormat kE2m1{1, 0};

// Magnitude code of |value| (finite, not NaN) rounded to nearest, ties to even, on the grid of `fmt`.
// The caller decides what a code past the format's largest finite value means (saturate or infinity).
// Works on the bits so that the result does not depend on the floating-point environment.
uint32_t encode_magnitude(float value, MiniFormat fmt) {
    const uint32_t bits = std::bit_cast<uint32_t>(value) & 0x7FFFFFFFu;
    const int field = static_cast<int>(bits >> 23);
    if (bits == 0) return 0;
    // value = sig * 2^(exp - 23) with sig the 24-bit significand (f32 subnormals have no implicit one).
    const int exp = field == 0 ? -126 : field - 127;
    const uint32_t sig = field == 0 ? (bits & 0x7FFFFFu) : ((bits & 0x7FFFFFu) | 0x800000u);
    // Target quantum: 2^(max(exp, emin) - mbits). Count how many quanta `value` holds, rounding the rest.
    const int top = exp > fmt.emin ? exp : fmt.emin;
    const int shift = 23 + top - fmt.mbits - exp;  // >= 23 - mbits > 0
    if (shift >= 25) return 0;                     // sig < 2^24 is below half a quantum
    uint32_t q = sig >> shift;
    const uint32_t rem = sig & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;
    // Subnormal and normal codes line up: a carry out of the mantissa simply increments the exponent field.
    // Exponents far above any target format are clamped so the shift cannot overflow; they saturate anyway.
    const int exp_field = (top - fmt.emin) < 64 ? (top - fmt.emin) : 64;
    return (static_cast<uint32_t>(exp_field) << fmt.mbits) + q;
}

// Value of a magnitude code of `fmt` (no specials).
float decode_magnitude(uint32_t code, MiniFormat fmt) {
    const uint32_t mant_mask = (1u << fmt.mbits) - 1u;
    const int field = static_cast<int>(code >> fmt.mbits);
    const uint32_t mant = code & mant_mask;
    if (field == 0) return std::ldexp(static_cast<float>(mant), fmt.emin - fmt.mbits);
    return std::ldexp(static_cast<float>(mant | (1u << fmt.mbits)), fmt.emin + field - 1 - fmt.mbits);
}

bool sign_of(float value) { return (std::bit_cast<uint32_t>(value) >> 31) != 0; }

}  // namespace

float bf16_to_f32(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }

uint16_t f32_to_bf16(float value) {
    const uint32_t bits = std::bit_cast<uint32_t>(value);
    // Keep NaN a NaN: plain rounding could carry a payload-only NaN into infinity.
    if (std::isnan(value)) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
    // bf16 shares f32's exponent, so RNE is an add on the bits; overflow correctly carries into infinity.
    const uint32_t rounded = bits + 0x7FFFu + ((bits >> 16) & 1u);
    return static_cast<uint16_t>(rounded >> 16);
}

float f16_to_f32(uint16_t bits) {
    const float sign = (bits & 0x8000u) ? -1.0f : 1.0f;
    const uint32_t mag = bits & 0x7FFFu;
    if ((mag >> 10) == 0x1F) {
        const float special =
            (mag & 0x3FFu) ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
        return std::copysign(special, sign);
    }
    return sign * decode_magnitude(mag, kF16);
}

uint16_t f32_to_f16(float value) {
    const uint16_t sign = sign_of(value) ? 0x8000u : 0u;
    if (std::isnan(value)) return static_cast<uint16_t>(sign | 0x7E00u);
    if (std::isinf(value)) return static_cast<uint16_t>(sign | 0x7C00u);
    uint32_t code = encode_magnitude(value, kF16);
    if (code > 0x7C00u) code = 0x7C00u;  // anything that rounds past 65504 is infinity
    return static_cast<uint16_t>(sign | code);
}

float e4m3_to_f32(uint8_t bits) {
    const uint32_t mag = bits & 0x7Fu;
    if (mag == 0x7Fu) return std::numeric_limits<float>::quiet_NaN();
    const float v = decode_magnitude(mag, kE4m3);
    return (bits & 0x80u) ? -v : v;
}

uint8_t f32_to_e4m3(float value) {
    if (std::isnan(value)) return 0x7F;
    const uint8_t sign = sign_of(value) ? 0x80u : 0u;
    // The fn variant has no infinity; 0x7E (448) is the largest finite code and everything beyond saturates.
    uint32_t code = std::isinf(value) ? 0x7Eu : encode_magnitude(value, kE4m3);
    if (code > 0x7Eu) code = 0x7Eu;
    return static_cast<uint8_t>(sign | code);
}

// E5M2 is the top byte of an IEEE half.
float e5m2_to_f32(uint8_t bits) { return f16_to_f32(static_cast<uint16_t>(bits) << 8); }

float e2m1_to_f32(uint8_t code) {
    const float v = decode_magnitude(code & 0x7u, kE2m1);
    return (code & 0x8u) ? -v : v;
}

uint8_t f32_to_e2m1(float value) {
    const uint8_t sign = sign_of(value) ? 0x8u : 0u;
    // E2M1 has no NaN or infinity: both saturate (NaN keeps its sign bit), like every out-of-range value.
    uint32_t code = (std::isnan(value) || std::isinf(value)) ? 0x7u : encode_magnitude(value, kE2m1);
    if (code > 0x7u) code = 0x7u;
    return static_cast<uint8_t>(sign | code);
}

}  // namespace flux2
