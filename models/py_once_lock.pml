/* py_once_lock.pml: the exactly-once cell of reference/include/gilonce/py_once_lock.hpp,
   run by N threads, in a GIL build (default) or a free-threaded one (spin -DFREE_THREADED).
   Each labelled step stands for one line of the headers, linked to it in py_once_lock.links
   (a step that appears again, as detach in publish and reset, is detach_2, detach_3: Promela
   labels are unique); labels starting py_ stand for Python's side (the caller, the
   initializer's body, CPython's stop-the-world) and have no link. Mutants of this model,
   each a plausible mistake in the C++: mutants.toml.
   How to run it: models/README.md.

   What the model takes from CPython (each with where CPython does it):
   - Detaching (PyEval_SaveThread) lets go of the thread state, and in a GIL build the GIL:
     Python/ceval.c PyEval_SaveThread -> Python/pystate.c _PyThreadState_Detach; the states
     attached / detached / suspended are described in Include/internal/pycore_pystate.h.
     Attaching (PyEval_RestoreThread) takes the GIL back, blocking while another thread
     holds it (Python/ceval_gil.c take_gil): attach_ below.
   - Free-threaded: attaching blocks while a stop-the-world is in progress (Python/pystate.c
     _PyThreadState_Attach: tstate_try_attach, else tstate_wait_attach parks until the
     thread is switched out of the suspended state); a stop-the-world parks the detached
     threads at once and waits for each attached one to detach (Python/pystate.c
     stop_the_world, park_detached_threads); the free-threaded collector runs with the world
     stopped (Python/gc_free_threading.c gc_collect_internal calls _PyEval_StopTheWorld).
     So one thread blocked attached stops the world for ever: stop_the_world below.
   - Detaching also suspends the thread's critical sections (Python/pystate.c detach_thread
     calls _PyCriticalSection_SuspendAll, Python/critical_section.c): a lock taken through
     one is let go at any detach. Not used here: the cell's mutex is a plain std::mutex,
     which detaching never releases, hence the rule that it is never held attached (asserted
     in attach_ and lock_).
   - Finalization (spin -DFINALIZING, GIL build): once Py_Finalize has begun, a thread other
     than the finalizing one that takes the GIL back is hung for ever from 3.14 (python/cpython
     gh-87135: Python/ceval_gil.c take_gil calls PyThread_hang_thread; before 3.14 it was
     ended, PyThread_exit_thread, which no thread here survives either). Thread 0 calls
     Py_Finalize and then the cell (from a destructor, say); Py_IsFinalizing() tells it
     (Doc/c-api/init.rst, Include/pylifecycle.h), and may_wait refuses to wait for a claimer
     that is or will be hung. A hung thread that held the mutex would keep it for ever: the
     assertion in attach_ rules that out in every build. */

#ifndef N
#define N 3            /* threads calling the cell at once */
#endif
#ifndef STW_ROUNDS
#define STW_ROUNDS 2   /* stop-the-worlds requested while they run (free-threaded build) */
#endif
#define NOBODY 255

mtype = { EMPTY, RUNNING, FULL };    /* the cell's state (an atomic in the header) */
mtype = { NONE, VALUE, ERROR };      /* what a call has returned */

mtype state = EMPTY;
byte owner = NOBODY;       /* the thread running the initializer while state == RUNNING */
bool value_set = false;    /* the value is written (before state becomes FULL) */
byte stores = 0;           /* successful stores, ever */
byte mutex = NOBODY;       /* the cell's mutex: who holds it */
bool waiting[N];           /* asleep on the cell's condition variable */
bool attached[N];          /* has an attached thread state (GIL build: holds the GIL) */
byte n_attached = 0;
mtype result[N];           /* what each thread's call returned */
byte finished = 0;         /* threads whose call has returned */
#ifndef RETRIES          /* calls made again, in all, by threads whose call failed: one in the GIL */
#ifdef FREE_THREADED       /* build; none free-threaded, where one more call is 14 times the states */
#define RETRIES 0          /* (12 million; a stale owner is the same mistake in either build) */
#else
#define RETRIES 1
#endif
#endif
byte retries = 0;
bool finalizing = false;   /* Py_Finalize has begun (FINALIZING: thread 0 begins it) */
bool main_done = false;    /* thread 0's call has returned */
#ifdef FINALIZING
#define HANGS (finalizing && me != 0)   /* attaching now hangs this thread for ever */
#else
#define HANGS false
#endif
#ifdef FREE_THREADED
bool stw = false;          /* a stop-the-world is requested or in progress */
#else
byte gil = NOBODY;         /* the one GIL: who holds it */
#endif

