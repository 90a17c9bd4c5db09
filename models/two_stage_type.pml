/* two_stage_type.pml: the free-threaded two-stage lazy type (lazy_type.hpp, issue 13).
   Stage 1 creates and readies the type exactly once, through a once (py_once_lock.pml
   checks that protocol; here it is taken as verified). Stage 2 computes the class
   attributes with no lock held, then publishes them all under a per-type publication
   claim (a py_once_lock: one publisher at a time, the others wait detached). Types A and B have instances of each other as class attributes; S subclasses B.
   Two threads ask for A and B, or for B and S, at once while a collector reads the dicts.
   Each labelled step stands for one line of lazy_type.hpp, linked to it in
   two_stage_type.links; py_ labels stand for Python's side. Mutants: mutants.toml.
   How to run it: models/README.md.

   What the model takes from CPython (each with where CPython does it):
   - The collector takes no lock of ours, and reads every object, type dicts included:
     Modules/gcmodule.c (gc.get_referents, gc.get_objects), and on a free-threaded build it
     runs with the world stopped (Python/gc_free_threading.c gc_collect_internal calls
     _PyEval_StopTheWorld). A stop-the-world parks each thread where it detaches or checks
     its eval breaker (Python/pystate.c stop_the_world, park_detached_threads), never in the
     middle of a dict insert, so the collector reads the dict between two inserts: one
     d_step here, and each insert its own step.
   - The publication claim's waiters wait detached (a py_once_lock: py_once_lock.pml), so
     they never hold up a stop-the-world; a critical section would not do as the claim,
     since detaching suspends it (Python/pystate.c detach_thread calls
     _PyCriticalSection_SuspendAll, Python/critical_section.c), and a factory may detach.
   - A factory may run any Python code and may detach (a GIL switch, I/O): it holds nothing
     of ours (compute_attribute runs with no claim held), so detaching is not modelled.
   - The collector may stop reading at any time (the program goes on without it): so a
     state where every thread is blocked is an end state the safety pass reports. */

#define A 0
#define B 1
#define S 2            /* class S(B): its stage 1 needs B, through B's get */
#define NTYPES 3
#ifdef SUBCLASS
#define defined_subclass 1
#else
#define defined_subclass 0
#endif
#define NATTR 2        /* class attributes per type: enough to see half a publication
                          (insert_all is written out for two) */

mtype = { EMPTY, RUNNING, FULL };   /* stage 1's once */
mtype = { COMPLETE, EARLY };        /* what get returned: the complete type, or the ready one early */

mtype stage1[NTYPES] = EMPTY;
byte stage1_runs[NTYPES];     /* stage 1 runs, ever */
bool complete[NTYPES];        /* the fast path's flag (release-store, acquire-load) */
byte computing[NTYPES];       /* bit per thread: it is computing this type's attributes */
byte type_lock[NTYPES];    /* the per-type publication claim (lazy_type's publication_, a
                                 py_once_lock): who holds it (0: free, else thread + 1) */
byte attrs[NTYPES];           /* class attributes in the type's dict */
byte publications[NTYPES];    /* complete sets published, ever */
byte finished = 0;            /* threads whose get has returned */

/* get(t), called on thread thr; answers on ret. Recursion (A's factory asks for B, whose
   factory asks for A) is a nested run on the same thread: the caller waits for the answer. */
