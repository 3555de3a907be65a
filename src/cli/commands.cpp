#include "cli/commands.h"

namespace flux2::cli {

void register_all(CLI::App& app) {
    register_inspect(app);
    register_forward(app);
    register_bench(app);
    register_generate(app);
    register_encode_prompt(app);
    register_tokenize(app);
    register_serve(app);
    register_eval(app);
}

}  // namespace flux2::cli
