# Why recursive_init_error reaches no catch (details.md, "Why the catch-all never runs"): in
# the watchdog's child of the single-threaded recursion test, prints each call of the C++
# personality routine, with its phase (1 search, 6 cleanup in the handler frame) and frame,
# then the backtrace at the abort. x86-64 only (arguments read from rsi and r8). Run:
# gdb -batch -x why_terminate.gdb --args STEP02_TESTS "step 02: recursive static initialization aborts while the process is single-threaded"
set breakpoint pending on
set follow-fork-mode child
set print thread-events off
set pagination off
break __gxx_personality_v0
commands
silent
printf "personality routine: phase %d, frame ", $rsi
info symbol ((unsigned long (*)(void*))_Unwind_GetIP)($r8)
continue
end
run
bt 13
