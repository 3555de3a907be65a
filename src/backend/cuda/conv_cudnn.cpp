#include "backend/cuda/conv_cudnn.h"

#include <cudnn.h>
#include <cudnn_frontend.h>

#include <unordered_map>
#include <vector>

#include "backend/cuda/cuda_check.h"
#include "core/error.h"
#include "core/log.h"

namespace flux2::cuda {

namespace fe = cudnn_frontend;

namespace {
enum Uid : int64_t { kX = 1, kW, kY };

cudnnHandle_t dnn(CudnnHandle& handle) { return static_cast<cudnnHandle_t>(handle.get()); }

std::string describe(const ConvShape& s, CudnnConv::Layout layout) {
    return str("cuDNN conv2d ", layout == CudnnConv::Layout::nchw ? "NCHW" : "NHWC", " (B=", s.B, " Cin=", s.cin,
               " H=", s.H, " W=", s.W, " Cout=", s.cout, " k=", s.kh, "x", s.kw, " stride ", s.stride, " padding ",
               s.padding, ")");
}

// cuDNN describes every tensor on (N, C, H, W) dimensions; the layout is in the strides.
std::vector<int64_t> strides(int64_t c, int64_t h, int64_t w, CudnnConv::Layout layout) {
    if (layout == CudnnConv::Layout::nchw) return {c * h * w, h * w, w, 1};
    return {h * w * c, 1, w * c, c};
}
}  // namespace

struct CudnnConv::Plan {
    std::shared_ptr<fe::graph::Graph> graph;  // null: no engine for this shape and layout
    int64_t workspace_bytes = 0;
    std::string failure;
};

CudnnConv::CudnnConv(std::shared_ptr<Stream> stream) : stream_(stream), handle_(std::move(stream)) {}

CudnnConv::~CudnnConv() = default;  // the plans go before the handle (declared after it)

CudnnConv::Plan& CudnnConv::plan(const ConvShape& s, Layout layout) {
    const Key key{s.B, s.cin, s.H, s.W, s.cout, s.kh, s.kw, s.stride, s.padding, static_cast<int>(layout)};
    auto it = plans_.find(key);
    if (it != plans_.end()) return *it->second;

    auto g = std::static_pointer_cast<fe::graph::Graph>(new_bf16_graph());
    auto x = g->tensor(fe::graph::Tensor_attributes()
                           .set_name("x")
                           .set_uid(kX)
                           .set_dim({s.B, s.cin, s.H, s.W})
                           .set_stride(strides(s.cin, s.H, s.W, layout)));
    auto w = g->tensor(fe::graph::Tensor_attributes()
                           .set_name("w")
                           .set_uid(kW)
                           .set_dim({s.cout, s.cin, s.kh, s.kw})
                           .set_stride(strides(s.cin, s.kh, s.kw, layout)));
    auto options = fe::graph::Conv_fprop_attributes()
                       .set_name("flux2_conv2d")
                       .set_padding({s.padding, s.padding})
                       .set_stride({s.stride, s.stride})
                       .set_dilation({1, 1});
    auto y = g->conv_fprop(x, w, options);
    y->set_output(true)
        .set_uid(kY)
        .set_data_type(fe::DataType_t::BFLOAT16)
        .set_dim({s.B, s.cout, s.Ho(), s.Wo()})
        .set_stride(strides(s.cout, s.Ho(), s.Wo(), layout));

    auto p = std::make_unique<Plan>();
    // Each step's error ends the attempt: the shape then has no plan in this layout (supports() says so).
    auto step = [&](fe::error_t e, const char* what) {
        if (!e.is_good() && p->failure.empty()) p->failure = str(what, ": ", e.get_message());
        return e.is_good();
    };
    bool ok =
        step(g->validate(), "validate") && step(g->build_operation_graph(dnn(handle_)), "build_operation_graph") &&
        step(g->create_execution_plans({fe::HeurMode_t::A, fe::HeurMode_t::FALLBACK}), "create_execution_plans") &&
        step(g->check_support(dnn(handle_)), "check_support") &&
        step(g->build_plans(fe::BuildPlanPolicy_t::HEURISTICS_CHOICE), "build_plans") &&
        step(g->get_workspace_size(p->workspace_bytes), "get_workspace_size");
    if (ok) {
        p->graph = g;
        log_debug(describe(s, layout), ": plan built, workspace ", p->workspace_bytes, " bytes");
    } else {
        log_debug(describe(s, layout), ": no engine (", p->failure, ")");
    }
    return *plans_.emplace(key, std::move(p)).first->second;
}

bool CudnnConv::supports(const ConvShape& s, Layout layout) { return plan(s, layout).graph != nullptr; }

void CudnnConv::release_workspace() {
    workspace_.reset();
    workspace_bytes_ = 0;
}

void CudnnConv::run(const __nv_bfloat16* x, const __nv_bfloat16* w, __nv_bfloat16* y, const ConvShape& s,
                    Layout layout) {
    if (s.B == 0 || s.cout == 0 || s.Ho() <= 0 || s.Wo() <= 0) return;
    Plan& p = plan(s, layout);
    check(p.graph != nullptr, describe(s, layout), ": no cuDNN engine (", p.failure, ")");
    if (p.workspace_bytes > workspace_bytes_) {
        workspace_ = allocate(static_cast<size_t>(p.workspace_bytes), stream_);  // old one is freed in stream order
        workspace_bytes_ = p.workspace_bytes;
    }
    std::unordered_map<int64_t, void*> pack{
        {kX, const_cast<__nv_bfloat16*>(x)}, {kW, const_cast<__nv_bfloat16*>(w)}, {kY, y}};
    fe::error_t e = p.graph->execute(dnn(handle_), pack, workspace_bytes_ ? workspace_.get() : nullptr);
    check(e.is_good(), describe(s, layout), ": execute failed: ", e.get_message());
}

}  // namespace flux2::cuda
