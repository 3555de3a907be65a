// EXIF orientation and CMYK JPEGs: images come back as they are shown. The files are built here with libjpeg and
// libpng, with EXIF blocks written byte by byte.
// clang-format off
#include <cstdio>
#include <jpeglib.h>
// clang-format on
#include <gtest/gtest.h>
#include <png.h>

#include <string>
#include <vector>

#include "io/exif.h"
#include "io/image.h"

namespace flux2 {
namespace {

// A TIFF block with IFD0 = {ImageWidth, Orientation}, optionally behind JPEG's "Exif\0\0" header.
std::vector<uint8_t> exif_block(int orientation, bool big_endian, bool with_header = true) {
    std::vector<uint8_t> b;
    if (with_header) b = {'E', 'x', 'i', 'f', 0, 0};
    auto u16 = [&](unsigned v) {
        if (big_endian)
            b.insert(b.end(), {uint8_t(v >> 8), uint8_t(v)});
        else
            b.insert(b.end(), {uint8_t(v), uint8_t(v >> 8)});
    };
    auto u32 = [&](uint32_t v) {
        if (big_endian)
            b.insert(b.end(), {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)});
        else
            b.insert(b.end(), {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)});
    };
    b.push_back(big_endian ? 'M' : 'I');
    b.push_back(big_endian ? 'M' : 'I');
    u16(42);
    u32(8);  // IFD0 right after the header
    u16(2);
    u16(0x0100), u16(4), u32(1), u32(640);                  // ImageWidth, LONG
    u16(0x0112), u16(3), u32(1), u16(orientation), u16(0);  // Orientation, SHORT
    u32(0);                                                 // no next IFD
    return b;
}

// Stored image: every pixel distinct, so any misplaced pixel shows.
Image numbered(int w, int h) {
    Image img = Image::blank(w, h);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            uint8_t* p = img.pixel(x, y);
            p[0] = uint8_t(x), p[1] = uint8_t(y), p[2] = uint8_t(x * 7 + y * 13);
        }
    return img;
}

std::vector<uint8_t> px(const Image& img, int x, int y) { return {img.pixel(x, y), img.pixel(x, y) + 3}; }

std::vector<uint8_t> png_with_exif(const Image& img, const std::vector<uint8_t>& exif) {
    std::vector<uint8_t> out;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
    png_infop info = png_create_info_struct(png);
    png_set_write_fn(
        png, &out,
        [](png_structp p, png_bytep d, size_t n) {
            auto* v = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(p));
            v->insert(v->end(), d, d + n);
        },
        nullptr);
    png_set_IHDR(png, info, img.width, img.height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    std::vector<uint8_t> tiff(exif.begin() + 6, exif.end());  // eXIf holds the TIFF block without "Exif\0\0"
    png_set_eXIf_1(png, info, static_cast<png_uint_32>(tiff.size()), tiff.data());
    png_write_info(png, info);
    for (int y = 0; y < img.height; ++y) png_write_row(png, const_cast<png_bytep>(img.pixel(0, y)));
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return out;
}

