#pragma once
// The single web page `flux2 serve` answers at `/`: a form (prompt, size, steps, seed, reference images, API key)
// that calls the server's own OpenAI-style image endpoints with `stream: true` and shows the progress and the
// image. Plain HTML/CSS/JS in one string: no build step, nothing fetched from elsewhere.
#include <string_view>

namespace flux2::server {

// The whole page (UTF-8 HTML), to be served as `text/html; charset=utf-8`.
std::string_view web_page_html();

}  // namespace flux2::server
