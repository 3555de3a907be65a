// page_cache_state / drop_from_page_cache (bench --pipeline --cold): a file just read is cached, and dropping it
// leaves little of it, except on tmpfs, where the cache is the file's storage.
#include "io/page_cache.h"

#include <gtest/gtest.h>
#include <sys/vfs.h>

#include <fstream>
#include <vector>

#include "core/error.h"
#include "temp_dir.h"

namespace flux2 {
namespace {

TEST(PageCache, ReadFilesAreCachedAndDroppedOnesAreNot) {
    test::TempDir dir;
    const std::string sub = dir.file("folder");
    std::filesystem::create_directories(sub + "/nested");
    const int64_t size = 16 << 20;
    for (const std::string& name : {sub + "/a.bin", sub + "/nested/b.bin"}) {
        std::vector<char> bytes(static_cast<size_t>(size), 7);
        std::ofstream(name, std::ios::binary).write(bytes.data(), size);
        std::vector<char> back(static_cast<size_t>(size));
        std::ifstream(name, std::ios::binary).read(back.data(), size);  // now in the page cache
    }
    const PageCacheState read = page_cache_state(sub);
    EXPECT_EQ(read.files, 2);
    EXPECT_EQ(read.bytes, 2 * size);
    EXPECT_GT(read.cached_fraction(), 0.9);

    drop_from_page_cache(sub);
    struct statfs fs {};
    ASSERT_EQ(statfs(sub.c_str(), &fs), 0);
    if (fs.f_type == 0x01021994) GTEST_SKIP() << dir.path() << " is on tmpfs: its pages cannot leave the cache";
    EXPECT_LT(page_cache_state(sub).cached_fraction(), 0.5);
    EXPECT_EQ(page_cache_state(sub + "/a.bin").files, 1);
    EXPECT_THROW(page_cache_state(sub + "/missing"), Error);
}

}  // namespace
}  // namespace flux2
