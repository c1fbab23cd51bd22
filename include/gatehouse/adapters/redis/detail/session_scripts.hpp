// Lua scripts of redis_session_store. Each runs atomically inside Redis. They
// build key names from the prefix (ARGV), so the store targets one Redis
// server (or a primary with replicas), not Redis Cluster. Offsets follow the
// record layout of record_codec.hpp: header 1-10, token expiry 11-26, last
// activity at issue 27-42, token hash 43-106, account length 107-110,
// account from 111, creation time (hex16) right after the account.
//
// The store runs them with EVALSHA (Redis then neither receives nor hashes
// the text on every call) and, when Redis answers NOSCRIPT (first use since
// Redis started, or its script cache was flushed), once more with EVAL and
// the text, which caches the script again. Nothing is loaded on connect: a
// restarted Redis costs each script one extra round trip, once.
#pragma once

#include <gatehouse/adapters/redis/detail/script_sha1.hpp>

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

namespace gatehouse::adapters::redis::detail {

// state(record value, activity key, now, max lifetime):
// 0 not found, 1 revoked, 2 expired, 3 corrupt record, 4 live. A session is
// live within its lifetime while its activity key exists or an outstanding
// reconnection token holds it.
#define GATEHOUSE_REDIS_LUA_STATE                                                    \
    "local function state(v, ak, now, life)\n"                                       \
    "  if not v then return 0 end\n"                                                 \
    "  if v == 'R' then return 1 end\n"                                              \
    "  if string.sub(v, 1, 2) ~= 'G1' then return 3 end\n"                           \
    "  local alen = tonumber(string.sub(v, 107, 110), 16)\n"                         \
    "  local held = tonumber(string.sub(v, 11, 26))\n"                               \
    "  if not alen or not held then return 3 end\n"                                  \
    "  local created = tonumber(string.sub(v, 111 + alen, 126 + alen), 16)\n"        \
    "  if not created then return 3 end\n"                                           \
    "  if now >= created + life then return 2 end\n"                                 \
    "  if held <= now and redis.call('EXISTS', ak) == 0 then return 2 end\n"         \
    "  return 4\n"                                                                   \
    "end\n"                                                                          \
    "local no_token = string.rep('0', 64)\n"

#define GATEHOUSE_REDIS_LUA_REVOKE                                                   \
    "local function revoke(p, v, sk, ak, retention)\n"                               \
    "  local hash = string.sub(v, 43, 106)\n"                                        \
    "  if hash ~= no_token then redis.call('DEL', p .. 't:' .. hash) end\n"          \
    "  redis.call('DEL', ak)\n"                                                      \
    "  redis.call('SET', sk, 'R', 'PX', retention)\n"                                \
    "end\n"

// KEYS: record, activity, account set. ARGV: value, record ttl, activity ttl,
// now, id, account set ttl. Returns 1 created, 0 exists.
inline constexpr const char* create_script =
    "if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end\n"
    "redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[3])\n"
    "redis.call('SADD', KEYS[3], ARGV[5])\n"
    "if redis.call('PTTL', KEYS[3]) < tonumber(ARGV[6]) then redis.call('PEXPIRE', KEYS[3], ARGV[6]) end\n"
    "return 1\n";

// KEYS: record, activity. ARGV: mutable part, now, lifetime.
// Returns {state} or {4, new value, activity}.
inline constexpr const char* update_script =
    GATEHOUSE_REDIS_LUA_STATE
    "local v = redis.call('GET', KEYS[1])\n"
    "local st = state(v, KEYS[2], tonumber(ARGV[2]), tonumber(ARGV[3]))\n"
    "if st ~= 4 then return {st} end\n"
    "local n = tonumber(string.sub(v, 3, 10), 16)\n"
    "if not n then return {3} end\n"
    "local nv = string.sub(v, 1, 106 + n) .. ARGV[1]\n"
    "redis.call('SET', KEYS[1], nv, 'KEEPTTL')\n"
    "return {4, nv, redis.call('GET', KEYS[2]) or false}\n";

// KEYS: record, activity. ARGV: prefix, id, retention, now, lifetime.
// Returns the state before (4: revoked now).
inline constexpr const char* revoke_script =
    GATEHOUSE_REDIS_LUA_STATE GATEHOUSE_REDIS_LUA_REVOKE
    "local v = redis.call('GET', KEYS[1])\n"
    "local st = state(v, KEYS[2], tonumber(ARGV[4]), tonumber(ARGV[5]))\n"
    "if st ~= 4 then return st end\n"
    "local alen = tonumber(string.sub(v, 107, 110), 16)\n"
    "revoke(ARGV[1], v, KEYS[1], KEYS[2], ARGV[3])\n"
    "redis.call('SREM', ARGV[1] .. 'acct:' .. string.sub(v, 111, 110 + alen), ARGV[2])\n"
    "return 4\n";

// KEYS: account set. ARGV: prefix, retention, now, lifetime. Returns the count.
inline constexpr const char* revoke_account_script =
    GATEHOUSE_REDIS_LUA_STATE GATEHOUSE_REDIS_LUA_REVOKE
    "local p = ARGV[1]\n"
    "local n = 0\n"
    "for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  local sk, ak = p .. 's:' .. id, p .. 'a:' .. id\n"
    "  local v = redis.call('GET', sk)\n"
    "  if state(v, ak, tonumber(ARGV[3]), tonumber(ARGV[4])) == 4 then\n"
    "    revoke(p, v, sk, ak, ARGV[2])\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "redis.call('DEL', KEYS[1])\n"
    "return n\n";

// KEYS: account set. ARGV: prefix, now, lifetime. Returns a flat array of
// (id, record, activity) for live sessions; prunes the others.
inline constexpr const char* list_account_script =
    GATEHOUSE_REDIS_LUA_STATE
    "local p = ARGV[1]\n"
    "local out = {}\n"
    "for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  local sk, ak = p .. 's:' .. id, p .. 'a:' .. id\n"
    "  local v = redis.call('GET', sk)\n"
    "  if state(v, ak, tonumber(ARGV[2]), tonumber(ARGV[3])) == 4 then\n"
    "    out[#out + 1] = id\n"
    "    out[#out + 1] = v\n"
    "    out[#out + 1] = redis.call('GET', ak) or false\n"
    "  else\n"
    "    redis.call('SREM', KEYS[1], id)\n"
    "  end\n"
    "end\n"
    "return out\n";

// KEYS: record, activity. ARGV: prefix, id, token hash, window, token expiry
// (16 decimal digits), now, lifetime. Writes the reconnection segment (with
// the last activity, so that a session held only by its token still knows
// it) and the token key; deletes the previous token. Returns the state (4:
// issued).
inline constexpr const char* issue_token_script =
    GATEHOUSE_REDIS_LUA_STATE
    "local v = redis.call('GET', KEYS[1])\n"
    "local st = state(v, KEYS[2], tonumber(ARGV[6]), tonumber(ARGV[7]))\n"
    "if st ~= 4 then return st end\n"
    "local old = string.sub(v, 43, 106)\n"
    "if old ~= no_token then redis.call('DEL', ARGV[1] .. 't:' .. old) end\n"
    "local last = redis.call('GET', KEYS[2])\n"
    "if last then last = string.rep('0', 16 - #last) .. last else last = string.sub(v, 27, 42) end\n"
    "if #last ~= 16 or not tonumber(last) then return 3 end\n"
    "redis.call('SET', ARGV[1] .. 't:' .. ARGV[3], 'L' .. ARGV[2], 'PX', ARGV[4])\n"
    "redis.call('SET', KEYS[1], string.sub(v, 1, 10) .. ARGV[5] .. last .. ARGV[3] .. string.sub(v, 107), 'KEEPTTL')\n"
    "return 4\n";

// KEYS: token. ARGV: prefix, token hash, now, lifetime, idle timeout.
// Returns {0} unknown, {1} consumed before, {2, state} session not live,
// {3, id, record, activity} consumed now.
inline constexpr const char* consume_token_script =
    GATEHOUSE_REDIS_LUA_STATE
    "local tv = redis.call('GET', KEYS[1])\n"
    "if not tv then return {0} end\n"
    "if string.sub(tv, 1, 1) == 'C' then return {1} end\n"
    "local id = string.sub(tv, 2)\n"
    "redis.call('SET', KEYS[1], 'C' .. id, 'KEEPTTL')\n"
    "local sk, ak = ARGV[1] .. 's:' .. id, ARGV[1] .. 'a:' .. id\n"
    "local v = redis.call('GET', sk)\n"
    "local st = state(v, ak, tonumber(ARGV[3]), tonumber(ARGV[4]))\n"
    "if st ~= 4 then return {2, st} end\n"
    "if string.sub(v, 43, 106) == ARGV[2] then\n"
    "  v = string.sub(v, 1, 10) .. string.rep('0', 96) .. string.sub(v, 107)\n"
    "  redis.call('SET', sk, v, 'KEEPTTL')\n"
    "end\n"
    "redis.call('SET', ak, ARGV[3], 'PX', ARGV[5])\n"
    "return {3, id, v, ARGV[3]}\n";

// Event queues (event_queue_store): P q:{id} is a list of entries
// "<ms since the epoch, decimal>|<event bytes>" (times from Redis's own
// clock, TIME, so that every node ages events alike), P qm:{id} a hash
// {h: holder node, '' while parked; b: event bytes queued}.
//
// queue_now(): Redis's clock in ms. entry(e): an entry's time and event size
// (an unreadable entry is as old as can be: the first to go). push(...):
// appends an event after evicting from the front what is older than the
// cutoff or does not leave room for it; returns the new count and bytes and
// how many were evicted.
#define GATEHOUSE_REDIS_LUA_QUEUE                                                    \
    "local function queue_now()\n"                                                   \
    "  local t = redis.call('TIME')\n"                                               \
    "  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"           \
    "end\n"                                                                          \
    "local function entry(e)\n"                                                      \
    "  local bar = string.find(e, '|', 1, true)\n"                                   \
    "  if not bar then return 0, #e end\n"                                           \
    "  return tonumber(string.sub(e, 1, bar - 1)) or 0, #e - bar\n"                  \
    "end\n"                                                                          \
    "local function push(q, ev, stamp, cutoff, maxn, maxb, n, b)\n"                  \
    "  local evicted = 0\n"                                                          \
    "  while n > 0 do\n"                                                             \
    "    local t, size = entry(redis.call('LINDEX', q, 0))\n"                        \
    "    if t >= cutoff and n < maxn and b + #ev <= maxb then break end\n"           \
    "    redis.call('LPOP', q)\n"                                                    \
    "    n = n - 1\n"                                                                \
    "    b = math.max(0, b - size)\n"                                                \
    "    evicted = evicted + 1\n"                                                    \
    "  end\n"                                                                        \
    "  redis.call('RPUSH', q, stamp .. ev)\n"                                        \
    "  return n + 1, b + #ev, evicted\n"                                             \
    "end\n"

// KEYS: queue, meta. ARGV: node, max events, max bytes, max age, retention,
// then the events (oldest first, none larger than max bytes). Returns
// {0, holder} refused (another node holds the session) or {1, evicted}.
inline constexpr const char* park_script =
    GATEHOUSE_REDIS_LUA_QUEUE
    "local h = redis.call('HGET', KEYS[2], 'h')\n"
    "if h and h ~= '' and h ~= ARGV[1] then return {0, h} end\n"
    "local n, b = 0, 0\n"
    "if h then\n"
    "  n = redis.call('LLEN', KEYS[1])\n"
    "  b = tonumber(redis.call('HGET', KEYS[2], 'b')) or 0\n"
    "else\n"
    "  redis.call('DEL', KEYS[1])\n"
    "end\n"
    "local now = queue_now()\n"
    "local stamp = string.format('%d|', now)\n"
    "local cutoff = now - tonumber(ARGV[4])\n"
    "local maxn, maxb = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local evicted = 0\n"
    "for i = 6, #ARGV do\n"
    "  local gone\n"
    "  n, b, gone = push(KEYS[1], ARGV[i], stamp, cutoff, maxn, maxb, n, b)\n"
    "  evicted = evicted + gone\n"
    "end\n"
    "redis.call('HSET', KEYS[2], 'h', '', 'b', b)\n"
    "redis.call('PEXPIRE', KEYS[2], ARGV[5])\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[5])\n"
    "return {1, evicted}\n";

// KEYS: queue, meta. ARGV: event, max events, max bytes, max age. Returns
// {2} no queue, {3} the meta hash has no holder field, {0, holder} refused,
// or {1, evicted}. The queue keeps the meta key's expiry.
inline constexpr const char* append_script =
    GATEHOUSE_REDIS_LUA_QUEUE
    "local m = redis.call('HMGET', KEYS[2], 'h', 'b')\n"
    "if not m[1] then\n"
    "  if redis.call('EXISTS', KEYS[2]) == 0 then return {2} end\n"
    "  return {3}\n"
    "end\n"
    "if m[1] ~= '' then return {0, m[1]} end\n"
    "local ttl = redis.call('PTTL', KEYS[2])\n"
    "local now = queue_now()\n"
    "local n, b, evicted = push(KEYS[1], ARGV[1], string.format('%d|', now), now - tonumber(ARGV[4]),\n"
    "                           tonumber(ARGV[2]), tonumber(ARGV[3]), redis.call('LLEN', KEYS[1]),\n"
    "                           tonumber(m[2]) or 0)\n"
    "redis.call('HSET', KEYS[2], 'b', b)\n"
    "if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end\n"
    "return {1, evicted}\n";

// KEYS: queue, meta. ARGV: node, retention. Returns {now, entries}: the
// entries oldest first (none when the meta key expired or never existed: a
// list without it is a leftover), emptied; the node holds the session.
inline constexpr const char* take_script =
    GATEHOUSE_REDIS_LUA_QUEUE
    "local entries = {}\n"
    "if redis.call('HLEN', KEYS[2]) > 0 then entries = redis.call('LRANGE', KEYS[1], 0, -1) end\n"
    "redis.call('DEL', KEYS[1], KEYS[2])\n"
    "redis.call('HSET', KEYS[2], 'h', ARGV[1], 'b', 0)\n"
    "redis.call('PEXPIRE', KEYS[2], ARGV[2])\n"
    "return {queue_now(), entries}\n";

inline constexpr std::array<const char*, 10> all_scripts = {
    create_script,        update_script, revoke_script, revoke_account_script, list_account_script,
    issue_token_script,   consume_token_script, park_script, append_script, take_script};

/// A script by its place in all_scripts. The store names scripts by index,
/// never by the address of their text: a string literal's address may differ
/// between translation units (the store compiled once, separately, and a
/// program's own use of these headers).
enum class script_id : std::size_t {
    create,
    update,
    revoke,
    revoke_account,
    list_account,
    issue_token,
    consume_token,
    park,
    append,
    take,
};


#undef GATEHOUSE_REDIS_LUA_STATE
#undef GATEHOUSE_REDIS_LUA_REVOKE
#undef GATEHOUSE_REDIS_LUA_QUEUE

}  // namespace gatehouse::adapters::redis::detail
