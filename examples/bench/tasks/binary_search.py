"""binary_search(arr, target) on a sorted list: the index of a present target; an absent
one gives -1 (or None or False); the first and last elements, a one-element and an empty
list, targets below and above every element."""


def check(candidate):
    arr = [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21]
    for i, value in enumerate(arr):
        assert candidate(list(arr), value) == i, "index of %d" % value
    for target in (0, 2, 8, 20, 22):
        assert candidate(list(arr), target) in (-1, None, False), "absent %d" % target
    assert candidate([4], 4) == 0
    assert candidate([4], 5) in (-1, None, False)
    assert candidate([], 3) in (-1, None, False)
    assert candidate([2, 4], 4) == 1
