// The gateway with two I/O threads and handlers completing on other threads
// (run under ThreadSanitizer in CI): replies are complete and in channel
// order, pushes and group changes race with traffic safely.
#include "harness.hpp"

#include <condition_variable>
#include <deque>
#include <map>
#include <set>

using namespace gatehouse::test;
using p::message_flags;
using p::response_code;

namespace {
/// Answers responders from its own thread, in arrival order.
class worker {
public:
    worker() : thread_([this] { loop(); }) {}
    ~worker() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            done_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }
    void submit(std::string payload, r::responder answer) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            jobs_.emplace_back(std::move(payload), std::move(answer));
        }
        cv_.notify_one();
    }

private:
    void loop() {
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            cv_.wait(lock, [&] { return done_ || !jobs_.empty(); });
            if (jobs_.empty()) return;
            auto job = std::move(jobs_.front());
            jobs_.pop_front();
            lock.unlock();
            job.second.reply(job.first);
            lock.lock();
        }
    }
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::pair<std::string, r::responder>> jobs_;
    bool done_ = false;
    std::thread thread_;
};
}  // namespace

TEST_CASE("two I/O threads, handlers answering from a worker thread: every reply, in channel order") {
    auto o = default_options();
    o.messages_per_minute = 1000000;
    o.message_burst = 100000;
    o.account_messages_per_minute = o.messages_per_minute;
    o.account_message_burst = o.message_burst;
    o.max_in_flight = 4;
    harness h(o);
    auto pool = std::make_shared<worker>();
    h.gw.add_endpoint(ep("t", "/async"), [pool](const r::request& req, r::responder answer) {
        pool->submit(std::string(req.payload.as_chars()), std::move(answer));
    });
    h.gw.add_endpoint(ep("t", "/inline"),
                      [](const r::request& req, r::responder answer) { answer.reply(req.payload.as_chars()); });
    h.start_threads(2);

    constexpr int clients = 6;
    constexpr int per_client = 120;
    std::vector<std::shared_ptr<s::memory_client>> cs;
    for (int i = 0; i < clients; ++i) {
        char sid[37];
        std::snprintf(sid, sizeof sid, "%08x-8b86-4d11-b42d-00c04fc964ff", i + 1);
        auto c = h.upgrade_with("Bearer " + token("user" + std::to_string(i % 3), sid));
        REQUIRE(c->status() == 101);
        h.run_until([&] { return harness::manifest_of(*c).has_value(); });
        cs.push_back(c);
    }

    std::atomic<bool> stop_pushing{false};
    std::thread pusher([&] {
        int n = 0;
        while (!stop_pushing.load()) {
            h.gw.push_to_all("tick", {{"n", ++n}});
            h.gw.push_to_account("user1", "account.tick");
            const auto sid = std::string("00000002-8b86-4d11-b42d-00c04fc964ff");
            (void)h.gw.join_group(sid, "room");
            h.gw.push_to_group("room", "room.tick");
            (void)h.gw.leave_group(sid, "room");
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    });

    for (int i = 0; i < clients; ++i) {
        const auto async_id = harness::guid_of(*cs[i], "/async");
        const auto inline_id = harness::guid_of(*cs[i], "/inline");
        for (int n = 0; n < per_client; ++n) {
            const auto channel = static_cast<std::uint16_t>(n % 4);
            const auto id = static_cast<std::uint64_t>(n + 1);
            cs[i]->send_binary(p::bytes_view(harness::request(n % 3 == 0 ? inline_id : async_id, std::to_string(n),
                                                              message_flags::none, channel, static_cast<std::uint32_t>(n), id)));
        }
    }
    for (int i = 0; i < clients; ++i)
        h.run_until([&] { return harness::responses(*cs[i]).size() == per_client; }, std::chrono::milliseconds(20000));
    stop_pushing = true;
    pusher.join();

    for (int i = 0; i < clients; ++i) {
        const auto replies = harness::responses(*cs[i]);
        REQUIRE(replies.size() == per_client);
        std::map<std::uint16_t, std::uint64_t> last_on_channel;
        std::set<std::uint64_t> seen;
        for (const auto& m : replies) {
            CHECK(m.frame.code == response_code::ok);
            CHECK(m.frame.payload.as_chars() == std::to_string(m.frame.message_id - 1));
            CHECK(m.frame.channel == (m.frame.message_id - 1) % 4);
            // One in flight per channel: replies on a channel come in request order.
            CHECK(m.frame.message_id > last_on_channel[m.frame.channel]);
            last_on_channel[m.frame.channel] = m.frame.message_id;
            seen.insert(m.frame.message_id);
        }
        CHECK(seen.size() == per_client);
        CHECK_FALSE(cs[i]->closed());
    }
    for (auto& c : cs) c->close();
    h.run_until([&] { return h.gw.stats().connections == 0; });
}

TEST_CASE("two I/O threads: replacement and disconnects race with calls") {
    harness h;
    h.gw.add_endpoint(ep("t", "/inline"),
                      [](const r::request& req, r::responder answer) { answer.reply(req.payload.as_chars()); });
    h.start_threads(2);
    std::vector<std::shared_ptr<s::memory_client>> generations;
    for (int round = 0; round < 20; ++round) {
        auto c = h.upgrade_with("Bearer " + token("alice", session_a, "", "", round % 2 ? "async" : "sync"));
        REQUIRE(c->status() == 101);
        const auto id = r::service_guid(session_a, "t:/inline", salt);
        for (int n = 0; n < 10; ++n) c->send_binary(p::bytes_view(harness::request(id, "x")));
        generations.push_back(c);
    }
    // Attachments race across the two threads: whichever registers last
    // keeps the session; every other generation is replaced with 4002.
    const auto open_count = [&] {
        std::size_t open = 0;
        for (const auto& c : generations) open += c->closed() ? 0 : 1;
        return open;
    };
    h.run_until([&] { return open_count() == 1 && h.gw.stats().sessions == 1; }, std::chrono::milliseconds(5000));
    h.settle(std::chrono::milliseconds(50));
    CHECK(open_count() == 1);
    for (const auto& c : generations)
        if (c->closed()) CHECK(c->server_close_code() == 4002);
    CHECK(h.gw.stats().sessions == 1);
}
