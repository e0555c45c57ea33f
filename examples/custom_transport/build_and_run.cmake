# Configures, builds and runs examples/custom_transport against a librlr build tree, as
# a user's project would. Fails on the first step that fails.
#   cmake -DSOURCE_DIR=... -DBINARY_DIR=... -DRLR_DIR=... -DCXX=... -DGENERATOR=... -P build_and_run.cmake
foreach(step configure build run)
  if(step STREQUAL "configure")
    set(cmd ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${BINARY_DIR} -G ${GENERATOR}
            -DCMAKE_CXX_COMPILER=${CXX} -Drlr_DIR=${RLR_DIR} -DCMAKE_BUILD_TYPE=RelWithDebInfo)
  elseif(step STREQUAL "build")
    set(cmd ${CMAKE_COMMAND} --build ${BINARY_DIR})
  else()
    set(cmd ${BINARY_DIR}/custom-transport)
  endif()
  execute_process(COMMAND ${cmd} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "custom_transport: ${step} failed (${rc})")
  endif()
endforeach()