// A JPEG of `components`-byte pixels in `in_space`, stored as `file_space`, with an optional APP1 segment.
std::vector<uint8_t> jpeg_bytes(int w, int h, const std::vector<uint8_t>& pixels, int components,
                                J_COLOR_SPACE in_space, J_COLOR_SPACE file_space,
                                const std::vector<uint8_t>& app1 = {}) {
    jpeg_compress_struct cinfo{};
    jpeg_error_mgr err;
    cinfo.err = jpeg_std_error(&err);
    jpeg_create_compress(&cinfo);
    unsigned char* mem = nullptr;
    unsigned long size = 0;
    jpeg_mem_dest(&cinfo, &mem, &size);
    cinfo.image_width = w;
    cinfo.image_height = h;
    cinfo.input_components = components;
    cinfo.in_color_space = in_space;
    jpeg_set_defaults(&cinfo);
    jpeg_set_colorspace(&cinfo, file_space);
    jpeg_set_quality(&cinfo, 98, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    if (!app1.empty()) jpeg_write_marker(&cinfo, JPEG_APP0 + 1, app1.data(), static_cast<unsigned>(app1.size()));
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = const_cast<JSAMPROW>(pixels.data() + size_t(cinfo.next_scanline) * w * components);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    std::vector<uint8_t> out(mem, mem + size);
    free(mem);
    return out;
}

void expect_near(const Image& img, int x, int y, std::vector<int> rgb, int tolerance, const std::string& what) {
    for (int c = 0; c < 3; ++c) EXPECT_NEAR(img.pixel(x, y)[c], rgb[c], tolerance) << what << " channel " << c;
}

TEST(ExifOrientation, ReadsTheTagInBothByteOrders) {
    for (int o = 1; o <= 8; ++o) {
        for (bool be : {false, true}) {
            const auto b = exif_block(o, be);
            EXPECT_EQ(exif_orientation(b.data(), b.size()), o) << o << (be ? " MM" : " II");
            const auto tiff = exif_block(o, be, false);
            EXPECT_EQ(exif_orientation(tiff.data(), tiff.size()), o);
        }
    }
}

TEST(ExifOrientation, MalformedBlocksMeanAsStored) {
    const auto good = exif_block(6, false);
    for (size_t cut = 0; cut < good.size() - 4; ++cut)  // every truncation inside the header and the IFD
        EXPECT_EQ(exif_orientation(good.data(), cut), 1) << cut;
    auto bad_offset = good;
    bad_offset[6 + 4] = 0xF0;  // IFD0 offset far past the end
    EXPECT_EQ(exif_orientation(bad_offset.data(), bad_offset.size()), 1);
    auto many_entries = good;
    many_entries[6 + 8] = 0xFF, many_entries[6 + 9] = 0xFF;  // 65535 entries claimed
    EXPECT_EQ(exif_orientation(many_entries.data(), many_entries.size()), 1);
    const auto nine = exif_block(9, true);
    EXPECT_EQ(exif_orientation(nine.data(), nine.size()), 1);
    EXPECT_EQ(exif_orientation(nullptr, 0), 1);
}

TEST(ExifOrientation, AllEightFollowTheSpecTable) {
    // Which stored corner each shown corner shows (EXIF 2.3 table: where row 0 and column 0 of the stored image go).
    enum Corner { TL, TR, BL, BR };
    const Corner shown[9][3] = {{},           {TL, TR, BL}, {TR, TL, BR}, {BR, BL, TR}, {BL, BR, TL},
                                {TL, BL, TR}, {BL, TL, BR}, {BR, TR, BL}, {TR, BR, TL}};
    const Image stored = numbered(5, 3);
    auto corner = [](const Image& img, Corner c) {
        return px(img, c == TR || c == BR ? img.width - 1 : 0, c == BL || c == BR ? img.height - 1 : 0);
    };
    for (int o = 1; o <= 8; ++o) {
        const Image up = apply_exif_orientation(stored, o);
        EXPECT_EQ(up.width, o >= 5 ? 3 : 5) << o;
        EXPECT_EQ(up.height, o >= 5 ? 5 : 3) << o;
        EXPECT_EQ(corner(up, TL), corner(stored, shown[o][0])) << "orientation " << o << " top left";
        EXPECT_EQ(corner(up, TR), corner(stored, shown[o][1])) << "orientation " << o << " top right";
        EXPECT_EQ(corner(up, BL), corner(stored, shown[o][2])) << "orientation " << o << " bottom left";
    }
}

TEST(ExifOrientation, PngExifChunkIsApplied) {
    const Image stored = numbered(128, 64);
    for (int o = 1; o <= 8; ++o) {
        const auto bytes = png_with_exif(stored, exif_block(o, o % 2 == 0));
        const Image img = decode_image(bytes.data(), bytes.size(), "exif.png");
        const Image want = apply_exif_orientation(stored, o);
        ASSERT_EQ(img.width, want.width) << o;
        ASSERT_EQ(img.height, want.height) << o;
        EXPECT_EQ(img.rgb, want.rgb) << o;
    }
}

TEST(ExifOrientation, PhonePhotoIsUsedUpright) {
    // Stored 128x64, left half red and right half blue, orientation 6: shown 64x128, red on top.
    std::vector<uint8_t> pixels(128 * 64 * 3);
    for (int y = 0; y < 64; ++y)
        for (int x = 0; x < 128; ++x) {
            uint8_t* p = &pixels[(y * 128 + x) * 3];
            p[0] = x < 64 ? 255 : 0, p[1] = 0, p[2] = x < 64 ? 0 : 255;
        }
    const auto bytes = jpeg_bytes(128, 64, pixels, 3, JCS_RGB, JCS_YCbCr, exif_block(6, true));
    const Image img = decode_image(bytes.data(), bytes.size(), "phone.jpg");
    ASSERT_EQ(img.width, 64);
    ASSERT_EQ(img.height, 128);
    expect_near(img, 32, 32, {255, 0, 0}, 8, "top");
    expect_near(img, 32, 96, {0, 0, 255}, 8, "bottom");
}

TEST(CmykJpeg, ConvertsCmykAndYcckToRgb) {
    // Adobe-style inverted inks (255 = none), as libjpeg writes them with its Adobe marker: red, green, blue, grey.
    const std::vector<std::vector<int>> rgb = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {128, 128, 128}};
    const std::vector<std::vector<uint8_t>> inks = {
        {255, 0, 0, 255}, {0, 255, 0, 255}, {0, 0, 255, 255}, {255, 255, 255, 128}};
    std::vector<uint8_t> pixels;
    for (int y = 0; y < 16; ++y)
        for (int x = 0; x < 64; ++x) pixels.insert(pixels.end(), inks[x / 16].begin(), inks[x / 16].end());
    for (J_COLOR_SPACE space : {JCS_CMYK, JCS_YCCK}) {
        const auto bytes = jpeg_bytes(64, 16, pixels, 4, JCS_CMYK, space);
        const Image img = decode_image(bytes.data(), bytes.size(), "cmyk.jpg");
        ASSERT_EQ(img.width, 64);
        ASSERT_EQ(img.height, 16);
        for (int i = 0; i < 4; ++i) expect_near(img, i * 16 + 8, 8, rgb[i], 6, space == JCS_CMYK ? "CMYK" : "YCCK");
    }
}

}  // namespace
}  // namespace flux2
