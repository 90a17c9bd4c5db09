"""Finding a function definition in C++ source by what its first line says, and where its body
ends, so that tools can point at code without markers in it: tools/listings.py's `function()`
listings and tests/models/check_links.py (which imports this file from tools/).

A scanner, not a parser. It knows comments (`//`, `/* */`), string and character literals
(escapes, raw strings `R"x(...)x"`, digit separators `1'000`) well enough that a brace inside
one does not count. `#if` branches are read as plain text: a body whose braces differ between
branches is not supported (none of ours does).
"""
import re

CONTROL = {"if", "for", "while", "switch", "catch", "return"}  # `if (` begins a statement
RAW_PREFIX = re.compile(r"(?:^|[^A-Za-z0-9_])(?:u8|u|U|L)?R$")
NUMBER_TAIL = re.compile(r"(?:^|[^A-Za-z0-9_])[0-9][A-Za-z0-9_']*$")


class ScanError(ValueError):
    """The source does not have the definition asked for; the message says why."""


def split(text):
    """(code, skeleton), each as a list of lines, one per line of `text`: `code` is the text with
    comments blanked, `skeleton` is `code` with the contents of literals blanked too. Blanking
    (spaces, newlines kept) keeps every line and column where it was."""
    code, skeleton = [], []
    i, n = 0, len(text)

    def blank(chunk):
        return re.sub(r"[^\n]", " ", chunk)

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            code.append(blank(text[i:j])); skeleton.append(blank(text[i:j])); i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            code.append(blank(text[i:j])); skeleton.append(blank(text[i:j])); i = j
        elif c == '"' and RAW_PREFIX.search(text[max(0, i - 4):i]):
            open_paren = text.find("(", i)
            delimiter = text[i + 1:open_paren] if open_paren >= 0 else ""
            close = text.find(")" + delimiter + '"', open_paren + 1) if open_paren >= 0 else -1
            j = n if close < 0 else close + len(delimiter) + 2
            code.append(text[i:j]); skeleton.append('"' + blank(text[i + 1:j - 1]) + '"'); i = j
        elif c == "'" and NUMBER_TAIL.search(text[max(0, i - 40):i]):  # 1'000: a digit separator
            code.append(c); skeleton.append(c); i += 1
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            code.append(text[i:j]); skeleton.append(c + blank(text[i + 1:j - 1]) + text[j - 1:j])
            i = j
        else:
            code.append(c); skeleton.append(c); i += 1
    return "".join(code).split("\n"), "".join(skeleton).split("\n")


def body_end(skeleton, line, column=0):
    """The index of the line holding the closing brace of the function definition whose
    parameter list opens on `line` at or after `column`. Raises ScanError when what starts
    there is not a definition (a declaration, a call, a statement) or its body never closes."""
    where = skeleton[line][column:]
    paren = where.find("(")
    if paren < 0:
        raise ScanError("no parameter list opens on that line")
    before = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", where[:paren])
    if before and before[-1] in CONTROL:
        raise ScanError(f"`{before[-1]} (` begins a statement, not a function definition")
    text = "\n".join(skeleton[line:])
    i = len(skeleton[line][:column + paren])
    parens, seen_params, init_list, previous = 0, False, False, ""
    while i < len(text):
        c = text[i]
        if c == "(":
            parens += 1
        elif c == ")":
            parens -= 1
            seen_params = seen_params or parens == 0
        elif parens:
            pass  # inside parentheses: parameters, default arguments, noexcept(...), a member's (init)
        elif c == ";":
            raise ScanError("it is a declaration or a call (`;` before any `{`), not a definition")
        elif c == "}":
            raise ScanError("a `}` closes an enclosing scope before any body opens")
        elif c == ":" and seen_params and previous != ":" and text[i + 1:i + 2] != ":":
            init_list = True  # a constructor's member initializers follow
        elif c == "{":
            if not seen_params:
                raise ScanError("a `{` opens before the parameter list closes")
            close = _matching(text, i)
            if close is None:
                raise ScanError("its body never closes (unbalanced braces)")
            if not (init_list and (previous.isalnum() or previous in "_>")):
                return line + text.count("\n", 0, close)
            i = close  # a member's {initializer}, not the body: skip it whole
        if not c.isspace():
            previous = text[i]
        i += 1
    raise ScanError("no body follows")


def _matching(text, i):
    """The index of the brace closing the one that opens at text[i], or None."""
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return j
    return None


def find_definition(text, fragment):
    """(first line, last line), 0-based, of the one definition whose first line contains
    `fragment` (in its code: comments do not count). Raises ScanError saying how many lines
    contain it when that is not exactly one, or why that line does not begin a definition."""
    code, skeleton = split(text)
    hits = [(number, line.find(fragment)) for number, line in enumerate(code) if fragment in line]
    count = sum(code[number].count(fragment) for number, _ in hits)
    if count == 0:
        raise ScanError(f"`{fragment}` occurs 0 times in the code (renamed? comments do not count)")
    if count > 1:
        lines = ", ".join(str(number + 1) for number, _ in hits)
        raise ScanError(f"`{fragment}` occurs {count} times (lines {lines}), need exactly one: "
                        "make the fragment longer")
    number, column = hits[0]
    try:
        return number, body_end(skeleton, number, column)
    except ScanError as why:
        raise ScanError(f"`{fragment}` (line {number + 1}) does not begin a function definition: {why}")
