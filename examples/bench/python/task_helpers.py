"""What several task tests (examples/bench/tasks/) share. The harness runs this file in a
task test's namespace before the test itself, so the tests call these names directly."""


def first_method(obj, names):
    """The first of `names` that obj has as a method, or None: the prompts leave method
    names open (peek or top, enqueue or put...), so a test accepts the usual ones."""
    for name in names:
        if callable(getattr(obj, name, None)):
            return getattr(obj, name)
    return None


def check_sorts(candidate):
    """A sort of numbers, ascending: it may return a new sorted list or sort the list in
    place and return None. Duplicates, negatives, empty and one-element lists, sorted
    and reversed input."""
    cases = [
        [3, 6, 1, 8, 2, 9, 2],
        [5, -1, 0, 5, 5, -7, 3, 12, 0],
        [],
        [1],
        [2, 1],
        list(range(20)),
        list(range(20, 0, -1)),
        [7, 3, 9, 3, 1, 8, 2, 6, 5, 4, 10, 0, 11, 3],
    ]
    for case in cases:
        data = list(case)
        result = candidate(data)
        if result is None:
            result = data
        assert list(result) == sorted(case), "%r sorted gave %r" % (case, result)


def check_emptied(container, take):
    """A container that was emptied: is_empty() (or isEmpty, empty) is True and size()
    (or len) is 0 where it has them, and taking one more item raises or gives None."""
    is_empty = first_method(container, ("is_empty", "isEmpty", "empty"))
    if is_empty is not None:
        assert is_empty() is True
    size = first_method(container, ("size", "__len__"))
    if size is not None:
        assert size() == 0
    try:
        leftover = take()
    except Exception:  # raising on an empty container is fine
        leftover = None
    assert leftover is None
