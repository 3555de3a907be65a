#include "pipeline/image_ops.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace flux2 {

namespace {

// Pillow keeps 8 bits of result plus 2 bits of headroom (negative lobes, sums above 1) in a 32-bit accumulator.
constexpr int kPrecisionBits = 32 - 8 - 2;
constexpr double kLanczosSupport = 3.0;

double sinc(double x) {
    if (x == 0.0) return 1.0;
    x *= std::numbers::pi;
    return std::sin(x) / x;
}

double lanczos3(double x) { return (x >= -3.0 && x < 3.0) ? sinc(x) * sinc(x / 3.0) : 0.0; }

// Taps of one output position: the first input index and its fixed-point weights.
struct Taps {
    int first = 0;
    std::vector<int32_t> weights;
};

// Pillow's coefficient precomputation for a full-image box, then its rounding to fixed point.
std::vector<Taps> lanczos_taps(int in_size, int out_size) {
    const double scale = static_cast<double>(in_size) / out_size;
    const double filter_scale = std::max(scale, 1.0);
    const double support = kLanczosSupport * filter_scale;
    const double inv_filter_scale = 1.0 / filter_scale;  // Pillow multiplies by the reciprocal
    std::vector<Taps> taps(out_size);
    for (int xx = 0; xx < out_size; ++xx) {
        const double center = (xx + 0.5) * scale;
        // (int) truncates toward zero like Pillow's C casts; negatives are clamped just after.
        int xmin = static_cast<int>(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = static_cast<int>(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        std::vector<double> k(std::max(xmax - xmin, 0));
        double sum = 0.0;
        for (size_t x = 0; x < k.size(); ++x) {
            k[x] = lanczos3((static_cast<double>(x) + xmin - center + 0.5) * inv_filter_scale);
            sum += k[x];
        }
        taps[xx].first = xmin;
        for (double w : k) {
            if (sum != 0.0) w /= sum;
            const double fixed = w * (1 << kPrecisionBits);
            taps[xx].weights.push_back(static_cast<int32_t>(w < 0 ? fixed - 0.5 : fixed + 0.5));
        }
    }
    return taps;
}

uint8_t clip8(int64_t acc) {
    const int64_t v = acc >> kPrecisionBits;
    return static_cast<uint8_t>(std::clamp<int64_t>(v, 0, 255));
}

// One separable pass: `stride` steps from one tap to the next in the source (3 horizontally, 3*width vertically).
void resample_pass(const uint8_t* src, uint8_t* dst, int out_lines, int out_positions, const std::vector<Taps>& taps,
                   int64_t src_line_stride, int64_t src_tap_stride, int64_t dst_line_stride, int64_t dst_pos_stride) {
    for (int line = 0; line < out_lines; ++line)
        for (int pos = 0; pos < out_positions; ++pos) {
            const Taps& t = taps[pos];
            const uint8_t* in = src + line * src_line_stride + t.first * src_tap_stride;
            for (int c = 0; c < 3; ++c) {
                int64_t acc = int64_t{1} << (kPrecisionBits - 1);
                for (size_t k = 0; k < t.weights.size(); ++k) acc += in[k * src_tap_stride + c] * int64_t{t.weights[k]};
                dst[line * dst_line_stride + pos * dst_pos_stride + c] = clip8(acc);
            }
        }
}

}  // namespace

Image resize_lanczos(const Image& src, int width, int height) {
    check(src.width > 0 && src.height > 0, "resize: empty source image");
    Image out = Image::blank(width, height);
    Image tmp = src;
    if (width != src.width) {
        Image horizontal = Image::blank(width, src.height);
        resample_pass(src.rgb.data(), horizontal.rgb.data(), src.height, width, lanczos_taps(src.width, width),
                      int64_t{src.width} * 3, 3, int64_t{width} * 3, 3);
        tmp = std::move(horizontal);
    }
    if (height == src.height) return tmp;
    resample_pass(tmp.rgb.data(), out.rgb.data(), width, height, lanczos_taps(src.height, height), 3,
                  int64_t{width} * 3, 3, int64_t{width} * 3);
    return out;
}

Image center_crop(const Image& src, int width, int height) {
    check(width > 0 && height > 0 && width <= src.width && height <= src.height, "center_crop: cannot crop ", src.width,
          "x", src.height, " to ", width, "x", height);
    const int left = (src.width - width) / 2, top = (src.height - height) / 2;
    Image out = Image::blank(width, height);
    for (int y = 0; y < height; ++y) std::copy_n(src.pixel(left, top + y), size_t{3} * width, out.pixel(0, y));
    return out;
}

Tensor preprocess_reference_image(const Image& image) {
    const int w0 = image.width, h0 = image.height;
    check(w0 >= 64 && h0 >= 64, "reference image too small: ", w0, "x", h0, "; both sides must be at least 64 pixels");
    const double aspect = std::max(static_cast<double>(w0) / h0, static_cast<double>(h0) / w0);
    check(aspect <= 8.0, "reference image aspect ratio too extreme: ", w0, "x", h0, " (at most 8:1)");
    Image img = image;
    constexpr int64_t kMaxArea = 1024 * 1024;
    if (int64_t{w0} * h0 > kMaxArea) {
        const double scale = std::sqrt(static_cast<double>(kMaxArea) / (static_cast<double>(w0) * h0));
        img = resize_lanczos(image, static_cast<int>(w0 * scale), static_cast<int>(h0 * scale));
    }
    const int w = img.width / 16 * 16, h = img.height / 16 * 16;
    img = center_crop(img, w, h);
    Tensor out = Tensor::zeros({1, 3, h, w});
    float* dst = out.f32();
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int c = 0; c < 3; ++c) {
                const float unit = static_cast<float>(img.pixel(x, y)[c]) / 255.0f;
                dst[(static_cast<int64_t>(c) * h + y) * w + x] = 2.0f * unit - 1.0f;
            }
    return out;
}

Tensor postprocess_to_unit(const Tensor& decoded) {
    check(decoded.ndim() == 4 && decoded.dim(1) == 3, "postprocess: expected decoded images [B, 3, H, W], got ",
          shape_str(decoded.shape()));
    const int64_t B = decoded.dim(0), H = decoded.dim(2), W = decoded.dim(3);
    Tensor out = Tensor::zeros({B, H, W, 3});
    const float* src = decoded.f32();
    float* dst = out.f32();
    for (int64_t b = 0; b < B; ++b)
        for (int64_t c = 0; c < 3; ++c)
            for (int64_t p = 0; p < H * W; ++p) {
                const float half = src[(b * 3 + c) * H * W + p] * 0.5f;
                dst[(b * H * W + p) * 3 + c] = std::clamp(half + 0.5f, 0.0f, 1.0f);
            }
    return out;
}

Image unit_tensor_to_image(const Tensor& unit, int index) {
    check(unit.ndim() == 4 && unit.dim(3) == 3 && index >= 0 && index < unit.dim(0), "unit_tensor_to_image: image ",
          index, " of a tensor ", shape_str(unit.shape()), " (expected [B, H, W, 3])");
    Image img = Image::blank(static_cast<int>(unit.dim(2)), static_cast<int>(unit.dim(1)));
    const float* src = unit.f32() + static_cast<int64_t>(index) * img.width * img.height * 3;
    for (size_t i = 0; i < img.rgb.size(); ++i) {
        const float v = std::nearbyint(src[i] * 255.0f);  // default rounding mode: half to even, like numpy round
        check(v >= 0.0f && v <= 255.0f, "unit_tensor_to_image: value ", src[i], " outside [0, 1]");
        img.rgb[i] = static_cast<uint8_t>(v);
    }
    return img;
}

}  // namespace flux2
