// SPDX-License-Identifier: Apache-2.0
// Status and Result<T>: the error channel for untrusted input and the environment.
// Bugs use MOE_CHECK (check.h); everything a user or a file can cause comes back as a Status
// whose message names the file, tensor, key or offset and the rule broken.
#pragma once

#include <fmt/format.h>

#include <string>
#include <utility>
#include <variant>

namespace moe {

// Each code maps to one process exit code (ExitCodeFor), per ../shared/spec/bad-inputs.md.
enum class StatusCode {
  kOk = 0,
  kUsage,              // exit 2: bad flag or configuration
  kInvalidFormat,      // exit 3: corrupt or invalid input file
  kIoError,            // exit 4: read/write failure, missing file
  kResourceExhausted,  // exit 5: ENOSPC, memory, limits
  kIntegrity,          // exit 6: checksum mismatch, incomplete store
  kUnsupported,        // exit 7: version, architecture, dtype we do not handle
  kCancelled,          // exit 130
  kInternal,           // exit 1: our own bug surfaced as an error
};

int ExitCodeFor(StatusCode code);
const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  // Control characters in `message` (a newline inside a JSON key or tensor name quoted from an
  // untrusted file) are escaped as \n, \r, \t or \xNN: an error is always one line.
  Status(StatusCode code, std::string message);
  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // Prepends "context: " to the message, keeping the code.
  Status WithContext(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

template <typename... Args>
Status Error(StatusCode code, fmt::format_string<Args...> f, Args&&... args) {
  return Status(code, fmt::format(f, std::forward<Args>(args)...));
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<1>(v_);
  }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace moe

#define MOE_CONCAT_INNER(a, b) a##b
#define MOE_CONCAT(a, b) MOE_CONCAT_INNER(a, b)

#define MOE_TRY(expr)                        \
  do {                                       \
    ::moe::Status moe_try_status_ = (expr);  \
    if (!moe_try_status_.ok()) return moe_try_status_; \
  } while (0)

#define MOE_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()

#define MOE_ASSIGN_OR_RETURN(lhs, expr) \
  MOE_ASSIGN_OR_RETURN_IMPL(MOE_CONCAT(moe_result_, __LINE__), lhs, expr)
