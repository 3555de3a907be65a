#pragma once
// Encoded images kept for `response_format: "url"`: served at /v1/images/{id}/content for a bounded time and count
// (the oldest go first), so memory stays bounded whatever clients do.
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace flux2::server {

struct StoredImage {
    std::vector<uint8_t> bytes;
    std::string mime_type;
};

class ImageStore {
public:
    ImageStore(std::chrono::seconds ttl, size_t max_count) : ttl_(ttl), max_count_(max_count) {}

    // Returns the id to serve it under.
    std::string put(StoredImage image);
    std::optional<StoredImage> get(const std::string& id);
    size_t size();

private:
    void evict_locked(std::chrono::steady_clock::time_point now);

    struct Entry {
        std::string id;
        std::chrono::steady_clock::time_point stored;
        StoredImage image;
    };
    const std::chrono::seconds ttl_;
    const size_t max_count_;
    std::mutex mutex_;
    std::deque<Entry> entries_;  // oldest first
};

// A random 128-bit id as 32 hex digits, with a prefix ("img_", "req_").
std::string random_id(const std::string& prefix);

}  // namespace flux2::server
