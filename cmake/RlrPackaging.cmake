# The files an installed node needs beside its binaries, and the Debian packages.
#
#   cpack -G DEB --config build/CPackConfig.cmake -B <dir>
# gives three packages (tests/package/deb_test.sh installs and checks them):
#   librlr      the shared library                       (install component "lib")
#   librlr-dev  headers, librlr.a, CMake and pkg-config  (component "dev")
#   rlr-node    rlr-node, rlr-ctl and the example tools, the systemd unit
#               rlr-node@.service, the sample configurations, the operator docs
#                                                          (component "node")

# --- rlr-node's files beside the binaries (examples/*/CMakeLists.txt install those) -------
set(RLR_NODE_DOCDIR ${CMAKE_INSTALL_DATAROOTDIR}/doc/rlr-node)
# The unit names the binary by its installed path, which is known only when installing
# (cpack installs under /usr, `cmake --install --prefix P` under P).
install(CODE "
  set(RLR_BINDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}\")
  set(RLR_DOCDIR \"\${CMAKE_INSTALL_PREFIX}/${RLR_NODE_DOCDIR}\")
  configure_file(\"${PROJECT_SOURCE_DIR}/packaging/rlr-node@.service.in\"
                 \"${PROJECT_BINARY_DIR}/packaging/rlr-node@.service\" @ONLY)
" COMPONENT node)
install(FILES ${PROJECT_BINARY_DIR}/packaging/rlr-node@.service
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/systemd/system COMPONENT node)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/examples/config/ DESTINATION ${RLR_NODE_DOCDIR}/examples
        COMPONENT node FILES_MATCHING PATTERN "*.toml")
install(FILES ${PROJECT_SOURCE_DIR}/examples/grafana/rlr.json DESTINATION ${RLR_NODE_DOCDIR}/examples/grafana
        COMPONENT node)
install(FILES ${PROJECT_SOURCE_DIR}/docs/operations.md ${PROJECT_SOURCE_DIR}/docs/configuration.md
              ${PROJECT_SOURCE_DIR}/docs/metrics.md
        DESTINATION ${RLR_NODE_DOCDIR} COMPONENT node)
# Manual pages of the two binaries an operator runs, from their --help (help2man; the
# help text stays the one source of truth). Debian wants them gzipped.
find_program(HELP2MAN_EXECUTABLE help2man REQUIRED)  # cmake/deps.sh installs it
set(rlr_man_pages)
foreach(tool rlr-node rlr-ctl)
  if(tool STREQUAL "rlr-node")
    set(summary "run one librlr replicator node")
  else()
    set(summary "inspect and administer a librlr cluster")
  endif()
  set(page ${PROJECT_BINARY_DIR}/man/${tool}.1)
  add_custom_command(OUTPUT ${page}.gz
    COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/man
    COMMAND ${HELP2MAN_EXECUTABLE} --no-info --no-discard-stderr --version-string=${PROJECT_VERSION}
            --name=${summary} --output=${page} $<TARGET_FILE:${tool}>
    COMMAND gzip -9nf ${page}
    DEPENDS ${tool}
    COMMENT "help2man: ${tool}.1"
    VERBATIM)
  list(APPEND rlr_man_pages ${page}.gz)
endforeach()
add_custom_target(rlr_man_pages ALL DEPENDS ${rlr_man_pages})
install(FILES ${rlr_man_pages} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT node)

# lintian tags the packages carry on purpose, each with its reason in the file.
install(FILES ${PROJECT_SOURCE_DIR}/packaging/debian/librlr.lintian-overrides
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/lintian/overrides RENAME librlr COMPONENT lib)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/debian/librlr-dev.lintian-overrides
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/lintian/overrides RENAME librlr-dev COMPONENT dev)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/debian/rlr-node.lintian-overrides
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/lintian/overrides RENAME rlr-node COMPONENT node)

# Each package's copyright and changelog (packaging/debian/changelog: one entry per
# release, its version the project's; tests/package/deb_test.sh checks that).
add_custom_command(OUTPUT ${PROJECT_BINARY_DIR}/packaging/changelog.gz
  COMMAND gzip -9n -c ${PROJECT_SOURCE_DIR}/packaging/debian/changelog > ${PROJECT_BINARY_DIR}/packaging/changelog.gz
  DEPENDS ${PROJECT_SOURCE_DIR}/packaging/debian/changelog
  VERBATIM)
add_custom_target(rlr_changelog ALL DEPENDS ${PROJECT_BINARY_DIR}/packaging/changelog.gz)
set(pkg_name_lib librlr)
set(pkg_name_dev librlr-dev)
set(pkg_name_node rlr-node)
foreach(pkg_component lib dev node)
  install(FILES ${PROJECT_SOURCE_DIR}/packaging/debian/copyright ${PROJECT_BINARY_DIR}/packaging/changelog.gz
          DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${pkg_name_${pkg_component}}
          COMPONENT ${pkg_component})
endforeach()

# --- CPack: Debian packages ------------------------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME librlr)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "librlr developers")
# The Maintainer field of the packages; a distributor sets their own.
set(RLR_PACKAGE_CONTACT "librlr maintainers <maintainers@librlr.org>" CACHE STRING
    "Maintainer of the Debian packages (name <address>)")
set(CPACK_PACKAGE_CONTACT ${RLR_PACKAGE_CONTACT})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "reliable log replicator: an embeddable Raft engine")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_COMPONENTS_ALL lib dev node)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://localhost/librlr")

set(CPACK_DEBIAN_LIB_PACKAGE_NAME librlr)
set(CPACK_DEBIAN_LIB_PACKAGE_SECTION libs)
# shlibs (only librlr has a shared object): packages built against librlr depend on
# this version or a later one of the same SOVERSION; and the ldconfig trigger.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
set(CPACK_DEBIAN_LIB_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/packaging/debian/lib/triggers)
set(CPACK_DEBIAN_LIB_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_COMPONENT_LIB_DESCRIPTION
    "reliable log replicator: an embeddable Raft engine (shared library)\n librlr orders a log for trading systems with Raft: election, replication,\n commit order, role-aware state machines, exactly-once egress across failover.")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME librlr-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_COMPONENT_DEV_DEPENDS lib)
# librlr.a and the CMake package need these at link and configure time.
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "libfmt-dev, librocksdb-dev")
set(CPACK_COMPONENT_DEV_DESCRIPTION
    "reliable log replicator: an embeddable Raft engine (development files)\n Headers, the static library, the CMake package (find_package(rlr)) and the\n pkg-config file (rlr.pc) for librlr.")

set(CPACK_DEBIAN_NODE_PACKAGE_NAME rlr-node)
set(CPACK_DEBIAN_NODE_PACKAGE_SECTION net)
set(CPACK_DEBIAN_NODE_PACKAGE_DEPENDS "passwd")
set(CPACK_DEBIAN_NODE_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/debian/postinst ${PROJECT_SOURCE_DIR}/packaging/debian/prerm
    ${PROJECT_SOURCE_DIR}/packaging/debian/postrm)
set(CPACK_DEBIAN_NODE_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_COMPONENT_NODE_DESCRIPTION
    "reliable log replicator: node service and tools\n rlr-node runs one librlr replicator node as a systemd service\n (rlr-node@.service), rlr-ctl administers a cluster, and the example tools\n drive and check the matching engine and its audit learner.")

include(CPack)
