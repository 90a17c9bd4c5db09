"""The re-entrancy record and copied contexts. asyncio's call_soon, create_task and
to_thread (and contextvars.copy_context) copy the current context, and a copy made inside
an initializer can outlive it. Such a copy must not keep saying "computing": after the
initializer has ended, a call made in the copy is an ordinary caller (for a cell: it
computes; for a lazy type: it never gets the type without its class attributes)."""
import asyncio
import contextvars

import pytest

import gilonce_capi_probe as capi


def test_a_copy_of_a_failed_initializers_context_is_an_ordinary_caller():
    cell = capi.new_cell("copied context cell")
    copies = []

    def failing_init():
        copies.append(contextvars.copy_context())
        raise ValueError("transient failure")

    with pytest.raises(ValueError):
        capi.cell_get_or_init(cell, failing_init)
    assert copies[0].run(capi.cell_get_or_init, cell, lambda: "computed in the copy") == "computed in the copy"


def test_a_copy_made_while_the_initializer_runs_is_that_computation():
    cell = capi.new_cell("live copy cell")

    def init():
        # Run in a copy of this context while the initializer is still running: this is the
        # initializer asking for its own value, by another route.
        return contextvars.copy_context().run(capi.cell_get_or_init, cell, lambda: "never")

    with pytest.raises(RuntimeError, match="'live copy cell': re-entrant initialization"):
        capi.cell_get_or_init(cell, init)


def test_an_asyncio_callback_scheduled_by_a_failed_factory_never_gets_an_incomplete_type():
    attempts = []
    seen = {}

    def hook(name, early):
        asyncio.get_running_loop().call_soon(callback)  # copies the factory's context
        attempts.append(name)
        if len(attempts) == 1:
            raise ValueError("transient failure")
        return early()

    lazy = capi.new_lazy_type("contexttest.Color", ["RED"], hook)

    def callback():
        if "type" not in seen:
            t = capi.lazy_type_get(lazy)
            seen["type"], seen["complete"], seen["has RED"] = t, capi.lazy_type_is_complete(lazy), hasattr(t, "RED")

    async def main():
        with pytest.raises(RuntimeError, match="cannot compute class attribute contexttest.Color.RED"):
            capi.lazy_type_get(lazy)
        await asyncio.sleep(0)  # the callback runs, in the copied context
        await asyncio.sleep(0)

    asyncio.run(main())
    assert seen["complete"] and seen["has RED"], seen
