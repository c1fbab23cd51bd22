// gatehouse load generator: N WebSocket connections over loopback, K calls in
// flight per connection (closed loop) or a fixed total rate (open loop), for
// a bounded time. Reports round trips per second, latency percentiles,
// errors, and the server's CPU and RSS read from /proc.
//
// Two modes:
//   protocol  the gatehouse protocol: Authorization header, wait for the
//             capability manifest, call an endpoint by path (31-byte request
//             header + payload, replies matched by message id)
//   raw       binary messages echoed by a plain WebSocket echo server (the
//             baseline of benchmarks/run.sh); the message has the size of a
//             protocol request (31 + payload bytes)
//
// Its event loop is lean on purpose (own RFC 6455 client framing on Asio,
// see ws_frame.hpp): the load generator must not be the bottleneck.
//
//   loadgen --port 9000 [--host 127.0.0.1] [--path /connect] [--mode protocol|raw]
//           [--token T | --token-file F] [--endpoint /echo] [--connections 100] [--inflight 8]
//           [--rate 0] [--size 64] [--duration 10] [--warmup 2] [--sources 8]
//           [--server-pid PID] [--connect-rate 0] [--idle] [--json]
#include "histogram.hpp"
#include "ws_frame.hpp"

#include <gatehouse/protocol.hpp>

#include <asio.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace p = gatehouse::protocol;
namespace lg = gatehouse::loadgen;
using clock_type = std::chrono::steady_clock;

namespace {

struct settings {
    std::string host = "127.0.0.1";
    std::uint16_t port = 9000;
    std::string path = "/connect";
    std::string mode = "protocol";
    std::string token;
    std::string token_file;  // one token per line; connection i uses line i % count
    std::vector<std::string> tokens;
    std::string endpoint = "/echo";
    std::size_t connections = 100;
    std::size_t inflight = 8;
    double rate = 0;  // total calls per second; 0 = closed loop
    std::size_t size = 64;
    double duration = 10;
    double warmup = 2;
    std::size_t sources = 8;
    long server_pid = 0;
    double connect_rate = 0;  // connections opened per second; 0 = all at once
    bool json = false;
    bool idle = false;  // connect (and upgrade, and wait for the manifest) but send nothing
};

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr, "loadgen: %s\n(see the comment at the top of benchmarks/loadgen/loadgen.cpp)\n", why);
    std::exit(2);
}

settings parse_args(int argc, char** argv) {
    settings s;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage(("missing value for " + a).c_str());
            return argv[++i];
        };
        if (a == "--host") s.host = value();
        else if (a == "--port") s.port = static_cast<std::uint16_t>(std::stoul(value()));
        else if (a == "--path") s.path = value();
        else if (a == "--mode") s.mode = value();
        else if (a == "--token") s.token = value();
        else if (a == "--token-file") s.token_file = value();
        else if (a == "--endpoint") s.endpoint = value();
        else if (a == "--connections") s.connections = std::stoul(value());
        else if (a == "--inflight") s.inflight = std::stoul(value());
        else if (a == "--rate") s.rate = std::stod(value());
        else if (a == "--size") s.size = std::stoul(value());
        else if (a == "--duration") s.duration = std::stod(value());
        else if (a == "--warmup") s.warmup = std::stod(value());
        else if (a == "--sources") s.sources = std::stoul(value());
        else if (a == "--server-pid") s.server_pid = std::stol(value());
        else if (a == "--connect-rate") s.connect_rate = std::stod(value());
        else if (a == "--json") s.json = true;
        else if (a == "--idle") s.idle = true;
        else usage(("unknown argument " + a).c_str());
    }
    if (s.mode != "protocol" && s.mode != "raw") usage("--mode is protocol or raw");
    if (!s.token_file.empty()) {
        std::ifstream in(s.token_file);
        for (std::string line; std::getline(in, line);)
            if (!line.empty()) s.tokens.push_back(line);
        if (s.tokens.empty()) usage("--token-file has no tokens");
    } else if (!s.token.empty()) {
        s.tokens.push_back(s.token);
    }
    if (s.connections == 0 || s.inflight == 0) usage("--connections and --inflight must be positive");
    if (s.duration <= 0 || s.duration > 600) usage("--duration must be in (0, 600] seconds");
    if (s.sources == 0 || s.sources > 250) usage("--sources must be in [1, 250]");
    if (s.host.rfind("127.", 0) != 0) usage("--host must be a loopback address (127.0.0.0/8)");
    return s;
}

