// memory_event_bus: the in-process event bus. Several nodes (several
// gateways in one process, or the nodes of a test) share one
// memory_event_hub; each node is one memory_event_bus with its own id.
// Nothing is lost while the process lives: delivery is a post to the
// receiving node's strand. It is also the default for a single gateway,
// where nothing needs to leave the process.
//
// Threading: see event_bus.hpp. The hub's routing tables are guarded by one
// mutex, held for the lookup only (never while a handler runs); envelopes are
// encoded once per publish and shared by the receiving nodes.
//
// Lifetime: destroy (or close()) each bus before its io_context; the hub
// lives as long as any bus holds it.
#pragma once

#include <gatehouse/cluster/detail/inbound.hpp>
#include <gatehouse/cluster/envelope.hpp>
#include <gatehouse/cluster/event_bus.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>

#include <atomic>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gatehouse::cluster {

struct memory_event_bus_options {
    /// This node's id: [A-Za-z0-9._:-], 1..64 characters, unique in the hub.
    std::string node_id;
    /// (origin, message id) pairs remembered for duplicate suppression.
    std::size_t duplicate_window = 65536;
    /// Largest payload accepted by publish and on receipt.
    std::size_t max_payload_size = 64 * 1024;
};

class memory_event_hub;

namespace detail {

class memory_node final : public std::enable_shared_from_this<memory_node> {
public:
    using strand_type = asio::strand<asio::any_io_executor>;

    memory_node(const asio::any_io_executor& executor, const memory_event_bus_options& options)
        : strand_(asio::make_strand(executor)),
          inbound_(options.node_id, options.duplicate_window, options.max_payload_size, stats_) {}

    const strand_type& strand() const noexcept { return strand_; }
    atomic_stats& stats() noexcept { return stats_; }
    bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }
    void mark_closed() noexcept { closed_.store(true, std::memory_order_release); }

    /// Posts a received envelope to this node's strand.
    void deliver(std::shared_ptr<const std::string> bytes) {
        asio::post(strand_, [self = shared_from_this(), bytes = std::move(bytes)] {
            if (self->closed()) return;
            self->inbound_.receive(*bytes, self->handler_);
        });
    }

    // On the strand only:
    interest_set& interests() noexcept { return inbound_.interests(); }
    void set_handler(event_bus::message_handler handler) { handler_ = std::move(handler); }

private:
    strand_type strand_;
    atomic_stats stats_;
    inbound inbound_;
    event_bus::message_handler handler_;
    std::atomic<bool> closed_{false};
};

}  // namespace detail

/// The routing tables shared by the memory buses of one process. Create it
/// with std::make_shared and give it to every memory_event_bus.
class memory_event_hub {
public:
    /// Test hook: hands raw bytes to a node as if they came off the wire
    /// (malformed envelopes, duplicates). Returns false for an unknown node.
    bool inject(std::string_view node_id, std::string bytes) {
        std::shared_ptr<detail::memory_node> node;
        {
            std::lock_guard lock(mutex_);
            auto it = nodes_.find(node_id);
            if (it == nodes_.end()) return false;
            node = it->second;
        }
        node->deliver(std::make_shared<const std::string>(std::move(bytes)));
        return true;
    }

    /// The node ids currently joined.
    std::vector<std::string> nodes() const {
        std::lock_guard lock(mutex_);
        std::vector<std::string> out;
        for (const auto& entry : nodes_) out.push_back(entry.first);
        return out;
    }

private:
    friend class memory_event_bus;
    using node_ptr = std::shared_ptr<detail::memory_node>;

    void join(const std::string& id, node_ptr node) {
        std::lock_guard lock(mutex_);
        if (!nodes_.emplace(id, std::move(node)).second)
            throw std::invalid_argument("memory_event_bus: node id '" + id + "' is already in this hub");
    }

    void leave(const std::string& id) {
        std::lock_guard lock(mutex_);
        nodes_.erase(id);
        for (auto it = sessions_.begin(); it != sessions_.end();) {
            it = it->second == id ? sessions_.erase(it) : std::next(it);
        }
        for (auto* table : {&accounts_, &groups_}) {
            for (auto it = table->begin(); it != table->end();) {
                it->second.erase(id);
                it = it->second.empty() ? table->erase(it) : std::next(it);
            }
        }
    }

    bool alive(std::string_view id) const {
        std::lock_guard lock(mutex_);
        return nodes_.find(id) != nodes_.end();
    }

