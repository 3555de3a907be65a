#include "backend/op_shapes.h"

#include "core/error.h"

namespace flux2 {

Conv2dShape conv2d_shape(const Tensor& x, const Tensor& weight, const Tensor& bias, int stride, int padding) {
    check(x.ndim() == 4 && weight.ndim() == 4 && x.dim(1) == weight.dim(1), "conv2d: input ", shape_str(x.shape()),
          " and weight ", shape_str(weight.shape()), " do not form [B, Cin, H, W] * [Cout, Cin, kh, kw]");
    Conv2dShape s{};
    s.B = x.dim(0), s.cin = x.dim(1), s.H = x.dim(2), s.W = x.dim(3);
    s.cout = weight.dim(0), s.kh = weight.dim(2), s.kw = weight.dim(3);
    check(bias.numel() == s.cout, "conv2d: bias has ", bias.numel(), " elements, expected ", s.cout);
    check(stride >= 1 && padding >= 0, "conv2d: stride ", stride, " / padding ", padding, " out of range");
    s.Hp = s.H + 2 * padding, s.Wp = s.W + 2 * padding;
    check(s.Hp >= s.kh && s.Wp >= s.kw, "conv2d: kernel ", s.kh, "x", s.kw, " larger than the padded input ", s.Hp,
          "x", s.Wp);
    s.Ho = (s.Hp - s.kh) / stride + 1, s.Wo = (s.Wp - s.kw) / stride + 1;
    s.P = s.Ho * s.Wo, s.K = s.cin * s.kh * s.kw;
    return s;
}

Shape pad2d_shape(const Tensor& x, int left, int right, int top, int bottom) {
    check(x.ndim() >= 2 && left >= 0 && right >= 0 && top >= 0 && bottom >= 0, "pad2d: cannot pad ",
          shape_str(x.shape()), " by (", left, ", ", right, ", ", top, ", ", bottom, ")");
    Shape shape = x.shape();
    shape[shape.size() - 2] += top + bottom;
    shape.back() += left + right;
    return shape;
}

CausalAttentionShape causal_attention_shape(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_mask) {
    check(q.ndim() == 4 && k.ndim() == 4 && k.shape() == v.shape(),
          "causal_attention: expected q [B, L, H, Dh] and k, v [B, L, Hkv, Dh], got ", shape_str(q.shape()), ", ",
          shape_str(k.shape()), ", ", shape_str(v.shape()));
    const CausalAttentionShape s{q.dim(0), q.dim(1), q.dim(2), q.dim(3), k.dim(2)};
    check(k.dim(0) == s.B && k.dim(1) == s.L && k.dim(3) == s.Dh && s.Hkv > 0 && s.H % s.Hkv == 0,
          "causal_attention: k/v ", shape_str(k.shape()), " do not match q ", shape_str(q.shape()),
          " (same B, L, Dh; query heads a multiple of KV heads)");
    check(key_mask.shape() == Shape{s.B, s.L}, "causal_attention: key_mask must be [", s.B, ", ", s.L, "], got ",
          shape_str(key_mask.shape()));
    return s;
}

RopeHalfShape rope_half_shape(const Tensor& x, const Tensor& cos, const Tensor& sin) {
    check(x.ndim() == 4, "rope_half: expected x [B, L, H, Dh], got ", shape_str(x.shape()));
    RopeHalfShape s{x.dim(0), x.dim(1), x.dim(2), x.dim(3), cos.ndim() == 3};
    check(s.Dh % 2 == 0, "rope_half: head dim ", s.Dh, " is odd");
    const Shape table = s.per_sample ? Shape{s.B, s.L, s.Dh} : Shape{s.L, s.Dh};
    check(cos.shape() == table && sin.shape() == table, "rope_half: cos/sin must be [", s.L, ", ", s.Dh, "] or [",
          s.B, ", ", s.L, ", ", s.Dh, "], got ", shape_str(cos.shape()), " / ", shape_str(sin.shape()));
    return s;
}

}  // namespace flux2
