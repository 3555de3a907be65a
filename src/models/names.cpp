#include "models/names.h"

#include <array>
#include <cctype>
#include <vector>

#include "core/error.h"

namespace flux2 {

namespace {

// `from` must match at the start of the name; "{N}" stands for a block index (digits) carried into `to`.
struct Rule {
    const char* from;
    const char* to;
};

constexpr std::array<Rule, 27> kBlockRules{{
    {"double_blocks.{N}.img_attn.qkv.", "transformer_blocks.{N}.attn.to_qkv."},
    {"double_blocks.{N}.img_attn.proj.", "transformer_blocks.{N}.attn.to_out.0."},
    {"double_blocks.{N}.img_attn.norm.query_norm.", "transformer_blocks.{N}.attn.norm_q."},
    {"double_blocks.{N}.img_attn.norm.key_norm.", "transformer_blocks.{N}.attn.norm_k."},
    {"double_blocks.{N}.txt_attn.qkv.", "transformer_blocks.{N}.attn.to_added_qkv."},
    {"double_blocks.{N}.txt_attn.proj.", "transformer_blocks.{N}.attn.to_add_out."},
    {"double_blocks.{N}.txt_attn.norm.query_norm.", "transformer_blocks.{N}.attn.norm_added_q."},
    {"double_blocks.{N}.txt_attn.norm.key_norm.", "transformer_blocks.{N}.attn.norm_added_k."},
    {"double_blocks.{N}.img_mlp.0.", "transformer_blocks.{N}.ff.linear_in."},
    {"double_blocks.{N}.img_mlp.2.", "transformer_blocks.{N}.ff.linear_out."},
    {"double_blocks.{N}.txt_mlp.0.", "transformer_blocks.{N}.ff_context.linear_in."},
    {"double_blocks.{N}.txt_mlp.2.", "transformer_blocks.{N}.ff_context.linear_out."},
    {"single_blocks.{N}.linear1.", "single_transformer_blocks.{N}.attn.to_qkv_mlp_proj."},
    {"single_blocks.{N}.linear2.", "single_transformer_blocks.{N}.attn.to_out."},
    {"single_blocks.{N}.norm.query_norm.", "single_transformer_blocks.{N}.attn.norm_q."},
    {"single_blocks.{N}.norm.key_norm.", "single_transformer_blocks.{N}.attn.norm_k."},
    {"img_in.", "x_embedder."},
    {"txt_in.", "context_embedder."},
    {"time_in.in_layer.", "time_guidance_embed.timestep_embedder.linear_1."},
    {"time_in.out_layer.", "time_guidance_embed.timestep_embedder.linear_2."},
    {"guidance_in.in_layer.", "time_guidance_embed.guidance_embedder.linear_1."},
    {"guidance_in.out_layer.", "time_guidance_embed.guidance_embedder.linear_2."},
    {"double_stream_modulation_img.lin.", "double_stream_modulation_img.linear."},
    {"double_stream_modulation_txt.lin.", "double_stream_modulation_txt.linear."},
    {"single_stream_modulation.lin.", "single_stream_modulation.linear."},
    {"final_layer.adaLN_modulation.1.", "norm_out.linear."},
    {"final_layer.linear.", "proj_out."},
}};

// Matches `rule.from` at the start of `name`; on success returns the renamed string.
std::optional<std::string> apply_rule(const Rule& rule, const std::string& name) {
    const std::string from = rule.from;
    std::string index;
    size_t i = 0, j = 0;
    while (i < from.size()) {
        if (from.compare(i, 3, "{N}") == 0) {
            const size_t start = j;
            while (j < name.size() && std::isdigit(static_cast<unsigned char>(name[j]))) ++j;
            if (j == start) return std::nullopt;
            index = name.substr(start, j - start);
            i += 3;
        } else {
            if (j >= name.size() || name[j] != from[i]) return std::nullopt;
            ++i;
            ++j;
        }
    }
    std::string to = rule.to;
    if (auto at = to.find("{N}"); at != std::string::npos) to.replace(at, 3, index);
    return to + name.substr(j);
}

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The split parts of BFL's fused projections (the binder's names) and the fused internal name they come from.
struct SplitPart {
    const char* part;
    const char* fused;
    const char* rows;
};
constexpr SplitPart kSplitParts[] = {
    {".attn.to_q.", ".attn.to_qkv.", "Q"},
    {".attn.to_k.", ".attn.to_qkv.", "K"},
    {".attn.to_v.", ".attn.to_qkv.", "V"},
    {".attn.add_q_proj.", ".attn.to_added_qkv.", "Q"},
    {".attn.add_k_proj.", ".attn.to_added_qkv.", "K"},
    {".attn.add_v_proj.", ".attn.to_added_qkv.", "V"},
};

}  // namespace

