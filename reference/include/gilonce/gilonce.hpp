// gilonce/gilonce.hpp: everything in the gilonce reference library, in one include.
#pragma once

#include "errors.hpp"
#include "gil_token.hpp"
#include "py_ref.hpp"
#include "gil_once_cell.hpp"
#include "lazy_type.hpp"
#include "per_interpreter.hpp"
