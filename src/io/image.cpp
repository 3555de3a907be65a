#include "io/image.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace flux2 {

Image Image::blank(int width, int height) {
    check(width > 0 && height > 0 && width <= kMaxImageSide && height <= kMaxImageSide, "image size ", width, "x",
          height, " is outside 1..", kMaxImageSide);
    Image image;
    image.width = width;
    image.height = height;
    image.rgb.assign(static_cast<size_t>(width) * height * 3, 0);
    return image;
}

Image decode_image(const uint8_t* data, size_t size, const std::string& origin, ImageText* text) {
    if (size >= 8 && data[0] == 0x89 && data[1] == 'P' && data[2] == 'N' && data[3] == 'G')
        return decode_png(data, size, origin, text);
    if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) {
        if (text != nullptr) text->clear();
        return decode_jpeg(data, size, origin);
    }
    fail(origin, ": not a PNG or JPEG file");
}

Image read_image(const std::string& path, ImageText* text) {
    std::ifstream in(path, std::ios::binary);
    check(in.good(), "cannot open image file ", path);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    check(!in.bad(), "error reading image file ", path);
    return decode_image(bytes.data(), bytes.size(), path, text);
}

void write_png(const std::string& path, const Image& image, const ImageText& text) {
    const std::vector<uint8_t> bytes = encode_png(image, text);
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        check(out.good(), "cannot create ", tmp);
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        out.close();
        if (!out.good()) {
            std::remove(tmp.c_str());
            fail("error writing ", tmp);
        }
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        std::remove(tmp.c_str());
        fail("cannot rename ", tmp, " to ", path, ": ", ec.message());
    }
}

}  // namespace flux2
