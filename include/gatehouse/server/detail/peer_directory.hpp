// The session registry's peer table (PROTOCOL.md §12): which connection
// answers to which peer GUID, for client-to-client routing. Its own lock,
// taken only by Client-flagged frames, attach and close.
#pragma once

#include <gatehouse/protocol/guid.hpp>

#include <cstddef>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace gatehouse::server::detail {

template <class Connection>
class peer_directory {
public:
    /// `peer` answers to `connection` from now on (a GUID seen before is
    /// taken over).
    void add(const protocol::guid& peer, const std::shared_ptr<Connection>& connection) {
        std::lock_guard<std::mutex> lock(mutex_);
        peers_[peer] = connection;
    }
    /// Forgets `peer` if it still answers to `connection` (or to nobody
    /// alive): a later connection that took the GUID over keeps it.
    void remove(const protocol::guid& peer, const Connection* connection) {
        std::lock_guard<std::mutex> lock(mutex_);
        const auto it = peers_.find(peer);
        if (it == peers_.end()) return;
        const auto current = it->second.lock();
        if (!current || current.get() == connection) peers_.erase(it);
    }
    /// The live connection of `peer`, or null.
    std::shared_ptr<Connection> find(const protocol::guid& peer) const {
        std::lock_guard<std::mutex> lock(mutex_);
        const auto it = peers_.find(peer);
        return it == peers_.end() ? nullptr : it->second.lock();
    }
    void clear() {
        std::lock_guard<std::mutex> lock(mutex_);
        peers_.clear();
    }
    std::size_t size() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return peers_.size();
    }

private:
    mutable std::mutex mutex_;
    std::unordered_map<protocol::guid, std::weak_ptr<Connection>> peers_;
};

}  // namespace gatehouse::server::detail
