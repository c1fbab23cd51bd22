// Push (PROTOCOL.md §9): events to a session, an account, a group, everyone;
// groups; permission changes with a new manifest (§7.5); slow consumers.
#include "harness.hpp"

using namespace gatehouse::test;
using p::response_code;

TEST_CASE("push: event framing of §9.1 and JSON with eventName, eventId, timestamp and the body") {
    harness h;
    auto c = h.connect(token("alice", session_a));
    CHECK_FALSE(h.gw.push_to_session(session_a, "system.notification", {{"message", "hello"}, {"eventName", "ignored"}}));
    h.run_until([&] { return harness::events(*c).size() == 1; });
    const auto all = decode_all(c->frames());
    const auto& frame = all.back().frame;
    CHECK(frame.flags == p::message_flags::event);
    CHECK(frame.channel == 0);
    CHECK(frame.sequence == 0);
    CHECK(frame.service.is_nil());
    const auto e = harness::events(*c)[0];
    CHECK(e.at("eventName") == "system.notification");
    CHECK(e.at("message") == "hello");
    p::guid event_id;
    CHECK_FALSE(p::parse_guid(e.at("eventId").get<std::string>(), event_id));
    CHECK(e.at("timestamp").get<std::string>().back() == 'Z');
}

TEST_CASE("push: errors are specific") {
    harness h;
    auto c = h.connect(token("alice", session_a));
    CHECK(h.gw.push_to_session(session_b, "x") == s::server_errc::session_not_found);
    CHECK(h.gw.push_to_session(session_a, "") == s::server_errc::event_name_missing);
    CHECK(h.gw.push_to_session(session_a, "x", nlohmann::json::array()) == s::server_errc::event_body_not_object);
    CHECK(h.gw.push_to_session(session_a, "x", 5) == s::server_errc::event_body_not_object);
    CHECK(h.gw.push_to_account("alice", "", nullptr) == 0);
    CHECK(h.gw.join_group(session_a, "") == s::server_errc::invalid_group_name);
    CHECK(h.gw.join_group(session_a, std::string(129, 'g')) == s::server_errc::invalid_group_name);
    CHECK(h.gw.join_group(session_b, "room") == s::server_errc::session_not_found);
    CHECK(h.gw.leave_group(session_b, "room") == s::server_errc::session_not_found);
    h.settle();
    CHECK(harness::events(*c).empty());
}

TEST_CASE("push: to an account reaches each of its sessions; to all reaches everyone") {
    harness h;
    auto a1 = h.connect(token("alice", session_a));
    auto a2 = h.connect(token("alice", session_b));
    auto b = h.connect(token("bob", "8b9619ff-8b86-4d11-b42d-00c04fc964bb"));
    CHECK(h.gw.push_to_account("alice", "account.notice") == 2);
    CHECK(h.gw.push_to_account("nobody", "account.notice") == 0);
    CHECK(h.gw.push_to_all("system.broadcast", {{"n", 1}}) == 3);
    h.run_until([&] { return harness::events(*a1).size() == 2 && harness::events(*a2).size() == 2 &&
                             harness::events(*b).size() == 1; });
    h.settle();
    CHECK(harness::events(*b).size() == 1);
    CHECK(harness::events(*b)[0].at("eventName") == "system.broadcast");
}