    /// Records the declaration; for a session held by another live node,
    /// returns that node so the caller can tell it (session_taken).
    node_ptr declare(const std::string& id, interest_kind kind, std::string_view name) {
        std::lock_guard lock(mutex_);
        if (kind == interest_kind::session) {
            auto [it, inserted] = sessions_.try_emplace(std::string(name), id);
            if (inserted || it->second == id) return nullptr;
            auto previous = std::exchange(it->second, id);
            auto holder = nodes_.find(previous);
            return holder == nodes_.end() ? nullptr : holder->second;
        }
        table(kind)[std::string(name)].insert(id);
        return nullptr;
    }

    void withdraw(const std::string& id, interest_kind kind, std::string_view name) {
        std::lock_guard lock(mutex_);
        if (kind == interest_kind::session) {
            auto it = sessions_.find(name);
            if (it != sessions_.end() && it->second == id) sessions_.erase(it);
            return;
        }
        auto& t = table(kind);
        auto it = t.find(name);
        if (it == t.end()) return;
        it->second.erase(id);
        if (it->second.empty()) t.erase(it);
    }

    /// The nodes a message reaches, the publisher excluded.
    std::vector<node_ptr> recipients(const std::string& self, message_kind kind, std::string_view target) const {
        std::vector<node_ptr> out;
        std::lock_guard lock(mutex_);
        auto add = [&](std::string_view id) {
            if (id == self) return;
            auto it = nodes_.find(id);
            if (it != nodes_.end()) out.push_back(it->second);
        };
        switch (kind) {
        case message_kind::to_node: add(target); break;
        case message_kind::to_session:
        case message_kind::revoke_session:
        case message_kind::session_taken: {
            auto it = sessions_.find(target);
            if (it != sessions_.end()) add(it->second);
            break;
        }
        case message_kind::to_account:
        case message_kind::revoke_account:
        case message_kind::to_group: {
            const auto& t = kind == message_kind::to_group ? groups_ : accounts_;
            auto it = t.find(target);
            if (it != t.end())
                for (const auto& id : it->second) add(id);
            break;
        }
        case message_kind::to_all:
            for (const auto& entry : nodes_) add(entry.first);
            break;
        }
        return out;
    }

    using name_table = std::map<std::string, std::set<std::string, std::less<>>, std::less<>>;
    name_table& table(interest_kind kind) { return kind == interest_kind::account ? accounts_ : groups_; }

    mutable std::mutex mutex_;
    std::map<std::string, node_ptr, std::less<>> nodes_;
    std::map<std::string, std::string, std::less<>> sessions_;
    name_table accounts_;
    name_table groups_;
};

class memory_event_bus final : public event_bus {
public:
    /// Joins `hub` as `options.node_id`. Throws std::invalid_argument for an
    /// invalid node id or one already joined (start-up configuration).
    memory_event_bus(std::shared_ptr<memory_event_hub> hub, const asio::any_io_executor& executor,
                     memory_event_bus_options options)
        : hub_(std::move(hub)), options_(validated(std::move(options))),
          node_(std::make_shared<detail::memory_node>(executor, options_)),
          next_message_id_(detail::random_message_id_start()) {
        if (!hub_) throw std::invalid_argument("memory_event_bus: hub is null");
        hub_->join(options_.node_id, node_);
    }

    ~memory_event_bus() override { close(); }

    memory_event_bus(const memory_event_bus&) = delete;
    memory_event_bus& operator=(const memory_event_bus&) = delete;

    std::string_view node_id() const noexcept override { return options_.node_id; }

    void subscribe(message_handler handler, done_completion done) override {
        asio::post(node_->strand(), [node = node_, handler = std::move(handler), done = std::move(done)]() mutable {
            if (node->closed()) return finish(done, cluster_errc::bus_closed);
            node->set_handler(std::move(handler));
            finish(done, {});
        });
    }

