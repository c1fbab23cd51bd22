# gatehouse: headers only; installs the headers and gatehouse's CMake package
# (components protocol, gatehouse, redis) in share/gatehouse.
#
# As an overlay port (vcpkg install gatehouse --overlay-ports=<checkout>/ports)
# it builds the checkout it sits in. A registry port would fetch a release:
#   vcpkg_from_github(OUT_SOURCE_PATH SOURCE_PATH REPO <owner>/gatehouse
#                     REF "v${VERSION}" SHA512 <of that tarball> HEAD_REF main)
set(VCPKG_BUILD_TYPE release)  # nothing is compiled: one configuration is enough
get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)

vcpkg_check_features(OUT_FEATURE_OPTIONS FEATURE_OPTIONS
    FEATURES
        redis GATEHOUSE_WITH_REDIS
)

vcpkg_cmake_configure(
    SOURCE_PATH "${SOURCE_PATH}"
    OPTIONS
        ${FEATURE_OPTIONS}
        -DGATEHOUSE_BUILD_TESTS=OFF
        -DGATEHOUSE_BUILD_EXAMPLES=OFF
        -DGATEHOUSE_BUILD_BENCHMARKS=OFF
        -DGATEHOUSE_INSTALL=ON
        -DGATEHOUSE_INSTALL_CMAKEDIR=share/gatehouse
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(PACKAGE_NAME gatehouse CONFIG_PATH share/gatehouse)

# Headers only: no lib/, no debug tree.
file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug" "${CURRENT_PACKAGES_DIR}/lib"
    "${CURRENT_PACKAGES_DIR}/share/doc")
file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
