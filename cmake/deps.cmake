# SPDX-License-Identifier: Apache-2.0
# Every dependency comes from Debian packages (scripts/setup.sh installs them); nothing is
# downloaded at configure or build time.
find_package(Threads REQUIRED)
find_package(fmt REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(hwy REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)
if(MOE_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
