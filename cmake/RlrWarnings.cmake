# Warnings for the project's own targets; -Werror unless RLR_WERROR is OFF.
function(rlr_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
    -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Woverloaded-virtual
    -Wimplicit-fallthrough)
  if(RLR_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
