"""class Stack: push, pop last in first out, peek (or top) without removing, emptiness
(is_empty, isEmpty, empty, size or len, whichever it has). Popping an empty stack may
raise or return None."""


def check(candidate):
    s = candidate()
    for value in (1, 2, 3):
        s.push(value)
    peek = first_method(s, ("peek", "top"))
    if peek is not None:
        assert peek() == 3
        assert peek() == 3  # still there
    assert s.pop() == 3
    assert s.pop() == 2
    s.push(4)
    assert s.pop() == 4
    assert s.pop() == 1
    check_emptied(s, s.pop)
