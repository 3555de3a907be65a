#pragma once
// Offline resolution of Hugging Face repo ids ("org/name") to local snapshot folders of the HF cache:
// $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub; models--org--name/snapshots/<rev>.
#include <optional>
#include <string>
#include <vector>

namespace flux2 {

// True for strings shaped like a repo id ("org/name", no leading '/' or '.', exactly one '/') that do not
// exist as a local path.
bool looks_like_repo_id(const std::string& s);

std::string hf_hub_cache_dir();

// The snapshot folder for repo_id: the revision named by refs/main if present, else the only snapshot, else the
// most recently modified one. nullopt if the repo is not in the cache. `looked_in` receives the folder searched.
std::optional<std::string> find_cached_snapshot(const std::string& repo_id, std::string* looked_in = nullptr);

// A local path as given, or the cached snapshot of a repo id; throws naming where it looked.
std::string resolve_local_or_cached(const std::string& path_or_repo, const std::string& what);

}  // namespace flux2
