"""class Queue: enqueue and dequeue (or put and get) first in first out; emptiness
(is_empty, isEmpty, empty, size or len, whichever it has). Dequeueing an empty queue may
raise or return None."""


def check(candidate):
    q = candidate()
    enqueue = first_method(q, ("enqueue", "put", "push"))
    dequeue = first_method(q, ("dequeue", "get", "pop"))
    assert enqueue is not None and dequeue is not None, "no enqueue/dequeue"
    for value in (1, 2, 3):
        enqueue(value)
    assert dequeue() == 1
    enqueue(4)
    assert dequeue() == 2
    assert dequeue() == 3
    assert dequeue() == 4
    check_emptied(q, dequeue)
