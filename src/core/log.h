#pragma once
// Process-wide log sink with a level filter. Messages go to stderr so that stdout stays clean for data.
#include <string>

#include "core/error.h"

namespace flux2 {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3, quiet = 4 };

void set_log_level(LogLevel level);
LogLevel log_level();
LogLevel parse_log_level(const std::string& name);  // "debug", "info", "warn", "error", "quiet"
void log_message(LogLevel level, const std::string& message);

template <class... Parts>
void log_debug(Parts&&... parts) {
    if (log_level() <= LogLevel::debug) log_message(LogLevel::debug, str(std::forward<Parts>(parts)...));
}
template <class... Parts>
void log_info(Parts&&... parts) {
    if (log_level() <= LogLevel::info) log_message(LogLevel::info, str(std::forward<Parts>(parts)...));
}
template <class... Parts>
void log_warn(Parts&&... parts) {
    if (log_level() <= LogLevel::warn) log_message(LogLevel::warn, str(std::forward<Parts>(parts)...));
}
template <class... Parts>
void log_error(Parts&&... parts) {
    if (log_level() <= LogLevel::error) log_message(LogLevel::error, str(std::forward<Parts>(parts)...));
}

}  // namespace flux2
