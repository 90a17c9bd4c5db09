// Misuse that must not compile: `gil_token t{};`, a token that proves nothing.
#include <gilonce/gil_token.hpp>

void forged() {
    gilonce::gil_token token{};  // error: the constructor is private
    (void)token;
}