/* Attaching: GIL build, take the GIL (blocks while another thread holds it); free-threaded
   build, blocks while a stop-the-world is requested. Never with the mutex held: a thread
   that blocks in attach (for ever, if it is hung at finalization) would hold it. */
inline attach_() {
#ifdef FREE_THREADED
  atomic { !stw -> assert(mutex != me); if :: HANGS -> goto end_hung :: else fi; attached[me] = true; n_attached++ }
#else
  atomic { gil == NOBODY -> assert(mutex != me); if :: HANGS -> goto end_hung :: else fi; gil = me; attached[me] = true; n_attached++ }
#endif
}
inline detach_() {
#ifdef FREE_THREADED
  atomic { attached[me] = false; n_attached-- }
#else
  atomic { assert(gil == me); gil = NOBODY; attached[me] = false; n_attached-- }
#endif
}
inline lock_()   { atomic { mutex == NOBODY -> assert(!attached[me]); mutex = me } }  /* taken only detached */
inline unlock_() { atomic { assert(mutex == me); mutex = NOBODY } }

/* notify_one wakes one waiting thread, any one, if there is one; notify_all wakes all. */
inline notify_one_() {
  atomic {
    select(i : 0 .. N - 1);     /* where the search for a waiter starts */
    j = 0;
    do
    :: j == N -> break                              /* nobody waits */
    :: waiting[i] -> waiting[i] = false; break      /* wakes this one */
    :: else -> i = (i + 1) % N; j++
    od;
    i = 0; j = 0          /* scratch, cleared: not part of the state */
  }
}
inline notify_all_() {
  atomic { i = 0; do :: i < N -> waiting[i] = false; i++ :: else -> break od; i = 0 }
}

