// PNG encode/decode with libpng. libpng reports errors by longjmp; each function below keeps its libpng calls in a
// "core" function whose frame creates no object with a destructor after setjmp, and whose outputs live in the
// caller's frame, so a longjmp never skips a C++ destructor. The caller turns a failure into flux2::Error.
#include <png.h>

#include <cctype>
#include <csetjmp>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "core/log.h"
#include "core/text_codec.h"
#include "io/byte_order.h"
#include "io/exif.h"
#include "io/image.h"

namespace flux2 {

namespace {

struct PngErrorState {
    char message[256] = "";
};

void on_png_error(png_structp png, png_const_charp message) {
    auto* state = static_cast<PngErrorState*>(png_get_error_ptr(png));
    std::snprintf(state->message, sizeof state->message, "%s", message);
    std::longjmp(png_jmpbuf(png), 1);
}

void on_png_warning(png_structp png, png_const_charp message) {
    // Benign by definition (e.g. "iCCP: known incorrect sRGB profile"); kept for debugging only.
    log_debug("libpng warning: ", message);
}

// ---- decoding ----

// Every chunk must lie inside the file. libpng 1.6.39 only warns about an ancillary chunk longer than its 8 MB
// chunk limit, then allocates and clears the declared length anyway: a 268-byte upload declaring a 1.9 GB iTXt
// chunk cost 1.8 GB of memory and a second before the read failed (found by fuzz/image_decode_fuzz.cpp). The whole
// file is in memory here, so checking each declared length against the bytes that follow bounds every chunk buffer
// by the file's size. A file that ends before IEND is left to libpng, which reports where it ends.
void check_chunk_lengths(const uint8_t* data, size_t size, const std::string& origin) {
    size_t pos = 8;  // after the signature
    while (size - pos >= 8) {
        const uint32_t length = read_be32(data + pos);
        std::string type(reinterpret_cast<const char*>(data + pos + 4), 4);
        for (char& c : type)
            if (!std::isalpha(static_cast<unsigned char>(c))) c = '?';
        const size_t room = size - pos - 8;  // data and CRC
        check(room >= 4 && length <= room - 4, origin, ": invalid PNG: chunk '", type, "' at byte ", pos, " declares ",
              length, " bytes of data, but the file has ", room >= 4 ? room - 4 : 0, " left for it");
        if (type == "IEND") return;
        pos += 12 + length;
    }
}

struct MemoryReader {
    const uint8_t* data;
    size_t size;
    size_t pos;
};

void read_from_memory(png_structp png, png_bytep out, size_t n) {
    auto* reader = static_cast<MemoryReader*>(png_get_io_ptr(png));
    if (n > reader->size - reader->pos) png_error(png, "file ends before the image data is complete");
    std::memcpy(out, reader->data + reader->pos, n);
    reader->pos += n;
}

struct DecodeOutput {
    Image image;
    std::vector<png_bytep> rows;
};

bool decode_core(png_structp png, png_infop info, DecodeOutput* out) {
    if (setjmp(png_jmpbuf(png))) return false;
    png_read_info(png, info);
    const png_uint_32 width = png_get_image_width(png, info);
    const png_uint_32 height = png_get_image_height(png, info);
    if (width > kMaxImageSide || height > kMaxImageSide) png_error(png, "image is larger than 16384 pixels on a side");
    // Normalise every colour type / bit depth to 8-bit RGB (see image.h for the PIL-compatible choices).
    png_set_expand(png);
    png_set_strip_16(png);
    png_set_strip_alpha(png);
    png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != static_cast<size_t>(width) * 3) png_error(png, "could not convert to 8-bit RGB");
    out->image.width = static_cast<int>(width);
    out->image.height = static_cast<int>(height);
    out->image.rgb.resize(static_cast<size_t>(width) * height * 3);
    out->rows.resize(height);
    for (png_uint_32 y = 0; y < height; ++y) out->rows[y] = out->image.pixel(0, static_cast<int>(y));
    png_read_image(png, out->rows.data());
    png_read_end(png, info);  // text chunks may follow the image data
    return true;
}

// tEXt / zTXt hold Latin-1; keep every string in the library UTF-8.
std::string latin1_to_utf8(const char* s, size_t n) {
    std::string out;
    for (size_t i = 0; i < n; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            out += static_cast<char>(c);
        } else {
            out += static_cast<char>(0xC0 | (c >> 6));
            out += static_cast<char>(0x80 | (c & 0x3F));
        }
    }
    return out;
}

// ---- encoding ----

struct MemoryWriter {
    std::vector<uint8_t>* bytes;
};

void write_to_memory(png_structp png, png_bytep data, size_t n) {
    auto* writer = static_cast<MemoryWriter*>(png_get_io_ptr(png));
    bool ok = true;
    try {
        writer->bytes->insert(writer->bytes->end(), data, data + n);
    } catch (...) {
        ok = false;
    }
    if (!ok) png_error(png, "out of memory while encoding");
}

void flush_nothing(png_structp) {}

