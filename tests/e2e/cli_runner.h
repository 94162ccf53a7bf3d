// SPDX-License-Identifier: Apache-2.0
// Runs the built moestream binary in a child process, capturing exit code, stdout and stderr.
#pragma once

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace moe::testing {

struct CliResult {
  int exit_code = -1;
  std::string out, err;
};

inline std::string MoestreamBin() {
  const char* env = std::getenv("MOESTREAM_BIN");
  return env ? env : MOESTREAM_BIN_PATH;
}

// Runs `moestream args...` with stdin from `stdin_path` (or /dev/null); outputs go through files
// in `scratch_dir`. `in_child` runs in the child just before exec (setrlimit, signal dispositions).
inline CliResult RunCli(const std::vector<std::string>& args, const std::string& scratch_dir,
                        const std::string& stdin_path = "/dev/null",
                        const std::function<void()>& in_child = {}) {
  const std::string out = scratch_dir + "/cli.stdout", err = scratch_dir + "/cli.stderr";
  const std::string bin = MoestreamBin();
  CliResult r;
  pid_t pid = fork();
  if (pid == 0) {
    int i = open(stdin_path.c_str(), O_RDONLY);
    int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(i, 0);
    dup2(o, 1);
    dup2(e, 2);
    std::vector<char*> argv = {const_cast<char*>(bin.c_str())};
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    if (in_child) in_child();
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  auto slurp = [](const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  };
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

}  // namespace moe::testing
