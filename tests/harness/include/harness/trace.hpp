// harness/trace.hpp: a cheap event log that scenario code writes as it runs.
//
// Scenarios record who takes, waits for and releases which lock (the GIL, a once-lock).
// The log can live in memory shared with a parent process, so that when a child process
// deadlocks the parent can still read, from the log, who holds what and who waits for
// what: a wait-for cycle, which the watchdog then confirms by observing the threads blocked,
// instead of guessing from a timeout.
// When no log is installed every record call is a single load and a branch.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace harness {

/// What an event says about a resource.
enum class event_kind : std::uint8_t {
    waits,     ///< the thread is about to block until it gets the resource
    holds,     ///< the thread now holds the resource
    releases,  ///< the thread is about to release the resource
    passes,    ///< the thread got past the resource without taking it (it may have waited first)
    note,      ///< anything else worth showing in a timeline; with a resource, what the thread did to it
};

const char* to_string(event_kind kind) noexcept;

/// One recorded event, in a form that can be copied between processes.
struct trace_event {
    std::uint64_t t_ns;     // nanoseconds since the log was cleared
    event_kind kind;
    char thread[16];        // the scenario's name for the thread ("A", "B", "main")
    char resource[48];      // for waits/holds/releases: the lock ("GIL", "once-lock"); for a note, empty or what it acts on
    char text[100];         // free text (notes); may be empty
    std::int32_t tid;       // the kernel's id of the recording thread (for /proc evidence)
};

/// A fixed-capacity log. Lock-free: safe to write from several threads, and to read from
/// another process mapping the same memory. Events past the capacity are counted, not kept.
struct trace_log {
    static constexpr std::size_t capacity = 512;
    std::atomic<std::uint32_t> next{0};
    std::atomic<std::uint32_t> published[capacity];
    trace_event events[capacity];
    std::uint64_t origin_ns = 0;

    void clear() noexcept;
    /// The events recorded so far, in the order they were recorded.
    std::vector<trace_event> snapshot() const;
};

/// Installs `log` as the destination of `record` (null: recording off). Not thread-safe
/// against concurrent recording: install before starting the scenario's threads.
void install_trace(trace_log* log) noexcept;
trace_log* installed_trace() noexcept;

/// Names the calling thread in the events it records.
void set_thread_name(const char* name) noexcept;
const char* thread_name() noexcept;

namespace detail {
extern std::atomic<trace_log*> current_log;
void record_slow(trace_log* log, event_kind kind, const char* resource, const char* text) noexcept;
}  // namespace detail

/// Records an event if a log is installed; otherwise costs one load and a branch.
inline void record(event_kind kind, const char* resource, const char* text = "") noexcept {
    trace_log* log = detail::current_log.load(std::memory_order_acquire);
    if (log != nullptr) detail::record_slow(log, kind, resource, text);
}
inline void note(const char* text) noexcept { record(event_kind::note, "", text); }
inline void note(const std::string& text) noexcept { note(text.c_str()); }
/// A note about what the thread did to `subject` (an interpreter, a cell): diagrams draw it
/// as an arrow to the subject's own lifeline, timelines as the note's text.
inline void note_on(const std::string& subject, const std::string& text) noexcept {
    record(event_kind::note, subject.c_str(), text.c_str());
}

/// A wait-for cycle read off a log: each thread in `cycle` waits for a resource held by the
/// next one, and the last waits for one held by the first (a one-thread cycle is a
/// self-deadlock). A cycle is a *hypothesis*: "waits for" is recorded before the call that
/// blocks, so a thread may record it and then do anything else. The watchdog calls a child
/// deadlocked only when it also observes the cycle's threads blocked (see watchdog.hpp).
struct deadlock_report {
    bool found = false;
    std::vector<std::string> cycle;  // "A holds once-lock, waits for GIL", ...
    std::vector<std::pair<std::string, std::int32_t>> threads;  // (name, kernel tid) in the cycle
    std::string describe() const;    // the cycle as one line
};

/// Looks for a wait-for cycle among the threads' last known states.
/// A one-thread cycle (waiting for a lock it holds) is a hypothesis only if the lock blocks
/// on recursion; a scenario that asks what a primitive does then must not record that wait.
deadlock_report find_deadlock(const std::vector<trace_event>& events);

/// One line per event, for failure messages and the narrated timeline.
std::string format_timeline(const std::vector<trace_event>& events);

}  // namespace harness
