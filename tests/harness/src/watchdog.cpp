// harness/watchdog.cpp: forked scenarios under a watchdog (see watchdog.hpp).
#include "harness/watchdog.hpp"

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>
#include <sys/syscall.h>

#include <cctype>
#include <cerrno>
#include <fstream>
#include <cstdio>
#include <cstring>
#include <new>
#include <optional>
#include <stdexcept>

namespace harness {

namespace {

// What the child leaves for the parent, in memory both processes map.
struct shared_area {
    trace_log log;
    std::atomic<int> result_state{0};  // 0: none, 1: ok, 2: failed
    char detail[2048];
};

constexpr int child_exit_reported = 0;

void write_detail(shared_area* area, const std::string& text) {
    std::snprintf(area->detail, sizeof area->detail, "%s", text.c_str());
}

[[noreturn]] void run_child(shared_area* area, const std::function<scenario_result()>& scenario,
                            int stderr_fd) {
    dup2(stderr_fd, STDERR_FILENO);  // what the child says goes into its outcome
    PyOS_AfterFork_Child();
    install_trace(&area->log);
    set_thread_name("main");
    PyEval_SaveThread();  // the scenario's threads take the GIL themselves
    int state = 2;
    try {
        scenario_result r = scenario();
        write_detail(area, r.detail);
        state = r.ok ? 1 : 2;
    } catch (const std::exception& e) {
        write_detail(area, std::string("exception: ") + e.what());
    } catch (...) {
        write_detail(area, "unknown exception");
    }
    area->result_state.store(state, std::memory_order_seq_cst);
    std::fflush(nullptr);
    // _exit: no Python finalization and no static destructors in a copy of the parent.
    _exit(child_exit_reported);
}

// What each thread of a hung child is doing, read from /proc before it is killed: the
// evidence that a hang is a lock wait (blocked in futex()) and not a slow computation.
// Sets `all_blocked` when every thread is in futex().
std::string describe_threads(pid_t pid, bool& all_blocked) {
    all_blocked = false;
    const std::string task_dir = "/proc/" + std::to_string(pid) + "/task";
    DIR* dir = opendir(task_dir.c_str());
    if (dir == nullptr) return "threads not readable";
    int total = 0, in_futex = 0;
    std::string others;
    while (dirent* entry = readdir(dir)) {
        if (entry->d_name[0] == '.') continue;
        ++total;
        std::ifstream syscall_file(task_dir + "/" + entry->d_name + "/syscall");
        std::string first;
        syscall_file >> first;
        if (!first.empty() && std::isdigit(static_cast<unsigned char>(first[0])) &&
            std::stol(first) == SYS_futex) {
            ++in_futex;
        } else {
            others += std::string(others.empty() ? "" : ", ") + "thread " + entry->d_name + ": " +
                      (first.empty() ? "unknown" : first == "running" ? "running" : "syscall " + first);
        }
    }
    closedir(dir);
    all_blocked = total > 0 && in_futex == total;
    std::string out = std::to_string(in_futex) + " of " + std::to_string(total) +
                      " threads blocked in futex() (a lock wait)";
    return others.empty() ? out : out + "; " + others;
}

// The system call a thread of `pid` is blocked in (its number), or -1 when it is running
// or unreadable: the first field of /proc/<pid>/task/<tid>/syscall.
long blocked_syscall(pid_t pid, std::int32_t tid) {
    std::ifstream file("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/syscall");
    std::string first;
    file >> first;
    if (first.empty() || !std::isdigit(static_cast<unsigned char>(first[0]))) return -1;
    return std::stol(first);
}

// Confirms a wait-for cycle read from the trace by observation: every thread of the cycle
// blocked in futex() at every sample, and no new trace event, for `settle` without a break.
class cycle_confirmation {
public:
    explicit cycle_confirmation(std::chrono::milliseconds settle) : settle_(settle) {}

    // One sample. Returns the evidence once the cycle has stood for the settle time.
    std::optional<std::string> sample(pid_t pid, const deadlock_report& cycle, std::size_t events_so_far) {
        const auto now = std::chrono::steady_clock::now();
        bool all_blocked = cycle.found && !cycle.threads.empty();
        for (const auto& [name, tid] : cycle.threads)
            if (tid <= 0 || blocked_syscall(pid, tid) != SYS_futex) all_blocked = false;
        const std::string key = cycle.describe();
        if (!all_blocked || key != key_ || events_so_far != events_) {
            key_ = all_blocked ? key : std::string();  // (re)start on the next standing sample
            events_ = events_so_far;
            since_ = now;
            samples_ = all_blocked ? 1 : 0;
            return std::nullopt;
        }
        ++samples_;
        if (now - since_ < settle_) return std::nullopt;
        std::string who;
        for (const auto& [name, tid] : cycle.threads)
            who += (who.empty() ? "" : ", ") + name + " (tid " + std::to_string(tid) + ")";
        char tail[160];
        std::snprintf(tail, sizeof tail, " blocked in futex() at each of %d samples over %.3f s, with no trace event",
                      samples_, std::chrono::duration<double>(now - since_).count());
        return "observed: " + who + tail;
    }

private:
    std::chrono::milliseconds settle_;
    std::string key_;
    std::size_t events_ = 0;
    std::chrono::steady_clock::time_point since_{};
    int samples_ = 0;
};

std::string read_all(std::FILE* f) {
    std::string text;
    std::rewind(f);
    char buffer[4096];
    std::size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, f)) > 0) text.append(buffer, n);
    return text;
}

