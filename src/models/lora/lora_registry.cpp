#include "models/lora/lora_registry.h"

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "core/log.h"
#include "models/flux2/flux2_transformer.h"

namespace flux2 {

std::shared_ptr<const LoraAdapter> LoraRegistry::load(const std::string& name, const std::string& path) {
    auto adapter = std::make_shared<const LoraAdapter>(read_lora(path));
    log_info("LoRA '", name, "': ", path, " (", adapter->format_label(), ", ", adapter->layers.size(), " layers)");
    add(name, adapter);
    return adapter;
}

void LoraRegistry::add(const std::string& name, std::shared_ptr<const LoraAdapter> adapter) {
    check(!name.empty(), "a LoRA needs a name");
    std::lock_guard lock(mutex_);
    adapters_[name] = std::move(adapter);
}

bool LoraRegistry::unload(const std::string& name) {
    std::lock_guard lock(mutex_);
    return adapters_.erase(name) > 0;
}

std::shared_ptr<const LoraAdapter> LoraRegistry::find(const std::string& name) const {
    std::lock_guard lock(mutex_);
    auto it = adapters_.find(name);
    return it == adapters_.end() ? nullptr : it->second;
}

std::vector<std::string> LoraRegistry::names() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& [name, adapter] : adapters_) out.push_back(name);
    return out;
}

std::vector<ActiveLora> LoraRegistry::resolve(const std::vector<std::pair<std::string, float>>& active) const {
    std::vector<ActiveLora> out;
    for (const auto& [name, strength] : active) {
        auto adapter = find(name);
        if (!adapter) {
            std::string known;
            for (const std::string& n : names()) known += str(known.empty() ? "" : ", ", n);
            fail("no LoRA named '", name, "' is loaded (loaded: ", known.empty() ? "none" : known, ")");
        }
        out.push_back(ActiveLora{name, std::move(adapter), strength});
    }
    return out;
}

void LoraRegistry::set_active(Flux2Transformer& model, const std::vector<std::pair<std::string, float>>& active) const {
    model.set_loras(resolve(active));
}

std::vector<std::pair<std::string, float>> LoraRegistry::load_specs(const std::vector<std::string>& specs) {
    std::vector<std::pair<std::string, float>> active;
    for (const std::string& spec : specs) {
        auto [path, strength] = parse_lora_spec(spec);
        const std::string stem = lora_name_for(path);
        std::string name = stem;
        for (int i = 2; find(name); ++i) name = str(stem, "-", i);
        load(name, path);
        active.emplace_back(name, strength);
    }
    return active;
}

std::pair<std::string, float> parse_lora_spec(const std::string& spec) {
    check(!spec.empty(), "--lora needs FILE[:STRENGTH]");
    if (auto colon = spec.rfind(':'); colon != std::string::npos) {
        const std::string tail = spec.substr(colon + 1);
        char* end = nullptr;
        const float strength = std::strtof(tail.c_str(), &end);
        if (!tail.empty() && end == tail.c_str() + tail.size()) {
            check(std::isfinite(strength), "--lora ", spec, ": strength ", tail, " is not a finite number");
            return {spec.substr(0, colon), strength};
        }
    }
    return {spec, 1.0f};
}

std::string lora_name_for(const std::string& path) { return std::filesystem::path(path).stem().string(); }

}  // namespace flux2
