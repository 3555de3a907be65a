#pragma once
// How much of a folder's files the kernel holds in its page cache, and dropping them from it: `bench --pipeline
// --cold` times a load from the disk, then one from the page cache, as a user meets them after a reboot and on the
// next start.
#include <cstdint>
#include <string>

namespace flux2 {

struct PageCacheState {
    int64_t files = 0;
    int64_t bytes = 0;         // of every regular file under the folder (or of the file)
    int64_t cached_bytes = 0;  // of those, resident in the page cache (mincore)
    double cached_fraction() const { return bytes > 0 ? static_cast<double>(cached_bytes) / bytes : 0.0; }
};

// Every regular file under `path` (recursively, symlinks to files included, as in a Hugging Face snapshot; or `path`
// itself).
PageCacheState page_cache_state(const std::string& path);

// Writes back and drops the files' clean pages (fdatasync + posix_fadvise DONTNEED): no root needed. Pages other
// processes have mapped, and files on tmpfs (/dev/shm: the cache is their storage), stay; page_cache_state says
// what remained.
void drop_from_page_cache(const std::string& path);

}  // namespace flux2
