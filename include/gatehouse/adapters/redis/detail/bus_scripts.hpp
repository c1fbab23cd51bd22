// The event bus's Lua scripts (run by EVALSHA, loaded with SCRIPT LOAD; see
// redis_event_bus.hpp for the key schema) and the stream entry ids its
// reader compares.
#pragma once

#include <cstdint>
#include <string_view>

namespace gatehouse::adapters::redis::detail {

// Targeted publish. ARGV: prefix, mode (n = node, s = session, a = account),
// target, self, envelope, maxlen, retention ms. Returns the number of nodes
// the envelope was appended for. Entries naming a node whose heartbeat is
// gone are pruned on the way.
inline constexpr const char* bus_route_script = R"lua(
local p, mode, target, self, env, maxlen, keep = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local function send(node)
  if node == self then return 0 end
  if redis.call('EXISTS', p .. 'hb:' .. node) == 0 then return -1 end
  local s = p .. 'n:' .. node
  redis.call('XADD', s, 'MAXLEN', '~', maxlen, '*', 'e', env)
  redis.call('PEXPIRE', s, keep)
  return 1
end
if mode == 'n' then
  if send(target) == 1 then return 1 end
  return 0
elseif mode == 's' then
  local key = p .. 's:' .. target
  local holder = redis.call('GET', key)
  if not holder then return 0 end
  local r = send(holder)
  if r == -1 then redis.call('DEL', key) end
  if r == 1 then return 1 end
  return 0
end
local key = p .. 'a:' .. target
local n = 0
for _, node in ipairs(redis.call('SMEMBERS', key)) do
  local r = send(node)
  if r == 1 then n = n + 1 elseif r == -1 then redis.call('SREM', key, node) end
end
return n
)lua";

// Declares a session. ARGV: prefix, session, self, session_taken envelope,
// maxlen, retention ms, mode ('claim': take it over; 'reclaim': after a
// reconnection, only when no other live node holds it). Returns 0 when
// claimed, or the live node that holds it for 'reclaim'. On a take-over the
// previous live holder is sent the session_taken envelope.
inline constexpr const char* bus_claim_script = R"lua(
local p, session, self, env, maxlen, keep, mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local key = p .. 's:' .. session
local holder = redis.call('GET', key)
if holder == self then return 0 end
local live = holder and redis.call('EXISTS', p .. 'hb:' .. holder) == 1
if live and mode == 'reclaim' then return holder end
redis.call('SET', key, self)
if live then
  local s = p .. 'n:' .. holder
  redis.call('XADD', s, 'MAXLEN', '~', maxlen, '*', 'e', env)
  redis.call('PEXPIRE', s, keep)
end
return 0
)lua";

// The reader's checked read: the stream's bookkeeping and the entries after
// the reader's position, in one atomic step (no write can fall between the
// numbers and the entries). KEYS[1] = the stream, ARGV: last id read, count
// (0: the numbers only). Returns {0} when the stream does not exist, else
// {1, entries-added (-1 before Redis 7.0), length, first entry id,
// last generated id, entries}. XINFO STREAM is O(1) but copies the first and
// last entries: this runs only on the occasions listed in the header comment.
inline constexpr const char* bus_checked_read_script = R"lua(
local s = KEYS[1]
if redis.call('EXISTS', s) == 0 then return {0} end
local info = redis.call('XINFO', 'STREAM', s)
local added, len, first, last = -1, 0, '0-0', '0-0'
for i = 1, #info - 1, 2 do
  local k = info[i]
  if k == 'entries-added' then added = info[i + 1]
  elseif k == 'length' then len = info[i + 1]
  elseif k == 'recorded-first-entry-id' then first = info[i + 1]
  elseif k == 'last-generated-id' then last = info[i + 1] end
end
local entries = {}
if ARGV[2] ~= '0' then entries = redis.call('XRANGE', s, '(' .. ARGV[1], '+', 'COUNT', ARGV[2]) end
return {1, added, len, first, last, entries}
)lua";

/// A stream entry id, ms-seq, ordered as Redis orders them.
struct stream_id {
    std::uint64_t ms = 0, seq = 0;
    friend bool operator<(const stream_id& a, const stream_id& b) noexcept {
        return a.ms != b.ms ? a.ms < b.ms : a.seq < b.seq;
    }
};

/// False for text that is not an id.
inline bool parse_stream_id(std::string_view text, stream_id& out) noexcept {
    auto number = [](std::string_view digits, std::uint64_t& value) {
        if (digits.empty() || digits.size() > 20) return false;
        std::uint64_t v = 0;
        for (char c : digits) {
            if (c < '0' || c > '9') return false;
            const auto d = static_cast<std::uint64_t>(c - '0');
            if (v > (UINT64_MAX - d) / 10) return false;
            v = v * 10 + d;
        }
        value = v;
        return true;
    };
    const auto dash = text.find('-');
    if (dash == std::string_view::npos) return number(text, out.ms) && ((out.seq = 0), true);
    return number(text.substr(0, dash), out.ms) && number(text.substr(dash + 1), out.seq);
}

// Withdraws a session while the directory still names this node.
// KEYS[1] = the session's key, ARGV[1] = self.
inline constexpr const char* bus_release_script = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)lua";

}  // namespace gatehouse::adapters::redis::detail