// The last line that says something ("terminate called after throwing ..."), trimmed.
std::string last_line(const std::string& text) {
    std::size_t end = text.find_last_not_of(" \n\r\t");
    if (end == std::string::npos) return {};
    std::size_t begin = text.rfind('\n', end);
    begin = begin == std::string::npos ? 0 : begin + 1;
    // "  what():  std::exception" adds nothing to the line before it
    if (text.compare(begin, 9, "  what():") == 0 && begin > 0) return last_line(text.substr(0, begin));
    return text.substr(begin, end - begin + 1);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

const char* to_string(verdict v) noexcept {
    switch (v) {
        case verdict::finished: return "finished";
        case verdict::deadlocked: return "deadlocked";
        case verdict::crashed: return "crashed";
        case verdict::wrong_result: return "wrong result";
    }
    return "?";
}

std::string outcome::summary() const {
    char head[96];
    switch (observed) {
        case verdict::deadlocked: std::snprintf(head, sizeof head, "deadlocked after %.3f s", seconds); break;
        case verdict::crashed: std::snprintf(head, sizeof head, "crashed with signal %d (%s)", signal, strsignal(signal)); break;
        default: std::snprintf(head, sizeof head, "%s", to_string(observed));
    }
    return detail.empty() ? std::string(head) : std::string(head) + ": " + detail;
}

outcome run_in_child(const std::function<scenario_result()>& scenario, watchdog_options options) {
    void* mem = mmap(nullptr, sizeof(shared_area), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) throw std::runtime_error(std::string("mmap: ") + std::strerror(errno));
    auto* area = new (mem) shared_area();
    area->log.clear();
    struct unmap {
        shared_area* area;
        ~unmap() { area->~shared_area(); munmap(area, sizeof(shared_area)); }
    } unmap_guard{area};

    int pipe_fds[2];  // the child holds the write end; its exit closes it
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));

    // The child's stderr (a runtime's last words before an abort) goes to an unnamed file.
    std::FILE* child_stderr = std::tmpfile();
    if (child_stderr == nullptr) throw std::runtime_error(std::string("tmpfile: ") + std::strerror(errno));
    struct close_file {
        std::FILE* f;
        ~close_file() { std::fclose(f); }
    } close_guard{child_stderr};

    const auto start = std::chrono::steady_clock::now();
    PyGILState_STATE gil = PyGILState_Ensure();  // PyOS_BeforeFork requires the GIL
    std::fflush(nullptr);
    PyOS_BeforeFork();
    const pid_t pid = fork();
    if (pid == 0) {
        close(pipe_fds[0]);
        run_child(area, scenario, fileno(child_stderr));
    }
    PyOS_AfterFork_Parent();
    PyGILState_Release(gil);
    close(pipe_fds[1]);
    if (pid < 0) {
        close(pipe_fds[0]);
        throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    }

    outcome out;
    bool exited = false;
    cycle_confirmation confirmation(options.settle);
    while (!exited) {
        pollfd p{pipe_fds[0], POLLIN, 0};
        const int ready = poll(&p, 1, 5);
        if (ready > 0) exited = true;  // EOF: the child is gone (or is going)
        if (exited) break;
        // A cycle in the trace is a hypothesis; the verdict waits for the observation.
        const std::vector<trace_event> events = area->log.snapshot();
        deadlock_report cycle = find_deadlock(events);
        if (std::optional<std::string> evidence = confirmation.sample(pid, cycle, events.size())) {
            out.observed = verdict::deadlocked;
            out.detail = cycle.describe() + "; " + *evidence;
            break;
        }
        const auto waited = std::chrono::steady_clock::now() - start;
        if (waited > options.deadline) {
            // Past the deadline, a child whose threads are all blocked in futex() is hung
            // for good. One still running may just be slow (a loaded machine, a sanitizer):
            // it gets up to four deadlines before it is called hung anyway.
            bool all_blocked = false;
            std::string threads = describe_threads(pid, all_blocked);
            if (all_blocked || waited > 4 * options.deadline) {
                out.observed = verdict::deadlocked;
                char head[96];
                std::snprintf(head, sizeof head, "no exit within %.1f s, no confirmed wait-for cycle; ",
                              std::chrono::duration<double>(waited).count());
                out.detail = head + threads;
                break;
            }
        }
    }
    out.seconds = seconds_since(start);
    close(pipe_fds[0]);
    if (!exited) kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    out.events = area->log.snapshot();
    out.child_stderr = read_all(child_stderr);
    if (exited) {
        if (WIFSIGNALED(status)) {
            out.observed = verdict::crashed;
            out.signal = WTERMSIG(status);
            out.detail = last_line(out.child_stderr);
        } else if (WEXITSTATUS(status) != child_exit_reported ||
                   area->result_state.load() == 0) {
            out.observed = verdict::crashed;
            out.detail = "the child exited with status " + std::to_string(WEXITSTATUS(status)) +
                         " before reporting a result";
        } else {
            out.observed = area->result_state.load() == 1 ? verdict::finished : verdict::wrong_result;
            out.detail = area->detail;
        }
    }
    return out;
}

}  // namespace harness
