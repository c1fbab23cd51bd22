// Test harness for the gateway on the in-memory transport: a scripted
// token_validator, an io_context driven by the test thread, and helpers to
// build requests and read replies, events and manifests.
#pragma once

#include <gatehouse/protocol.hpp>
#include <gatehouse/server/gateway.hpp>
#include <gatehouse/server/memory_transport.hpp>
#include <gatehouse/session/memory_session_store.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace gatehouse::test {

namespace auth = gatehouse::auth;
namespace session = gatehouse::session;
namespace p = gatehouse::protocol;
namespace r = gatehouse::routing;
namespace s = gatehouse::server;

/// Tokens of the form `<mode>|<subject>|<session key>|<perm,perm>|<role,role>`.
/// mode `sync` answers inline, `async` from another thread after 20 ms;
/// `bad` (or anything unparsable) fails with bad_signature, inline; `badasync`
/// fails from another thread.
class scripted_validator final : public auth::token_validator {
public:
    ~scripted_validator() override { join(); }

    /// Waits for the answering threads. The harness calls it before it lets
    /// go of the gateway: a thread's completion may hold the last reference
    /// to a connection, and so to the gateway and this validator, whose
    /// destructor on that thread would join itself (std::system_error,
    /// "Resource deadlock avoided", seen once under ASan).
    void join() {
        std::vector<std::thread> threads;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            threads.swap(threads_);
        }
        for (auto& t : threads) {
            if (t.get_id() == std::this_thread::get_id())
                t.detach();  // the last owner let go here: nothing left to wait for
            else
                t.join();
        }
    }

    void async_validate(const auth::credential& cred, completion done) override {
        calls.fetch_add(1);
        last_kind = cred.kind;
        std::vector<std::string> parts;
        std::stringstream in(cred.value);
        for (std::string part; std::getline(in, part, '|');) parts.push_back(part);
        if (cred.kind == auth::credential_kind::api_key && cred.value == "key-1") {
            auth::identity who;
            who.subject = "service-account";
            done({}, std::move(who));
            return;
        }
        const bool async = !parts.empty() && (parts[0] == "async" || parts[0] == "badasync");
        const bool ok = parts.size() >= 3 && (parts[0] == "sync" || parts[0] == "async");
        auth::identity who;
        if (ok) {
            who.subject = parts[1];
            who.session_key = parts[2];
            who.token_id = "jti-" + parts[2];
            if (parts.size() > 3) who.permissions = split(parts[3]);
            if (parts.size() > 4) who.roles = split(parts[4]);
            if (parts.size() > 5)
                who.expires_at = std::chrono::system_clock::now() + std::chrono::milliseconds(std::stoll(parts[5]));
        }
        const std::error_code ec = ok ? std::error_code{} : make_error_code(auth::auth_errc::bad_signature);
        if (!async) {
            done(ec, ok ? std::move(who) : auth::identity{});
            return;
        }
        std::lock_guard<std::mutex> lock(mutex_);
        threads_.emplace_back([done = std::move(done), ec, who = std::move(who)]() mutable {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            done(ec, std::move(who));
        });
    }

    std::atomic<int> calls{0};
    std::atomic<auth::credential_kind> last_kind{auth::credential_kind::bearer};

private:
    static std::vector<std::string> split(const std::string& list) {
        std::vector<std::string> out;
        std::stringstream in(list);
        for (std::string item; std::getline(in, item, ',');)
            if (!item.empty()) out.push_back(item);
        return out;
    }
    std::mutex mutex_;
    std::vector<std::thread> threads_;
};

inline constexpr const char* salt = "test-salt";
inline constexpr const char* session_a = "6f9619ff-8b86-4d11-b42d-00c04fc964ff";
inline constexpr const char* session_b = "7a9619ff-8b86-4d11-b42d-00c04fc964aa";

inline s::gateway_options default_options() {
    s::gateway_options o;
    o.guid_salt = salt;
    o.manifest_delay = std::chrono::milliseconds(1);
    o.connects_per_second = 1000;
    o.connect_burst = 1000;
    o.refresh_endpoint = false;  // keeps manifests to the test's own endpoints
    o.ping_interval = std::chrono::milliseconds(0);
    // A session ends with its connection unless a test asks for parking
    // (test_reconnect_queue.cpp): the library's default parks dropped sessions.
    o.reconnect_queue_max_bytes = 0;
    return o;
}

inline std::string token(const std::string& subject, const std::string& session, const std::string& perms = "",
                         const std::string& roles = "", const std::string& mode = "sync", long long expires_in_ms = -1) {
    auto t = mode + "|" + subject + "|" + session + "|" + perms + "|" + roles;
    if (expires_in_ms >= 0) t += "|" + std::to_string(expires_in_ms);
    return t;
}

