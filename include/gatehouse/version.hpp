// gatehouse's version: the one place it is written. CMake's project version
// is read from these three lines (CMakeLists.txt), and so are the package's
// version file, the Conan recipe's and the vcpkg port's; a test compares
// them (tests/unit/test_version.cpp, and the find_package consumer checks
// the installed package's version against this header).
//
// Compatibility (README, "Versions"): while the major version is 0, a new
// minor version may change the C++ API; a patch version never does. The
// wire protocol (docs: PROTOCOL.md) does not change incompatibly in any
// release: existing clients keep working.
#pragma once

#define GATEHOUSE_VERSION_MAJOR 0
#define GATEHOUSE_VERSION_MINOR 1
#define GATEHOUSE_VERSION_PATCH 0

#define GATEHOUSE_DETAIL_STRINGIZE2(x) #x
#define GATEHOUSE_DETAIL_STRINGIZE(x) GATEHOUSE_DETAIL_STRINGIZE2(x)
/// "MAJOR.MINOR.PATCH"
#define GATEHOUSE_VERSION_STRING                                                              \
    GATEHOUSE_DETAIL_STRINGIZE(GATEHOUSE_VERSION_MAJOR)                                       \
    "." GATEHOUSE_DETAIL_STRINGIZE(GATEHOUSE_VERSION_MINOR) "." GATEHOUSE_DETAIL_STRINGIZE( \
        GATEHOUSE_VERSION_PATCH)
/// MAJOR * 10000 + MINOR * 100 + PATCH, for #if comparisons.
#define GATEHOUSE_VERSION (GATEHOUSE_VERSION_MAJOR * 10000 + GATEHOUSE_VERSION_MINOR * 100 + GATEHOUSE_VERSION_PATCH)

namespace gatehouse {
/// The version the headers in use belong to ("MAJOR.MINOR.PATCH").
inline constexpr const char* version_string = GATEHOUSE_VERSION_STRING;
}  // namespace gatehouse