proctype thread(byte me) {
  byte i, j;
  bool nested = false;     /* this call is made by the initializer, for the same cell */
  bool reentered = false;  /* the initializer has made its one re-entrant call */
  bool claimed = false;    /* this call claimed the cell: it runs the initializer */
  bool refused = false;    /* this call was refused: finalizing, it may not wait */

py_call:       attach_();  /* Python code, attached, calls the cell */
#ifdef FINALIZING
               if          /* thread 0 has begun Py_Finalize, and calls the cell from it */
               :: me == 0 -> finalizing = true
               :: else
               fi;
#endif

/* ---- the fast path ---- */
fast_check:    if          /* acquire load == full: the value is stored, return it */
               :: state == FULL -> result[me] = VALUE; goto py_returned
               :: else
               fi;
/* ---- the slow path ---- */
reentry_check: if          /* this thread already runs this cell's initializer (owner_ is this thread): an error, never a wait */
               :: owner == me -> assert(nested);  /* only a call from inside the initializer gets this error */
                  result[me] = ERROR; goto py_returned
               :: else
               fi;
detach:        detach_();  /* let go of the thread state before any blocking step */
lock:          lock_();    /* the mutex, taken detached */
               do
               :: state == FULL ->
see_full:         claimed = false; break     /* another thread stored the value */
               :: state == RUNNING ->
see_running:      skip;                      /* another thread runs the initializer */
#ifdef FINALIZING
may_wait:         if                         /* finalizing: the claimer is hung, or will be when it next attaches */
                  :: finalizing -> refused = true; break
                  :: else
                  fi;
#endif
wait:             atomic { assert(!attached[me]);   /* the wait never happens attached */
                           waiting[me] = true; mutex = NOBODY };
#ifdef FINALIZING
end_asleep_at_exit:   /* asleep since before finalization, waking never: harmless at exit */
#endif
                  atomic { !waiting[me] && mutex == NOBODY -> mutex = me }  /* woken, re-locked: look again */
               :: state == EMPTY ->
see_empty:        skip;                      /* nobody stored the value, nobody runs the initializer */
claim:            atomic { state = RUNNING; owner = me; claimed = true };
                  break
               od;
unlock:        unlock_();  /* the mutex is never held attached */
attach:        attach_();  /* attached again with no lock held */
               if
               :: !claimed -> result[me] = (refused -> ERROR : VALUE); goto py_returned   /* refused: an error, not a wait for ever */
               :: else
               fi;
run_init:      skip;       /* call the initializer: Python code, attached, no lock held */

/* The initializer's body: it may ask for this same cell once, may let go of the thread
   state (a GIL switch, or parking for a stop-the-world), then succeeds or fails. */
py_init_body:  if
               :: !reentered -> reentered = true; nested = true; goto fast_check
               :: true
               fi;
py_init_resumes:
               if
               :: detach_(); attach_()
               :: true
               fi;
               if
               :: goto detach_2
               :: goto detach_3
               fi;

/* ---- success (publish): store the value, wake every waiter ---- */
detach_2:      detach_();
lock_2:        lock_();
store:         assert(state == RUNNING && owner == me && stores == 0);  /* exactly one store: only the claimer, once */
               value_set = true; stores++;      /* construct(): the value first, */
store_2:       atomic { state = FULL; owner = NOBODY };  /* then a release store of full */
notify_all:    notify_all_();
unlock_2:      unlock_();
attach_2:      attach_();
               result[me] = VALUE; goto py_returned;

/* ---- failure (reset): back to empty, wake one waiter to try again ---- */
detach_3:      detach_();
lock_3:        lock_();
reset:         atomic { assert(state == RUNNING && owner == me);
                        owner = NOBODY; state = EMPTY };
notify_one:    notify_one_();
unlock_3:      unlock_();
attach_3:      attach_();
               result[me] = ERROR;

py_returned:   assert(result[me] != VALUE || value_set);  /* no thread returns the value before it is stored */
               if
               :: nested ->            /* the re-entrant call got its error; the initializer goes on */
                  assert(result[me] == ERROR);
                  nested = false; result[me] = NONE; goto py_init_resumes
               :: else
               fi;
               assert(n_attached > 0 && attached[me]);       /* every call returns attached */
               if          /* a call that failed may be made again (RETRIES in all): it must not find itself the owner */
               :: result[me] == ERROR && retries < RETRIES -> retries++; claimed = false; refused = false; goto fast_check
               :: else
               fi;
               atomic { finished++; main_done = main_done || me == 0 };
py_exit:       detach_();  /* the thread ends: */
end_hung:      false       /* here, or hung here for ever by an attach while finalizing (3.14) */
}

#ifdef FREE_THREADED
/* CPython's stop-the-world (GC, for instance): once requested, no thread attaches until it
   is over, and it waits until no thread is attached. A thread that blocked while attached
   would stop it forever. */
proctype stop_the_world() {
  byte rounds = 0;
  do
  :: rounds < STW_ROUNDS ->
py_stw_request: stw = true;
py_stw_wait:    n_attached == 0;    /* the world is stopped */
py_stw_resume:  stw = false; rounds++
  :: else -> break
  od
}
#endif

init {
  byte k;
  atomic {
    for (k : 0 .. N - 1) { result[k] = NONE; run thread(k) }
#ifdef FREE_THREADED
    run stop_the_world();
#endif
  }
#ifdef FINALIZING
  main_done;   /* the finalizing thread's call returns, whatever the others do (hung, asleep) */
  assert(stores <= 1 && (stores == 1 || state != FULL))
#else
  finished == N;
  assert(stores <= 1 && (stores == 1) == (state == FULL));  /* at most one store, and full iff stored */
  for (k : 0 .. N - 1) { assert(result[k] != VALUE || stores == 1) }  /* whoever got the value got the stored one */
#endif
}

#ifdef FINALIZING
/* The finalizing thread's call returns (the value or an error): checked with -a -f. */
ltl the_finalizing_call_returns { <> main_done }
#else
/* Every thread's call eventually returns (the value or an error): checked with -a -f. */
ltl every_call_returns { <> (finished == N) }
#endif
