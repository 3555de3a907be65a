#include "io/hf_cache.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace fs = std::filesystem;

namespace flux2 {

bool looks_like_repo_id(const std::string& s) {
    if (s.empty() || s[0] == '/' || s[0] == '.' || s[0] == '~') return false;
    if (fs::exists(s)) return false;
    const auto slash = s.find('/');
    return slash != std::string::npos && slash > 0 && slash + 1 < s.size() && s.find('/', slash + 1) == std::string::npos;
}

std::string hf_hub_cache_dir() {
    if (const char* c = std::getenv("HF_HUB_CACHE"); c && *c) return c;
    if (const char* h = std::getenv("HF_HOME"); h && *h) return (fs::path(h) / "hub").string();
    const char* home = std::getenv("HOME");
    return (fs::path(home ? home : "/root") / ".cache" / "huggingface" / "hub").string();
}

std::optional<std::string> find_cached_snapshot(const std::string& repo_id, std::string* looked_in) {
    std::string folder = "models--";
    for (char ch : repo_id) folder += ch == '/' ? std::string("--") : std::string(1, ch);
    const fs::path repo = fs::path(hf_hub_cache_dir()) / folder;
    const fs::path snapshots = repo / "snapshots";
    if (looked_in) *looked_in = snapshots.string();
    std::error_code ec;
    if (!fs::is_directory(snapshots, ec)) return std::nullopt;
    if (std::ifstream ref(repo / "refs" / "main"); ref) {
        std::string rev;
        std::getline(ref, rev);
        if (!rev.empty() && fs::is_directory(snapshots / rev, ec)) return (snapshots / rev).string();
    }
    std::optional<fs::path> newest;
    fs::file_time_type newest_time;
    for (const auto& e : fs::directory_iterator(snapshots, ec)) {
        if (!e.is_directory()) continue;
        auto t = fs::last_write_time(e.path(), ec);
        if (!newest || t > newest_time) newest = e.path(), newest_time = t;
    }
    if (!newest) return std::nullopt;
    return newest->string();
}

std::string resolve_local_or_cached(const std::string& path_or_repo, const std::string& what) {
    if (fs::exists(path_or_repo)) return path_or_repo;
    if (looks_like_repo_id(path_or_repo)) {
        std::string looked;
        if (auto snap = find_cached_snapshot(path_or_repo, &looked)) return *snap;
        fail(what, " '", path_or_repo, "' is neither a local path nor a repo in the Hugging Face cache (looked in ",
             looked, "; flux2 never downloads: fetch it with `hf download ", path_or_repo, "` first)");
    }
    fail(what, " '", path_or_repo, "' does not exist");
}

}  // namespace flux2
