#pragma once
// Readers for the diffusers golden files shared by the CPU, CUDA and CLI tests.
#include <string>

#include "core/error.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "models/flux2/flux2_transformer.h"
#include "models/text_encoder/text_encoder.h"
#include "test_util.h"

namespace flux2::test {

inline const TensorInfo& golden_tensor(const SafetensorsFile& g, const std::string& name) {
    const TensorInfo* t = g.find(name);
    if (!t) fail(g.path(), ": golden tensor ", name, " missing");
    return *t;
}

// caseN.{hidden_states, encoder_hidden_states, timestep, guidance, img_ids, txt_ids} of tiny-*-golden.
inline Flux2Inputs golden_transformer_inputs(const SafetensorsFile& g, const std::string& prefix, bool guidance) {
    Flux2Inputs in;
    in.hidden_states = load_f32(golden_tensor(g, prefix + "hidden_states"));
    in.encoder_hidden_states = load_f32(golden_tensor(g, prefix + "encoder_hidden_states"));
    in.timestep = read_f32(golden_tensor(g, prefix + "timestep"));
    if (guidance) in.guidance = read_f32(golden_tensor(g, prefix + "guidance"));
    in.img_ids = load_f32(golden_tensor(g, prefix + "img_ids"));
    in.txt_ids = load_f32(golden_tensor(g, prefix + "txt_ids"));
    return in;
}

// case0 of tiny-klein-golden without guidance: the inputs the GPU and contract tests run the tiny klein on.
inline Flux2Inputs tiny_klein_case0() {
    auto g = SafetensorsFile::open(data_path("tiny-klein-golden.safetensors"));
    return golden_transformer_inputs(*g, "case0.", false);
}

// <family>.input_ids / .attention_mask of text-encoder-golden as a token batch.
inline TokenBatch golden_tokens(const SafetensorsFile& g, const std::string& family) {
    const TensorInfo& ids = golden_tensor(g, family + ".input_ids");
    const TensorInfo& mask = golden_tensor(g, family + ".attention_mask");
    TokenBatch t;
    t.batch = ids.shape[0];
    t.length = ids.shape[1];
    for (float v : read_f32(ids)) t.ids.push_back(static_cast<int64_t>(v));
    for (float v : read_f32(mask)) t.attention_mask.push_back(static_cast<int64_t>(v));
    return t;
}

// An [H, W, 3] tensor of byte values (pipeline-golden's dev_edit.ref_uint8, read as floats) as an RGB8 image.
inline Image image_from_hwc_bytes(const Tensor& hwc) {
    Image img = Image::blank(static_cast<int>(hwc.dim(1)), static_cast<int>(hwc.dim(0)));
    for (int64_t i = 0; i < hwc.numel(); ++i) img.rgb[i] = static_cast<uint8_t>(hwc.f32()[i]);
    return img;
}

}  // namespace flux2::test
