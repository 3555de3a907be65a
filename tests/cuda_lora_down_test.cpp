// The LoRA down-projection on E4M3 activations (lora_down_fp8.cu): its split plan (host code, also without a GPU),
// and the kernels against plain loops on the host: t = s_x s_a
// (xq aq^T) summed over the splits of k, in BF16 for a branch beside its GEMM, and t's codes beside x's for a branch
// carried in it (with tokens whose scale must grow). Shapes cover one token, rows and k that are not whole tiles,
// ranks below, at and above one tile of t, A with fewer rows than the tile, rows wider than k, and many splits.
#include "cuda_test_util.h"
#include "quant/lora_fp8_tail.h"
#ifdef FLUX2_HAVE_CUDA
#include "backend/cuda/launchers.h"
#endif

namespace flux2::test {
namespace {

#ifdef FLUX2_HAVE_CUDA
// The split's sizing is host code: it runs without a GPU. Every chunk of k belongs to exactly one split, none is
// empty, the tile covers the rank, and a few tokens get more splits than many.
TEST(LoraDownSplitPlan, CoversKAndTheRank) {
    for (int64_t rows : {0, 1, 37, 512, 4608, 20000}) {
        for (int64_t k : {16, 144, 1040, 6144, 24576}) {
            for (int64_t r : {1, 16, 32, 33, 48, 64, 100, 192}) {
                const cuda::LoraDownSplit s = cuda::plan_lora_down_fp8(rows, k, r, 132);
                const int64_t chunks = (k + 127) / 128;
                EXPECT_GE(s.r_tot, r);
                EXPECT_EQ(s.r_tot, cuda::lora_down_fp8_columns(r)) << "A is prepared with this many rows";
                EXPECT_EQ(s.r_tot % (8 * s.nb), 0);
                EXPECT_EQ(s.nb, r <= 32 ? 4 : r <= 48 ? 6 : 8);
                EXPECT_GE(s.splits, 1);
                EXPECT_GE(s.splits * s.chunks_per_split, chunks) << rows << " " << k << " " << r;
                EXPECT_LT((s.splits - 1) * s.chunks_per_split, chunks) << "an empty split: " << rows << " " << k;
            }
        }
    }
    EXPECT_GT(cuda::plan_lora_down_fp8(64, 24576, 32, 132).splits,
              cuda::plan_lora_down_fp8(4608, 24576, 32, 132).splits);
    EXPECT_THROW(cuda::plan_lora_down_fp8(8, 100, 32, 132), Error) << "k not a multiple of 16";
}

class CudaLoraDown : public CudaTest {
protected:
    std::string precision() const override { return "fp8"; }

