"""quicksort(arr): sorts numbers ascending, as a new list or in place (check_sorts in
examples/bench/python/task_helpers.py)."""


def check(candidate):
    check_sorts(candidate)