/// A decoded server message.
struct message {
    std::shared_ptr<const std::string> bytes;  ///< `frame` points into it
    p::frame_view frame;
    s::frame_kind kind = s::frame_kind::binary;
    nlohmann::json json() const { return nlohmann::json::parse(frame.payload.as_chars(), nullptr, false); }
};

inline std::vector<message> decode_all(const std::vector<s::memory_frame>& frames) {
    std::vector<message> out;
    for (const auto& f : frames) {
        message m;
        m.bytes = std::make_shared<const std::string>(f.bytes);
        m.kind = f.kind;
        const auto ec = p::decode_frame(p::bytes_view(*m.bytes), m.frame);
        REQUIRE_FALSE(ec);
        out.push_back(std::move(m));
    }
    return out;
}

struct harness {
    explicit harness(s::gateway_options options = default_options(), bool with_threads = false)
        : harness(std::move(options), std::make_shared<session::memory_session_store>()) {
        (void)with_threads;
    }
    /// With a store of the test's own (short timeouts, an injected clock).
    harness(s::gateway_options options, std::shared_ptr<session::memory_session_store> own_store)
        : validator(std::make_shared<scripted_validator>()),
          store(std::move(own_store)),
          gw(std::move(options), validator, store),
          transport(io, gw.transport_side()) {}

    ~harness() {
        for (auto& c : clients)
            if (!c->closed()) c->close();
        run_until([&] {
            for (auto& c : clients)
                if (!c->closed()) return false;
            return true;
        }, std::chrono::milliseconds(2000), false);
        stop_threads();
        validator->join();
    }

    /// Runs the io_context on `n` background threads (multi-threaded tests).
    void start_threads(std::size_t n) {
        // After single-threaded driving ran out of work the context is stopped.
        if (io.stopped()) io.restart();
        guard.emplace(io.get_executor());
        for (std::size_t i = 0; i < n; ++i) threads.emplace_back([this] { io.run(); });
    }
    void stop_threads() {
        if (threads.empty()) return;
        guard.reset();
        io.stop();
        for (auto& t : threads) t.join();
        threads.clear();
    }

    /// Drives the io_context (or, with background threads, waits) until
    /// `done()` or `timeout`.
    bool run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout = std::chrono::milliseconds(3000),
                   bool require = true) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!done()) {
            if (std::chrono::steady_clock::now() >= deadline) {
                if (require) FAIL_CHECK("condition not reached in time");
                return false;
            }
            if (!threads.empty()) {
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            } else {
                if (io.stopped()) io.restart();
                io.run_one_for(std::chrono::milliseconds(5));
            }
        }
        return true;
    }
    /// Lets queued work (and `ms` of timers) run.
    void settle(std::chrono::milliseconds ms = std::chrono::milliseconds(20)) {
        const auto until = std::chrono::steady_clock::now() + ms;
        run_until([&] { return std::chrono::steady_clock::now() >= until; }, ms + std::chrono::milliseconds(1000));
    }

    std::shared_ptr<s::memory_client> upgrade(s::memory_upgrade u) {
        auto c = transport.connect(std::move(u));
        clients.push_back(c);
        run_until([&] { return c->status() != 0; });
        return c;
    }
    std::shared_ptr<s::memory_client> upgrade_with(const std::string& authorization) {
        s::memory_upgrade u;
        u.headers.push_back({"Authorization", authorization});
        return upgrade(std::move(u));
    }

    /// Connects with a bearer token and waits for the manifest.
    std::shared_ptr<s::memory_client> connect(const std::string& bearer) {
        auto c = upgrade_with("Bearer " + bearer);
        REQUIRE(c->status() == 101);
        run_until([&] { return manifest_of(*c).has_value() || c->closed(); });
        return c;
    }

    static std::vector<nlohmann::json> manifests_of(const s::memory_client& c) {
        std::vector<nlohmann::json> out;
        for (const auto& m : decode_all(c.frames())) {
            if (m.frame.is_response() || !m.frame.has(p::message_flags::event)) continue;
            auto j = m.json();
            if (j.is_object() && j.value("eventName", "") == "connect.capability-manifest") out.push_back(j);
        }
        return out;
    }
    static std::optional<nlohmann::json> manifest_of(const s::memory_client& c) {
        auto all = manifests_of(c);
        if (all.empty()) return std::nullopt;
        return all.back();
    }
    static p::guid guid_of(const s::memory_client& c, const std::string& path) {
        const auto m = manifest_of(c);
        REQUIRE(m.has_value());
        for (const auto& api : m->at("availableApis"))
            if (api.at("endpoint") == path) return p::guid_from_string(api.at("serviceId").get<std::string>());
        FAIL("endpoint not in manifest: " << path);
        return {};
    }

    static std::string request(p::guid id, std::string_view payload, p::message_flags flags = p::message_flags::none,
                               std::uint16_t channel = 0, std::uint32_t sequence = 7, std::uint64_t message_id = 0x1122334455667788ull) {
        std::string out;
        p::append_frame(out, p::request_header{flags, channel, sequence, id, message_id}, p::bytes_view(payload));
        return out;
    }

    /// Replies (frames with the Response bit) received so far.
    static std::vector<message> responses(const s::memory_client& c) {
        std::vector<message> out;
        for (auto& m : decode_all(c.frames()))
            if (m.frame.is_response()) out.push_back(std::move(m));
        return out;
    }
    /// Events other than manifests.
    static std::vector<nlohmann::json> events(const s::memory_client& c) {
        std::vector<nlohmann::json> out;
        for (const auto& m : decode_all(c.frames())) {
            if (m.frame.is_response() || !m.frame.has(p::message_flags::event)) continue;
            auto j = m.json();
            if (j.is_object() && j.value("eventName", "") != "connect.capability-manifest") out.push_back(j);
        }
        return out;
    }

    /// Sends a request and waits for the reply with `message_id`.
    message call(s::memory_client& c, const std::string& frame, std::uint64_t message_id = 0x1122334455667788ull) {
        const auto before = responses(c).size();
        c.send_binary(p::bytes_view(frame));
        std::optional<message> found;
        run_until([&] {
            auto all = responses(c);
            for (std::size_t i = before; i < all.size(); ++i)
                if (all[i].frame.message_id == message_id) {
                    found = all[i];
                    return true;
                }
            return false;
        });
        REQUIRE(found.has_value());
        return *found;
    }

    asio::io_context io;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard;
    std::vector<std::thread> threads;
    std::shared_ptr<scripted_validator> validator;
    std::shared_ptr<session::memory_session_store> store;
    s::gateway gw;
    s::memory_transport transport;
    std::vector<std::shared_ptr<s::memory_client>> clients;
};

