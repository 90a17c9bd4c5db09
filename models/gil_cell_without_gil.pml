/* gil_cell_without_gil.pml: gil_once_cell's protocol (reference/include/gilonce/gil_once_cell.hpp)
   run by two threads with NO GIL, as on a free-threaded interpreter. The cell is sound only
   because the GIL makes "check full_, store" one step; without it SPIN finds two stores.
   This model is meant to fail: run_spin.py --expect-violation wants the assertion and a trail. */

bool full_ = false;    /* full_: a plain bool, "written and read only under the GIL" */
byte value = 0;        /* slot_.value: who wrote it (0: nobody) */
byte stores = 0;       /* stores, ever */

/* --8<-- [start:protocol] */
proctype thread(byte me) {
fast_check:       if          /* get_or_init: if (full_) return slot_.value; */
                  :: full_ -> goto py_returned
                  :: else
                  fi;
run_init:         skip;       /* value.emplace(init()): the initializer runs, nothing held */
store_or_release: if          /* if (!full_) store(value); else release_now(value); */
                  :: !full_ ->
store:               value = me;       /* ::new (&slot_.value) T(value) */
                     stores++;
                     assert(stores == 1);   /* exactly one store */
                     full_ = true       /* full_ = true */
                  :: else             /* release: another initializer won */
                  fi;
py_returned:      assert(full_ && value != 0)  /* a returned value was stored */
}
/* --8<-- [end:protocol] */

init { atomic { run thread(1); run thread(2) } }
