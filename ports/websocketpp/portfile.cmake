# websocketpp 0.8.2, headers only, on standalone Asio (vcpkg's asio port) and
# OpenSSL, with the C++20 fix (cxx20-fix.cmake). An overlay port for
# gatehouse: vcpkg's own websocketpp port was removed in March 2025
# (microsoft/vcpkg#42678, it did not build with Boost 1.87).
set(VCPKG_BUILD_TYPE release)
vcpkg_from_github(
    OUT_SOURCE_PATH SOURCE_PATH
    REPO zaphoyd/websocketpp
    REF 56123c87598f8b1dd471be83ca841ceae07f95ba  # 0.8.2
    SHA512 f185a66e5a7c783254352a6ef87e2e559f681032b7368765d08393ed12bcae76825abed7dcaea73de09df644320409dad46279701f5f469520542a2c9b6a6163
    HEAD_REF master
)
include("${CMAKE_CURRENT_LIST_DIR}/cxx20-fix.cmake")
gatehouse_websocketpp_cxx20_fix("${SOURCE_PATH}")

file(COPY "${SOURCE_PATH}/websocketpp" DESTINATION "${CURRENT_PACKAGES_DIR}/include" FILES_MATCHING PATTERN "*.hpp")
file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/websocketpp-config.cmake" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
file(WRITE "${CURRENT_PACKAGES_DIR}/share/${PORT}/websocketpp-config-version.cmake" "set(PACKAGE_VERSION 0.8.2)
if(PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
    set(PACKAGE_VERSION_COMPATIBLE FALSE)
else()
    set(PACKAGE_VERSION_COMPATIBLE TRUE)
    if(PACKAGE_FIND_VERSION VERSION_EQUAL PACKAGE_VERSION)
        set(PACKAGE_VERSION_EXACT TRUE)
    endif()
endif()
")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/COPYING")
