#include <gatehouse/client/manifest.hpp>
#include <gatehouse/client/sequencing.hpp>
#include <gatehouse/routing/salted_guid.hpp>

#include "../support/vectors.hpp"

#include <doctest/doctest.h>

namespace c = gatehouse::client;
namespace p = gatehouse::protocol;

namespace {
const char* manifest_json = R"({
  "eventName": "connect.capability-manifest",
  "eventId": "5b0f6e1c-7a0e-4c52-9d0e-2f6f5f3f4b11",
  "timestamp": "2026-03-02T14:56:21.1234567+00:00",
  "sessionId": "6f9619ff-8b86-4d11-b42d-00c04fc964ff",
  "availableApis": [
    { "serviceId": "803ea199-83d4-a550-84ee-b5b17a869ef9", "endpoint": "/account/get", "service": "account" },
    { "serviceId": "13E766C3A0420458AC48E08200D0DAF5", "endpoint": "/auth/logout", "service": "auth", "description": "optional text" },
    { "serviceId": "", "endpoint": "/no/guid", "service": "x" },
    { "serviceId": "803ea199-83d4-a550-84ee-b5b17a869ef9", "endpoint": "", "service": "x" },
    { "serviceId": "803ea199-83d4-a550-84ee-b5b17a869ef9", "endpoint": "/no/service", "service": "" },
    { "serviceId": "{803ea199-83d4-a550-84ee-b5b17a869ef9}", "endpoint": "/braced", "service": "x" },
    { "serviceId": 17, "endpoint": "/numeric", "service": "x" },
    "not an object"
  ],
  "version": 0,
  "reason": "session_connected"
})";
}  // namespace

TEST_CASE("client manifest: parsed with the TypeScript client's rules") {
    c::manifest m;
    REQUIRE_FALSE(c::parse_manifest(manifest_json, m));
    CHECK(m.session_id.to_string() == "6f9619ff-8b86-4d11-b42d-00c04fc964ff");
    REQUIRE(m.apis.size() == 2);
    CHECK(m.skipped_entries == 6);
    CHECK(m.apis[0].endpoint == "/account/get");
    // The GUID the gateway derives for this session is what the client stores.
    CHECK(m.apis[0].service_id == gatehouse::routing::service_guid("6f9619ff-8b86-4d11-b42d-00c04fc964ff",
                                                                  "account:/account/get",
                                                                  "bannou-dev-connect-salt-change-in-production"));
    CHECK(m.apis[1].service_id.to_string() == "13e766c3-a042-0458-ac48-e08200d0daf5");
    CHECK(m.apis[1].description == "optional text");
    CHECK(m.reason == "session_connected");
    CHECK_FALSE(m.peer_guid.has_value());
}

TEST_CASE("client manifest: malformed manifests get specific errors") {
    struct bad {
        const char* json;
        c::client_errc error;
    } cases[] = {
        {"", c::client_errc::manifest_not_json},
        {"[1,2]", c::client_errc::manifest_not_json},
        {"{\"eventName\":", c::client_errc::manifest_not_json},
        {R"({"eventName":"system.notification","availableApis":[]})", c::client_errc::manifest_wrong_event},
        {R"({"availableApis":[]})", c::client_errc::manifest_wrong_event},
        {R"({"eventName":"connect.capability-manifest"})", c::client_errc::manifest_missing_apis},
        {R"({"eventName":"connect.capability-manifest","availableApis":{}})", c::client_errc::manifest_missing_apis},
        {R"({"eventName":"connect.capability-manifest","availableApis":[]})", c::client_errc::manifest_bad_session_id},
        {R"({"eventName":"connect.capability-manifest","availableApis":[],"sessionId":"nope"})",
         c::client_errc::manifest_bad_session_id},
    };
    for (const auto& b : cases) {
        INFO(b.json);
        c::manifest m;
        m.reason = "untouched";
        CHECK(c::parse_manifest(b.json, m) == b.error);
        CHECK(m.reason == "untouched");
    }
}

TEST_CASE("client manifest: each manifest is a full snapshot") {
    c::capability_table table;
    c::manifest first;
    REQUIRE_FALSE(c::parse_manifest(manifest_json, first));
    auto diff = table.apply(first);
    CHECK(diff.added.size() == 2);
    CHECK(diff.removed.empty());
    CHECK(table.find("/account/get").has_value());
    CHECK_FALSE(table.find("account:/account/get").has_value());  // keyed by the path alone

    c::manifest second = first;
    second.apis.erase(second.apis.begin() + 1);  // /auth/logout removed
    second.apis.push_back({"/chat/join", "chat", p::guid::broadcast(), ""});
    second.apis.push_back({"/chat/join", "chat", p::guid_from_string("00000000-0000-0000-0000-000000000007"), ""});
    diff = table.apply(second);
    REQUIRE(diff.added.size() == 1);
    CHECK(diff.added[0].endpoint == "/chat/join");
    REQUIRE(diff.removed.size() == 1);
    CHECK(diff.removed[0].endpoint == "/auth/logout");
    CHECK_FALSE(table.find("/auth/logout").has_value());
    CHECK(table.find("/chat/join")->to_string() == "00000000-0000-0000-0000-000000000007");  // last one wins
    CHECK(table.size() == 2);

    diff = table.apply(second);  // same snapshot again: nothing changes
    CHECK(diff.added.empty());
    CHECK(diff.removed.empty());
}

TEST_CASE("client sequencing: ids and sequences as the TypeScript client makes them") {
    const auto& ex = gatehouse::test::vectors().at("message_ids").at(0).at("example");
    c::message_sequencer seq;
    const std::chrono::system_clock::time_point at{
        std::chrono::milliseconds(ex.at("date_now_ms").get<std::int64_t>())};
    for (int i = 0; i < 5; ++i) seq.next_message_id(at);
    CHECK(seq.next_message_id(at) == std::stoull(ex.at("message_id").get<std::string>()));  // counter 5

    CHECK(seq.next_sequence(0) == 0);
    CHECK(seq.next_sequence(0) == 1);
    CHECK(seq.next_sequence(3) == 0);  // channels are independent
    CHECK(seq.next_sequence(0) == 2);
}
