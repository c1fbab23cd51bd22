// Server-to-client requests (PROTOCOL.md §12.3): gateway::call_client sends
// a 31-byte request frame with a fresh message id and correlates the client's
// response frame (0x40) by that id; the completion runs exactly once, with
// the reply, a timeout, or an error when the connection or gateway goes.
// On the in-memory transport.
#include "harness.hpp"

#include <set>

using namespace gatehouse::test;
using p::message_flags;
using p::response_code;

namespace {

/// What a call_client completion reported, and how often.
struct outcome {
    std::mutex mutex;
    int calls = 0;
    std::error_code ec;
    s::client_reply reply;

    s::client_call_handler handler() {
        return [this](std::error_code e, s::client_reply r) {
            std::lock_guard<std::mutex> lock(mutex);
            ++calls;
            ec = e;
            reply = std::move(r);
        };
    }
    int count() {
        std::lock_guard<std::mutex> lock(mutex);
        return calls;
    }
};

/// Frames the server sent that are neither responses nor events.
std::vector<message> server_requests(const s::memory_client& c) {
    std::vector<message> out;
    for (auto& m : decode_all(c.frames()))
        if (!m.frame.is_response() && !m.frame.has(message_flags::event)) out.push_back(std::move(m));
    return out;
}

std::string response_frame(const p::frame_view& request, response_code code, std::string_view payload,
                           message_flags extra = message_flags::none) {
    std::string out;
    p::append_frame(out, p::response_header{message_flags::response | extra, request.channel, request.sequence,
                                            request.message_id, code},
                    p::bytes_view(payload));
    return out;
}

s::client_call_options quick(std::chrono::milliseconds timeout = std::chrono::milliseconds(2000)) {
    s::client_call_options o;
    o.timeout = timeout;
    return o;
}

}  // namespace

TEST_CASE("call_client: the request frame, the client's reply, one completion") {
    harness h;
    auto c = h.connect(token("alice", session_a));
    outcome got;
    s::client_call_options options = quick();
    options.service = p::guid_from_string("12345678-1234-5678-9abc-def012345678");
    options.channel = 7;
    REQUIRE_FALSE(h.gw.call_client(session_a, R"({"q":"ready?"})", got.handler(), options));
    h.run_until([&] { return server_requests(*c).size() == 1; });
    const auto request = server_requests(*c).at(0);
    CHECK(request.bytes->size() == p::request_header_size + 14);
    CHECK(request.frame.flags == message_flags::none);  // no Event bit: it wants an answer
    CHECK(request.frame.channel == 7);
    CHECK(request.frame.sequence == 0);
    CHECK(request.frame.service == options.service);
    CHECK(request.frame.message_id != 0);
    CHECK(request.frame.payload.as_chars() == R"({"q":"ready?"})");
    CHECK(h.gw.stats().client_calls_pending == 1);

    c->send_binary(p::bytes_view(response_frame(request.frame, response_code::ok, R"({"a":"yes"})")));
    h.run_until([&] { return got.count() == 1; });
    CHECK_FALSE(got.ec);
    CHECK(got.reply.code == response_code::ok);
    CHECK(got.reply.payload == R"({"a":"yes"})");
    CHECK_FALSE(got.reply.binary);
    CHECK(h.gw.stats().client_calls_pending == 0);

    // A duplicate answer is dropped, counted, and harmless.
    const auto before = c->frame_count();
    c->send_binary(p::bytes_view(response_frame(request.frame, response_code::ok, "{}")));
    h.settle();
    CHECK(got.count() == 1);
    CHECK(h.gw.stats().responses_unmatched == 1);
    CHECK(c->frame_count() == before);
    CHECK_FALSE(c->closed());
}

