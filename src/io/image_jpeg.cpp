// JPEG decoding with libjpeg. Its default error handler calls exit(); ours longjmps back to decode_core, whose frame
// creates no object with a destructor after setjmp (see image_png.cpp for the same pattern).
// jpeglib.h needs size_t and FILE declared before it, and jerror.h after it.
// clang-format off
#include <csetjmp>
#include <cstdio>
#include <jpeglib.h>
#include <jerror.h>
// clang-format on

#include "core/error.h"
#include "io/image.h"

namespace flux2 {

namespace {

struct JpegErrorManager {
    jpeg_error_mgr base;  // first member: libjpeg hands us a pointer to it
    std::jmp_buf jump;
    char message[JMSG_LENGTH_MAX] = "";
    bool truncated = false;
};

void on_jpeg_error(j_common_ptr cinfo) {
    auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
    (*cinfo->err->format_message)(cinfo, err->message);
    std::longjmp(err->jump, 1);
}

// Warnings (level -1) about corrupt data are tolerated as PIL tolerates them, except a premature end of data, which
// libjpeg would silently fill with grey where PIL refuses the file.
void on_jpeg_message(j_common_ptr cinfo, int level) {
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF)
        reinterpret_cast<JpegErrorManager*>(cinfo->err)->truncated = true;
}

bool decode_core(jpeg_decompress_struct* cinfo, JpegErrorManager* err, const uint8_t* data, size_t size, Image* out) {
    if (setjmp(err->jump)) return false;
    jpeg_create_decompress(cinfo);
    jpeg_mem_src(cinfo, data, static_cast<unsigned long>(size));
    jpeg_read_header(cinfo, TRUE);
    if (cinfo->image_width > static_cast<JDIMENSION>(kMaxImageSide) ||
        cinfo->image_height > static_cast<JDIMENSION>(kMaxImageSide)) {
        std::snprintf(err->message, sizeof err->message, "image is larger than %d pixels on a side", kMaxImageSide);
        return false;
    }
    if (cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK) {
        std::snprintf(err->message, sizeof err->message, "CMYK/YCCK JPEGs are not supported; convert to RGB first");
        return false;
    }
    // libjpeg's defaults (islow DCT, fancy upsampling) are what PIL decodes with.
    cinfo->out_color_space = JCS_RGB;
    jpeg_start_decompress(cinfo);
    if (cinfo->output_components != 3) {
        std::snprintf(err->message, sizeof err->message, "decoder produced %d components instead of 3",
                      cinfo->output_components);
        return false;
    }
    out->width = static_cast<int>(cinfo->output_width);
    out->height = static_cast<int>(cinfo->output_height);
    out->rgb.resize(static_cast<size_t>(out->width) * out->height * 3);
    while (cinfo->output_scanline < cinfo->output_height) {
        JSAMPROW row = out->pixel(0, static_cast<int>(cinfo->output_scanline));
        jpeg_read_scanlines(cinfo, &row, 1);
    }
    jpeg_finish_decompress(cinfo);
    if (err->truncated) {
        std::snprintf(err->message, sizeof err->message, "file is truncated");
        return false;
    }
    return true;
}

}  // namespace

Image decode_jpeg(const uint8_t* data, size_t size, const std::string& origin) {
    check(size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF, origin,
          ": not a JPEG file (bad signature)");
    jpeg_decompress_struct cinfo{};
    JpegErrorManager err;
    cinfo.err = jpeg_std_error(&err.base);
    err.base.error_exit = on_jpeg_error;
    err.base.emit_message = on_jpeg_message;
    Image image;
    const bool ok = decode_core(&cinfo, &err, data, size, &image);
    jpeg_destroy_decompress(&cinfo);
    check(ok, origin, ": invalid JPEG: ", err.message);
    return image;
}

}  // namespace flux2
