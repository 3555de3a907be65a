#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace flux2 {

namespace {
std::atomic<LogLevel> g_level{LogLevel::info};
std::mutex g_mutex;
const char* level_tag(LogLevel level) {
    switch (level) {
        case LogLevel::debug: return "debug";
        case LogLevel::info: return "info";
        case LogLevel::warn: return "warning";
        case LogLevel::error: return "error";
        default: return "";
    }
}
}  // namespace

void set_log_level(LogLevel level) { g_level = level; }
LogLevel log_level() { return g_level; }

LogLevel parse_log_level(const std::string& name) {
    if (name == "debug") return LogLevel::debug;
    if (name == "info") return LogLevel::info;
    if (name == "warn" || name == "warning") return LogLevel::warn;
    if (name == "error") return LogLevel::error;
    if (name == "quiet") return LogLevel::quiet;
    fail("unknown log level '", name, "' (expected debug, info, warn, error or quiet)");
}

void log_message(LogLevel level, const std::string& message) {
    std::lock_guard<std::mutex> lock(g_mutex);
    std::fprintf(stderr, "[flux2 %s] %s\n", level_tag(level), message.c_str());
}

}  // namespace flux2
