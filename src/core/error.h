#pragma once
// One error type for the whole library: thrown inside, mapped to exit codes / HTTP statuses at the edges.
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace flux2 {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Concatenates any streamable values: str("tensor ", name, " has ", n, " dims").
template <class... Parts>
std::string str(Parts&&... parts) {
    std::ostringstream os;
    (os << ... << std::forward<Parts>(parts));
    return os.str();
}

template <class... Parts>
[[noreturn]] void fail(Parts&&... parts) {
    throw Error(str(std::forward<Parts>(parts)...));
}

// Inside a catch block: the message of the exception being handled (what() of a std::exception, else a fixed text).
inline std::string current_exception_message() {
    try {
        throw;
    } catch (const std::exception& e) {
        return e.what();
    } catch (...) {
        return "an exception of unknown type";
    }
}

// Checks an input condition (bad file, bad flag): the message must say what is wrong and where.
template <class... Parts>
void check(bool ok, Parts&&... parts) {
    if (!ok) fail(std::forward<Parts>(parts)...);
}

}  // namespace flux2
