// SPDX-License-Identifier: Apache-2.0
#include "util/status.h"

#include <algorithm>

namespace moe {

int ExitCodeFor(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return 0;
    case StatusCode::kUsage: return 2;
    case StatusCode::kInvalidFormat: return 3;
    case StatusCode::kIoError: return 4;
    case StatusCode::kResourceExhausted: return 5;
    case StatusCode::kIntegrity: return 6;
    case StatusCode::kUnsupported: return 7;
    case StatusCode::kCancelled: return 130;
    case StatusCode::kInternal: return 1;
  }
  return 1;
}

const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kUsage: return "usage error";
    case StatusCode::kInvalidFormat: return "invalid format";
    case StatusCode::kIoError: return "I/O error";
    case StatusCode::kResourceExhausted: return "resource exhausted";
    case StatusCode::kIntegrity: return "integrity failure";
    case StatusCode::kUnsupported: return "unsupported";
    case StatusCode::kCancelled: return "cancelled";
    case StatusCode::kInternal: return "internal error";
  }
  return "unknown";
}

Status::Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {
  auto is_control = [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; };
  if (std::none_of(message_.begin(), message_.end(), is_control)) return;
  std::string out;
  out.reserve(message_.size() + 16);
  for (char c : message_) {
    if (!is_control(c)) {
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    }
  }
  message_ = std::move(out);
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  return Status(code_, fmt::format("{}: {}", context, message_));
}

}  // namespace moe
