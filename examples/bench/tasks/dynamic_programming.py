"""coin_change(coins, amount): the fewest coins that make up amount; -1 (or None or
infinity) when no combination does. One case defeats the greedy choice."""


def check(candidate):
    assert candidate([1, 2, 5], 11) == 3
    assert candidate([1, 3, 4], 6) == 2  # greedy would take 4 + 1 + 1
    assert candidate([2], 3) in (-1, None, float("inf"))
    assert candidate([1], 0) == 0
    assert candidate([2, 5, 10, 1], 27) == 4
    assert candidate([186, 419, 83, 408], 6249) == 20
