// The demo model's training script writes its NVFP4-mixed transformer with a Python quantizer
// (tools/demo_model/train.py quantize_nvfp4). Its bytes must equal flux2's reference quantizer's, so that the file
// means what the loader reads: tests/data/demo/nvfp4_python.safetensors holds weights and the script's codes, block
// scales (swizzled) and tensor scales (train.py --nvfp4-selftest).
#include <gtest/gtest.h>

#include <cstring>

#include "io/safetensors.h"
#include "quant/nvfp4.h"
#include "quant/nvfp4_quantizer.h"
#include "test_util.h"

namespace flux2 {
namespace {

TEST(DemoNvfp4, PythonQuantizerMatchesTheReferenceBytes) {
    auto f = SafetensorsFile::open(test::data_path("demo/nvfp4_python.safetensors"));
    int cases = 0;
    for (const char* name : {"w0", "w1", "w2"}) {
        SCOPED_TRACE(name);
        const TensorInfo* w = f->find(name);
        ASSERT_NE(w, nullptr);
        const int64_t out = w->shape[0], in = w->shape[1];
        const Tensor wf = load_f32(*w);
        const Nvfp4Weight q = quantize_nvfp4_weight(wf.f32(), out, in);

        const TensorInfo* codes = f->find(std::string(name) + ".codes");
        const TensorInfo* scales = f->find(std::string(name) + ".scales");
        const TensorInfo* ws2 = f->find(std::string(name) + ".weight_scale_2");
        ASSERT_TRUE(codes && scales && ws2);
        ASSERT_EQ(codes->nbytes, q.codes.size());
        EXPECT_EQ(std::memcmp(codes->data, q.codes.data(), q.codes.size()), 0) << "E2M1 codes differ";

        const auto swizzled = swizzle_scales(q.scales.data(), out, in / kNvfp4Block);
        EXPECT_EQ(scales->shape, (Shape{round_up(out, 128), round_up(in / kNvfp4Block, 4)}));
        ASSERT_EQ(scales->nbytes, swizzled.size());
        EXPECT_EQ(std::memcmp(scales->data, swizzled.data(), swizzled.size()), 0) << "block scales differ";

        float py_ws2 = 0;
        ASSERT_EQ(ws2->nbytes, sizeof(float));
        std::memcpy(&py_ws2, ws2->data, sizeof(float));
        EXPECT_EQ(py_ws2, q.weight_scale_2);
        ++cases;
    }
    EXPECT_EQ(cases, 3);
}

}  // namespace
}  // namespace flux2