    void publish(message_kind kind, std::string_view target, std::string_view payload,
                 publish_completion done) override {
        auto fail = [&](cluster_errc why) {
            detail::atomic_stats::bump(node_->stats().publish_failed);
            post_result(std::move(done), why, 0);
        };
        if (node_->closed()) return fail(cluster_errc::bus_closed);
        if (kind == message_kind::session_taken) return fail(cluster_errc::kind_not_publishable);
        if (static_cast<std::uint8_t>(kind) < min_message_kind || static_cast<std::uint8_t>(kind) > max_message_kind ||
            !valid_target(kind, target))
            return fail(cluster_errc::invalid_target);
        if (kind == message_kind::to_node && !valid_node_id(target)) return fail(cluster_errc::invalid_target);
        if (payload.size() > options_.max_payload_size) return fail(cluster_errc::payload_too_large);
        auto bytes = std::make_shared<std::string>();
        bytes->reserve(envelope_size(options_.node_id, target, payload));
        encode_envelope({kind, next_id(), options_.node_id, target, payload}, *bytes, options_.max_payload_size);
        const auto recipients = hub_->recipients(options_.node_id, kind, target);
        std::shared_ptr<const std::string> shared = std::move(bytes);
        for (const auto& r : recipients) r->deliver(shared);
        detail::atomic_stats::bump(node_->stats().published);
        post_result(std::move(done), {}, recipients.size());
    }

    void declare_interest(interest_kind kind, std::string_view name, done_completion done) override {
        if (node_->closed()) return post_done(std::move(done), cluster_errc::bus_closed);
        if (!valid_interest(kind, name)) return post_done(std::move(done), cluster_errc::invalid_target);
        // The local set first, then the hub: a message routed here after the
        // hub knows is queued behind the local update (one strand, in order).
        asio::post(node_->strand(), [node = node_, kind, n = std::string(name)] { node->interests().add(kind, n); });
        if (auto previous = hub_->declare(options_.node_id, kind, name)) {
            std::string bytes;
            encode_envelope({message_kind::session_taken, next_id(), options_.node_id, name, options_.node_id}, bytes);
            previous->deliver(std::make_shared<const std::string>(std::move(bytes)));
        }
        post_done(std::move(done), {});
    }

    void withdraw_interest(interest_kind kind, std::string_view name, done_completion done) override {
        if (node_->closed()) return post_done(std::move(done), cluster_errc::bus_closed);
        if (!valid_interest(kind, name)) return post_done(std::move(done), cluster_errc::invalid_target);
        hub_->withdraw(options_.node_id, kind, name);
        asio::post(node_->strand(), [node = node_, kind, n = std::string(name)] { node->interests().remove(kind, n); });
        post_done(std::move(done), {});
    }

    void node_alive(std::string_view node, alive_completion done) override {
        std::error_code ec;
        bool alive = false;
        if (node_->closed())
            ec = cluster_errc::bus_closed;
        else if (!valid_node_id(node))
            ec = cluster_errc::invalid_node_id;
        else
            alive = hub_->alive(node);
        if (!done) return;
        asio::post(node_->strand(), [done = std::move(done), ec, alive] { done(ec, alive); });
    }

    event_bus_stats stats() const override { return node_->stats().snapshot(); }

    void close() override {
        if (node_->closed()) return;
        node_->mark_closed();
        hub_->leave(options_.node_id);
        asio::post(node_->strand(), [node = node_] {
            node->set_handler(nullptr);
            node->interests().clear();
        });
    }

private:
    static void finish(done_completion& done, std::error_code ec) {
        if (done) done(ec);
    }
    void post_done(done_completion done, std::error_code ec) {
        if (!done) return;
        asio::post(node_->strand(), [done = std::move(done), ec] { done(ec); });
    }
    void post_result(publish_completion done, std::error_code ec, std::size_t nodes) {
        if (!done) return;
        asio::post(node_->strand(), [done = std::move(done), ec, nodes] { done(ec, nodes); });
    }
    static bool valid_interest(interest_kind kind, std::string_view name) {
        const auto k = static_cast<std::uint8_t>(kind);
        return k >= 1 && k <= 3 && !name.empty() && name.size() <= max_target_size;
    }
    std::uint64_t next_id() noexcept { return next_message_id_.fetch_add(1, std::memory_order_relaxed); }

    static memory_event_bus_options validated(memory_event_bus_options o) {
        if (!valid_node_id(o.node_id))
            throw std::invalid_argument("memory_event_bus: node id must be 1..64 characters of [A-Za-z0-9._:-]");
        if (o.duplicate_window == 0) throw std::invalid_argument("memory_event_bus: duplicate_window is 0");
        if (o.max_payload_size == 0 || o.max_payload_size > max_payload_size)
            throw std::invalid_argument("memory_event_bus: max_payload_size must be 1..1 MiB");
        return o;
    }

    std::shared_ptr<memory_event_hub> hub_;
    memory_event_bus_options options_;
    std::shared_ptr<detail::memory_node> node_;
    std::atomic<std::uint64_t> next_message_id_;
};

}  // namespace gatehouse::cluster
