// Step 07's A/B case: two lazy types whose class attributes are instances of each other
// (A.PARTNER is a B, B.PARTNER is an A), the shape that stalled PyO3's free-threaded fix
// for fear of a deadlock. gilonce::lazy_type holds no lock while a factory runs.
#pragma once

#include <functional>

#include <gilonce/lazy_type.hpp>

namespace step07 {

// --8<-- [start:mutual_types]
// A.PARTNER = B() and B.PARTNER = A(): each factory asks for the other type.
extern gilonce::lazy_type type_a;
extern gilonce::lazy_type type_b;
// --8<-- [end:mutual_types]

/// Called by each PARTNER factory before it asks for the other type, with the factory's
/// type ('A' or 'B'): the scenario's events order the threads there. May release the GIL.
extern std::function<void(char)> partner_hook;
/// What each factory made, for the thread that ran it: instance addresses, compared only.
struct partner_made {
    int runs = 0;
    const void* by_x = nullptr;
    const void* by_y = nullptr;
};
partner_made& made_for(char type);  // 'A' or 'B'

}  // namespace step07
