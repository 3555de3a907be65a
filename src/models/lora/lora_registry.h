#pragma once
// Adapters loaded once and kept by name, so that requests switch LoRAs without reading files or reloading the
// model: load(name, path) reads and checks a file; set_active(model, {(name, strength), ...}) attaches exactly
// those adapters (Flux2Transformer::set_loras: checked first, the model unchanged on error). Thread-safe: HTTP
// threads may list and load while the worker activates.
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "models/lora/lora_adapter.h"
#include "models/lora/lora_attach.h"

namespace flux2 {

class Flux2Transformer;

class LoraRegistry {
public:
    // Reads `path` (read_lora); replaces an adapter of the same name. Throws naming the file and key.
    std::shared_ptr<const LoraAdapter> load(const std::string& name, const std::string& path);
    // Keeps an adapter made elsewhere (synthetic benchmark adapters).
    void add(const std::string& name, std::shared_ptr<const LoraAdapter> adapter);
    bool unload(const std::string& name);                                    // false when there was none
    std::shared_ptr<const LoraAdapter> find(const std::string& name) const;  // null when absent
    std::vector<std::string> names() const;

    // (name, strength) pairs -> the adapters; throws naming the first unknown name.
    std::vector<ActiveLora> resolve(const std::vector<std::pair<std::string, float>>& active) const;
    void set_active(Flux2Transformer& model, const std::vector<std::pair<std::string, float>>& active) const;

    // Loads each "FILE[:STRENGTH]" (parse_lora_spec) under its file's stem, made unique with "-2", "-3", ...; the
    // (name, strength) list to activate. Every file is read before the list is returned.
    std::vector<std::pair<std::string, float>> load_specs(const std::vector<std::string>& specs);

private:
    mutable std::mutex mutex_;
    std::map<std::string, std::shared_ptr<const LoraAdapter>> adapters_;
};

// "FILE[:STRENGTH]" (the --lora flag): the path and strength (1 when absent). The strength is what follows the last
// ':' when that parses as a number, so paths with ':' still work.
std::pair<std::string, float> parse_lora_spec(const std::string& spec);
// The registry name of a file: its stem ("/loras/style.safetensors" -> "style").
std::string lora_name_for(const std::string& path);

}  // namespace flux2
