#include "models/tokenizer/post_processor.h"

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace flux2 {

namespace {

class NoOpPostProcessor final : public PostProcessor {
public:
    void add_special_tokens(std::vector<int32_t>&) const override {}
    size_t added_count() const override { return 0; }
};

// The "single" template: special tokens before and after the sequence $A ("<s> $A" for Mistral's BOS).
class TemplatePostProcessor final : public PostProcessor {
public:
    TemplatePostProcessor(const nlohmann::json& spec, const std::string& where) {
        check(spec.contains("single") && spec.at("single").is_array(), where,
              ": TemplateProcessing needs a \"single\" array");
        const auto& specials = spec.contains("special_tokens") ? spec.at("special_tokens") : nlohmann::json::object();
        bool seen_sequence = false;
        for (const auto& item : spec.at("single")) {
            if (item.contains("Sequence")) {
                check(!seen_sequence && item.at("Sequence").value("id", std::string()) == "A", where,
                      ": TemplateProcessing \"single\" must hold the sequence $A exactly once");
                seen_sequence = true;
            } else if (item.contains("SpecialToken")) {
                const std::string name = item.at("SpecialToken").at("id").get<std::string>();
                check(specials.contains(name), where, ": TemplateProcessing uses special token \"", name,
                      "\" that its \"special_tokens\" map does not define");
                auto& dst = seen_sequence ? suffix_ : prefix_;
                for (const auto& id : specials.at(name).at("ids")) dst.push_back(id.get<int32_t>());
            } else {
                fail(where, ": TemplateProcessing item ", item.dump(), " is neither Sequence nor SpecialToken");
            }
        }
        check(seen_sequence, where, ": TemplateProcessing \"single\" has no $A");
    }

    void add_special_tokens(std::vector<int32_t>& ids) const override {
        ids.insert(ids.begin(), prefix_.begin(), prefix_.end());
        ids.insert(ids.end(), suffix_.begin(), suffix_.end());
    }
    size_t added_count() const override { return prefix_.size() + suffix_.size(); }

private:
    std::vector<int32_t> prefix_, suffix_;
};

class SequencePostProcessor final : public PostProcessor {
public:
    explicit SequencePostProcessor(std::vector<std::unique_ptr<PostProcessor>> parts) : parts_(std::move(parts)) {}

    void add_special_tokens(std::vector<int32_t>& ids) const override {
        for (const auto& p : parts_) p->add_special_tokens(ids);
    }
    size_t added_count() const override {
        size_t n = 0;
        for (const auto& p : parts_) n += p->added_count();
        return n;
    }

private:
    std::vector<std::unique_ptr<PostProcessor>> parts_;
};

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& spec, const std::string& where) {
    if (spec.is_null()) return nullptr;
    check(spec.is_object() && spec.contains("type"), where, ": post_processor must be an object with a \"type\"");
    const std::string type = spec.at("type").get<std::string>();
    if (type == "ByteLevel") return std::make_unique<NoOpPostProcessor>();
    if (type == "TemplateProcessing") return std::make_unique<TemplatePostProcessor>(spec, where);
    if (type == "Sequence") {
        check(spec.contains("processors") && spec.at("processors").is_array(), where,
              ": Sequence post_processor needs a \"processors\" array");
        std::vector<std::unique_ptr<PostProcessor>> parts;
        for (const auto& sub : spec.at("processors")) {
            auto p = make_post_processor(sub, where);
            if (p) parts.push_back(std::move(p));
        }
        return std::make_unique<SequencePostProcessor>(std::move(parts));
    }
    fail(where, ": post_processor type \"", type,
         "\" is not supported (supported: ByteLevel, TemplateProcessing, Sequence)");
}

}  // namespace flux2
