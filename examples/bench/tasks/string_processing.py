"""extract_emails(text): every email address in a text, in order (a list; a set of the
same addresses also passes), with dots, plus signs and subdomains, next to punctuation."""


def check(candidate):
    text = ("Contact alice@example.com or bob.smith+news@mail.example.org, not bob@ or @example.com.\n"
            "Sales: sales_team@shop-online.co.uk; support (support@help.io).")
    expected = ["alice@example.com", "bob.smith+news@mail.example.org", "sales_team@shop-online.co.uk",
                "support@help.io"]
    found = candidate(text)
    assert found is not None
    if isinstance(found, (set, frozenset)):
        assert found == set(expected), found
    else:
        assert list(found) == expected, found
    assert list(candidate("no addresses here")) == []