TEST_CASE("call_client: binary requests, binary and error replies") {
    harness h;
    auto c = h.connect(token("alice", session_a));
    outcome binary, failed;
    auto options = quick();
    options.binary = true;
    REQUIRE_FALSE(h.gw.call_client(session_a, std::string("\x01\x02", 2), binary.handler(), options));
    REQUIRE_FALSE(h.gw.call_client(session_a, "{}", failed.handler(), quick()));
    h.run_until([&] { return server_requests(*c).size() == 2; });
    const auto requests = server_requests(*c);
    CHECK(requests[0].frame.flags == message_flags::binary);
    CHECK(requests[0].frame.message_id != requests[1].frame.message_id);
    c->send_binary(p::bytes_view(response_frame(requests[0].frame, response_code::ok, "\xff", message_flags::binary)));
    // An error reply's payload is not passed on (§4.2: empty on error).
    c->send_binary(p::bytes_view(response_frame(requests[1].frame, response_code::backend_not_found, "ignored")));
    h.run_until([&] { return binary.count() == 1 && failed.count() == 1; });
    CHECK(binary.reply.binary);
    CHECK(binary.reply.payload == "\xff");
    CHECK_FALSE(failed.ec);
    CHECK(failed.reply.code == response_code::backend_not_found);
    CHECK(failed.reply.payload.empty());
}

TEST_CASE("call_client: no answer in time completes with client_call_timeout; a late answer is dropped") {
    harness h;
    auto c = h.connect(token("alice", session_a));
    outcome got;
    REQUIRE_FALSE(h.gw.call_client(session_a, "{}", got.handler(), quick(std::chrono::milliseconds(30))));
    h.run_until([&] { return got.count() == 1; });
    CHECK(got.ec == s::server_errc::client_call_timeout);
    CHECK(h.gw.stats().client_calls_timed_out == 1);
    CHECK(h.gw.stats().client_calls_pending == 0);
    const auto request = server_requests(*c).at(0);
    c->send_binary(p::bytes_view(response_frame(request.frame, response_code::ok, "{}")));
    h.settle();
    CHECK(got.count() == 1);
    CHECK(h.gw.stats().responses_unmatched == 1);
}

TEST_CASE("call_client: the connection closing first completes with client_call_disconnected") {
    auto o = default_options();
    o.reconnect_queue_max_bytes = 256 * 1024;  // parking on: the session outlives the socket
    harness h(o);
    auto c = h.connect(token("alice", session_a));
    outcome first, second;
    REQUIRE_FALSE(h.gw.call_client(session_a, "{}", first.handler(), quick()));
    REQUIRE_FALSE(h.gw.call_client(session_a, "{}", second.handler(), quick()));
    h.run_until([&] { return server_requests(*c).size() == 2; });
    c->drop();
    h.run_until([&] { return first.count() == 1 && second.count() == 1; });
    CHECK(first.ec == s::server_errc::client_call_disconnected);
    CHECK(second.ec == s::server_errc::client_call_disconnected);
    CHECK(h.gw.stats().client_calls_pending == 0);
    // Parked: nobody to ask.
    outcome none;
    CHECK(h.gw.call_client(session_a, "{}", none.handler(), quick()) == s::server_errc::session_parked);
    h.settle();
    CHECK(none.count() == 0);
}

TEST_CASE("call_client: a replaced connection fails its calls; the new one gets new calls") {
    harness h;
    auto old = h.connect(token("alice", session_a));
    outcome got;
    REQUIRE_FALSE(h.gw.call_client(session_a, "{}", got.handler(), quick()));
    h.run_until([&] { return server_requests(*old).size() == 1; });
    auto fresh = h.connect(token("alice", session_a));
    h.run_until([&] { return got.count() == 1; });
    CHECK(got.ec == s::server_errc::client_call_disconnected);
    outcome next;
    REQUIRE_FALSE(h.gw.call_client(session_a, "{}", next.handler(), quick()));
    h.run_until([&] { return server_requests(*fresh).size() == 1; });
    // The old connection's id means nothing on the new one.
    fresh->send_binary(p::bytes_view(response_frame(server_requests(*old).at(0).frame, response_code::ok, "{}")));
    fresh->send_binary(p::bytes_view(response_frame(server_requests(*fresh).at(0).frame, response_code::ok, "[1]")));
    h.run_until([&] { return next.count() == 1; });
    CHECK(next.reply.payload == "[1]");
    CHECK(h.gw.stats().responses_unmatched == 1);
}

TEST_CASE("call_client: the gateway stopping completes pending calls with not_running") {
    harness h;
    auto c = h.connect(token("alice", session_a));
    outcome got;
    REQUIRE_FALSE(h.gw.call_client(session_a, "{}", got.handler(), quick()));
    h.run_until([&] { return server_requests(*c).size() == 1; });
    h.gw.stop();
    h.run_until([&] { return got.count() == 1; });
    CHECK(got.ec == s::server_errc::not_running);
    outcome late;
    CHECK(h.gw.call_client(session_a, "{}", late.handler(), quick()) == s::server_errc::not_running);
}

