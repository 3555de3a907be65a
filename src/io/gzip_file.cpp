#include "io/gzip_file.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"

namespace flux2 {

namespace {

std::string gunzip(const std::string& packed, const std::string& path, size_t max_bytes) {
    check(packed.size() < (1ull << 32), path, ": compressed file larger than 4 GiB");
    z_stream zs{};
    // 16 + MAX_WBITS: expect a gzip header (not raw zlib); concatenated members are handled by the reset below.
    check(inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK, path, ": cannot initialise zlib");
    std::string out;
    out.reserve(std::min(packed.size() * 4, max_bytes));
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(packed.data()));
    zs.avail_in = static_cast<uInt>(packed.size());
    char buf[1 << 16];
    int rc = Z_OK;
    while (true) {
        zs.next_out = reinterpret_cast<Bytef*>(buf);
        zs.avail_out = sizeof(buf);
        rc = inflate(&zs, Z_NO_FLUSH);
        if (out.size() + (sizeof(buf) - zs.avail_out) > max_bytes) {
            inflateEnd(&zs);
            fail(path, ": decompresses to more than ", max_bytes, " bytes, the limit for this file");
        }
        out.append(buf, sizeof(buf) - zs.avail_out);
        if (rc == Z_STREAM_END) {
            if (zs.avail_in == 0) break;
            rc = inflateReset(&zs);
            if (rc != Z_OK) break;
            continue;
        }
        if (rc != Z_OK) break;
        if (zs.avail_in == 0 && zs.avail_out != 0) {
            rc = Z_DATA_ERROR;  // input ended inside a gzip member
            break;
        }
    }
    const char* msg = zs.msg;
    inflateEnd(&zs);
    check(rc == Z_STREAM_END, path, ": corrupt or truncated gzip data (zlib: ", msg ? msg : "stream ended early", ")");
    return out;
}

}  // namespace

std::string read_file_maybe_gzip(const std::string& path, size_t max_bytes) {
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    check(!ec, "cannot open ", path, ": ", ec.message());
    check(!std::filesystem::is_directory(status), path, ": is a folder, expected a file");
    check(std::filesystem::is_regular_file(status), path, ": is not a regular file (a device or pipe?)");
    const uintmax_t size = std::filesystem::file_size(path, ec);
    check(!ec && size <= max_bytes, path, ": ",
          ec ? ec.message() : str(size, " bytes, more than the limit of ", max_bytes), " for this file");
    std::ifstream in(path, std::ios::binary);
    check(in.good(), "cannot open ", path);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    check(!in.bad(), "cannot read ", path);
    const bool gzipped = bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f &&
                         static_cast<unsigned char>(bytes[1]) == 0x8b;
    if (gzipped) return gunzip(bytes, path, max_bytes);
    return bytes;
}

}  // namespace flux2