/// Responders kept by the `/hold` endpoint, with the payload of each call.
struct held_calls {
    std::mutex mutex;
    std::vector<std::pair<std::string, r::responder>> calls;
    std::vector<std::string> order;  ///< payloads in invocation order

    std::size_t size() {
        std::lock_guard<std::mutex> lock(mutex);
        return calls.size();
    }
    r::responder take(std::size_t i) {
        std::lock_guard<std::mutex> lock(mutex);
        return std::move(calls.at(i).second);
    }
};

inline r::endpoint_options ep(std::string service, std::string path) {
    r::endpoint_options o;
    o.service = std::move(service);
    o.path = std::move(path);
    return o;
}

/// /echo, /binary, /secret (permission secret:read), /admin (role admin),
/// /fail (51), /throw, /drop (responder dropped), /hold (kept in `held`).
inline void add_standard_endpoints(s::gateway& gw, std::shared_ptr<held_calls> held) {
    r::endpoint_options echo;
    echo.service = "test";
    echo.path = "/echo";
    echo.description = "Echoes the request body";
    echo.request_schema = {{"type", "object"}};
    echo.response_schema = {{"type", "object"}, {"title", "echo"}};
    gw.add_endpoint(echo, [](const r::request& req, r::responder answer) { answer.reply(req.payload.as_chars()); });
    gw.add_endpoint(ep("test", "/binary"), [](const r::request&, r::responder answer) {
        const std::uint8_t bytes[] = {0xde, 0xad, 0xbe, 0xef};
        answer.reply_binary(p::bytes_view(bytes, sizeof bytes));
    });
    auto secret = ep("test", "/secret");
    secret.required_permission = "secret:read";
    gw.add_endpoint(secret, [](const r::request&, r::responder answer) { answer.reply(R"({"secret":42})"); });
    auto admin = ep("test", "/admin");
    admin.required_role = "admin";
    gw.add_endpoint(admin, [](const r::request&, r::responder answer) { answer.reply("{}"); });
    gw.add_endpoint(ep("test", "/fail"),
                    [](const r::request&, r::responder answer) { answer.fail(p::response_code::backend_not_found); });
    gw.add_endpoint(ep("test", "/throw"), [](const r::request&, r::responder) -> void { throw std::runtime_error("boom"); });
    gw.add_endpoint(ep("test", "/drop"), [](const r::request&, r::responder) {});
    gw.add_endpoint(ep("test", "/hold"), [held](const r::request& req, r::responder answer) {
        std::lock_guard<std::mutex> lock(held->mutex);
        held->order.emplace_back(req.payload.as_chars());
        held->calls.emplace_back(std::string(req.payload.as_chars()), std::move(answer));
    });
}

/// A gateway on the memory transport with the standard endpoints; calls to
/// the "held" endpoint wait in `held` until a test answers them.
struct standard_fixture {
    explicit standard_fixture(s::gateway_options o = default_options()) : h(std::move(o)) {
        add_standard_endpoints(h.gw, held);
    }
    std::shared_ptr<held_calls> held = std::make_shared<held_calls>();
    harness h;
};

}  // namespace gatehouse::test
