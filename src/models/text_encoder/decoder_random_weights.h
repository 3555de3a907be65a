#pragma once
// In-memory random text-encoder weights at any size (`flux2 bench --text-encoder`: Mistral-Small's 24B without a
// 48 GB file): every decoder linear in one format, as a checkpoint of that kind holds it (BF16; FP8 with a
// per-tensor scale; NVFP4), so the encoder runs the path such a file takes. Norm gains near 1, the embedding table
// small, under DecoderCheckpoint's internal names. Deterministic for a seed; the embeddings mean nothing.
#include <cstdint>
#include <string>

#include "models/weight_source.h"

namespace flux2 {

class RandomDecoderWeights : public WeightSource {
public:
    RandomDecoderWeights(WeightFormat linears, uint64_t seed) : format_(linears), seed_(seed) {}

    bool has(const std::string&) const override { return true; }
    Shape shape_of(const std::string& name) const override;
    LinearWeight take_linear(const std::string& module, int64_t out_features, int64_t in_features) override;
    Tensor take_f32(const std::string& name, const Shape& expected) override;
    void finish() const override {}
    std::string describe() const override;

private:
    WeightFormat format_;
    uint64_t seed_;
    int64_t linears_ = 0;
};

}  // namespace flux2