bool encode_core(png_structp png, png_infop info, const Image* image, std::vector<png_text>* text,
                 std::vector<png_bytep>* rows, int zlib_level) {
    if (setjmp(png_jmpbuf(png))) return false;
    png_set_compression_level(png, zlib_level);
    png_set_IHDR(png, info, static_cast<png_uint_32>(image->width), static_cast<png_uint_32>(image->height), 8,
                 PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (!text->empty()) png_set_text(png, info, text->data(), static_cast<int>(text->size()));
    png_write_info(png, info);
    png_write_image(png, rows->data());
    png_write_end(png, info);
    return true;
}

void check_text_key(const std::string& key) {
    bool ok = !key.empty() && key.size() <= 79 && key.front() != ' ' && key.back() != ' ' &&
              key.find("  ") == std::string::npos;
    for (char c : key) ok = ok && c >= 0x20 && c <= 0x7E;
    check(ok, "PNG text key '", key, "' is invalid: keys are 1-79 printable ASCII characters without leading, ",
          "trailing or double spaces");
}

bool is_ascii(const std::string& s) {
    for (char c : s)
        if (static_cast<unsigned char>(c) >= 0x80) return false;
    return true;
}

}  // namespace

std::vector<uint8_t> encode_png(const Image& image, const ImageText& text, int zlib_level) {
    check(zlib_level >= 0 && zlib_level <= 9, "encode_png: zlib level must be 0-9, got ", zlib_level);
    check(
        image.width > 0 && image.height > 0 && image.rgb.size() == static_cast<size_t>(image.width) * image.height * 3,
        "encode_png: image of ", image.width, "x", image.height, " has ", image.rgb.size(), " bytes");
    std::vector<png_text> chunks;
    for (const auto& [key, value] : text) {
        check_text_key(key);
        check(value.find('\0') == std::string::npos, "PNG text '", key, "' contains a NUL character");
        check(is_valid_utf8(value), "PNG text '", key, "' is not valid UTF-8");
        png_text chunk{};
        chunk.key = const_cast<char*>(key.c_str());
        chunk.text = const_cast<char*>(value.c_str());
        if (is_ascii(value)) {
            chunk.compression = PNG_TEXT_COMPRESSION_NONE;
            chunk.text_length = value.size();
        } else {
            chunk.compression = PNG_ITXT_COMPRESSION_NONE;
            chunk.itxt_length = value.size();
            chunk.lang = const_cast<char*>("");
            chunk.lang_key = const_cast<char*>("");
        }
        chunks.push_back(chunk);
    }
    std::vector<png_bytep> rows(image.height);
    for (int y = 0; y < image.height; ++y) rows[y] = const_cast<png_bytep>(image.pixel(0, y));

    std::vector<uint8_t> bytes;
    MemoryWriter writer{&bytes};
    PngErrorState error;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &error, on_png_error, on_png_warning);
    check(png != nullptr, "encode_png: libpng could not create a write struct");
    png_infop info = png_create_info_struct(png);
    if (info == nullptr) {
        png_destroy_write_struct(&png, nullptr);
        fail("encode_png: libpng could not create an info struct");
    }
    png_set_write_fn(png, &writer, write_to_memory, flush_nothing);
    const bool ok = encode_core(png, info, &image, &chunks, &rows, zlib_level);
    png_destroy_write_struct(&png, &info);
    check(ok, "encode_png: libpng failed: ", error.message);
    return bytes;
}

Image decode_png(const uint8_t* data, size_t size, const std::string& origin, ImageText* text) {
    check(size >= 8 && png_sig_cmp(data, 0, 8) == 0, origin, ": not a PNG file (bad signature)");
    check_chunk_lengths(data, size, origin);
    MemoryReader reader{data, size, 0};
    PngErrorState error;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &error, on_png_error, on_png_warning);
    check(png != nullptr, origin, ": libpng could not create a read struct");
    png_infop info = png_create_info_struct(png);
    if (info == nullptr) {
        png_destroy_read_struct(&png, nullptr, nullptr);
        fail(origin, ": libpng could not create an info struct");
    }
    png_set_read_fn(png, &reader, read_from_memory);
    DecodeOutput out;
    const bool ok = decode_core(png, info, &out);
    if (ok && text != nullptr) {
        png_textp chunks = nullptr;
        const int n = png_get_text(png, info, &chunks, nullptr);
        for (int i = 0; i < n; ++i) {
            const png_text& t = chunks[i];
            const bool utf8 = t.compression == PNG_ITXT_COMPRESSION_NONE || t.compression == PNG_ITXT_COMPRESSION_zTXt;
            const size_t length = utf8 ? t.itxt_length : t.text_length;
            (*text)[t.key] = utf8 ? std::string(t.text, length) : latin1_to_utf8(t.text, length);
        }
    }
    int orientation = 1;
    png_uint_32 exif_size = 0;
    png_bytep exif = nullptr;
    if (ok && png_get_eXIf_1(png, info, &exif_size, &exif) != 0) orientation = exif_orientation(exif, exif_size);
    png_destroy_read_struct(&png, &info, nullptr);
    check(ok, origin, ": invalid PNG: ", error.message);
    return apply_exif_orientation(out.image, orientation);
}

}  // namespace flux2
