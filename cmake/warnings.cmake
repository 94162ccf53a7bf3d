# SPDX-License-Identifier: Apache-2.0
function(moe_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
endfunction()
