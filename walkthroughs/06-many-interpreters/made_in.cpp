// Step 06's witness (see made_in.hpp). A mutex, not a GIL, guards the record: with own-GIL
// interpreters two threads can record at the same moment.
#include "made_in.hpp"

#include <map>
#include <mutex>

namespace step06 {
namespace {
std::mutex record_lock;
std::map<const void*, maker>& records() {
    static auto* all = new std::map<const void*, maker>;  // never destroyed: read at exit
    return *all;
}
int current_generation = 1;
}  // namespace

int generation() noexcept { return current_generation; }
void next_generation() noexcept { ++current_generation; }

void record_maker(const void* object) {
    const maker made{PyInterpreterState_GetID(PyInterpreterState_Get()), current_generation};
    std::lock_guard<std::mutex> lock(record_lock);
    records()[object] = made;  // an address reused by a later object is recorded anew
}

std::optional<maker> maker_of(const void* object) {
    std::lock_guard<std::mutex> lock(record_lock);
    auto found = records().find(object);
    if (found == records().end()) return std::nullopt;
    return found->second;
}

std::string describe_maker(const void* object) {
    const std::optional<maker> made = maker_of(object);
    if (!made) return "an object nobody recorded";
    return "interpreter " + std::to_string(made->interpreter) + ", generation " + std::to_string(made->generation);
}

}  // namespace step06
