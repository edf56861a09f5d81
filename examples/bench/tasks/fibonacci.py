"""fibonacci(n): the n-th Fibonacci number. The prompt has no docstring, so every common
reading passes: F(n) with F(0) = 0, F(1) = 1 (fibonacci(10) == 55), the same sequence
counted from 1 (fibonacci(1) == 0, fibonacci(11) == 55), or the list of the first n numbers."""


def check(candidate):
    fib = [0, 1]
    while len(fib) < 40:
        fib.append(fib[-1] + fib[-2])
    ns = list(range(1, 16)) + [20]
    got = [candidate(n) for n in ns]
    readings = (
        [fib[n] for n in ns],                  # F(n), fibonacci(10) == 55
        [fib[n - 1] for n in ns],              # counted from 1, fibonacci(11) == 55
        [fib[:n] for n in ns],                 # the first n numbers, from 0
        [fib[1:n + 1] for n in ns],            # the first n numbers, from 1
    )
    assert got in readings, "fibonacci(1..15, 20) = %r" % (got,)
