// `flux2 inspect PATH`: what a checkpoint holds, read from headers only.
#include <cstdio>

#include "cli/commands.h"
#include "io/checkpoint.h"

namespace flux2::cli {

void register_inspect(CLI::App& app) {
    auto* cmd = app.add_subcommand("inspect", "List the tensors of a safetensors checkpoint (header only)");
    auto path = std::make_shared<std::string>();
    cmd->add_option("path", *path, "a .safetensors file, an index.json or a folder")->required();
    cmd->callback([path] {
        Checkpoint ckpt = Checkpoint::open(*path, /*header_only=*/true);
        std::printf("%s\n", ckpt.describe().c_str());
        for (const auto& name : ckpt.names()) {
            const TensorInfo& t = ckpt.get(name);
            std::printf("  %-70s %-8s %s\n", name.c_str(), dtype_name(t.dtype), shape_str(t.shape).c_str());
        }
    });
}

}  // namespace flux2::cli
