// The version is written once (gatehouse/version.hpp); CMake reads it from
// there. This test compares what CMake made of it (GATEHOUSE_PROJECT_VERSION,
// passed by tests/protocol/CMakeLists.txt) with the header, and checks that
// CHANGELOG.md has a section for it and the vcpkg port carries it.
#include <gatehouse/version.hpp>

#include <doctest/doctest.h>

#include <fstream>
#include <sstream>
#include <string>

TEST_CASE("version: the header, CMake's project version and the numeric form agree") {
    CHECK(std::string(GATEHOUSE_VERSION_STRING) == GATEHOUSE_PROJECT_VERSION);
    CHECK(std::string(gatehouse::version_string) == GATEHOUSE_VERSION_STRING);
    const std::string numeric = std::to_string(GATEHOUSE_VERSION_MAJOR) + "." +
                                std::to_string(GATEHOUSE_VERSION_MINOR) + "." +
                                std::to_string(GATEHOUSE_VERSION_PATCH);
    CHECK(numeric == GATEHOUSE_VERSION_STRING);
    CHECK(GATEHOUSE_VERSION ==
          GATEHOUSE_VERSION_MAJOR * 10000 + GATEHOUSE_VERSION_MINOR * 100 + GATEHOUSE_VERSION_PATCH);
    static_assert(GATEHOUSE_VERSION_MINOR < 100 && GATEHOUSE_VERSION_PATCH < 100,
                  "GATEHOUSE_VERSION packs minor and patch in two digits each");
}

TEST_CASE("version: CHANGELOG.md has a section for this version") {
    std::ifstream in(std::string(GATEHOUSE_SOURCE_DIR) + "/CHANGELOG.md");
    REQUIRE(in.good());
    std::stringstream text;
    text << in.rdbuf();
    const std::string heading = std::string("\n## ") + GATEHOUSE_VERSION_STRING;
    CHECK(text.str().find(heading) != std::string::npos);
}

TEST_CASE("version: the vcpkg port says the same version") {
    // (The Conan recipe reads version.hpp itself: conanfile.py, set_version.)
    std::ifstream in(std::string(GATEHOUSE_SOURCE_DIR) + "/ports/gatehouse/vcpkg.json");
    REQUIRE(in.good());
    std::stringstream text;
    text << in.rdbuf();
    const std::string field = std::string("\"version\": \"") + GATEHOUSE_VERSION_STRING + "\"";
    CHECK(text.str().find(field) != std::string::npos);
}
