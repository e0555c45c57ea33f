# librlr as users get it.
#
# The parts (rlr_core ... rlr_testing) stay separate static libraries inside this build,
# for the tests and the binaries here, which reach below the public API. Users get one
# library made of all of them, in two forms:
#   rlr::rlr         librlr.so.<major>: exports only what include/rlr/ declares (RLR_API;
#                    everything else is compiled -fvisibility=hidden)
#   rlr::rlr_static  librlr.a: the same objects; a static link pulls only the objects it
#                    uses, so a binary that does not use the test kit does not carry it
# The test kit (rlr/testing.h) and the conformance suites are part of both: they need the
# runtime's internals, which the shared library does not export.
#
# Installed: headers (include/rlr), both libraries, the CMake package
# (find_package(rlr CONFIG)), rlr.pc (pkg-config), and the binaries of examples/ (their
# own install() rules). The build tree exports the same package, so a project can also
# use rlr_DIR=<this build directory> without installing.

set(RLR_LIBRARY_PARTS rlr_core rlr_util rlr_storage rlr_wire rlr_transport rlr_node rlr_client
                      rlr_testing)
set(rlr_objects)
foreach(part ${RLR_LIBRARY_PARTS})
  set_target_properties(${part} PROPERTIES POSITION_INDEPENDENT_CODE ON CXX_VISIBILITY_PRESET hidden
                                           VISIBILITY_INLINES_HIDDEN ON)
  list(APPEND rlr_objects $<TARGET_OBJECTS:${part}>)
endforeach()

# What the objects need at link time. The public headers include only the standard
# library, so a consumer of the shared library needs nothing else; a static link needs
# these too (find_dependency in rlrConfig.cmake, Libs.private in rlr.pc).
set(rlr_link_deps fmt::fmt RocksDB::rocksdb-shared Threads::Threads)
set(rlr_public_includes
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)

add_library(rlr SHARED ${rlr_objects})
target_link_libraries(rlr PRIVATE ${rlr_link_deps})
target_include_directories(rlr INTERFACE ${rlr_public_includes})
target_compile_features(rlr INTERFACE cxx_std_20)
set_target_properties(rlr PROPERTIES VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR}
                                     EXPORT_NAME rlr)
# No undefined symbols left for the loader to find in the program (a sanitizer build
# leaves its runtime's symbols to the program's runtime library).
target_link_options(rlr PRIVATE -Wl,--as-needed)
if(NOT RLR_SANITIZE)
  target_link_options(rlr PRIVATE -Wl,--no-undefined)
endif()

add_library(rlr_static STATIC ${rlr_objects})
target_link_libraries(rlr_static INTERFACE ${rlr_link_deps})
target_include_directories(rlr_static INTERFACE ${rlr_public_includes})
target_compile_features(rlr_static INTERFACE cxx_std_20)
set_target_properties(rlr_static PROPERTIES OUTPUT_NAME rlr EXPORT_NAME rlr_static)

foreach(lib rlr rlr_static)
  foreach(part ${RLR_LIBRARY_PARTS})
    add_dependencies(${lib} ${part})
  endforeach()
endforeach()

# --- install ------------------------------------------------------------------------------
set(RLR_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/rlr)
install(TARGETS rlr EXPORT rlrTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT lib NAMELINK_COMPONENT dev)
install(TARGETS rlr_static EXPORT rlrTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
# A stripped install (cmake --install --strip, cpack) strips the shared library and the
# binaries; the archive loses its debug sections too (its symbols stay, for linking).
install(CODE "
  if(CMAKE_INSTALL_DO_STRIP)
    execute_process(COMMAND ${CMAKE_STRIP} --strip-debug
                    \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/$<TARGET_FILE_NAME:rlr_static>\")
  endif()
" COMPONENT dev)
file(GLOB rlr_installed_headers CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/include/rlr/*.h)
install(FILES ${rlr_installed_headers} ${PROJECT_BINARY_DIR}/include/rlr/version.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/rlr COMPONENT dev)

include(CMakePackageConfigHelpers)
configure_package_config_file(${PROJECT_SOURCE_DIR}/packaging/rlrConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/packaging/rlrConfig.cmake
                              INSTALL_DESTINATION ${RLR_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/rlrConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(EXPORT rlrTargets NAMESPACE rlr:: DESTINATION ${RLR_CMAKE_DIR} COMPONENT dev)
install(FILES ${PROJECT_BINARY_DIR}/packaging/rlrConfig.cmake ${PROJECT_BINARY_DIR}/rlrConfigVersion.cmake
        DESTINATION ${RLR_CMAKE_DIR} COMPONENT dev)

# The build tree as a package: rlr_DIR=<build dir> (examples/custom_transport in CI).
export(EXPORT rlrTargets NAMESPACE rlr:: FILE ${PROJECT_BINARY_DIR}/rlrTargets.cmake)
configure_file(${PROJECT_BINARY_DIR}/packaging/rlrConfig.cmake ${PROJECT_BINARY_DIR}/rlrConfig.cmake COPYONLY)

# pkg-config: rlr.pc (the shared library; `pkg-config --static` adds what librlr.a needs).
# The prefix is found from the file's own place, so the tree can be installed anywhere.
file(RELATIVE_PATH RLR_PC_TO_PREFIX /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
configure_file(${PROJECT_SOURCE_DIR}/packaging/rlr.pc.in ${PROJECT_BINARY_DIR}/packaging/rlr.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/packaging/rlr.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
        COMPONENT dev)
