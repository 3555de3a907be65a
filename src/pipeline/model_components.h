#pragma once
// Where each pipeline component comes from, following sglang's rules: a diffusers repo holds everything; a repo
// that holds only a transformer (like FLUX.2-dev-NVFP4) takes the other components from a base model; explicit
// paths win. Everything is local: repo ids resolve through the Hugging Face cache, never the network.
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace flux2 {

struct ComponentArgs {
    std::string model_path;                // file, folder or repo id
    std::string transformer_weights_path;  // overrides the transformer
    std::string base_model_path = "black-forest-labs/FLUX.2-dev";
    std::string text_encoder_path;         // overrides text_encoder/ (+ tokenizer/ inside or beside it)
    std::string vae_path;                  // overrides vae/
};

struct ComponentPaths {
    std::string transformer;   // file or folder for TransformerCheckpoint::open
    std::string vae;           // diffusers vae/ folder or BFL ae.safetensors
    std::string text_encoder;  // folder; empty when none was found
    std::string tokenizer;     // folder; empty when none was found
    // model_index.json of the pipeline whose own transformer is used; absent when the transformer is a single file,
    // a transformer-only folder or --transformer-weights-path (a base model's index describes another transformer).
    std::optional<nlohmann::json> model_index;
    std::string describe() const;
};

// The tokenizer of a text encoder folder: inside it (tokenizer.json[.gz]) or a diffusers tokenizer/ beside it;
// empty when there is none.
std::string find_tokenizer_for(const std::string& text_encoder_dir);

// needs_text_encoder: whether a missing text encoder is an error (prompt given without --prompt-embeds);
// needs_vae: likewise for the VAE (prompt encoding alone does without one).
ComponentPaths resolve_components(const ComponentArgs& args, bool needs_text_encoder, bool needs_vae = true);

}  // namespace flux2