TEST_CASE("call_client: outstanding calls per session are bounded") {
    auto o = default_options();
    o.max_client_calls_per_session = 2;
    harness h(o);
    auto c = h.connect(token("alice", session_a));
    auto other = h.connect(token("bob", session_b));
    outcome a, b, refused, elsewhere;
    REQUIRE_FALSE(h.gw.call_client(session_a, "{}", a.handler(), quick()));
    REQUIRE_FALSE(h.gw.call_client(session_a, "{}", b.handler(), quick()));
    REQUIRE_FALSE(h.gw.call_client(session_a, "{}", refused.handler(), quick()));
    REQUIRE_FALSE(h.gw.call_client(session_b, "{}", elsewhere.handler(), quick()));
    h.run_until([&] { return refused.count() == 1; });
    CHECK(refused.ec == s::server_errc::too_many_client_calls);
    CHECK(server_requests(*c).size() == 2);
    h.run_until([&] { return server_requests(*other).size() == 1; });
    // Answering one frees a slot.
    c->send_binary(p::bytes_view(response_frame(server_requests(*c).at(0).frame, response_code::ok, "{}")));
    h.run_until([&] { return a.count() == 1; });
    outcome again;
    REQUIRE_FALSE(h.gw.call_client(session_a, "{}", again.handler(), quick()));
    h.run_until([&] { return server_requests(*c).size() == 3; });
    CHECK(again.count() == 0);
}

TEST_CASE("call_client: bad input is refused with a specific error and no completion") {
    auto o = default_options();
    o.max_message_size = 1024;
    harness h(o);
    auto c = h.connect(token("alice", session_a));
    outcome never;
    CHECK(h.gw.call_client(session_a, "{}", never.handler(), quick(std::chrono::milliseconds(0))) ==
          s::server_errc::invalid_timeout);
    CHECK(h.gw.call_client(session_a, "{}", never.handler(), quick(std::chrono::milliseconds(-5))) ==
          s::server_errc::invalid_timeout);
    CHECK(h.gw.call_client(session_a, "{}", never.handler(), quick(std::chrono::hours(25))) ==
          s::server_errc::invalid_timeout);
    CHECK(h.gw.call_client(session_a, std::string(1024 - 31 + 1, 'x'), never.handler(), quick()) ==
          s::server_errc::payload_too_large);
    CHECK(h.gw.call_client(session_b, "{}", never.handler(), quick()) == s::server_errc::session_not_found);
    CHECK(h.gw.call_client("not-a-session", "{}", never.handler(), quick()) == s::server_errc::session_not_found);
    // The largest payload that fits is sent.
    CHECK_FALSE(h.gw.call_client(session_a, std::string(1024 - 31, 'x'), never.handler(), quick()));
    h.run_until([&] { return server_requests(*c).size() == 1; });
    CHECK(server_requests(*c).at(0).bytes->size() == 1024);
    h.settle();
    CHECK(never.count() == 0);
    // Each error has its own message.
    std::set<std::string> messages;
    for (auto e : {s::server_errc::session_parked, s::server_errc::client_call_timeout,
                   s::server_errc::client_call_disconnected, s::server_errc::too_many_client_calls,
                   s::server_errc::invalid_timeout, s::server_errc::payload_too_large})
        messages.insert(make_error_code(e).message());
    CHECK(messages.size() == 6);
}

TEST_CASE("call_client: a null completion and a throwing completion are both harmless") {
    auto lines = std::make_shared<std::vector<std::string>>();
    auto mutex = std::make_shared<std::mutex>();
    auto o = default_options();
    o.log = [lines, mutex](s::log_level, std::string_view line) {
        std::lock_guard<std::mutex> lock(*mutex);
        lines->emplace_back(line);
    };
    harness h(o);
    auto c = h.connect(token("alice", session_a));
    REQUIRE_FALSE(h.gw.call_client(session_a, "{}", nullptr, quick()));
    REQUIRE_FALSE(h.gw.call_client(
        session_a, "{}", [](std::error_code, s::client_reply) { throw std::runtime_error("host bug"); }, quick()));
    h.run_until([&] { return server_requests(*c).size() == 2; });
    for (const auto& request : server_requests(*c))
        c->send_binary(p::bytes_view(response_frame(request.frame, response_code::ok, "{}")));
    h.run_until([&] { return h.gw.stats().client_calls_pending == 0; });
    h.settle();
    {
        std::lock_guard<std::mutex> lock(*mutex);
        CHECK(std::find(lines->begin(), lines->end(), "a call_client completion threw; ignored") != lines->end());
    }
    CHECK_FALSE(c->closed());
}