std::string strip_transformer_prefix(const std::string& name) {
    for (const char* prefix : {"model.diffusion_model.", "transformer."}) {
        if (name.rfind(prefix, 0) == 0) return name.substr(std::string(prefix).size());
    }
    return name;
}

std::optional<std::string> bfl_to_internal(const std::string& name) {
    std::string out = strip_transformer_prefix(name);
    // Each rule may fire once; repeat until nothing changes so that renames chain (block rename, then suffix).
    std::vector<bool> used(kBlockRules.size() + 1, false);
    bool any = false;
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t r = 0; r < kBlockRules.size(); ++r) {
            if (used[r]) continue;
            if (auto renamed = apply_rule(kBlockRules[r], out)) {
                out = *renamed;
                used[r] = changed = any = true;
            }
        }
        // RMSNorm gains are ".scale" in BFL files; only meaningful once a block rule has placed the name.
        if (!used.back() && any && ends_with(out, ".scale")) {
            out = out.substr(0, out.size() - 6) + ".weight";
            used.back() = changed = true;
        }
    }
    if (!any) return std::nullopt;
    return out;
}

std::string internal_to_bfl(const std::string& name) {
    std::string internal = name, rows;
    if (internal.rfind("transformer_blocks.", 0) == 0) {
        for (const SplitPart& s : kSplitParts) {
            if (auto at = internal.find(s.part); at != std::string::npos) {
                internal.replace(at, std::string(s.part).size(), s.fused);
                rows = str(" (", s.rows, " rows)");
                break;
            }
        }
    }
    for (const Rule& r : kBlockRules) {
        if (auto renamed = apply_rule({r.to, r.from}, internal)) {
            // RMSNorm gains: ".weight" here, ".scale" in BFL files.
            if (ends_with(*renamed, "norm.weight")) renamed->replace(renamed->size() - 6, 6, "scale");
            return *renamed + rows;
        }
    }
    return name;
}

std::optional<std::string> kohya_to_bfl_layer(const std::string& kohya_layer) {
    for (const Rule& rule : kBlockRules) {
        std::string from = rule.from;
        from.pop_back();  // the trailing "." that separates a layer from its tensor suffix
        std::string underscored = from;
        for (char& c : underscored)
            if (c == '.') c = '_';
        // kohya names hold no ".", so with the rule's trailing "." restored the match must end at the appended
        // one: a whole-name match (a prefix like "..._qkv" of "..._qkv_extra" is not one).
        if (auto matched = apply_rule(Rule{(underscored + ".").c_str(), rule.from}, kohya_layer + ".")) {
            matched->pop_back();
            return matched;
        }
    }
    return std::nullopt;
}

bool is_internal_transformer_name(const std::string& name) {
    const std::string n = strip_transformer_prefix(name);
    for (const char* prefix : {"transformer_blocks.", "single_transformer_blocks.", "x_embedder.", "context_embedder.",
                               "time_guidance_embed.", "double_stream_modulation_img.", "double_stream_modulation_txt.",
                               "single_stream_modulation.", "norm_out.", "proj_out."}) {
        if (n.rfind(prefix, 0) == 0) return true;
    }
    return false;
}

}  // namespace flux2
