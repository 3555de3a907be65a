#include "server/image_store.h"

#include <random>

namespace flux2::server {

std::string random_id(const std::string& prefix) {
    // Ids in URLs must not be guessable: one process-wide generator seeded from the OS.
    static std::mutex mutex;
    static std::mt19937_64 rng{std::random_device{}() ^ (static_cast<uint64_t>(std::random_device{}()) << 32)};
    static constexpr char kHex[] = "0123456789abcdef";
    std::lock_guard lock(mutex);
    std::string id = prefix;
    for (int w = 0; w < 2; ++w) {
        const uint64_t v = rng();
        for (int i = 0; i < 16; ++i) id += kHex[(v >> (4 * i)) & 0xF];
    }
    return id;
}

std::string ImageStore::put(StoredImage image) {
    std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    evict_locked(now);
    while (!entries_.empty() && entries_.size() >= max_count_) entries_.pop_front();
    std::string id = random_id("img_");
    if (max_count_ > 0) entries_.push_back({id, now, std::move(image)});
    return id;
}

std::optional<StoredImage> ImageStore::get(const std::string& id) {
    std::lock_guard lock(mutex_);
    evict_locked(std::chrono::steady_clock::now());
    for (const Entry& e : entries_)
        if (e.id == id) return e.image;
    return std::nullopt;
}

size_t ImageStore::size() {
    std::lock_guard lock(mutex_);
    evict_locked(std::chrono::steady_clock::now());
    return entries_.size();
}

void ImageStore::evict_locked(std::chrono::steady_clock::time_point now) {
    while (!entries_.empty() && now - entries_.front().stored > ttl_) entries_.pop_front();
}

}  // namespace flux2::server