/// CPU seconds (user + system) and RSS in KiB of a process, from /proc.
struct proc_sample {
    double cpu_seconds = 0;
    long rss_kib = 0;
};

proc_sample read_proc(long pid) {
    proc_sample out;
    if (pid <= 0) return out;
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const auto close_paren = content.rfind(')');
    if (close_paren != std::string::npos) {
        std::istringstream fields(content.substr(close_paren + 2));
        std::string f;
        unsigned long utime = 0, stime = 0;
        for (int i = 3; i <= 15 && fields >> f; ++i) {
            if (i == 14) utime = std::stoul(f);
            if (i == 15) stime = std::stoul(f);
        }
        out.cpu_seconds = static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
    }
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("VmRSS:", 0) == 0) out.rss_kib = std::stol(line.substr(6));
    return out;
}

struct counters {
    std::uint64_t completed = 0;
    std::uint64_t errors = 0;  // non-zero response codes
    std::uint64_t failed_connections = 0;
    std::uint64_t dropped_connections = 0;
    lg::latency_histogram latency;
};

class load;

class connection : public std::enable_shared_from_this<connection> {
public:
    connection(load& owner, asio::io_context& io, std::size_t index);
    void start();
    /// Issues one call now (open loop) if the connection is ready.
    bool issue(clock_type::time_point scheduled);
    bool ready() const { return ready_; }

private:
    void on_connected();
    void read();
    void on_read(const char* data, std::size_t n);
    void handle_message(std::string_view payload);
    void send_call(clock_type::time_point scheduled);
    void flush();
    void fail(bool was_ready);

    load& owner_;
    asio::ip::tcp::socket socket_;
    std::size_t index_;
    bool upgraded_ = false;
    bool ready_ = false;
    std::string in_;  // bytes received and not yet parsed
    std::string out_, writing_;
    bool write_pending_ = false;
    p::guid target_{};
    std::uint64_t next_id_ = 1;
    std::uint32_t mask_state_;
    // Calls in flight: few per connection, so a flat vector searched
    // linearly beats a hash map (no allocation per call).
    std::vector<std::pair<std::uint64_t, clock_type::time_point>> pending_;
    std::deque<clock_type::time_point> raw_pending_;  // raw mode: echoes come back in order
};

class load {
public:
    load(settings s, asio::io_context& io) : s_(std::move(s)), io_(io), timer_(io) {
        payload_.assign(s_.size, 'x');
        if (s_.mode == "protocol" && s_.size >= 2) {
            payload_.front() = '"';  // valid JSON: a string
            payload_.back() = '"';
        }
        raw_message_.assign(p::request_header_size + s_.size, 'x');
    }

    const settings& config() const { return s_; }
    const std::string& payload() const { return payload_; }
    const std::string& raw_message() const { return raw_message_; }
    std::vector<char>& read_buffer() { return read_buffer_; }
    counters& stats() { return measuring_ ? measured_ : warmup_stats_; }
    bool measuring() const { return measuring_; }
    bool stopping() const { return stopping_; }
    bool closed_loop() const { return s_.rate <= 0 && !s_.idle; }

    void connection_ready() {
        ++ready_;
        if (ready_ + failed_ == s_.connections) begin_run();
    }
    void connection_failed() {
        ++failed_;
        ++warmup_stats_.failed_connections;
        if (ready_ + failed_ == s_.connections) begin_run();
    }

    void start() {
        connect_started_ = clock_type::now();
        open_more();
        // Give up waiting for slow connections after 60 s.
        timer_.expires_after(std::chrono::seconds(60));
        timer_.async_wait([this](std::error_code ec) {
            if (!ec && !running_) begin_run();
        });
    }

