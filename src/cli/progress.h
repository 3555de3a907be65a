#pragma once
// A one-line progress bar on a terminal (step, s/step, ETA); silent when stderr is not a TTY, where one log line
// per step at debug level takes its place.
#include <string>

namespace flux2::cli {

class ProgressBar {
public:
    explicit ProgressBar(bool enabled) : enabled_(enabled) {}
    void update(int step, int total, double step_seconds);
    void finish();

private:
    bool enabled_;
    bool drawn_ = false;
    double total_seconds_ = 0;
};

}  // namespace flux2::cli
