// The Redis event bus's stream reader (redis_bus_core, declared in
// redis_event_bus.ipp): XREAD on the node's stream, and the accounting of
// entries lost to trimming, expiry or a replaced stream while the reader was
// away. Included by redis_event_bus.ipp after the class.
#pragma once

namespace gatehouse::adapters::redis::detail {

inline void redis_bus_core::on_reader_up() {
    if (reader_up_before_) cluster::detail::atomic_stats::bump(stats_.reconnects);
    reader_up_before_ = true;
    // After a reconnection: entries past last_id_ may have been trimmed,
    // or the stream may have expired, while the reader was away.
    check_next_ = true;
    if (!last_id_.empty()) return read_next();
    // First start: read what arrives from now on, counting from the
    // stream's present total.
    const std::string_view args[] = {"EVAL", bus_checked_read_script, "1", stream_key_, "0-0", "0"};
    reader_->send(
        args, 6,
        [weak = weak_from_this()](std::error_code ec, redisReply* reply) {
            auto self = weak.lock();
            if (!self || ec) return;
            self->on_start_position(reply);
        },
        options_.command_timeout);
}

inline void redis_bus_core::on_start_position(const redisReply* reply) {
    // EVAL refused (an ACL, say): start from the last entry, unchecked.
    if (bus_error_of(reply)) {
        cluster::detail::atomic_stats::bump(stats_.bad_replies);
        return start_from_last_entry();
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER ||
        (reply->element[0]->integer == 1 &&
         (reply->elements != 6 || reply->element[1]->type != REDIS_REPLY_INTEGER ||
          reply->element[4]->type != REDIS_REPLY_STRING))) {
        cluster::detail::atomic_stats::bump(stats_.bad_replies);
        return reader_->reset(false);
    }
    if (reply->element[0]->integer == 1) {
        last_id_ = std::string(bus_text_of(reply->element[4]));
        stream_read_ = reply->element[1]->integer > 0 ? static_cast<std::uint64_t>(reply->element[1]->integer) : 0;
    } else {
        last_id_ = "0-0";
        stream_read_ = 0;
    }
    check_next_ = false;
    check_ready();
    read_next();
}

inline void redis_bus_core::start_from_last_entry() {
    reader_->command({"XREVRANGE", stream_key_, "+", "-", "COUNT", "1"},
                     [weak = weak_from_this()](std::error_code ec, redisReply* reply) {
                         auto self = weak.lock();
                         if (!self || ec) return;
                         if (bus_error_of(reply) || reply->type != REDIS_REPLY_ARRAY) {
                             cluster::detail::atomic_stats::bump(self->stats_.bad_replies);
                             return self->reader_->reset(false);
                         }
                         std::string last = "0-0";
                         if (reply->elements == 1 && reply->element[0]->type == REDIS_REPLY_ARRAY &&
                             reply->element[0]->elements == 2 &&
                             reply->element[0]->element[0]->type == REDIS_REPLY_STRING)
                             last = std::string(bus_text_of(reply->element[0]->element[0]));
                         self->last_id_ = std::move(last);
                         self->check_next_ = false;
                         self->check_ready();
                         self->read_next();
                     });
}

inline void redis_bus_core::on_reader_down(bool stuck) {
    fail_waiting_ready(cluster_errc::bus_unavailable);
    if (stuck) {
        commands_->reset(true);
        subscriber_->reset(true);
    }
}

inline void redis_bus_core::read_next() {
    if (closed_) return;
    if (check_next_) return read_checked();
    const auto block = std::to_string(options_.read_block.count());
    const auto count = std::to_string(options_.read_batch);
    const std::string_view args[] = {"XREAD", "COUNT", count, "BLOCK", block, "STREAMS", stream_key_, last_id_};
    reader_->send(
        args, 8,
        [weak = weak_from_this()](std::error_code ec, redisReply* reply) {
            auto self = weak.lock();
            if (!self || ec) return;  // the link reconnects; on_reader_up reads on
            self->on_entries(reply);
        },
        options_.read_block + options_.command_timeout);
}

inline void redis_bus_core::on_entries(redisReply* reply) {
    // nil: the BLOCK time passed without entries.
    if (reply->type == REDIS_REPLY_ARRAY) {
        std::size_t taken = 0;
        for (std::size_t s = 0; s < reply->elements; ++s) {
            const auto* stream = reply->element[s];
            if (stream->type != REDIS_REPLY_ARRAY || stream->elements != 2 ||
                stream->element[1]->type != REDIS_REPLY_ARRAY) {
                cluster::detail::atomic_stats::bump(stats_.bad_replies);
                continue;
            }
            const auto* entries = stream->element[1];
            for (std::size_t i = 0; i < entries->elements; ++i) on_entry(entries->element[i]);
            taken += entries->elements;
        }
        // A blocked XREAD is woken by one write (one entry): a batch this
        // large means the reader was behind, and may have been trimmed
        // past. The next read is a checked one.
        if (taken >= behind_threshold()) check_next_ = true;
    } else if (reply->type != REDIS_REPLY_NIL) {
        cluster::detail::atomic_stats::bump(stats_.bad_replies);
        if (bus_error_of(reply)) return reader_->reset(false);
    }
    read_next();
}

inline void redis_bus_core::read_checked() {
    // Cleared now, not on the reply: a reason to check found while this
    // one is under way calls for another.
    check_next_ = false;
    const auto count = std::to_string(options_.read_batch);
    const std::string_view args[] = {"EVAL", bus_checked_read_script, "1", stream_key_, last_id_, count};
    reader_->send(
        args, 6,
        [weak = weak_from_this()](std::error_code ec, redisReply* reply) {
            auto self = weak.lock();
            if (!self || ec) return;  // the link reconnects and checks again
            self->on_checked(reply);
        },
        options_.command_timeout);
}

inline void redis_bus_core::on_checked(const redisReply* reply) {
    const bool shape_ok =
        !bus_error_of(reply) && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
        reply->element[0]->type == REDIS_REPLY_INTEGER &&
        (reply->element[0]->integer == 0 ||
         (reply->elements == 6 && reply->element[1]->type == REDIS_REPLY_INTEGER &&
          reply->element[2]->type == REDIS_REPLY_INTEGER && reply->element[3]->type == REDIS_REPLY_STRING &&
          reply->element[5]->type == REDIS_REPLY_ARRAY));
    if (!shape_ok) {
        // (EVAL refused by an ACL, say.) Reading goes on, unchecked:
        // losses are not counted, but nothing else stops.
        cluster::detail::atomic_stats::bump(stats_.bad_replies);
        return read_next();
    }
    if (reply->element[0]->integer == 0) {
        // Gone after the reader had read from it: expired (the node was
        // away for longer than stream_retention), deleted, or lost with a
        // Redis restart. Whether it still held unread entries is unknown.
        if (stream_read_ > 0) {
            cluster::detail::atomic_stats::bump(stats_.stream_gaps);
            // A stream made anew numbers its entries afresh: read it
            // from its first entry.
            last_id_ = "0-0";
            stream_read_ = 0;
            resync_ = false;
        }
        return read_next();
    }
    const long long added = reply->element[1]->integer;
    const auto length = static_cast<std::uint64_t>(std::max<long long>(0, reply->element[2]->integer));
    const auto* entries = reply->element[5];
    if (added >= 0 && !resync_) {
        // Every entry at or before last_id_ that is not in the stream any
        // more was trimmed: at least stream_read_ of them when last_id_
        // itself is gone. Fewer means another stream under the same key
        // (it vanished and was written again since this node last looked).
        const auto total = static_cast<std::uint64_t>(added);
        stream_id first{}, last_read{};
        const bool passed = length == 0 || (parse_stream_id(bus_text_of(reply->element[3]), first) &&
                                            parse_stream_id(last_id_, last_read) && last_read < first);
        if (total < stream_read_ || (passed && total < length + stream_read_)) {
            cluster::detail::atomic_stats::bump(stats_.stream_gaps);
            resync_ = true;  // its entries trimmed before now are not counted
        }
    }
    // Counted before the entries are delivered: a handler that sees a
    // message after a gap finds the gap counted already.
    const bool caught_up = entries->elements < options_.read_batch;
    if (caught_up && added >= 0 && !resync_) {
        // With these, everything the stream ever held is at or before
        // last_id_.
        const auto total = static_cast<std::uint64_t>(added);
        const auto accounted = stream_read_ + entries->elements;
        if (total > accounted) {
            cluster::detail::atomic_stats::bump(stats_.stream_gaps);
            cluster::detail::atomic_stats::bump(stats_.stream_messages_lost, total - accounted);
        }
    }
    for (std::size_t i = 0; i < entries->elements; ++i) on_entry(entries->element[i]);
    if (!caught_up) {
        check_next_ = true;  // still behind: read on, checked
    } else if (added >= 0) {
        stream_read_ = static_cast<std::uint64_t>(added);
        resync_ = false;
    }
    read_next();
}

inline void redis_bus_core::on_entry(const redisReply* entry) {
    ++stream_read_;
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 || entry->element[0]->type != REDIS_REPLY_STRING ||
        entry->element[1]->type != REDIS_REPLY_ARRAY) {
        cluster::detail::atomic_stats::bump(stats_.bad_replies);
        return;
    }
    last_id_.assign(entry->element[0]->str, entry->element[0]->len);
    const auto* fields = entry->element[1];
    for (std::size_t f = 0; f + 1 < fields->elements; f += 2) {
        const auto* name = fields->element[f];
        const auto* value = fields->element[f + 1];
        if (name->type == REDIS_REPLY_STRING && bus_text_of(name) == "e" && value->type == REDIS_REPLY_STRING) {
            inbound_.receive(bus_text_of(value), handler_, cluster::detail::arrival::targeted);
            return;
        }
    }
    // An entry without an envelope: not written by a gatehouse bus.
    cluster::detail::atomic_stats::bump(stats_.malformed);
}

inline bus_link::reply_handler redis_bus_core::on_stream_refreshed() {
    return [weak = weak_from_this()](std::error_code ec, redisReply* reply) {
        auto self = weak.lock();
        if (!self || ec || reply->type != REDIS_REPLY_INTEGER || reply->integer != 0) return;
        if (self->stream_read_ > 0) self->check_next_ = true;
    };
}

}  // namespace gatehouse::adapters::redis::detail
