// harness/trace.cpp: the event log and the wait-for-cycle analysis behind deadlock verdicts.
#include "harness/trace.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>

#include <sys/syscall.h>
#include <unistd.h>

namespace harness {

namespace detail {
std::atomic<trace_log*> current_log{nullptr};
}

namespace {
thread_local char current_thread_name[16] = "?";

std::int32_t current_tid() noexcept {
    thread_local const std::int32_t tid = static_cast<std::int32_t>(syscall(SYS_gettid));
    return tid;
}

std::uint64_t now_ns() noexcept {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::steady_clock::now().time_since_epoch())
                                          .count());
}

void copy_text(char* dst, std::size_t size, const char* src) noexcept {
    std::snprintf(dst, size, "%s", src != nullptr ? src : "");
}
}  // namespace

const char* to_string(event_kind kind) noexcept {
    switch (kind) {
        case event_kind::waits: return "waits for";
        case event_kind::holds: return "holds";
        case event_kind::releases: return "releases";
        case event_kind::passes: return "no longer waits for";
        case event_kind::note: return "note";
    }
    return "?";
}

void trace_log::clear() noexcept {
    for (auto& p : published) p.store(0, std::memory_order_relaxed);
    origin_ns = now_ns();
    next.store(0, std::memory_order_release);
}

std::vector<trace_event> trace_log::snapshot() const {
    std::vector<trace_event> out;
    const std::uint32_t n = std::min<std::uint32_t>(next.load(std::memory_order_acquire),
                                                    static_cast<std::uint32_t>(capacity));
    for (std::uint32_t i = 0; i < n; ++i) {
        // A slot taken but not yet written ends the snapshot: later slots may depend on it.
        if (published[i].load(std::memory_order_acquire) == 0) break;
        out.push_back(events[i]);
    }
    return out;
}

void install_trace(trace_log* log) noexcept {
    detail::current_log.store(log, std::memory_order_release);
}
trace_log* installed_trace() noexcept { return detail::current_log.load(std::memory_order_acquire); }

void set_thread_name(const char* name) noexcept {
    copy_text(current_thread_name, sizeof current_thread_name, name);
}
const char* thread_name() noexcept { return current_thread_name; }

void detail::record_slow(trace_log* log, event_kind kind, const char* resource,
                         const char* text) noexcept {
    const std::uint32_t i = log->next.fetch_add(1, std::memory_order_acq_rel);
    if (i >= trace_log::capacity) return;
    trace_event& e = log->events[i];
    e.t_ns = now_ns() - log->origin_ns;
    e.kind = kind;
    copy_text(e.thread, sizeof e.thread, current_thread_name);
    copy_text(e.resource, sizeof e.resource, resource);
    copy_text(e.text, sizeof e.text, text);
    e.tid = current_tid();
    // seq_cst: the order of publications is the order a reader in another process sees.
    log->published[i].store(1, std::memory_order_seq_cst);
}

std::string deadlock_report::describe() const {
    std::string out;
    for (const auto& link : cycle) {
        if (!out.empty()) out += "; ";
        out += link;
    }
    return out;
}

deadlock_report find_deadlock(const std::vector<trace_event>& events) {
    std::map<std::string, std::multiset<std::string>> held;  // thread -> resources
    std::map<std::string, std::string> waiting;              // thread -> resource
    std::map<std::string, std::int32_t> tids;                // thread -> kernel tid
    for (const auto& e : events) {
        const std::string thread = e.thread, resource = e.resource;
        tids[thread] = e.tid;
        switch (e.kind) {
            case event_kind::waits: waiting[thread] = resource; break;
            case event_kind::holds:
                held[thread].insert(resource);
                if (waiting.count(thread) && waiting[thread] == resource) waiting.erase(thread);
                break;
            case event_kind::releases: {
                auto& mine = held[thread];
                auto it = mine.find(resource);
                if (it != mine.end()) mine.erase(it);
                break;
            }
            case event_kind::passes:
                if (waiting.count(thread) && waiting[thread] == resource) waiting.erase(thread);
                break;
            case event_kind::note: break;
        }
    }
    auto holder_of = [&](const std::string& resource) -> std::string {
        for (const auto& [thread, resources] : held)
            if (resources.count(resource)) return thread;
        return {};
    };
    auto describe_thread = [&](const std::string& thread) {
        std::string holds;
        for (const auto& r : held[thread]) holds += (holds.empty() ? "" : ", ") + r;
        return thread + " holds " + (holds.empty() ? "nothing" : holds) + " and waits for " +
               waiting[thread];
    };
    for (const auto& start : waiting) {
        std::vector<std::string> path{start.first};
        std::string current = start.first;
        while (true) {
            auto w = waiting.find(current);
            if (w == waiting.end()) break;
            const std::string next = holder_of(w->second);
            if (next.empty()) break;
            auto seen = std::find(path.begin(), path.end(), next);
            if (seen != path.end()) {
                deadlock_report report;
                report.found = true;
                for (auto it = seen; it != path.end(); ++it) {
                    report.cycle.push_back(describe_thread(*it));
                    report.threads.emplace_back(*it, tids[*it]);
                }
                return report;
            }
            path.push_back(next);
            current = next;
        }
    }
    return {};
}

namespace {
// The verb a timeline uses: it narrates what happened ("takes"), where to_string names the
// state ("holds").
const char* narrated(event_kind kind) {
    switch (kind) {
        case event_kind::waits: return "waits for";
        case event_kind::holds: return "takes";
        case event_kind::releases: return "releases";
        case event_kind::passes: return "gets past, without taking,";
        case event_kind::note: return "";
    }
    return "?";
}
}  // namespace

std::string format_timeline(const std::vector<trace_event>& events) {
    std::string out;
    char line[256];
    for (const auto& e : events) {
        if (e.kind == event_kind::note)
            std::snprintf(line, sizeof line, "%9.3f ms  %-6s %s\n", e.t_ns / 1e6, e.thread, e.text);
        else
            std::snprintf(line, sizeof line, "%9.3f ms  %-6s %s %s%s%s\n", e.t_ns / 1e6, e.thread,
                          narrated(e.kind), e.resource, e.text[0] ? " - " : "", e.text);
        out += line;
    }
    return out;
}

}  // namespace harness
