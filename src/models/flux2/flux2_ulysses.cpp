#include "models/flux2/flux2_ulysses.h"

#include <algorithm>

#include "core/error.h"
#include "models/flux2/flux2_transformer.h"

namespace flux2 {

Shard shard_of(int64_t n, int ranks, int r) {
    const int64_t base = n / ranks, extra = n % ranks;
    return {r * base + std::min<int64_t>(r, extra), base + (r < extra ? 1 : 0)};
}

UlyssesAttention::UlyssesAttention(std::shared_ptr<Communicator> comm, int64_t heads, int64_t head_dim)
    : comm_(std::move(comm)), heads_(heads), head_dim_(head_dim) {
    check(heads_ % comm_->size() == 0,
          "Ulysses sequence parallelism splits the attention heads among the GPUs: ", comm_->size(),
          " GPUs do not divide this model's ", heads_, " heads (use a divisor of ", heads_, ")");
}

namespace {
// Rows [s.begin, s.begin + s.count) of a host [L, C] tensor.
Tensor host_rows(const Tensor& t, Shard s) {
    const int64_t C = t.dim(1);
    std::vector<float> v(t.f32() + s.begin * C, t.f32() + (s.begin + s.count) * C);
    return Tensor::from_f32({s.count, C}, std::move(v));
}
// Tokens (axis 1) [s.begin, s.begin + s.count) of a host [B, L, C] tensor.
Tensor host_tokens(const Tensor& t, Shard s) {
    const int64_t B = t.dim(0), L = t.dim(1), C = t.dim(2);
    Tensor out = Tensor::zeros({B, s.count, C});
    for (int64_t b = 0; b < B; ++b)
        std::copy_n(t.f32() + (b * L + s.begin) * C, s.count * C, out.f32() + b * s.count * C);
    return out;
}
}  // namespace

Flux2Inputs UlyssesAttention::shard_inputs(const Flux2Inputs& in, Backend& be) {
    const int n = comm_->size(), r = comm_->rank();
    text_tokens_ = in.encoder_hidden_states.dim(1);
    image_tokens_ = in.hidden_states.dim(1);
    check(text_tokens_ >= n && image_tokens_ >= n, "Ulysses sequence parallelism gives every GPU a share of the text ",
          "and of the image tokens: ", n, " GPUs need at least ", n, " of each, got ", text_tokens_, " text and ",
          image_tokens_, " image tokens");
    const Shard txt = shard_of(text_tokens_, n, r), img = shard_of(image_tokens_, n, r);
    Flux2Inputs out;
    out.hidden_states = host_tokens(in.hidden_states, img);
    const Tensor& context = in.encoder_hidden_states;
    out.encoder_hidden_states =
        context.device() == Device::cpu ? host_tokens(context, txt) : be.slice(context, 1, txt.begin, txt.count);
    out.timestep = in.timestep;
    out.guidance = in.guidance;
    out.img_ids = host_rows(in.img_ids, img);
    out.txt_ids = host_rows(in.txt_ids, txt);
    return out;
}

int64_t UlyssesAttention::local_tokens(int r) const {
    const int n = comm_->size();
    return shard_of(text_tokens_, n, r).count + shard_of(image_tokens_, n, r).count;
}

void UlyssesAttention::attention_into(Backend& be, const Tensor& q, const Tensor& k, const Tensor& v, int64_t v_col,
                                      Tensor& out, int64_t out_col) const {
    const int n = comm_->size();
    const int64_t B = q.dim(0), Ls = q.dim(1), W = heads_ / n * head_dim_;  // W: one rank's head columns
    check(Ls == local_tokens(comm_->rank()), "Ulysses attention: rank ", comm_->rank(), " expected ",
          local_tokens(comm_->rank()), " tokens (its share of the sequence given to shard_inputs), got ", Ls);
    const Tensor qf = q.reshape({B, Ls, heads_ * head_dim_}), kf = k.reshape({B, Ls, heads_ * head_dim_});

    // Tokens -> heads: rank p gets p's heads of Q, K and V for this rank's tokens, packed in one message.
    std::vector<Tensor> send(n), recv(n);
    int64_t total = 0;
    for (int p = 0; p < n; ++p) {
        send[p] = be.uninitialized({B, Ls, 3 * W});
        be.copy_into(qf, p * W, W, send[p], 0, 0);
        be.copy_into(kf, p * W, W, send[p], 0, W);
        be.copy_into(v, v_col + p * W, W, send[p], 0, 2 * W);
        recv[p] = be.uninitialized({B, local_tokens(p), 3 * W});
        total += local_tokens(p);
    }
    comm_->all_to_all(send, recv);

    Tensor hq = be.uninitialized({B, total, heads_ / n, head_dim_}),
           hk = be.uninitialized({B, total, heads_ / n, head_dim_});
    Tensor hv = be.uninitialized({B, total, W});
    for (int p = 0, tok = 0; p < n; tok += local_tokens(p), ++p) {
        be.copy_into(recv[p], 0, W, hq, tok, 0);
        be.copy_into(recv[p], W, W, hk, tok, 0);
        be.copy_into(recv[p], 2 * W, W, hv, tok, 0);
    }
    Tensor ho = be.uninitialized({B, total, W});
    be.attention_into(hq, hk, hv, 0, ho, 0);

    // Heads -> tokens: rank p gets this rank's heads of its own tokens back.
    for (int p = 0, tok = 0; p < n; tok += local_tokens(p), ++p) {
        send[p] = be.slice(ho, 1, tok, local_tokens(p));
        recv[p] = be.uninitialized({B, Ls, W});
    }
    comm_->all_to_all(send, recv);
    for (int p = 0; p < n; ++p) be.copy_into(recv[p], 0, W, out, 0, out_col + p * W);
}

Tensor UlyssesAttention::gather_image(Backend& be, const Tensor& local) const {
    const int n = comm_->size();
    const int64_t B = local.dim(0), C = local.dim(2);
    std::vector<Tensor> parts(n);
    for (int p = 0; p < n; ++p) parts[p] = be.uninitialized({B, shard_of(image_tokens_, n, p).count, C});
    comm_->all_gather(local, parts);
    Tensor out = Tensor::zeros({B, image_tokens_, C});
    for (int p = 0; p < n; ++p) {
        const Shard s = shard_of(image_tokens_, n, p);
        const Tensor h = be.download(parts[p]);
        for (int64_t b = 0; b < B; ++b)
            std::copy_n(h.f32() + b * s.count * C, s.count * C, out.f32() + (b * image_tokens_ + s.begin) * C);
    }
    return out;
}

}  // namespace flux2
