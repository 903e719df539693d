# Installs tandem (included by the top-level CMakeLists.txt; docs/install.md):
#   include/tandem/*.h                         the public headers
#   lib/libtandem.so.<abi> (+ links), libtandem.a  the shared and the static library
#   bin/tandem                                 the CLI
#   lib/cmake/tandem/                          find_package(tandem CONFIG): tandem::tandem (shared),
#                                              tandem::tandem_static
#   lib/pkgconfig/tandem.pc                    pkg-config (--static for the static library)
# Everything is relative to the prefix, so `cmake --install build --prefix P` works for any P.
include(CMakePackageConfigHelpers)

set(TANDEM_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/tandem)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/tandem DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.h")
install(TARGETS tandem RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS tandem_shared EXPORT tandemTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS tandem_lib EXPORT tandemStaticTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(EXPORT tandemTargets NAMESPACE tandem:: DESTINATION ${TANDEM_CMAKE_DIR}
        FILE tandem-targets.cmake)
install(EXPORT tandemStaticTargets NAMESPACE tandem:: DESTINATION ${TANDEM_CMAKE_DIR}
        FILE tandem-static-targets.cmake)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/tandem-config.cmake.in
                              ${PROJECT_BINARY_DIR}/tandem-config.cmake
                              INSTALL_DESTINATION ${TANDEM_CMAKE_DIR})
# Before 1.0 a minor release may change the API, so only the same major.minor is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/tandem-config-version.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/tandem-config.cmake ${PROJECT_BINARY_DIR}/tandem-config-version.cmake
        DESTINATION ${TANDEM_CMAKE_DIR})

# pkg-config: the prefix is found from the .pc file's own place (${pcfiledir}).
set(TANDEM_PKGCONFIG_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
file(RELATIVE_PATH TANDEM_PC_TO_PREFIX /prefix/${TANDEM_PKGCONFIG_DIR} /prefix)
string(REGEX REPLACE "/$" "" TANDEM_PC_TO_PREFIX "${TANDEM_PC_TO_PREFIX}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/tandem.pc.in ${PROJECT_BINARY_DIR}/tandem.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/tandem.pc DESTINATION ${TANDEM_PKGCONFIG_DIR})