    // Random finite E4M3 codes (NaN bytes 0x7F/0xFF excluded), a tenth of them zero.
    std::vector<uint8_t> codes(size_t n) {
        std::uniform_int_distribution<int> byte(0, 255), zero(0, 9);
        std::vector<uint8_t> v(n);
        for (auto& c : v) {
            do c = static_cast<uint8_t>(byte(rng));
            while ((c & 0x7F) == 0x7F);
            if (zero(rng) == 0) c = 0;
        }
        return v;
    }
    std::vector<float> scales(size_t n) {
        std::uniform_real_distribution<float> u(0.5f, 2.0f);
        std::vector<float> v(n);
        for (auto& s : v) s = u(rng) / 448.0f;
        return v;
    }
    template <typename T>
    Tensor to_device(const std::vector<T>& v, DType dtype) {
        Tensor t = cuda->empty({static_cast<int64_t>(v.size())}, dtype);
        EXPECT_EQ(cudaMemcpy(t.raw(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
        return t;
    }
    // A's codes as the kernel takes them: decoded to FP16 on the device.
    Tensor a_f16(const std::vector<uint8_t>& codes) {
        Tensor q = to_device(codes, DType::U8), h = cuda->empty({static_cast<int64_t>(codes.size())}, DType::F16);
        cuda::launch_e4m3_to_f16(static_cast<const uint8_t*>(q.raw()), static_cast<__half*>(h.raw()),
                                 static_cast<int64_t>(codes.size()), cuda->stream());
        cuda->synchronize();
        return h;
    }
    template <typename T>
    std::vector<T> to_host(const Tensor& t, size_t n) {
        std::vector<T> v(n);
        EXPECT_EQ(cudaMemcpy(v.data(), t.raw(), n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
        return v;
    }
};

struct Shape3 {
    int64_t m, k, ld, rank, a_rows;
};

// The exact t of the codes (double), row m, column c.
double exact_t(const std::vector<uint8_t>& x, int64_t ld, const std::vector<float>& sx, const std::vector<uint8_t>& a,
               const std::vector<float>& sa, int64_t k, int64_t m, int64_t c) {
    double sum = 0.0;
    for (int64_t i = 0; i < k; ++i) sum += double(e4m3_to_f32(x[m * ld + i])) * e4m3_to_f32(a[c * k + i]);
    return sum * sx[m] * sa[c];
}

TEST_F(CudaLoraDown, Bf16MatchesTheCodesProduct) {
    for (const Shape3 s : {Shape3{1, 16, 16, 5, 16}, Shape3{37, 144, 160, 16, 16}, Shape3{130, 1040, 1104, 48, 64},
                           Shape3{300, 6144, 6208, 100, 128}, Shape3{5, 6144, 6144, 32, 32}}) {
        const std::vector<uint8_t> x = codes(s.m * s.ld), a = codes(s.a_rows * s.k);
        std::vector<uint8_t> a_used = a;  // rows past the rank are zero, as prepared (lora_branch.cpp)
        std::fill(a_used.begin() + s.rank * s.k, a_used.end(), uint8_t{0});
        const std::vector<float> sx = scales(s.m), sa = scales(s.a_rows);
        Tensor dx = to_device(x, DType::U8), da = a_f16(a_used), dsx = to_device(sx, DType::F32),
               dsa = to_device(sa, DType::F32);
        const cuda::LoraDownSplit split = cuda::plan_lora_down_fp8(s.m, s.k, s.rank, 132);
        Tensor partials = cuda->empty({split.splits * s.m * split.r_tot}, DType::F32);
        Tensor t = cuda->empty({s.m * s.a_rows}, DType::BF16);
        cuda::launch_lora_down_fp8(static_cast<const uint8_t*>(dx.raw()), s.ld, static_cast<const __half*>(da.raw()),
                                   s.a_rows, s.m, s.k, split, static_cast<float*>(partials.raw()), cuda->stream());
        cuda::launch_lora_down_bf16(static_cast<const float*>(partials.raw()), split,
                                    static_cast<const float*>(dsx.raw()), static_cast<const float*>(dsa.raw()),
                                    static_cast<cuda::bf16*>(t.raw()), s.m, s.a_rows, cuda->stream());
        cuda->synchronize();
        const std::vector<uint16_t> got = to_host<uint16_t>(t, s.m * s.a_rows);
        int bad = 0;
        for (int64_t m = 0; m < s.m; ++m) {
            double norm = 0.0;  // the row's scale of error: fp32 sums of k products
            for (int64_t c = 0; c < s.rank; ++c)
                norm = std::max(norm, std::fabs(exact_t(x, s.ld, sx, a_used, sa, s.k, m, c)));
            for (int64_t c = 0; c < s.a_rows; ++c) {
                const double want = exact_t(x, s.ld, sx, a_used, sa, s.k, m, c);
                const double have = bf16_to_f32(got[m * s.a_rows + c]);
                // BF16 rounding of the result plus fp32 accumulation
                bad += std::fabs(have - want) > std::fabs(want) * 4e-3 + norm * 1e-5;
            }
        }
        EXPECT_EQ(bad, 0) << "m " << s.m << " k " << s.k << " rank " << s.rank << " splits " << split.splits;
    }
    EXPECT_GT(cuda::plan_lora_down_fp8(5, 6144, 32, 132).splits, 1) << "a few tokens split k";
}

// Carried: rows of k codes then a_rows more; every other token is aligned with A, so its branch is large next to its
// codes, its scale grows and its codes are rescaled; the others keep theirs.
TEST_F(CudaLoraDown, TailCodesMatchTheHostEmulation) {
    for (const Shape3 s :
         {Shape3{3, 128, 192, 20, 64}, Shape3{77, 3072, 3136, 48, 64}, Shape3{200, 1040, 1168, 90, 128}}) {
        std::vector<uint8_t> x = codes(s.m * s.ld), a = codes(s.a_rows * s.k);
        std::fill(a.begin() + s.rank * s.k, a.end(), uint8_t{0});
        // Even tokens hold A's first row: their t is about sqrt(k) times an odd token's.
        for (int64_t m = 0; m < s.m; m += 2) std::copy_n(a.begin(), s.k, x.begin() + m * s.ld);
        const std::vector<float> sx = scales(s.m), sa = scales(s.a_rows);
        // Factors under which every odd token's codes fit with room to spare (t's codes do not depend on s_x).
        std::vector<float> factor(s.a_rows, 1.0f);
        std::uniform_real_distribution<float> u(0.25f, 0.5f);
        for (int64_t c = 0; c < s.a_rows; ++c) {
            double largest = 0.0;
            for (int64_t m = 1; m < s.m; m += 2)
                largest = std::max(largest, std::fabs(exact_t(x, s.ld, sx, a, sa, s.k, m, c)) / sx[m]);
            if (largest > 0.0) factor[c] = static_cast<float>(u(rng) * 448.0 / largest);
        }
        Tensor dx = to_device(x, DType::U8), da = a_f16(a), dsx = to_device(sx, DType::F32),
               dsa = to_device(sa, DType::F32), df = to_device(factor, DType::F32);
        const cuda::LoraDownSplit split = cuda::plan_lora_down_fp8(s.m, s.k, s.rank, 132);
        Tensor partials = cuda->empty({split.splits * s.m * split.r_tot}, DType::F32);
        cuda::launch_lora_down_fp8(static_cast<const uint8_t*>(dx.raw()), s.ld, static_cast<const __half*>(da.raw()),
                                   s.a_rows, s.m, s.k, split, static_cast<float*>(partials.raw()), cuda->stream());
        cuda::launch_lora_tail_fp8(static_cast<const float*>(partials.raw()), split,
                                   static_cast<const float*>(dsa.raw()), static_cast<const float*>(df.raw()),
                                   {static_cast<uint8_t*>(dx.raw()), static_cast<float*>(dsx.raw()), s.ld}, s.m, s.k,
                                   s.a_rows, cuda->stream());
        cuda->synchronize();
        const std::vector<uint8_t> got = to_host<uint8_t>(dx, x.size());
        const std::vector<float> got_sx = to_host<float>(dsx, s.m);
        int bad_scale = 0, bad_x = 0, bad_t = 0, grown = 0;
        for (int64_t m = 0; m < s.m; ++m) {
            std::vector<double> t(s.a_rows);
            double largest = 0.0;
            for (int64_t c = 0; c < s.a_rows; ++c) {
                t[c] = exact_t(x, s.ld, sx, a, sa, s.k, m, c);
                largest = std::max(largest, std::fabs(t[c] * factor[c]));
            }
            const float p = lora_fp8_tail_rescale(static_cast<float>(largest), sx[m]);
            grown += p > 1.0f;
            bad_scale += got_sx[m] != sx[m] * p;
            for (int64_t i = 0; i < s.k; ++i)
                bad_x += got[m * s.ld + i] != f32_to_e4m3(e4m3_to_f32(x[m * s.ld + i]) / p);
            for (int64_t c = 0; c < s.a_rows; ++c) {
                const double want = t[c] * factor[c] / (double(sx[m]) * p);
                const double have = e4m3_to_f32(got[m * s.ld + s.k + c]);
                // one E4M3 step (2^-3 relative) at most: the fp32 sum may round a tie the other way
                bad_t += std::fabs(have - want) > std::fabs(want) * 0.07 + 1e-3;
            }
        }
        EXPECT_GT(grown, 0) << "no token's scale grew: the case does not test rescaling";
        EXPECT_LT(grown, s.m) << "every token's scale grew";
        EXPECT_EQ(bad_scale, 0) << "m " << s.m << " k " << s.k;
        EXPECT_EQ(bad_x, 0) << "m " << s.m << " k " << s.k;
        EXPECT_EQ(bad_t, 0) << "m " << s.m << " k " << s.k;
    }
}
#endif

}  // namespace
}  // namespace flux2::test