    int report();

private:
    void open_more() {
        if (s_.connect_rate <= 0) {
            for (std::size_t i = 0; i < s_.connections; ++i) open_one(i);
            return;
        }
        const auto elapsed = std::chrono::duration<double>(clock_type::now() - connect_started_).count();
        const auto due = std::min<std::size_t>(s_.connections, static_cast<std::size_t>(elapsed * s_.connect_rate) + 1);
        while (opened_ < due) open_one(opened_);
        if (opened_ < s_.connections) {
            auto t = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(1));
            t->async_wait([this, t](std::error_code) { open_more(); });
        }
    }

    void open_one(std::size_t i) {
        auto c = std::make_shared<connection>(*this, io_, i);
        conns_.push_back(c);
        ++opened_;
        c->start();
    }

    void begin_run() {
        if (running_) return;
        running_ = true;
        timer_.cancel();
        connect_seconds_ = std::chrono::duration<double>(clock_type::now() - connect_started_).count();
        if (!closed_loop() && !s_.idle) schedule_open_loop();
        auto warm = std::make_shared<asio::steady_timer>(io_, std::chrono::duration_cast<clock_type::duration>(
                                                                   std::chrono::duration<double>(s_.warmup)));
        warm->async_wait([this, warm](std::error_code) {
            measuring_ = true;
            start_ = clock_type::now();
            proc_start_ = read_proc(s_.server_pid);
            auto end = std::make_shared<asio::steady_timer>(
                io_, std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(s_.duration)));
            end->async_wait([this, end](std::error_code) {
                end_ = clock_type::now();
                proc_end_ = read_proc(s_.server_pid);
                measuring_ = false;
                stopping_ = true;
                io_.stop();
            });
        });
    }

    // Open loop: every millisecond, issue the calls that are due, spread
    // round-robin over the ready connections. Latency counts from the
    // scheduled time, so a stalled server is not hidden (coordinated omission).
    void schedule_open_loop() {
        ticker_ = std::make_shared<asio::steady_timer>(io_);
        next_call_ = clock_type::now();
        tick();
    }
    void tick() {
        const auto now = clock_type::now();
        const auto interval = std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(1.0 / s_.rate));
        std::size_t tries = 0;
        while (next_call_ <= now && !stopping_) {
            auto& c = conns_[rr_++ % conns_.size()];
            if (c->ready() && c->issue(next_call_)) {
                next_call_ += interval;
                tries = 0;
            } else if (++tries > conns_.size()) {
                next_call_ += interval;  // nobody can take it: count as skipped
                ++skipped_;
                tries = 0;
            }
        }
        ticker_->expires_at(now + std::chrono::milliseconds(1));
        ticker_->async_wait([this](std::error_code ec) {
            if (!ec) tick();
        });
    }

    settings s_;
    asio::io_context& io_;
    asio::steady_timer timer_;
    std::string payload_, raw_message_;
    std::vector<char> read_buffer_ = std::vector<char>(256 * 1024);
    std::vector<std::shared_ptr<connection>> conns_;
    std::size_t opened_ = 0, ready_ = 0, failed_ = 0, rr_ = 0;
    std::uint64_t skipped_ = 0;
    bool running_ = false, measuring_ = false, stopping_ = false;
    counters warmup_stats_, measured_;
    clock_type::time_point connect_started_, start_, end_, next_call_;
    double connect_seconds_ = 0;
    proc_sample proc_start_, proc_end_;
    std::shared_ptr<asio::steady_timer> ticker_;
};

connection::connection(load& owner, asio::io_context& io, std::size_t index)
    : owner_(owner), socket_(io), index_(index), mask_state_(static_cast<std::uint32_t>(index * 2654435761u + 1)) {}

void connection::start() {
    const auto& s = owner_.config();
    std::error_code ec;
    // Spread connections over 127.0.0.1 .. 127.0.0.N as source addresses, so
    // that many connections do not exhaust one address's ephemeral ports.
    const auto source = asio::ip::make_address_v4("127.0.0." + std::to_string(1 + index_ % s.sources));
    socket_.open(asio::ip::tcp::v4(), ec);
    if (!ec) socket_.bind(asio::ip::tcp::endpoint(source, 0), ec);
    if (ec) return fail(false);
    const asio::ip::tcp::endpoint server(asio::ip::make_address(s.host), s.port);
    socket_.async_connect(server, [self = shared_from_this()](std::error_code ec) {
        if (ec) return self->fail(false);
        self->socket_.set_option(asio::ip::tcp::no_delay(true), ec);
        self->socket_.non_blocking(true, ec);
        self->on_connected();
    });
}

void connection::on_connected() {
    const auto& s = owner_.config();
    const std::string host = s.host + ":" + std::to_string(s.port);
    const bool with_token = s.mode == "protocol" && !s.tokens.empty();
    out_ = lg::upgrade_request(host, s.path, with_token ? "Bearer " + s.tokens[index_ % s.tokens.size()] : "");
    flush();
    read();
}

// Waits for readability, then reads into the load's one shared buffer: no
// read buffer per connection, so 50,000 connections cost little memory.
void connection::read() {
    socket_.async_wait(asio::ip::tcp::socket::wait_read, [self = shared_from_this()](std::error_code ec) {
        if (ec) return self->fail(self->ready_);
        auto& buf = self->owner_.read_buffer();
        const std::size_t n = self->socket_.read_some(asio::buffer(buf), ec);
        if (ec == asio::error::would_block) return self->read();
        if (ec) return self->fail(self->ready_);
        self->on_read(buf.data(), n);
    });
}

