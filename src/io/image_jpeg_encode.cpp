// JPEG encoding with libjpeg into memory. As in decoding (image_jpeg.cpp), the error handler longjmps back to
// encode_core, whose frame creates no object with a destructor after setjmp.
// clang-format off
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <jpeglib.h>
// clang-format on

#include "core/error.h"
#include "io/image_encode.h"

namespace flux2 {

namespace {

struct EncodeErrors {
    jpeg_error_mgr base;  // first member: libjpeg hands us a pointer to it
    std::jmp_buf jump;
    char message[JMSG_LENGTH_MAX] = "";
};

void on_encode_error(j_common_ptr cinfo) {
    auto* err = reinterpret_cast<EncodeErrors*>(cinfo->err);
    (*cinfo->err->format_message)(cinfo, err->message);
    std::longjmp(err->jump, 1);
}

bool encode_core(jpeg_compress_struct* cinfo, EncodeErrors* err, const Image* image, int quality,
                 unsigned char** buffer, unsigned long* size) {
    if (setjmp(err->jump)) return false;
    jpeg_create_compress(cinfo);
    jpeg_mem_dest(cinfo, buffer, size);
    cinfo->image_width = static_cast<JDIMENSION>(image->width);
    cinfo->image_height = static_cast<JDIMENSION>(image->height);
    cinfo->input_components = 3;
    cinfo->in_color_space = JCS_RGB;
    jpeg_set_defaults(cinfo);
    jpeg_set_quality(cinfo, quality, TRUE);
    jpeg_start_compress(cinfo, TRUE);
    while (cinfo->next_scanline < cinfo->image_height) {
        JSAMPROW row = const_cast<uint8_t*>(image->pixel(0, static_cast<int>(cinfo->next_scanline)));
        jpeg_write_scanlines(cinfo, &row, 1);
    }
    jpeg_finish_compress(cinfo);
    return true;
}

}  // namespace

std::vector<uint8_t> encode_jpeg(const Image& image, int quality) {
    check_encodable(image, "encode_jpeg");
    check(quality >= 0 && quality <= 100, "JPEG quality must be 0-100, got ", quality);
    jpeg_compress_struct cinfo{};
    EncodeErrors err;
    cinfo.err = jpeg_std_error(&err.base);
    err.base.error_exit = on_encode_error;
    unsigned char* buffer = nullptr;
    unsigned long size = 0;
    const bool ok = encode_core(&cinfo, &err, &image, quality, &buffer, &size);
    jpeg_destroy_compress(&cinfo);
    std::vector<uint8_t> out;
    if (ok && buffer) out.assign(buffer, buffer + size);
    std::free(buffer);  // jpeg_mem_dest allocates with malloc
    check(ok, "encode_jpeg: libjpeg failed: ", err.message);
    return out;
}

}  // namespace flux2
