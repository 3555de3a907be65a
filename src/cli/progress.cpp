#include "cli/progress.h"

#include <cstdio>

#include "core/log.h"

namespace flux2::cli {

void ProgressBar::update(int step, int total, double step_seconds) {
    total_seconds_ += step_seconds;
    if (!enabled_) {
        log_debug("step ", step, "/", total, ": ", step_seconds, " s");
        return;
    }
    constexpr int kWidth = 30;
    const int filled = total > 0 ? step * kWidth / total : kWidth;
    const double per_step = total_seconds_ / step;
    std::string bar(filled, '#');
    bar.resize(kWidth, '.');
    std::fprintf(stderr, "\r[%s] %d/%d  %.3f s/step  ETA %.0f s   ", bar.c_str(), step, total, per_step,
                 per_step * (total - step));
    std::fflush(stderr);
    drawn_ = true;
}

void ProgressBar::finish() {
    if (drawn_) std::fprintf(stderr, "\n");
    drawn_ = false;
}

}  // namespace flux2::cli
