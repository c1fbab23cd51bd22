// A session_observer for tests: records every lifecycle event (with the
// thread it arrived on), lets a test wait for events, describes a session's
// events as one compact string ("opened(created) parked(dropped,1006)
// resumed(after_park) closed(client_closed,1000)") and checks the contract
// of session_observer.hpp over everything recorded (one opened, at most one
// closed per lifetime, nothing after closed or moved but a new lifetime).
//
// Thread-safe: the hooks run on the gateway's observer thread while tests
// read from theirs. Optional per-event hooks (`before`) let a test block or
// throw inside a hook. Usable on any transport and across nodes (one
// recorder per gateway, or one shared by several: node_id tells them apart).
#pragma once

#include <gatehouse/server/session_observer.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace gatehouse::test {

enum class lifecycle_kind : std::uint8_t { opened, parked, resumed, moved, closed };

inline const char* lifecycle_kind_name(lifecycle_kind k) noexcept {
    switch (k) {
    case lifecycle_kind::opened: return "opened";
    case lifecycle_kind::parked: return "parked";
    case lifecycle_kind::resumed: return "resumed";
    case lifecycle_kind::moved: return "moved";
    case lifecycle_kind::closed: return "closed";
    }
    return "unknown";
}

/// One event as a hook saw it, with owned strings.
struct recorded_event {
    lifecycle_kind kind = lifecycle_kind::opened;
    std::string session_id;
    std::string account_id;
    std::string node_id;
    std::string remote_address;
    server::session_end_reason reason = server::session_end_reason::client_closed;
    std::uint16_t close_code = 0;
    std::chrono::system_clock::time_point parked_until{};
    server::session_resume_kind resumed = server::session_resume_kind::after_park;
    bool created = false;
    std::thread::id thread;
    std::chrono::steady_clock::time_point at;  ///< when the hook was called

    /// "opened(created)", "opened", "parked(dropped,1006)",
    /// "resumed(takeover)", "moved(revoked,4002)", "closed(client_closed,1000)".
    std::string describe() const {
        std::string out = lifecycle_kind_name(kind);
        switch (kind) {
        case lifecycle_kind::opened:
            if (created) out += "(created)";
            break;
        case lifecycle_kind::resumed:
            out += "(" + std::string(server::session_resume_kind_name(resumed)) + ")";
            break;
        case lifecycle_kind::parked:
        case lifecycle_kind::moved:
        case lifecycle_kind::closed:
            out += "(" + std::string(server::session_end_reason_name(reason)) + "," + std::to_string(close_code) + ")";
            break;
        }
        return out;
    }
};

class recording_observer : public server::session_observer {
public:
    /// Called on the observer thread before an event is recorded (to block,
    /// or throw: a throwing `before` leaves the event unrecorded). Set it
    /// before the gateway can emit events.
    std::function<void(const recorded_event&)> before;
    /// Called after an event is recorded (same thread).
    std::function<void(const recorded_event&)> after;

    void on_opened(const server::session_event& e) override { record(lifecycle_kind::opened, e); }
    void on_parked(const server::session_event& e) override { record(lifecycle_kind::parked, e); }
    void on_resumed(const server::session_event& e) override { record(lifecycle_kind::resumed, e); }
    void on_moved(const server::session_event& e) override { record(lifecycle_kind::moved, e); }
    void on_closed(const server::session_event& e) override { record(lifecycle_kind::closed, e); }

