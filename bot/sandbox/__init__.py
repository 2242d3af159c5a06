"""Everything that is not the product: the Telegram Bot API emulator, the simulated village around a
running yihu, and ``yihu demo`` on top of both. The tests and the benchmarks use them too.

The arrow points one way: the sandbox imports product modules, no product module imports the sandbox
(the ``yihu demo`` command loads :mod:`bot.sandbox.demo` inside its body; ``tests/test_architecture.py``
checks both).
"""