void connection::on_read(const char* data, std::size_t n) {
    in_.append(data, n);
    std::size_t pos = 0;
    if (!upgraded_) {
        const auto end = in_.find("\r\n\r\n");
        if (end == std::string::npos) {
            if (in_.size() > 16384) return fail(false);
            return read();
        }
        if (lg::upgrade_status(in_.substr(0, end)) != 101) return fail(false);
        upgraded_ = true;
        pos = end + 4;
        if (owner_.config().mode == "raw") {
            ready_ = true;
            owner_.connection_ready();
            if (owner_.closed_loop())
                for (std::size_t i = 0; i < owner_.config().inflight; ++i) send_call(clock_type::now());
        }
    }
    while (pos < in_.size()) {
        lg::ws_frame f;
        const auto r = lg::parse_server_frame(std::string_view(in_).substr(pos), 16 * 1024 * 1024, f);
        if (r == lg::parse_result::need_more) break;
        if (r != lg::parse_result::complete) return fail(ready_);
        pos += f.size;
        if (f.opcode == lg::ws_opcode::ping) {
            lg::append_client_frame(out_, lg::ws_opcode::pong, f.payload, mask_state_);
        } else if (f.opcode == lg::ws_opcode::close) {
            return fail(ready_);
        } else if (f.opcode == lg::ws_opcode::binary && f.fin) {
            handle_message(f.payload);
        }
    }
    in_.erase(0, pos);
    flush();
    read();
}

void connection::handle_message(std::string_view msg) {
    const auto now = clock_type::now();
    auto& st = owner_.stats();
    if (owner_.config().mode == "raw") {
        if (raw_pending_.empty()) return;
        st.latency.record(static_cast<std::uint64_t>((now - raw_pending_.front()).count()));
        raw_pending_.pop_front();
        ++st.completed;
        if (owner_.closed_loop() && !owner_.stopping()) send_call(now);
        return;
    }
    p::frame_view f;
    if (p::decode_frame(msg, f)) return;
    if (!f.is_response()) {
        if (!ready_ && f.has(p::message_flags::event)) {
            const auto doc = nlohmann::json::parse(f.payload.as_chars(), nullptr, false);
            if (!doc.is_object() || doc.value("eventName", "") != p::event_names::capability_manifest) return;
            for (const auto& api : doc.value("availableApis", nlohmann::json::array()))
                if (api.is_object() && api.value("endpoint", "") == owner_.config().endpoint &&
                    !p::parse_guid(api.value("serviceId", ""), target_)) {
                    ready_ = true;
                    owner_.connection_ready();
                    if (owner_.closed_loop())
                        for (std::size_t i = 0; i < owner_.config().inflight; ++i) send_call(clock_type::now());
                    return;
                }
            std::fprintf(stderr, "loadgen: endpoint %s is not in the manifest\n", owner_.config().endpoint.c_str());
            return fail(false);
        }
        return;
    }
    const auto it = std::find_if(pending_.begin(), pending_.end(),
                                 [&](const auto& e) { return e.first == f.message_id; });
    if (it == pending_.end()) return;
    st.latency.record(static_cast<std::uint64_t>((now - it->second).count()));
    *it = pending_.back();
    pending_.pop_back();
    if (f.code == p::response_code::ok) ++st.completed;
    else ++st.errors;
    if (owner_.closed_loop() && !owner_.stopping()) send_call(now);
}

bool connection::issue(clock_type::time_point scheduled) {
    if (!ready_) return false;
    send_call(scheduled);
    flush();
    return true;
}

void connection::send_call(clock_type::time_point scheduled) {
    mask_state_ ^= mask_state_ << 13;
    mask_state_ ^= mask_state_ >> 17;
    mask_state_ ^= mask_state_ << 5;
    if (owner_.config().mode == "raw") {
        raw_pending_.push_back(scheduled);
        lg::append_client_frame(out_, lg::ws_opcode::binary, owner_.raw_message(), mask_state_);
        return;
    }
    const std::uint64_t id = next_id_++;
    pending_.emplace_back(id, scheduled);
    std::uint8_t header[p::request_header_size];
    p::encode_header(p::request_header{p::message_flags::none, 0, static_cast<std::uint32_t>(id), target_, id}, header);
    lg::append_client_frame(out_, lg::ws_opcode::binary,
                            std::string_view(reinterpret_cast<const char*>(header), sizeof header), owner_.payload(),
                            mask_state_);
}

