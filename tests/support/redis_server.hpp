// A real redis-server for tests: started on a free loopback port in its own
// temporary directory, killed (and the directory removed) by the destructor.
// The child is also bound to its parent with PR_SET_PDEATHSIG, so a test
// process that crashes or is killed by a ctest timeout takes its Redis with
// it: no redis-server outlives a test run.
//
// Construct it on the main thread: PR_SET_PDEATHSIG fires when the thread
// that forked the child exits.
#pragma once

#include <hiredis/hiredis.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace gatehouse::test {

class redis_server {
public:
    struct options {
        /// --appendonly yes with appendfsync always: every acknowledged write
        /// survives a SIGKILL of the server.
        bool append_only = false;
        std::string binary = "redis-server";
    };

    redis_server() : redis_server(options{}) {}

    explicit redis_server(options opts) : options_(std::move(opts)) {
        remove_stale_directories();
        std::string pattern = "/tmp/gatehouse-redis-" + std::to_string(::getpid()) + "-XXXXXX";
        if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("redis_server: mkdtemp failed");
        dir_ = pattern;
        // A port that was free a moment ago can be taken by someone else
        // before redis binds it: try a few.
        for (int attempt = 0; attempt < 5; ++attempt) {
            port_ = free_loopback_port();
            if (start_process()) return;
        }
        std::filesystem::remove_all(dir_);
        throw std::runtime_error("redis_server: could not start " + options_.binary);
    }

    ~redis_server() {
        kill();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }

    redis_server(const redis_server&) = delete;
    redis_server& operator=(const redis_server&) = delete;

    int port() const noexcept { return port_; }
    const std::string& directory() const noexcept { return dir_; }
    bool running() const noexcept { return pid_ > 0; }

    /// SIGKILL: no shutdown, no final save (what a crash looks like).
    void kill() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGCONT);  // in case it was paused
        ::kill(pid_, SIGKILL);
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        pid_ = -1;
    }

    /// Starts it again on the same port and directory (so with its data when
    /// append_only is on).
    void restart() {
        kill();
        for (int attempt = 0; attempt < 50; ++attempt) {
            if (start_process()) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        throw std::runtime_error("redis_server: restart failed");
    }

    /// SIGSTOP / SIGCONT: the server keeps its connections but answers nothing.
    void pause() {
        if (pid_ > 0) ::kill(pid_, SIGSTOP);
    }
    void resume() {
        if (pid_ > 0) ::kill(pid_, SIGCONT);
    }

    /// Runs one command synchronously on a fresh connection and returns the
    /// reply as text ("(nil)", the integer, the status or the string;
    /// "ERR:..." for errors). For setting up and inspecting test state.
    std::string command(const std::vector<std::string>& args) const {
        timeval tv{2, 0};
        redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
        if (c == nullptr || c->err) {
            if (c) redisFree(c);
            return "ERR:connect";
        }
        std::vector<const char*> argv;
        std::vector<std::size_t> lens;
        for (const auto& a : args) {
            argv.push_back(a.data());
            lens.push_back(a.size());
        }
        auto* reply =
            static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(args.size()), argv.data(), lens.data()));
        std::string out = "ERR:io";
        if (reply != nullptr) {
            switch (reply->type) {
            case REDIS_REPLY_NIL: out = "(nil)"; break;
            case REDIS_REPLY_INTEGER: out = std::to_string(reply->integer); break;
            case REDIS_REPLY_ERROR: out = "ERR:" + std::string(reply->str, reply->len); break;
            case REDIS_REPLY_ARRAY: out = "(array " + std::to_string(reply->elements) + ")"; break;
            default: out.assign(reply->str, reply->len); break;
            }
            freeReplyObject(reply);
        }
        redisFree(c);
        return out;
    }

private:
    /// Directories left by test processes that were killed (the destructor
    /// never ran): named after their process, removed once it is gone.
    static void remove_stale_directories() {
        std::error_code ec;
        for (const auto& entry : std::filesystem::directory_iterator("/tmp", ec)) {
            const auto name = entry.path().filename().string();
            const std::string prefix = "gatehouse-redis-";
            if (name.rfind(prefix, 0) != 0) continue;
            const auto dash = name.find('-', prefix.size());
            if (dash == std::string::npos) continue;
            const long owner = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
            if (owner <= 0 || (::kill(static_cast<pid_t>(owner), 0) != 0 && errno == ESRCH))
                std::filesystem::remove_all(entry.path(), ec);
        }
    }

    static int free_loopback_port() {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) throw std::runtime_error("redis_server: socket failed");
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = 0;
        socklen_t len = sizeof addr;
        if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
            ::close(fd);
            throw std::runtime_error("redis_server: no free port");
        }
        ::close(fd);
        return ntohs(addr.sin_port);
    }

    bool start_process() {
        const std::string port = std::to_string(port_);
        std::vector<std::string> args = {options_.binary,
                                         "--port", port,
                                         "--bind", "127.0.0.1",
                                         "--dir", dir_,
                                         "--save", "",
                                         "--appendonly", options_.append_only ? "yes" : "no",
                                         "--appendfsync", "always",
                                         "--daemonize", "no",
                                         "--logfile", dir_ + "/redis.log",
                                         "--protected-mode", "yes"};
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        const pid_t parent = ::getpid();
        const pid_t pid = ::fork();
        if (pid < 0) return false;
        if (pid == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) ::_exit(127);  // the parent died before prctl
            ::execvp(argv[0], argv.data());
            ::_exit(127);
        }
        pid_ = pid;
        // Ready when it answers PING; gone if the process exited (port taken).
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (std::chrono::steady_clock::now() < deadline) {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                return false;
            }
            if (command({"PING"}) == "PONG") return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        kill();
        return false;
    }

    options options_;
    std::string dir_;
    int port_ = 0;
    pid_t pid_ = -1;
};

}  // namespace gatehouse::test
