# The on-VM runner itself: these run on MicroPython, not CPython.
import sys


def test_runs_on_micropython():
    assert sys.implementation.name == "micropython"


def test_built_modules_are_importable():
    import camwatch

    assert camwatch.__version__
    # the app package comes from the x64 .mpy build, not from source
    assert camwatch.__file__.endswith(".mpy"), camwatch.__file__


async def test_async_tests_run_under_asyncio():
    import asyncio

    await asyncio.sleep_ms(1)