void connection::flush() {
    if (write_pending_ || out_.empty()) return;
    write_pending_ = true;
    writing_.swap(out_);
    out_.clear();
    asio::async_write(socket_, asio::buffer(writing_), [self = shared_from_this()](std::error_code ec, std::size_t) {
        self->write_pending_ = false;
        self->writing_.clear();
        if (ec) return self->fail(self->ready_);
        self->flush();
    });
}

void connection::fail(bool was_ready) {
    if (!socket_.is_open()) return;
    std::error_code ignored;
    socket_.close(ignored);
    if (owner_.stopping()) return;
    if (was_ready) {
        ++owner_.stats().dropped_connections;
        ready_ = false;
    } else {
        owner_.connection_failed();
    }
}

int load::report() {
    const double seconds = std::chrono::duration<double>(end_ - start_).count();
    const auto& m = measured_;
    const double rps = seconds > 0 ? static_cast<double>(m.completed + m.errors) / seconds : 0;
    const double us = 1e-3;
    const double cpu = seconds > 0 ? (proc_end_.cpu_seconds - proc_start_.cpu_seconds) / seconds : 0;
    if (s_.json) {
        nlohmann::json j = {{"mode", s_.mode},
                            {"connections", s_.connections},
                            {"connected", ready_},
                            {"inflight", s_.inflight},
                            {"rate", s_.rate},
                            {"size", s_.size},
                            {"seconds", seconds},
                            {"round_trips_per_second", rps},
                            {"completed", m.completed},
                            {"errors", m.errors},
                            {"skipped", skipped_},
                            {"failed_connections", warmup_stats_.failed_connections},
                            {"dropped_connections", m.dropped_connections + warmup_stats_.dropped_connections},
                            {"connect_seconds", connect_seconds_},
                            {"upgrades_per_second", connect_seconds_ > 0 ? static_cast<double>(ready_) / connect_seconds_ : 0.0},
                            {"p50_us", static_cast<double>(m.latency.percentile(0.50)) * us},
                            {"p90_us", static_cast<double>(m.latency.percentile(0.90)) * us},
                            {"p99_us", static_cast<double>(m.latency.percentile(0.99)) * us},
                            {"p999_us", static_cast<double>(m.latency.percentile(0.999)) * us},
                            {"max_us", static_cast<double>(m.latency.max()) * us},
                            {"server_cpu", cpu},
                            {"server_rss_kib", proc_end_.rss_kib}};
        std::printf("%s\n", j.dump().c_str());
    } else {
        std::printf("mode %s, %zu/%zu connections (%.2fs to connect), %s, %zu-byte payload, %.1fs measured\n",
                    s_.mode.c_str(), ready_, s_.connections, connect_seconds_,
                    s_.rate > 0 ? ("open loop at " + std::to_string(static_cast<long>(s_.rate)) + " calls/s").c_str()
                                : ("closed loop, " + std::to_string(s_.inflight) + " in flight each").c_str(),
                    s_.size, seconds);
        std::printf("round trips/s %.0f  completed %llu  errors %llu  skipped %llu  failed conns %llu  dropped %llu\n",
                    rps, static_cast<unsigned long long>(m.completed), static_cast<unsigned long long>(m.errors),
                    static_cast<unsigned long long>(skipped_),
                    static_cast<unsigned long long>(warmup_stats_.failed_connections),
                    static_cast<unsigned long long>(m.dropped_connections + warmup_stats_.dropped_connections));
        std::printf("latency us: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n",
                    static_cast<double>(m.latency.percentile(0.50)) * us,
                    static_cast<double>(m.latency.percentile(0.90)) * us,
                    static_cast<double>(m.latency.percentile(0.99)) * us,
                    static_cast<double>(m.latency.percentile(0.999)) * us, static_cast<double>(m.latency.max()) * us);
        if (s_.server_pid > 0)
            std::printf("server pid %ld: cpu %.2f cores, rss %ld KiB\n", s_.server_pid, cpu, proc_end_.rss_kib);
    }
    const bool clean = warmup_stats_.failed_connections == 0 && m.dropped_connections == 0 &&
                       warmup_stats_.dropped_connections == 0 && m.errors == 0;
    return clean ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    const settings s = parse_args(argc, argv);
    asio::io_context io(1);
    load l(s, io);
    l.start();
    io.run();
    return l.report();
}
