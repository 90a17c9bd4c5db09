// runner/steps.cpp: the table of steps (see steps.hpp).
#include "steps.hpp"

#include "../01-unsound-lazy-type/scenarios.hpp"
#include "../02-lock-that-deadlocks/scenarios.hpp"
#include "../03-gil-as-the-lock/scenarios.hpp"
#include "../04-recursive-class-attributes/scenarios.hpp"
#include "../05-two-stage-initialization/scenarios.hpp"
#include "../06-many-interpreters/scenarios.hpp"
#include "../07-no-gil/scenarios.hpp"
#include "lazy_object_race.hpp"

namespace runner {

const std::vector<step>& all_steps() {
    static const std::vector<step> steps{
        {"00-foundation", "The reference gil_once_cell against a function-local static", &scenarios::all()},
        {"01-unsound-lazy-type", "An unsound lazy type object", &step01::scenarios()},
        {"02-lock-that-deadlocks", "Fix it with a lock?", &step02::scenarios()},
        {"03-gil-as-the-lock", "Let the GIL be the lock", &step03::scenarios()},
        {"04-recursive-class-attributes", "The recursive class-attribute problem", &step04::scenarios()},
        {"05-two-stage-initialization", "Two-stage initialization", &step05::scenarios()},
        {"06-many-interpreters", "Many interpreters and lifetimes", &step06::scenarios()},
        {"07-no-gil", "No GIL at all", &step07::scenarios()},
    };
    return steps;
}

const step* find_step(const std::string& key) {
    for (const step& s : all_steps()) {
        const std::string number = s.id.substr(0, 2);
        const std::string slug = s.id.substr(3);
        if (key == s.id || key == number || key == slug ||
            (key.size() == 1 && number == "0" + key))
            return &s;
    }
    return nullptr;
}

}  // namespace runner