TEST_CASE("call_client: a transport torn down with a call pending still completes it (not_running)") {
    auto got = std::make_shared<outcome>();
    {
        asio::io_context io;  // destroyed last, with the posted request never run
        s::gateway gw(default_options(), std::make_shared<scripted_validator>(),
                      std::make_shared<session::memory_session_store>());
        s::memory_transport transport(io, gw.transport_side());
        s::memory_upgrade u;
        u.headers.push_back({"Authorization", "Bearer " + token("alice", session_a)});
        auto c = transport.connect(u);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
        while (!harness::manifest_of(*c) && std::chrono::steady_clock::now() < deadline)
            io.run_one_for(std::chrono::milliseconds(5));
        REQUIRE(harness::manifest_of(*c).has_value());
        REQUIRE_FALSE(gw.call_client(session_a, "{}", got->handler(), quick()));
        CHECK(got->count() == 0);
    }
    CHECK(got->count() == 1);
    CHECK(got->ec == s::server_errc::not_running);
}

TEST_CASE("call_client: two I/O threads, calls from host threads, answers racing timeouts: one completion each") {
    auto o = default_options();
    o.max_client_calls_per_session = 1000;
    harness h(o);
    auto a = h.connect(token("alice", session_a));
    auto b = h.connect(token("bob", session_b));
    h.start_threads(2);
    constexpr int per_session = 200;
    std::atomic<int> completions{0}, ok{0}, timeouts{0}, wrong{0}, refused{0};
    std::mutex seen_mutex;
    std::set<std::string> seen;
    auto issue = [&](const char* sid) {
        for (int i = 0; i < per_session; ++i) {
            auto options = quick(std::chrono::milliseconds(i % 4 == 0 ? 1 : 3000));
            const std::string body = std::string(sid) + ":" + std::to_string(i);
            const auto ec = h.gw.call_client(sid, body, [&, body](std::error_code e, s::client_reply r) {
                {
                    std::lock_guard<std::mutex> lock(seen_mutex);
                    if (!seen.insert(body).second) wrong.fetch_add(1);  // a second completion
                }
                completions.fetch_add(1);
                if (e == s::server_errc::client_call_timeout) {
                    timeouts.fetch_add(1);
                } else if (!e && r.payload == "\"" + body + "\"") {
                    ok.fetch_add(1);
                } else {
                    if (wrong.fetch_add(1) < 3) MESSAGE(e.message() << " / " << r.payload << " for " << body);
                }
            }, options);
            if (ec) refused.fetch_add(1);
        }
    };
    std::thread host_a(issue, session_a), host_b(issue, session_b);
    // The clients answer every request, echoing its payload as a JSON string.
    std::size_t answered_a = 0, answered_b = 0;
    const auto answer = [](s::memory_client& c, std::size_t& answered) {
        const auto requests = server_requests(c);
        for (; answered < requests.size(); ++answered) {
            const auto& f = requests[answered].frame;
            c.send_binary(p::bytes_view(response_frame(f, response_code::ok, "\"" + std::string(f.payload.as_chars()) + "\"")));
        }
    };
    h.run_until([&] {
        answer(*a, answered_a);
        answer(*b, answered_b);
        return completions.load() == 2 * per_session;
    }, std::chrono::milliseconds(20000));
    host_a.join();
    host_b.join();
    h.settle(std::chrono::milliseconds(50));
    CHECK(refused.load() == 0);
    CHECK(completions.load() == 2 * per_session);
    CHECK(wrong.load() == 0);
    CHECK(ok.load() + timeouts.load() == 2 * per_session);
    CHECK(ok.load() >= per_session);  // the long-timeout three quarters are answered
    CHECK(h.gw.stats().client_calls_pending == 0);
    h.stop_threads();
}
