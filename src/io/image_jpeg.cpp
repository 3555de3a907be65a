// JPEG decoding with libjpeg. Its default error handler calls exit(); ours longjmps back to decode_core, whose frame
// creates no object with a destructor after setjmp (see image_png.cpp for the same pattern).
// jpeglib.h needs size_t and FILE declared before it, and jerror.h after it.
// clang-format off
#include <csetjmp>
#include <cstdio>
#include <jpeglib.h>
#include <jerror.h>
// clang-format on

#include <cstring>

#include "core/error.h"
#include "io/exif.h"
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

// In place, 4 bytes per pixel in -> 3 out, as PIL's convert("RGB") of a CMYK image: R = (255 - C)(255 - K) / 255.
// Adobe's files (the Adobe marker) store the inks inverted, 255 meaning none, which PIL reads as "CMYK;I".
void cmyk_to_rgb(Image* image, bool adobe_inverted) {
    const size_t n = static_cast<size_t>(image->width) * image->height;
    uint8_t* p = image->rgb.data();
    for (size_t i = 0; i < n; ++i) {
        int ink[4];
        for (int c = 0; c < 4; ++c) ink[c] = adobe_inverted ? 255 - p[4 * i + c] : p[4 * i + c];
        for (int c = 0; c < 3; ++c) {
            const int v = (255 - ink[c]) * (255 - ink[3]);
            // Rounded division by 255, exact for 0..65025 (PIL's MULDIV255).
            p[3 * i + c] = static_cast<uint8_t>((v + 128 + ((v + 128) >> 8)) >> 8);
        }
    }
    image->rgb.resize(n * 3);
}

// The EXIF orientation from the first APP1 segment that holds EXIF, 1 when there is none.
int jpeg_orientation(const jpeg_decompress_struct& cinfo) {
    for (jpeg_saved_marker_ptr m = cinfo.marker_list; m != nullptr; m = m->next) {
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && std::memcmp(m->data, "Exif\0\0", 6) == 0)
            return exif_orientation(m->data, m->data_length);
    }
    return 1;
}

bool decode_core(jpeg_decompress_struct* cinfo, JpegErrorManager* err, const uint8_t* data, size_t size, Image* out,
                 int* orientation) {
    if (setjmp(err->jump)) return false;
    jpeg_create_decompress(cinfo);
    jpeg_mem_src(cinfo, data, static_cast<unsigned long>(size));
    jpeg_save_markers(cinfo, JPEG_APP0 + 1, 0xFFFF);  // EXIF lives in APP1
    jpeg_read_header(cinfo, TRUE);
    // Saved markers live in libjpeg's image pool, which jpeg_finish_decompress frees.
    *orientation = jpeg_orientation(*cinfo);
    if (cinfo->image_width > static_cast<JDIMENSION>(kMaxImageSide) ||
        cinfo->image_height > static_cast<JDIMENSION>(kMaxImageSide)) {
        std::snprintf(err->message, sizeof err->message, "image is larger than %d pixels on a side", kMaxImageSide);
        return false;
    }
    // libjpeg turns YCCK into CMYK but not into RGB; cmyk_to_rgb does the rest.
    const bool cmyk = cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK;
    const int channels = cmyk ? 4 : 3;
    // libjpeg's defaults (islow DCT, fancy upsampling) are what PIL decodes with.
    cinfo->out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(cinfo);
    if (cinfo->output_components != channels) {
        std::snprintf(err->message, sizeof err->message, "decoder produced %d components instead of %d",
                      cinfo->output_components, channels);
        return false;
    }
    out->width = static_cast<int>(cinfo->output_width);
    out->height = static_cast<int>(cinfo->output_height);
    const size_t row_bytes = static_cast<size_t>(out->width) * channels;
    out->rgb.resize(row_bytes * out->height);
    while (cinfo->output_scanline < cinfo->output_height) {
        JSAMPROW row = out->rgb.data() + row_bytes * cinfo->output_scanline;
        jpeg_read_scanlines(cinfo, &row, 1);
    }
    jpeg_finish_decompress(cinfo);
    if (cmyk) cmyk_to_rgb(out, cinfo->saw_Adobe_marker);
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
    int orientation = 1;
    const bool ok = decode_core(&cinfo, &err, data, size, &image, &orientation);
    jpeg_destroy_decompress(&cinfo);
    check(ok, origin, ": invalid JPEG: ", err.message);
    return apply_exif_orientation(image, orientation);
}

}  // namespace flux2
