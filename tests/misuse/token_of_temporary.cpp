// Misuse that must not compile: the token of a temporary gil_acquire, which releases the
// GIL at the end of this statement while the token lives on.
#include <gilonce/gil_token.hpp>

void outlives() {
    gilonce::gil_token token = gilonce::gil_acquire{}.token();  // error: deleted overload
    (void)token;
}
