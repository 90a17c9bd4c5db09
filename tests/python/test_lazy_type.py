"""Every path by which Python code can reach a lazy_type between stage 1 (the type is
ready) and publication (its class attributes are in place), as the contract in
reference/include/gilonce/lazy_type.hpp names them: the factories' own code, instances the
factories create (type(obj)), the bases' __subclasses__(), and the garbage collector
(gc.get_objects(), gc.get_referrers(base), gc.get_referents(type)), from the computing thread
and from another thread while a factory releases the GIL. Each path may read, instantiate
and subclass the type; none may change an immutable one through setattr, delattr or
__class__, and a write into its dict itself (handed out by gc.get_referents) stops the
publication with an error: nothing but the class attributes reaches the published type."""
import gc
import threading

import pytest

import gilonce_probe


def reach_by_every_path(early, instance):
    """The incomplete type as found by each named path (each must be the same object)."""
    return {
        "type(instance)": type(instance),
        "object.__subclasses__()": [t for t in object.__subclasses__() if t is early][0],
        "gc.get_objects()": [o for o in gc.get_objects() if o is early][0],
        "gc.get_referrers(base)": [o for o in gc.get_referrers(early.__base__) if o is early][0],
    }


def layout_twin():
    """A mutable probe type with the probe types' layout and deallocator, so that __class__
    assignment between it and a probe type is refused for mutability alone."""
    return gilonce_probe.LazyType("stagetwo.Twin", [], lambda name, early: None, immutable=False).get()


def try_to_change(found):
    """Every change a path could attempt; returns what happened to each."""
    outcomes = {}
    twin = layout_twin()
    attempts = {
        "set a class attribute": lambda: setattr(found, "RED", "forged"),
        "add an attribute": lambda: setattr(found, "EXTRA", 1),
        "delete an attribute": lambda: delattr(found, "EXTRA"),
        "assign __class__ from it": lambda: setattr(found(), "__class__", twin),
        "assign __class__ to it": lambda: setattr(twin(), "__class__", found),
    }
    for what, attempt in attempts.items():
        try:
            attempt()
            outcomes[what] = "succeeded"
        except TypeError as error:
            refused_for_mutability = "immutable" in str(error) or "only supported for mutable types" in str(error)
            outcomes[what] = "TypeError" if refused_for_mutability else f"TypeError: {error}"
    return outcomes


def test_every_path_sees_an_unchangeable_incomplete_type_from_the_computing_thread():
    seen = {}

    def hook(name, early):
        instance = early()  # instances are allowed while stage 2 runs
        if name == "RED":
            paths = reach_by_every_path(early, instance)
            seen["same object"] = all(found is early for found in paths.values())
            seen["missing attributes"] = not hasattr(early, "RED") and not hasattr(early, "GREEN")
            seen["changes"] = try_to_change(early)

            class Sub(early):  # subclassing is allowed too
                pass
            seen["subclass"] = Sub
        return instance

    lazy = gilonce_probe.LazyType("stagetwo.Color", ["RED", "GREEN"], hook)
    color = lazy.get()
    assert seen["same object"] and seen["missing attributes"]
    assert set(seen["changes"].values()) == {"TypeError"}, seen["changes"]
    assert isinstance(color.RED, color) and isinstance(color.GREEN, color)
    assert not hasattr(color, "EXTRA")
    assert seen["subclass"].RED is color.RED  # published through the base
    assert set(try_to_change(color).values()) == {"TypeError"}


def test_another_thread_that_finds_the_type_while_a_factory_releases_the_gil_cannot_change_it():
    factory_waiting, probed = threading.Event(), threading.Event()
    report = {}

    def hook(name, early):
        if name == "RED" and threading.current_thread() is threading.main_thread():
            factory_waiting.set()
            assert probed.wait(10)  # releases the GIL while the other thread probes
        return early()

    def probe():
        assert factory_waiting.wait(10)
        found = [t for t in object.__subclasses__() if t.__name__ == "Shade"]
        report["found"] = found
        report["complete then"] = lazy.is_complete()
        report["changes"] = try_to_change(found[0]) if found else {}
        probed.set()

    lazy = gilonce_probe.LazyType("stagetwo.Shade", ["RED"], hook)
    other = threading.Thread(target=probe)
    other.start()
    shade = lazy.get()
    other.join()
    assert report["found"] == [shade] and report["complete then"] is False
    assert set(report["changes"].values()) == {"TypeError"}, report["changes"]
    assert not hasattr(shade, "EXTRA") and isinstance(shade.RED, shade)


def test_a_mutable_lazy_type_is_an_ordinary_class_and_publication_overwrites_only_its_names():
    def hook(name, early):
        early.RED = "stale"   # allowed: the type was made mutable on purpose
        early.OTHER = 1
        return early()

    lazy = gilonce_probe.LazyType("stagetwo.Open", ["RED"], hook, immutable=False)
    t = lazy.get()
    assert isinstance(t.RED, t) and t.OTHER == 1
    # The changes try_to_change attempts all work on a mutable type: its refusals above are
    # the immutable type's, not an artefact of the attempts.
    outcomes = try_to_change(t)
    assert set(outcomes.values()) == {"succeeded"}, outcomes


def test_a_write_into_the_type_dict_through_the_gc_is_an_error_not_a_silent_change():
    def hook(name, early):
        raw_dict = [d for d in gc.get_referents(early) if isinstance(d, dict) and "__doc__" in d][0]
        raw_dict["INJECTED"] = "from stage 2"  # bypasses setattr's immutability check
        return early()

    lazy = gilonce_probe.LazyType("stagetwo.Injected", ["RED"], hook)
    with pytest.raises(RuntimeError, match="stagetwo.Injected: its dict was changed while its class attributes"):
        lazy.get()
    assert not lazy.is_complete()


def test_a_spec_that_already_says_immutable_works_and_computes_once():
    calls = []

    def hook(name, early):
        calls.append(name)
        return early()

    lazy = gilonce_probe.LazyType("stagetwo.Frozen", ["ONLY"], hook, spec_immutable=True)
    t = lazy.get()
    assert lazy.get() is t and calls == ["ONLY"] and isinstance(t.ONLY, t)
    with pytest.raises(TypeError):
        t.ONLY = 1


def test_reading_annotations_during_stage_two_is_not_a_change():
    # Reading type.__annotations__ stores an empty dict in the type's own dict (3.10-3.13:
    # __annotations__; 3.14: __annotations_cache__, and None as __annotate_func__):
    # CPython's change, not the reader's; publication must accept it.
    def hook(name, early):
        assert early.__annotations__ == {}
        return early()

    lazy = gilonce_probe.LazyType("stagetwo.Annotated", ["RED"], hook)
    t = lazy.get()
    assert isinstance(t.RED, t)