    std::vector<recorded_event> events() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return events_;
    }
    std::vector<recorded_event> events_of(const std::string& session_id) const {
        std::lock_guard<std::mutex> lock(mutex_);
        std::vector<recorded_event> out;
        for (const auto& e : events_)
            if (e.session_id == session_id) out.push_back(e);
        return out;
    }
    std::size_t size() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return events_.size();
    }
    std::size_t count_of(const std::string& session_id) const {
        std::lock_guard<std::mutex> lock(mutex_);
        return static_cast<std::size_t>(std::count_if(events_.begin(), events_.end(),
                                                      [&](const recorded_event& e) { return e.session_id == session_id; }));
    }
    /// The session's events described and separated by spaces.
    std::string trace(const std::string& session_id) const {
        std::string out;
        for (const auto& e : events_of(session_id)) {
            if (!out.empty()) out += ' ';
            out += e.describe();
        }
        return out;
    }
    /// Every event as "<session id>:<description>", in delivery order.
    std::string trace_all() const {
        std::string out;
        for (const auto& e : events()) {
            if (!out.empty()) out += ' ';
            out += e.session_id + ":" + e.describe();
        }
        return out;
    }

    /// Blocks until `done()` holds over the recorded events (checked at every
    /// event) or `timeout`. For gateways driven by their own threads; with
    /// an io_context the test drives, poll size()/count_of() from its loop.
    bool wait_until(const std::function<bool(const std::vector<recorded_event>&)>& done,
                    std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) const {
        std::unique_lock<std::mutex> lock(mutex_);
        return changed_.wait_for(lock, timeout, [&] { return done(events_); });
    }
    bool wait_for(std::size_t n, std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) const {
        return wait_until([n](const std::vector<recorded_event>& all) { return all.size() >= n; }, timeout);
    }
    bool wait_for(const std::string& session_id, std::size_t n,
                  std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) const {
        return wait_until(
            [&](const std::vector<recorded_event>& all) {
                return static_cast<std::size_t>(std::count_if(all.begin(), all.end(), [&](const recorded_event& e) {
                           return e.session_id == session_id;
                       })) >= n;
            },
            timeout);
    }

    /// Checks the contract of session_observer.hpp over what was recorded,
    /// per session and node: a lifetime starts with opened (or
    /// resumed(from_other_node) after another node's moved), has at most one
    /// closed (or moved) and nothing after it but a new lifetime; parked only
    /// while connected; resumed(after_park) only after parked. Returns the
    /// violations found ("" when none).
    std::string lifetime_violations() const {
        enum class state { none, live, parked, ended };
        std::map<std::pair<std::string, std::string>, state> states;
        std::string out;
        const auto bad = [&](const recorded_event& e, const char* why) {
            out += e.session_id + "@" + e.node_id + ": " + e.describe() + " " + why + "; ";
        };
        for (const auto& e : events()) {
            auto& st = states[{e.session_id, e.node_id}];
            const bool in_lifetime = st == state::live || st == state::parked;
            switch (e.kind) {
            case lifecycle_kind::opened:
                if (in_lifetime) bad(e, "during a lifetime");
                st = state::live;
                break;
            case lifecycle_kind::resumed:
                if (e.resumed == server::session_resume_kind::from_other_node) {
                    if (in_lifetime) bad(e, "during a lifetime on this node");
                } else if (e.resumed == server::session_resume_kind::after_park) {
                    if (st != state::parked) bad(e, "without a park");
                } else if (st != state::live) {
                    bad(e, "takeover of a session that is not connected");
                }
                st = state::live;
                break;
            case lifecycle_kind::parked:
                if (st != state::live) bad(e, "of a session that is not connected");
                st = state::parked;
                break;
            case lifecycle_kind::moved:
            case lifecycle_kind::closed:
                if (!in_lifetime) bad(e, "outside a lifetime (twice?)");
                st = state::ended;
                break;
            }
        }
        return out;
    }

    /// Threads the hooks ran on.
    std::vector<std::thread::id> threads() const {
        std::vector<std::thread::id> out;
        for (const auto& e : events())
            if (std::find(out.begin(), out.end(), e.thread) == out.end()) out.push_back(e.thread);
        return out;
    }

    void clear() {
        std::lock_guard<std::mutex> lock(mutex_);
        events_.clear();
    }

private:
    void record(lifecycle_kind kind, const server::session_event& e) {
        recorded_event r;
        r.kind = kind;
        r.session_id = std::string(e.session_id);
        r.account_id = std::string(e.account_id);
        r.node_id = std::string(e.node_id);
        r.remote_address = std::string(e.remote_address);
        r.reason = e.reason;
        r.close_code = e.close_code;
        r.parked_until = e.parked_until;
        r.resumed = e.resumed;
        r.created = e.created;
        r.thread = std::this_thread::get_id();
        r.at = std::chrono::steady_clock::now();
        if (before) before(r);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            events_.push_back(r);
        }
        changed_.notify_all();
        if (after) after(r);
    }

    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    std::vector<recorded_event> events_;
};

/// A gate a hook can wait on until the test opens it (blocked-hook tests).
/// Opens by itself when destroyed is not enough (the gateway may still call
/// the hook): open it before the gateway goes away.
class hook_gate {
public:
    /// Called from the hook: records that it is waiting, waits until open()
    /// or `limit` (a safety net so a failing test cannot hang).
    void wait(std::chrono::milliseconds limit = std::chrono::milliseconds(10000)) {
        std::unique_lock<std::mutex> lock(mutex_);
        ++waiting_;
        changed_.notify_all();
        changed_.wait_for(lock, limit, [&] { return open_; });
    }
    void open() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            open_ = true;
        }
        changed_.notify_all();
    }
    /// Hooks that entered wait() so far.
    int waiting() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return waiting_;
    }
    bool wait_entered(int n, std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) const {
        std::unique_lock<std::mutex> lock(mutex_);
        return changed_.wait_for(lock, timeout, [&] { return waiting_ >= n; });
    }

private:
    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    bool open_ = false;
    int waiting_ = 0;
};

}  // namespace gatehouse::test
