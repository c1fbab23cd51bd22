#include "../support/vectors.hpp"

#include <gatehouse/routing/salted_guid.hpp>

#include <doctest/doctest.h>

namespace r = gatehouse::routing;
using gatehouse::test::vectors;

TEST_CASE("endpoint keys: every vector") {
    for (const auto& c : vectors().at("endpoint_keys").at("cases")) {
        const auto key = c.at("key").get<std::string>();
        INFO(key);
        const auto parsed = r::parse_endpoint_key(key);
        if (c.contains("result") && c.at("result").is_null()) {
            CHECK_FALSE(parsed.has_value());
            continue;
        }
        REQUIRE(parsed.has_value());
        CHECK(parsed->service == c.at("service").get<std::string>());
        CHECK(parsed->path == c.at("path").get<std::string>());
        const bool templated = c.contains("template") && c.at("template").get<bool>();
        CHECK(parsed->is_template() == templated);
        if (c.contains("in_manifest")) CHECK(!parsed->is_template() == c.at("in_manifest").get<bool>());
    }
}
