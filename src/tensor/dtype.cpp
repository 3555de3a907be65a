#include "tensor/dtype.h"

#include <array>
#include <utility>

namespace flux2 {

namespace {
struct DTypeInfo {
    DType dtype;
    const char* name;
    size_t size;
};
constexpr std::array<DTypeInfo, 12> kTable{{
    {DType::BF16, "BF16", 2},
    {DType::F16, "F16", 2},
    {DType::F32, "F32", 4},
    {DType::F64, "F64", 8},
    {DType::I8, "I8", 1},
    {DType::I16, "I16", 2},
    {DType::I32, "I32", 4},
    {DType::I64, "I64", 8},
    {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1},
    {DType::F8_E4M3, "F8_E4M3", 1},
    {DType::F8_E5M2, "F8_E5M2", 1},
}};
const DTypeInfo& info(DType dtype) { return kTable[static_cast<size_t>(dtype)]; }
}  // namespace

size_t dtype_size(DType dtype) { return info(dtype).size; }
const char* dtype_name(DType dtype) { return info(dtype).name; }

bool parse_dtype(const std::string& name, DType* out) {
    for (const auto& e : kTable) {
        if (name == e.name) {
            *out = e.dtype;
            return true;
        }
    }
    return false;
}

bool is_float_dtype(DType dtype) {
    return dtype == DType::BF16 || dtype == DType::F16 || dtype == DType::F32 || dtype == DType::F64;
}

}  // namespace flux2
