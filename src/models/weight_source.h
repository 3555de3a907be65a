#pragma once
// Where a model's weights come from: a checkpoint on disk (TransformerCheckpoint) or generated in memory
// (synthetic benchmark models). Models declare each weight with its expected shape; the source binds it.
#include <string>

#include "quant/linear_weight.h"
#include "tensor/tensor.h"

namespace flux2 {

class WeightSource {
public:
    virtual ~WeightSource() = default;
    virtual bool has(const std::string& name) const = 0;
    virtual Shape shape_of(const std::string& name) const = 0;
    virtual LinearWeight take_linear(const std::string& module, int64_t out_features, int64_t in_features) = 0;
    virtual Tensor take_f32(const std::string& name, const Shape& expected) = 0;
    virtual void finish() const = 0;
    virtual std::string describe() const = 0;
};

}  // namespace flux2
