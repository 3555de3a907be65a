#pragma once
// Runs the built `flux2` binary as a subprocess (stdout and stderr captured) with a private demo folder and an
// empty Hugging Face cache, for the end-to-end CLI tests.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "temp_dir.h"
#include "test_util.h"

extern char** environ;

namespace flux2::test {

namespace fs = std::filesystem;

struct RunResult {
    int exit_code = -1;
    std::string out, err;
};

inline std::ostream& operator<<(std::ostream& os, const RunResult& r) {
    return os << "exit " << r.exit_code << "\n--- stdout:\n" << r.out << "--- stderr:\n" << r.err;
}

inline std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Environment changes for a child process: nullopt removes the variable.
using EnvChanges = std::map<std::string, std::optional<std::string>>;

// A child process of spawn_binary: its pid (-1 where it could not start, with the reason in `error`) and the files
// its stdout and stderr go to.
struct SpawnedBinary {
    pid_t pid = -1;
    std::string out_path, err_path, error;
};

// Starts the binary with `args`, stdout and stderr going to out_path and err_path, stdin read from `stdin_path`
// when given; wait_binary collects it. Several may run at once (CudaDemoEval's paths).
inline SpawnedBinary spawn_binary(const std::vector<std::string>& args, const EnvChanges& changes,
                                  const std::string& out_path, const std::string& err_path,
                                  const std::string& stdin_path = "") {
    std::vector<std::string> env_strings;
    for (char** e = environ; *e; ++e) {
        const std::string entry = *e;
        if (!changes.contains(entry.substr(0, entry.find('=')))) env_strings.push_back(entry);
    }
    for (const auto& [key, value] : changes)
        if (value) env_strings.push_back(key + "=" + *value);
    std::vector<char*> envp, argv;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string binary = FLUX2_BINARY;
    argv.push_back(binary.data());
    std::vector<std::string> arg_copies = args;
    for (auto& a : arg_copies) argv.push_back(a.data());
    argv.push_back(nullptr);

    SpawnedBinary child{-1, out_path, err_path, ""};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (!stdin_path.empty()) posix_spawn_file_actions_addopen(&actions, 0, stdin_path.c_str(), O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int spawned = posix_spawn(&child.pid, binary.c_str(), &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) {
        child.pid = -1;
        child.error = "posix_spawn failed: " + std::string(std::strerror(spawned));
    }
    return child;
}

// Waits for a spawn_binary child and reads what it wrote.
inline RunResult wait_binary(const SpawnedBinary& child) {
    RunResult r;
    if (child.pid < 0) {
        r.err = child.error;
        return r;
    }
    int status = 0;
    waitpid(child.pid, &status, 0);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = read_file(child.out_path);
    r.err = read_file(child.err_path);
    return r;
}

// Runs the binary with `args`, stdout and stderr captured in files under `scratch`, stdin read from `stdin_path`
// when given.
inline RunResult run_binary(const std::vector<std::string>& args, const EnvChanges& changes, const TempDir& scratch,
                            const std::string& stdin_path = "") {
    return wait_binary(spawn_binary(args, changes, scratch.file("stdout.txt"), scratch.file("stderr.txt"), stdin_path));
}

inline Tensor golden(const SafetensorsFile& f, const std::string& key) {
    const TensorInfo* t = f.find(key);
    if (!t) throw std::runtime_error("golden tensor missing: " + key);
    return load_f32(*t);
}

class Cli : public ::testing::Test {
protected:
    // Every run sees an empty Hugging Face cache, so no test reads or writes $HOME, and, as the built-in demo
    // ($FLUX2_DEMO_DIR), the tiny random pipeline of demo_dir(), fast on two cores; the tests of the trained demo
    // model itself set trained_demo_.
    RunResult flux2(const std::vector<std::string>& args, const std::string& stdin_path = "") {
        return run_binary(args, flux2_env(args), tmp_, stdin_path);
    }
    // The same started in the background, its output in <name>.out and <name>.err of the test's folder;
    // wait_binary collects it.
    SpawnedBinary start_flux2(const std::vector<std::string>& args, const std::string& name) {
        return spawn_binary(args, flux2_env(args), tmp_.file(name + ".out"), tmp_.file(name + ".err"));
    }
    EnvChanges flux2_env(const std::vector<std::string>& args) const {
        const bool names_model = std::find(args.begin(), args.end(), "--model-path") != args.end() ||
                                 std::find(args.begin(), args.end(), "--transformer-weights-path") != args.end();
        std::optional<std::string> demo;
        if (!trained_demo_) demo = names_model ? tmp_.file("demo") : demo_dir();
        return {{"FLUX2_DEMO_DIR", demo},
                {"HF_HOME", hf_home()},
                {"HF_HUB_CACHE", std::nullopt},
                {"XDG_CACHE_HOME", std::nullopt}};
    }
    // `flux2 bench --save-pipeline DIR --model tiny` in this test's folder, written on first use.
    std::string demo_dir() const {
        const std::string dir = tmp_.file("demo");
        if (!fs::exists(fs::path(dir) / "model_index.json")) {
            const RunResult r = run_binary({"bench", "--save-pipeline", dir, "--model", "tiny"}, {}, tmp_);
            if (r.exit_code != 0) throw std::runtime_error("writing the tiny pipeline failed:\n" + r.err);
        }
        return dir;
    }
    std::string hf_home() const { return tmp_.file("hf-home"); }
    std::string file(const std::string& name) const { return tmp_.file(name); }

    // The diffusers dev pipeline golden's prompt embeddings and initial noise as `generate` takes them: files
    // embeds.safetensors (--prompt-embeds) and noise.safetensors (--initial-noise) in the test's folder.
    void write_dev_golden_inputs(const SafetensorsFile& g) const {
        SafetensorsWriter embeds, noise;
        embeds.add_f32("prompt_embeds", golden(g, "dev.prompt_embeds"));
        embeds.write(file("embeds.safetensors"));
        noise.add_f32("latents", golden(g, "dev.latents_in"));
        noise.write(file("noise.safetensors"));
    }

    // `generate` on the tiny dev transformer and VAE from those two files, 64x64, 4 steps (callers add the rest).
    std::vector<std::string> dev_golden_generate_args() const {
        return {"generate",
                "--model-path",
                data_path("tiny-dev-bf16.safetensors"),
                "--vae-path",
                data_path("tiny-vae"),
                "--prompt-embeds",
                file("embeds.safetensors"),
                "--initial-noise",
                file("noise.safetensors"),
                "--width",
                "64",
                "--height",
                "64",
                "--num-inference-steps",
                "4"};
    }

    // A snapshot folder of `repo_id` in the test's HF cache, created with refs/main pointing at it.
    fs::path hf_snapshot(const std::string& repo_id) const {
        std::string folder = "models--" + repo_id;
        folder.replace(folder.find('/'), 1, "--");
        const fs::path repo = fs::path(hf_home()) / "hub" / folder;
        fs::create_directories(repo / "snapshots" / "0123abcd");
        fs::create_directories(repo / "refs");
        std::ofstream(repo / "refs" / "main") << "0123abcd";
        return repo / "snapshots" / "0123abcd";
    }

    TempDir tmp_;
    bool trained_demo_ = false;  // runs see the real built-in demo (assets/demo-model), not demo_dir()
};

// ---- forward ----

class CliForward : public Cli {
protected:
    // Writes the inputs of tiny-klein-golden case0 for `flux2 forward`, leaving out the key `skip`.
    std::string write_inputs(const std::string& skip = "", bool wrong_hidden_shape = false) {
        auto g = SafetensorsFile::open(test::data_path("tiny-klein-golden.safetensors"));
        SafetensorsWriter w;
        for (const char* key : {"hidden_states", "encoder_hidden_states", "timestep", "img_ids", "txt_ids"}) {
            if (key == skip) continue;
            Tensor t = golden(*g, std::string("case0.") + key);
            if (key == std::string("hidden_states") && wrong_hidden_shape) t = t.reshape({1, 32, 64});
            w.add_f32(key, t);
        }
        const std::string path = file("inputs.safetensors");
        w.write(path);
        return path;
    }
    std::vector<float> expected(const std::string& key) {
        auto g = SafetensorsFile::open(test::data_path("tiny-klein-golden.safetensors"));
        return golden(*g, "case0." + key).to_vector();
    }
    std::vector<float> output() {
        auto f = SafetensorsFile::open(file("out.safetensors"));
        return f->find("output") ? read_f32(*f->find("output")) : std::vector<float>{};
    }
};

}  // namespace flux2::test