TEST_CASE("groups: join, push, leave") {
    harness h;
    auto a = h.connect(token("alice", session_a));
    auto b = h.connect(token("bob", session_b));
    CHECK_FALSE(h.gw.join_group(session_a, "room-1"));
    CHECK_FALSE(h.gw.join_group(session_b, "room-1"));
    CHECK_FALSE(h.gw.join_group(session_b, "room-2"));
    CHECK(h.gw.group_members("room-1") == std::vector<std::string>{session_a, session_b});
    CHECK(h.gw.push_to_group("room-1", "chat.message", {{"text", "hi"}}) == 2);
    CHECK(h.gw.push_to_group("room-2", "chat.message", {{"text", "two"}}) == 1);
    CHECK(h.gw.push_to_group("room-3", "chat.message") == 0);
    h.run_until([&] { return harness::events(*a).size() == 1 && harness::events(*b).size() == 2; });
    CHECK_FALSE(h.gw.leave_group(session_b, "room-1"));
    CHECK(h.gw.group_members("room-1") == std::vector<std::string>{session_a});
    CHECK(h.gw.push_to_group("room-1", "chat.message", {{"text", "bye"}}) == 1);
    h.run_until([&] { return harness::events(*a).size() == 2; });
    h.settle();
    CHECK(harness::events(*b).size() == 2);
    // Leaving the last member removes the group.
    CHECK_FALSE(h.gw.leave_group(session_a, "room-1"));
    CHECK(h.gw.group_members("room-1").empty());
}

TEST_CASE("set_permissions: a full new manifest with the reason; vanished GUIDs answer 30 at once") {
    harness h;
    auto held = std::make_shared<held_calls>();
    add_standard_endpoints(h.gw, held);
    auto c = h.connect(token("alice", session_a));
    const auto echo = harness::guid_of(*c, "/echo");
    CHECK(h.call(*c, harness::request(echo, "{}")).frame.code == response_code::ok);

    CHECK_FALSE(h.gw.set_permissions(session_a, {"admin"}, {"secret:read"}, "role_changed"));
    h.run_until([&] { return harness::manifests_of(*c).size() == 2; });
    auto m = *harness::manifest_of(*c);
    CHECK(m.at("reason") == "role_changed");
    CHECK(m.at("availableApis").size() == 8);
    CHECK(harness::guid_of(*c, "/echo") == echo);  // unchanged endpoints keep their GUID
    CHECK(h.call(*c, harness::request(harness::guid_of(*c, "/secret"), "{}")).frame.code == response_code::ok);
    CHECK(h.call(*c, harness::request(harness::guid_of(*c, "/admin"), "{}")).frame.code == response_code::ok);

    const auto secret = harness::guid_of(*c, "/secret");
    CHECK_FALSE(h.gw.set_permissions(session_a, {}, {}));
    h.run_until([&] { return harness::manifests_of(*c).size() == 3; });
    CHECK(harness::manifest_of(*c)->at("reason") == "capabilities_updated");
    CHECK(h.call(*c, harness::request(secret, "{}")).frame.code == response_code::service_not_found);
    // The store has the new set.
    session::session_record record;
    h.store->load(session_a, [&](std::error_code, session::session_record rec) { record = std::move(rec); });
    CHECK(record.permissions.empty());
    CHECK(h.gw.set_permissions(session_b, {}, {}) == s::server_errc::session_not_found);
}

TEST_CASE("slow consumer: the send queue is bounded in bytes; overflow closes 4005") {
    auto o = default_options();
    o.max_message_size = 4096;
    o.max_send_queue_bytes = 16 * 1024;
    harness h(o);
    auto slow = h.connect(token("alice", session_a));
    auto fast = h.connect(token("bob", session_b));
    slow->stall_reading(true);
    const nlohmann::json body = {{"blob", std::string(3000, 'x')}};
    for (int i = 0; i < 10; ++i) h.gw.push_to_all("bulk.data", body);
    h.run_until([&] { return slow->closed(); });
    CHECK(slow->server_close_code() == 4005);
    CHECK_FALSE(fast->closed());
    h.run_until([&] { return harness::events(*fast).size() == 10; });
}

TEST_CASE("disconnect: a host call closes the session's connection with its code") {
    harness h;
    auto c = h.connect(token("alice", session_a));
    CHECK_FALSE(h.gw.disconnect(session_a, 4002, "kicked"));
    h.run_until([&] { return c->closed(); });
    CHECK(c->server_close_code() == 4002);
    CHECK(c->server_close_reason() == "kicked");
    CHECK(h.gw.disconnect(session_a, 4002, "kicked") == s::server_errc::session_not_found);
}