proctype get(byte t; byte thr; chan ret) {
  chan sub = [1] of { mtype };  /* the answer (buffered: rendezvous would rule out partial-order reduction with -f) */
  mtype got;

fast_complete:   if                /* acquire load of complete: the complete type, at once */
                 :: complete[t] -> goto py_return_complete
                 :: else
                 fi;

/* ---- stage 1, exactly once (a verified once: py_once_lock.pml): create and ready ---- */
stage_one:       if                /* the first caller runs stage 1, the others wait (detached) for it */
                 :: atomic { stage1[t] == EMPTY -> stage1[t] = RUNNING } ->
                    if             /* S's bases factory asks for its base: B's get, on this thread */
                    :: t == S -> run get(B, thr, sub); sub ? got; assert(got == COMPLETE)
                    :: else
                    fi;
                    d_step { stage1_runs[t]++; stage1[t] = FULL }   /* created and readied */
                 :: stage1[t] != EMPTY -> stage1[t] == FULL
                 fi;
                 if                /* published while stage 1 ran or waited */
                 :: complete[t] -> goto py_return_complete
                 :: else
                 fi;
computing_check: if                /* this thread is computing t's attributes: */
                 :: computing[t] & (1 << thr) ->
early_type:         goto py_return_early   /* the ready type, early */
                 :: else
                 fi;

/* --8<-- [start:stage_two] */
/* ---- stage 2: compute every class attribute with no lock held ---- */
                 computing[t] = computing[t] | (1 << thr);   /* the computation's record begins */
compute_attribute:
                 if                /* A's factory makes a B, B's makes an A (the other factory: a plain value) */
                 :: t == A -> run get(B, thr, sub); sub ? got
                 :: t == B -> run get(A, thr, sub); sub ? got
                 :: else
                 fi;
                 computing[t] = computing[t] & ~(1 << thr);  /* ... and ends */

/* ---- publish all, one publisher at a time (the publication claim) ---- */
publish_lock:    atomic { type_lock[t] == 0 -> type_lock[t] = thr + 1 };
publish_check:   if                /* another thread published first: drop this set */
                 :: complete[t] -> type_lock[t] = 0; goto py_return_complete
                 :: else
                 fi;
publish_all:     attrs[t]++;       /* each insert a step of its own */
                 d_step { attrs[t]++; assert(attrs[t] == NATTR && publications[t] == 0); publications[t]++ };  /* exactly one publication */
mark_complete:   complete[t] = true;   /* release-store: every attribute is in before complete is seen */
publish_unlock:  type_lock[t] = 0;
/* --8<-- [end:stage_two] */

py_return_complete:                   /* a complete type has every attribute */
                 atomic { assert(complete[t] && attrs[t] == NATTR); ret ! COMPLETE; goto py_end };
py_return_early:                      /* only the computing thread gets it incomplete, and ready */
                 atomic { assert((complete[t] || (computing[t] & (1 << thr))) && stage1[t] == FULL); ret ! EARLY };
py_end:          skip
}

proctype thread(byte thr; byte t) {
  chan r = [1] of { mtype };
  mtype got;
py_call:   run get(t, thr, r); r ? got;
           assert(got == COMPLETE);     /* a caller outside any computation gets it complete */
           finished++
}

/* The collector (or gc.get_referents): at any time, reads a type's dict and its complete
   flag, taking no lock of ours (CPython's collector does not). It may see a publication
   half done; what it must never see is a type marked complete whose dict lacks an
   attribute. */
proctype gc() {
  byte t;
end_gc:
  do
  :: d_step {
       for (t : 0 .. NTYPES - 1) {
         assert(!complete[t] || attrs[t] == NATTR)
       };
       t = 0
     }
  :: break      /* it may stop: then a deadlock of the threads is an invalid end state */
  od
}

/* Two scenarios, each checked on its own (all three threads at once is ~30 million states):
   spin -DMUTUAL: thread 0 asks for A while thread 1 asks for B (each factory needs the other type);
   spin -DSUBCLASS: thread 1 asks for B while thread 2 asks for S (S's stage 1 needs B). */
#if !defined(MUTUAL) && !defined(SUBCLASS)
#define MUTUAL
#endif
init {
  byte k;
  atomic {
#ifdef MUTUAL
    run thread(0, A); run thread(1, B);
#else
    run thread(1, B); run thread(2, S);
#endif
    run gc()
  }
  finished == 2;
  for (k : 0 .. NTYPES - 1) {   /* each stage ran once, each set was published once */
    assert(stage1_runs[k] == publications[k] && publications[k] == (k != S || defined_subclass));
    assert(computing[k] == 0)   /* every computation's record has ended: a record left behind would
                                   give this thread's next get the incomplete type */
  }
}

/* Every get returns: checked with -a -f. */
ltl every_get_returns { <> (finished == 2) }
