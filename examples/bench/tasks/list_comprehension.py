"""result = the even squares from 1 to 20: the squares of the even numbers up to 20
(4 ... 400), or up to 19 when "to 20" was read as range(1, 20) (4 ... 324)."""


def check(candidate):
    evens_to_20 = [x * x for x in range(2, 21, 2)]
    assert list(candidate) in (evens_to_20, evens_to_20[:-1]), candidate
