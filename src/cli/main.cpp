// flux2: command-line entry point. Each subcommand lives in its own file and registers here.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"

int main(int argc, char** argv) {
    CLI::App app{
        "flux2.cpp: FLUX.2 (dev, klein) image generation from NVFP4, FP8 and BF16 checkpoints.\n"
        "Run `flux2 <command> --help` for the options of a command."};
    app.require_subcommand(1);
    std::string log_level = "info";
    app.add_option("--log-level", log_level, "debug, info, warn, error or quiet")->capture_default_str();
    app.parse_complete_callback([&] { flux2::set_log_level(flux2::parse_log_level(log_level)); });
    // Subcommands pass options they do not know up here, so --log-level may also follow the subcommand.
    app.fallthrough();

    flux2::cli::register_all(app);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    } catch (const flux2::Error& e) {
        std::fprintf(stderr, "flux2: error: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "flux2: internal error: %s\n", e.what());
        return 2;
    }
    return 0;
}
