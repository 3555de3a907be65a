#include "io/page_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <vector>

#include "core/error.h"

namespace flux2 {

namespace {
namespace fs = std::filesystem;

void for_each_file(const std::string& path, const std::function<void(const fs::path&, int64_t)>& fn) {
    std::error_code ec;
    const fs::file_status status = fs::status(path, ec);
    check(!ec && fs::exists(status), path, ": no such file or folder");
    if (fs::is_regular_file(status)) {
        fn(path, static_cast<int64_t>(fs::file_size(path)));
        return;
    }
    for (const fs::directory_entry& e : fs::recursive_directory_iterator(path))
        if (e.is_regular_file()) fn(e.path(), static_cast<int64_t>(e.file_size()));  // links to files count
}

// An open file descriptor, closed on scope exit.
struct Fd {
    int fd;
    explicit Fd(const fs::path& p) : fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC)) {
        check(fd >= 0, p.string(), ": cannot open: ", std::strerror(errno));
    }
    ~Fd() { ::close(fd); }
};
}  // namespace

PageCacheState page_cache_state(const std::string& path) {
    PageCacheState s;
    const int64_t page = sysconf(_SC_PAGESIZE);
    for_each_file(path, [&](const fs::path& file, int64_t size) {
        ++s.files;
        s.bytes += size;
        if (size == 0) return;
        Fd f(file);
        void* map = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_SHARED, f.fd, 0);
        check(map != MAP_FAILED, file.string(), ": cannot mmap ", size, " bytes: ", std::strerror(errno));
        std::vector<unsigned char> resident(static_cast<size_t>((size + page - 1) / page));
        const int rc = ::mincore(map, static_cast<size_t>(size), resident.data());
        ::munmap(map, static_cast<size_t>(size));
        check(rc == 0, file.string(), ": mincore failed: ", std::strerror(errno));
        for (size_t i = 0; i < resident.size(); ++i)
            if (resident[i] & 1) s.cached_bytes += std::min<int64_t>(page, size - static_cast<int64_t>(i) * page);
    });
    return s;
}

void drop_from_page_cache(const std::string& path) {
    for_each_file(path, [](const fs::path& file, int64_t) {
        Fd f(file);
        ::fdatasync(f.fd);  // dirty pages cannot be dropped; a file just written has some
        const int rc = ::posix_fadvise(f.fd, 0, 0, POSIX_FADV_DONTNEED);
        check(rc == 0, file.string(), ": posix_fadvise(DONTNEED) failed: ", std::strerror(rc));
    });
}

}  // namespace flux2
